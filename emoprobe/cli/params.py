"""Command-line options that several commands share, defined once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.decorators import FC

from emoprobe.errors import EmoprobeError
from emoprobe.hosts import checked_host
from emoprobe.settings import default_host

#: The flag for each `RunConfig` field or setting an error can name in `error.setting`.
FLAGS = {
    "out": "--out",
    "concurrency": "--concurrency",
    "host": "--host",
    "hosts": "--host",
    "model": "--model",
    "models": "--model",
    "cache_dir": "--cache-dir",
    "allow_remote": "--allow-remote",
    "backend": "--backend",
    "timeout": "--timeout",
    "retries": "--retries",
    "backoff": "--backoff",
    "per_class": "--per-class",
    "seed": "--seed",
    "max_side": "--max-side",
    "options": "--option",
    "offline": "--offline",
    "task": "--task",
    "dataset_format": "--format",
    "answer_mode": "--answer",
    "modelfiles": "--modelfiles",
    "resamples": "--resamples",
}


def with_flag_hint(error: EmoprobeError) -> str:
    """The error's message, naming the flag of `error.setting` when the message does not:
    in place of the setting's word (its name, or the flag's without dashes) where the
    message or a parenthesis starts with it, else after the message."""
    message, setting = str(error), error.setting or ""
    flag = FLAGS.get(setting)
    if flag is None or flag in message:
        return message
    for word in dict.fromkeys((setting, flag.removeprefix("--"))):
        if found := re.search(rf"(?:^|\()({re.escape(word)})(?![\w-])", message):
            return message[: found.start(1)] + flag + message[found.end(1) :]
    return f"{message} ({flag})"


def server_host(host: str | None, allow_remote: bool, backend: str = "ollama") -> str:
    """`--host` (or `$OLLAMA_HOST`, or the default) after the library's privacy check."""
    return checked_host(host or default_host(backend), allow_remote=allow_remote)


backend_option = click.option(
    "--backend",
    "backend_kind",
    type=click.Choice(["ollama", "openai"]),
    default="ollama",
    show_default=True,
    help="Ollama's native API, or an OpenAI-compatible server (vLLM, llama.cpp, LM Studio) "
    "at --host URL/v1.",
)
host_option = click.option(
    "--host",
    metavar="URL",
    help="Model server. [default: $OLLAMA_HOST, else http://127.0.0.1:11434]",
)
allow_remote_option = click.option(
    "--allow-remote", is_flag=True, help="Allow a host that is not this machine."
)
cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Response cache folder. [default: $EMOPROBE_CACHE_DIR or the user cache folder]",
)
offline_option = click.option(
    "--offline", is_flag=True, help="Answer only from the cache; no connection at all."
)


def number_option(flag: str, kind: type, default: float, help: str) -> Callable[[FC], FC]:
    """An option taking one number, with its default shown in the help."""
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


timeout_option = number_option(
    "--timeout",
    float,
    180.0,
    "Seconds one request may take in all (connecting, loading the model, the whole answer).",
)
retries_option = number_option(
    "--retries", int, 3, "Retries per image for busy, failing or dropped requests."
)
model_option_option = click.option(
    "--option",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model option, e.g. num_ctx=4096 (repeatable).",
)
task_option = click.option(
    "--task",
    "task_file",
    type=click.Path(path_type=Path),
    help="A task file (TOML) instead of the paper's task; see examples/tasks/.",
)
answer_option = click.option(
    "--answer",
    "answer_mode",
    type=click.Choice(["text", "json", "logprobs"]),
    default="text",
    show_default=True,
    help="Free text (the paper's), a JSON label enum, or text plus log-probabilities.",
)


def request_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that asks a model about images."""
    for option in reversed(
        [
            backend_option,
            allow_remote_option,
            cache_dir_option,
            offline_option,
            timeout_option,
            retries_option,
            model_option_option,
            task_option,
            answer_option,
        ]
    ):
        function = option(function)
    return function

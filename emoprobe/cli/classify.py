"""`emoprobe classify IMAGE…`: the paper's prompt, parser and cache on single images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from emoprobe.cli.params import host_option, request_options, server_host
from emoprobe.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from emoprobe.pipeline.probe import Outcome


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Ollama model name.")
@host_option
@request_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image per line.")
def classify(
    images: tuple[Path, ...],
    model: str,
    host: str | None,
    allow_remote: bool,
    cache_dir: Path | None,
    offline: bool,
    timeout: float,
    retries: int,
    option_pairs: tuple[str, ...],
    task_file: Path | None,
    answer_mode: str,
    backend_kind: str,
    as_json: bool,
) -> int:
    """Classify IMAGE… with the paper's prompt, parser and cache, and print each label.

    Faces are personal data: classify only photos whose owners agreed to it.
    """
    from emoprobe.errors import ConfigError
    from emoprobe.pipeline.probe import Classifier, Outcome, describe_model, open_backends_and_cache
    from emoprobe.task.answers import unsupported
    from emoprobe.task.definition import PAPER_TASK, load_task
    from emoprobe.task.model_options import parse_options

    url = server_host(host, allow_remote, backend_kind)
    options = parse_options(option_pairs)
    task = load_task(task_file) if task_file else PAPER_TASK
    failures = 0
    with open_backends_and_cache(
        [url], kind=backend_kind, timeout=timeout, cache_dir=cache_dir, offline=offline
    ) as (backends, cache):
        info = describe_model(model, backends, cache, backend_kind)
        backend = backends[0] if backends else None
        if problem := unsupported(answer_mode, info.backend, info.server_version):
            raise ConfigError(problem)
        classifier = Classifier(
            task=task,
            model=model,
            options=options,
            backend=backend,
            cache=cache,
            info=info,
            retries=retries,
            answer_mode=answer_mode,
        )
        for path in images:
            outcome = classifier.prepare(Outcome(path))
            if outcome.needs_request:
                outcome = classifier.ask(outcome)
            if classifier.fatal is not None:
                raise classifier.fatal
            failures += outcome.answer is None
            _print_outcome(path, outcome, classifier.prediction(outcome), as_json)
    return 1 if failures else 0


def _print_outcome(path: Path, outcome: Outcome, prediction: str, as_json: bool) -> None:
    answer = outcome.answer
    problem = outcome.error or outcome.failure
    if as_json:
        record: dict[str, Any] = {
            "path": str(path),
            "prediction": prediction or None,
            "raw": answer.raw if answer else None,
            "latency_s": round(answer.latency_s, 4) if answer else None,
            "cached": outcome.cached,
        }
        if answer is not None and answer.scores is not None:
            record["scores"] = {label: round(p, 6) for label, p in answer.scores.items()}
        if problem:
            record["error"] = problem
        click.echo(json.dumps(record, ensure_ascii=False))
    elif answer is None:
        click.echo(f"{path}: error: {problem}")
    else:
        raw = " ".join(answer.raw.split())
        raw = raw if len(raw) <= 60 else raw[:59] + "…"
        source = "cached" if outcome.cached else f"{answer.latency_s:.2f} s"
        click.echo(f"{path}: {prediction}  (answer {raw!r}, {source})")

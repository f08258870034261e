"""`RunConfig`: everything a run depends on, checked once, with the library's defaults.

Hosts are normalised and refused unless they are this machine or `allow_remote` is set
(the images are faces); without any, the host is `$OLLAMA_HOST` or the local default.
Errors name the field at fault (`ConfigError.setting`), never a command-line flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError
from emoprobe.hosts import checked_host
from emoprobe.settings import (
    DEFAULT_BACKEND,
    DEFAULT_BACKOFF_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_MODEL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    KEEP_ALIVE,
    MAX_FAILURES_IN_A_ROW,
    default_host,
)
from emoprobe.task.definition import PAPER_TASK, Task
from emoprobe.task.model_options import DEFAULT_OPTIONS

ANSWER_MODE = "text"
MIN_SIDE = 28
MAX_CONCURRENCY = 256  # requests in flight per host; each one a thread
MAX_TIMEOUT_S = 86_400.0
MAX_BACKOFF_S = 3_600.0
MAX_RETRIES = 100


@dataclass
class RunConfig:
    """One model over one dataset sample; `out=None` picks a folder under reports/."""

    dataset: Path
    model: str = DEFAULT_MODEL
    host: str | None = None  # None: $OLLAMA_HOST, else the backend's local default
    hosts: tuple[str, ...] = ()  # several servers share the work; else `host` alone
    allow_remote: bool = False
    backend: str = DEFAULT_BACKEND
    out: Path | None = None
    cache_dir: Path | None = None
    task: Task = PAPER_TASK
    per_class: int | None = None
    seed: int = 0
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF_S
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))
    keep_alive: str = KEEP_ALIVE
    max_side: int | None = None
    command_line: str = ""
    max_consecutive_failures: int = MAX_FAILURES_IN_A_ROW
    offline: bool = False
    dataset_format: str | None = None
    answer_mode: str = ANSWER_MODE

    def __post_init__(self) -> None:
        wanted = self.hosts or (self.host or default_host(self.backend),)
        checked = (checked_host(url, allow_remote=self.allow_remote) for url in wanted)
        self.hosts = tuple(dict.fromkeys(checked))
        self.host = self.hosts[0]
        self.dataset = Path(self.dataset)
        _at_least("per_class", self.per_class, 1)
        _at_least("max_side", self.max_side, MIN_SIDE, " pixels")
        check_model_name(self.model)
        check_request_settings(self.timeout, self.retries, self.backoff, self.concurrency)

    @property
    def score_labels(self) -> tuple[str, ...]:
        """The labels predictions.csv holds a score column for (logprobs mode only)."""
        return self.task.labels if self.answer_mode == "logprobs" else ()


def check_model_name(model: str) -> None:
    """ConfigError for a model name no server can have (empty, spaces, control chars)."""
    if not model.strip() or not model.isprintable() or any(c.isspace() for c in model):
        raise ConfigError(
            f"model {model!r} is no model name: expected e.g. {DEFAULT_MODEL}", setting="model"
        )


def check_request_settings(
    timeout: float, retries: int, backoff: float = DEFAULT_BACKOFF_S, concurrency: int = 1
) -> None:
    """ConfigError unless each request setting is a finite number in its range."""
    for setting, value, most, unit in (
        ("timeout", timeout, MAX_TIMEOUT_S, " seconds"),
        ("backoff", backoff, MAX_BACKOFF_S, " seconds"),
    ):
        if not math.isfinite(value):
            raise ConfigError(
                f"{setting} must be a finite number of{unit} (got {value})", setting=setting
            )
        if value > most:
            raise ConfigError(f"{setting} must be at most {most:g}{unit}", setting=setting)
    if timeout <= 0:
        raise ConfigError("timeout must be more than 0 seconds", setting="timeout")
    if backoff < 0:
        raise ConfigError("backoff must be 0 or more seconds", setting="backoff")
    if retries < 0:
        raise ConfigError("retries must be 0 or more", setting="retries")
    if retries > MAX_RETRIES:
        raise ConfigError(f"retries must be at most {MAX_RETRIES}", setting="retries")
    _at_least("concurrency", concurrency, 1)
    if concurrency > MAX_CONCURRENCY:
        raise ConfigError(
            f"concurrency must be at most {MAX_CONCURRENCY} requests in flight per host "
            f"(got {concurrency})",
            setting="concurrency",
        )


def _at_least(setting: str, value: int | None, least: int, unit: str = "") -> None:
    if value is not None and value < least:
        raise ConfigError(f"{setting} must be at least {least}{unit}", setting=setting)

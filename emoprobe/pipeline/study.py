"""Several models over the same sample, one loaded at a time, then their comparison.

Every model is checked on the server first (when it answers), so a misspelt second
model fails at once, not after the first model's run. Between models the previous one
is unloaded (keep_alive 0) on every host, so only one is loaded at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from emoprobe.backends.base import Backend
from emoprobe.backends.registry import open_backend
from emoprobe.errors import BackendError, ConfigError, ServerUnreachable, TransientError
from emoprobe.pipeline.config import RunConfig
from emoprobe.pipeline.runner import RunResult
from emoprobe.settings import DEFAULT_REPORTS_DIR


@dataclass
class Study:
    """The runs of a multi-model study and where their comparison went."""

    results: list[RunResult]
    comparison: Path | None = None
    summary: str = ""


def run_models(
    models: Sequence[str],
    config: RunConfig,
    run_one: Callable[[RunConfig], RunResult],
    *,
    on_start: Callable[[int, str], None] = lambda index, model: None,
    on_done: Callable[[RunResult], None] = lambda result: None,
    warn: Callable[[str], None] = lambda message: None,
) -> Study:
    """Run `config` once per model (into `config.out/<model>` when `out` is given)."""
    out = config.out
    slugs = [re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-") for model in models]
    if out is not None and len(set(slugs)) < len(slugs):
        raise ConfigError(
            f"models {', '.join(models)} map to the same folder names under {out}", setting="out"
        )
    backends = [
        open_backend(config.backend, host=host, timeout=config.timeout)
        for host in (() if config.offline else config.hosts)
    ]
    results: list[RunResult] = []
    try:
        try:
            for model in models if backends else ():
                backends[0].describe(model)
        except (ServerUnreachable, TransientError):
            pass  # finished runs need no server; the first run that does will say why
        for index, (model, slug) in enumerate(zip(models, slugs, strict=True)):
            for backend in backends if index else ():
                _unload(backend, models[index - 1], warn)
            on_start(index, model)
            result = run_one(replace(config, model=model, out=out / slug if out else None))
            on_done(result)
            results.append(result)
    finally:
        for backend in backends:
            backend.close()
    return _compare(results, out, warn)


def _unload(backend: Backend, model: str, warn: Callable[[str], None]) -> None:
    try:
        backend.unload(model)
    except BackendError as error:
        warn(f"could not unload {model} ({error}); going on")


def _compare(results: list[RunResult], out: Path | None, warn: Callable[[str], None]) -> Study:
    from emoprobe.reporting.comparison import default_comparison_dir, summary_text
    from emoprobe.reporting.comparison import write_comparison as write_comparison_md
    from emoprobe.reporting.markdown import dataset_name
    from emoprobe.results.comparison import build_comparison

    try:
        comparison = build_comparison([result.out for result in results])
    except ConfigError as error:
        warn(f"no comparison: {error}")
        return Study(results)
    folder = out or default_comparison_dir(
        DEFAULT_REPORTS_DIR, dataset_name(comparison.runs[0].manifest)
    )
    path = write_comparison_md(folder, comparison)
    return Study(results, path, summary_text(comparison))

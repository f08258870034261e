"""The library's front door: whole runs, comparisons and one answer parsed, in a line each.

Everything here is a thin, keyword-friendly call over the layered packages; the CLI is
another thin shell over the same calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoprobe.data.demo import demo_dataset
from emoprobe.pipeline.config import RunConfig
from emoprobe.pipeline.runner import RunEvents, RunResult
from emoprobe.pipeline.runner import run as _run
from emoprobe.pipeline.study import StudyResult
from emoprobe.pipeline.study_file import StudySpec
from emoprobe.results.comparison import Comparison, build_comparison
from emoprobe.task.definition import PAPER_TASK, Task
from emoprobe.task.parse import parse_answer as _parse_answer


def run(
    config: RunConfig | Path | str | None = None,
    events: RunEvents | None = None,
    **settings: Any,
) -> RunResult:
    """Run (or resume) one model over a dataset: `run("data/", model="qwen2.5vl:7b")`.

    Pass a `RunConfig`, or a dataset path and any `RunConfig` field as keywords; no
    dataset runs the bundled demo set of cartoon faces. Returns the `RunResult` (its
    `out` folder opens with `load_run`).
    """
    if not isinstance(config, RunConfig):
        dataset = config if config is not None else demo_dataset(settings.get("cache_dir"))
        config = RunConfig(dataset=Path(dataset), **settings)
    elif settings:
        raise TypeError("pass either a RunConfig or keyword settings, not both")
    return _run(config, events)


def run_study(
    study: StudySpec | Path | str,
    *,
    out: Path | str | None = None,
    events: RunEvents | None = None,
    embed_thumbnails: bool = False,
    **settings: Any,
) -> StudyResult:
    """Run (or resume) a study file: `run_study("examples/studies/quantization.toml")`.

    `settings` are `RunConfig`'s where-fields (hosts, cache_dir, concurrency, timeout,
    retries, offline, ...); the study file says what runs. Returns the `StudyResult`:
    each cell's `RunResult`, the figures, and the paths of report.md and view.html.
    """
    from emoprobe.pipeline.study import run_study as _run_study
    from emoprobe.pipeline.study_file import load_study

    spec = study if isinstance(study, StudySpec) else load_study(study)
    dataset = spec.dataset or demo_dataset(settings.get("cache_dir"))
    config = RunConfig(dataset=dataset, **settings)
    return _run_study(
        spec,
        config,
        lambda each: _run(each, events),
        out=Path(out) if out is not None else None,
        embed_thumbnails=embed_thumbnails,
    )


def compare(runs: Sequence[Path | str], *, resamples: int = 2000, seed: int = 0) -> Comparison:
    """Paired figures of runs on the same images; the first run is the reference."""
    return build_comparison([Path(run) for run in runs], resamples=resamples, seed=seed)


def parse_answer(answer: str, task: Task = PAPER_TASK) -> str:
    """The label of `task` that a free-text answer names, else `"unparsed"`."""
    return _parse_answer(answer, task.labels, task.synonyms)

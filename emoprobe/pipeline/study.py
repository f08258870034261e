"""Several models over the same sample, one loaded at a time: `run --model … --model …`
(`run_models`, then comparison.md) and study files (`run_study`, then report.md and
view.html over every cell of models × answer modes × prompt variants). Every model is
checked first, so a misspelt second model fails at once, not after the first one's run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

from emoprobe.backends.base import Backend
from emoprobe.backends.registry import open_backend
from emoprobe.errors import (
    BackendError,
    ConfigError,
    ModelNotFound,
    ServerUnreachable,
    TransientError,
)
from emoprobe.files import slug
from emoprobe.pipeline.config import RunConfig
from emoprobe.pipeline.runner import RunResult
from emoprobe.pipeline.study_file import Cell, StudySpec
from emoprobe.results.study import StudyFigures
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
    slugs = [slug(model) for model in models]
    if out is not None and len(set(slugs)) < len(slugs):
        raise ConfigError(
            f"models {', '.join(models)} map to the same folder names under {out}", setting="out"
        )

    def run_model(index: int, model: str) -> list[RunResult]:
        on_start(index, model)
        result = run_one(replace(config, model=model, out=out / slugs[index] if out else None))
        on_done(result)
        return [result]

    results = in_turn(models, config, run_model, warn=warn)
    return _compare(results, out, warn)


def in_turn(
    models: Sequence[str],
    config: RunConfig,
    run_model: Callable[[int, str], list[RunResult]],
    *,
    answer_modes: Sequence[str] = (),
    warn: Callable[[str], None] = lambda message: None,
) -> list[RunResult]:
    """`run_model(index, model)` for each model in turn, every model (and its answer modes)
    checked first, the previous model unloaded on every host before the next starts."""
    backends = [
        open_backend(config.backend, host=host, timeout=config.timeout)
        for host in (() if config.offline else config.hosts)
    ]
    results: list[RunResult] = []
    try:
        if backends:
            check_models(backends[0], models, answer_modes)
        for index, model in enumerate(models):
            for backend in backends if index else ():
                try:
                    backend.unload(models[index - 1])
                except BackendError as error:
                    warn(f"could not unload {models[index - 1]} ({error}); going on")
            results.extend(run_model(index, model))
    finally:
        for backend in backends:
            backend.close()
    return results


def check_models(backend: Backend, models: Sequence[str], answer_modes: Sequence[str]) -> bool:
    """Every model on the server, able to see and answering in every mode, else one error
    naming every missing model; False (nothing checked) where the server does not answer."""
    from emoprobe.pipeline.probe import check_answer_mode

    missing: list[tuple[str, ModelNotFound]] = []
    for model in models:
        try:
            info = backend.describe(model)
        except ModelNotFound as error:
            missing.append((model, error))
            continue
        except (ServerUnreachable, TransientError):
            return False
        for mode in answer_modes:
            check_answer_mode(mode, info)
    if missing:
        message = "; ".join(error.message for _, error in missing)
        if len(missing) > 1:
            names = ", ".join(repr(model) for model, _ in missing)
            message = f"{len(missing)} models are missing ({names}): {message}"
        raise ModelNotFound(message, host=backend.host, model=missing[0][0])
    return True


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


# -- study files ------------------------------------------------------------------------
STUDY_PLAN = "study.json"


@dataclass
class StudyResult:
    """A study's cells, their runs and where its combined report and page went."""

    spec: StudySpec
    out: Path
    cells: list[Cell]
    results: list[RunResult]  # one per cell, in `cells`' order
    report: Path | None = None
    view: Path | None = None
    figures: StudyFigures | None = None
    notes: list[str] = field(default_factory=list)  # cells left out of the report, and why

    @property
    def complete(self) -> bool:
        return all(result.complete for result in self.results)


def check_study_models(spec: StudySpec, config: RunConfig) -> str:
    """Check every model of the study on the first host; what was checked, as a phrase."""
    if config.offline:
        return "offline: the models were not checked"
    with closing(
        open_backend(config.backend, host=config.hosts[0], timeout=config.timeout)
    ) as backend:
        if check_models(backend, spec.models, spec.answers):
            return f"every model is on {backend.host} and answers in {', '.join(spec.answers)}"
        return f"no server answers at {backend.host}: the models were not checked"


def cell_config(spec: StudySpec, config: RunConfig, cell: Cell, out: Path) -> RunConfig:
    """One cell's run: the study's what (sample, model, prompt, mode, options) over `config`."""
    return replace(
        config,
        dataset=spec.dataset or config.dataset,
        dataset_format=spec.dataset_format,
        per_class=spec.per_class,
        seed=spec.seed,
        max_side=spec.max_side,
        options=dict(spec.options),
        model=cell.model,
        answer_mode=cell.answer_mode,
        task=cell.variant.task,
        out=out / cell.folder,
    )


def default_study_dir(spec: StudySpec) -> Path:
    return DEFAULT_REPORTS_DIR / f"study-{spec.name}"


def run_study(
    spec: StudySpec,
    config: RunConfig,
    run_one: Callable[[RunConfig], RunResult],
    *,
    out: Path | None = None,
    on_start: Callable[[int, Cell], None] = lambda index, cell: None,
    on_done: Callable[[Cell, RunResult], None] = lambda cell, result: None,
    warn: Callable[[str], None] = lambda message: None,
    embed_thumbnails: bool = False,
) -> StudyResult:
    """Run (or resume: each cell is an ordinary run) every cell of `spec`, model by model,
    into `out/<cell>`, every model checked first; then `out/report.md` and `out/view.html`."""
    out = out or default_study_dir(spec)
    cells = spec.cells
    by_model = {model: [c for c in cells if c.model == model] for model in spec.models}

    def run_model(index: int, model: str) -> list[RunResult]:
        if index == 0:  # every model checked: now the study's folder
            _write_plan(out, spec, cells)
        results = []
        for cell in by_model[model]:
            on_start(cells.index(cell), cell)
            result = run_one(cell_config(spec, config, cell, out))
            on_done(cell, result)
            results.append(result)
        return results

    results = in_turn(spec.models, config, run_model, answer_modes=spec.answers, warn=warn)
    study = StudyResult(spec, out, cells, results)
    _write_plan(out, spec, cells, results)
    write_study_outputs(study, embed_thumbnails=embed_thumbnails, warn=warn)
    return study


def _write_plan(
    out: Path, spec: StudySpec, cells: list[Cell], results: Sequence[RunResult] = ()
) -> None:
    """study.json: the file's digest, each cell's folder and prompt (after the runs, counts)."""
    import hashlib
    import json

    from emoprobe.files import write_atomic

    plan = {
        "study": spec.name,
        "file": str(spec.path),
        "file_sha256": hashlib.sha256(spec.path.read_bytes()).hexdigest(),
        "cells": [
            {
                "name": cell.name,
                "folder": cell.folder,
                "model": cell.model,
                "answer_mode": cell.answer_mode,
                "variant": cell.variant.name,
                "prompt_sha256": cell.variant.task.prompt_sha256,
                **({"sampled": r.total, "finished": r.finished} if r else {}),
            }
            for cell, r in zip(
                cells, [*results, *[None] * (len(cells) - len(results))], strict=True
            )
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / STUDY_PLAN, json.dumps(plan, indent=2, ensure_ascii=False) + "\n")


def write_study_outputs(
    study: StudyResult, *, embed_thumbnails: bool = False, warn: Callable[[str], None]
) -> None:
    """report.md and view.html over every cell whose run folder can be read."""
    from emoprobe.reporting.study import write_study_report
    from emoprobe.reporting.view_page import write_view
    from emoprobe.results.load import load_run
    from emoprobe.results.study import CellRun, study_figures

    runs = []
    for cell, result in zip(study.cells, study.results, strict=True):
        try:
            run = load_run(study.out / cell.folder)
        except ConfigError as error:
            study.notes.append(f"{cell.name}: {error}")
            continue
        factors = {
            "model": cell.model,
            "answer_mode": cell.answer_mode,
            "variant": cell.variant.name,
        }
        runs.append(CellRun(cell.name, factors, run, sampled=result.total))
    try:
        study.figures = study_figures(runs)
    except ConfigError as error:
        warn(f"no study report: {error}")
        return
    study.report = write_study_report(study.out, study.spec, study.figures, study.notes)
    study.view = write_view(
        [cell.run for cell in runs],
        study.out / "view.html",
        embed_thumbnails=embed_thumbnails,
        title=f"emoprobe study {study.spec.name}",
        names=[cell.name for cell in runs],
    ).path

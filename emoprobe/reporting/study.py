"""A study's report.md: every cell's figures, the paired tests and the agreement.

Rendering only: the numbers are `emoprobe.results.study`'s, re-derivable from each
cell's predictions.csv and manifest.json.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emoprobe.files import write_atomic
from emoprobe.pipeline.study_file import StudySpec, Variant
from emoprobe.reporting.markdown import PValue, column_table, fixed, interval, signed, table
from emoprobe.results.study import ALPHA, CellFigures, PairTest, StudyFigures
from emoprobe.task.definition import UNPARSED

REPORT = "report.md"
_SETTINGS = ("answer_mode", "variant")  # what two models compared share
_FACTOR_NAMES = {"model": "model", "answer_mode": "answer mode", "variant": "prompt variant"}


def write_study_report(
    folder: Path, spec: StudySpec, figures: StudyFigures, notes: Sequence[str] = ()
) -> Path:
    path = folder / REPORT
    write_atomic(path, study_markdown(spec, figures, notes))
    return path


def study_markdown(spec: StudySpec, figures: StudyFigures, notes: Sequence[str] = ()) -> str:
    sections = [
        _header(spec, figures, notes),
        _cells(figures),
        _tests(figures),
        _agreement(figures),
        _answer_shares(figures),
        _variants(spec),
        "## Files\n\n- `view.html`: every image with every cell's answer (filter: cells disagree), "
        "self-contained; it links the images by path and holds none.\n- One run folder per cell "
        "(named in the cells table): its report.md, "
        "predictions.csv and manifest.json; every figure here is re-derivable from them.\n",
    ]
    return "\n".join(section for section in sections if section)


def _header(spec: StudySpec, figures: StudyFigures, notes: Sequence[str]) -> str:
    digest = hashlib.sha256(spec.path.read_bytes()).hexdigest()[:12] if spec.path.is_file() else "?"
    dataset = spec.dataset.as_posix() if spec.dataset else "the demo set"
    sample = f"{spec.per_class} per class, seed {spec.seed}" if spec.per_class else "every image"
    shape = (
        f"{len(spec.models)} model(s) × {len(spec.answers)} answer mode(s) × "
        f"{len(spec.variants)} prompt variant(s) = {len(spec.cells)} cells"
    )
    lines = [
        f"# Study: {spec.name}",
        "",
        f"Study file `{spec.path.as_posix()}` (sha256 {digest}); dataset `{dataset}`, "
        f"sample: {sample}; task {spec.task.name} ({', '.join(spec.task.labels)}); {shape}.",
        "",
        f"Every figure is on the **{figures.shared} images that every cell scored** "
        "(status ok or unparsed, matched by sha256 and path): unreadable images are left "
        "out, an unparsed answer counts as wrong. 95% intervals: paired percentile "
        f"bootstrap over the images ({figures.resamples} resamples, seed {figures.seed}).",
    ]
    if notes:
        lines += ["", "**Not in this report** (no results yet):", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _cells(figures: StudyFigures) -> str:
    columns: list[tuple[str, Callable[[CellFigures], Any]]] = [
        ("cell", lambda cell: cell.name),
        ("folder", lambda cell: f"`{cell.folder}`"),
        ("quantization", lambda cell: cell.quantization),
        ("scored (of sampled)", lambda cell: f"{cell.scored_all} of {_or_unknown(cell.sampled)}"),
        ("accuracy", lambda cell: cell.metrics.accuracy),
        ("accuracy 95% CI", lambda cell: interval(cell.accuracy_interval)),
        ("weighted F1", lambda cell: cell.metrics.f1_weighted),
        ("F1 95% CI", lambda cell: interval(cell.f1_interval)),
        ("macro F1", lambda cell: cell.metrics.f1_macro),
        ("unparsed", lambda cell: cell.metrics.n_unparsed),
        ("images/s", lambda cell: fixed(cell.images_per_s, 2)),
    ]
    return "## Cells\n\n" + column_table(columns, figures.cells) + "\n"


def _or_unknown(count: int | None) -> str:
    return "?" if count is None else str(count)


def _tests(figures: StudyFigures) -> str:
    title = "## Paired tests (McNemar, Holm-corrected)\n\n"
    if not figures.pairs:
        return title + "No two cells differ in exactly one factor: nothing to test.\n"
    intro = (
        f"Every pair of cells that differ in exactly one factor (the rest the same): "
        f"{len(figures.pairs)} McNemar tests on which of the {figures.shared} images each "
        f"got right, with Holm's correction over all {len(figures.pairs)}; "
        f"\u201csignificant\u201d: corrected p < {ALPHA}.\n\n"
    )
    names = [cell.name for cell in figures.cells]
    columns: list[tuple[str, Callable[[PairTest], Any]]] = [
        ("differs in", lambda pair: _FACTOR_NAMES[pair.factor]),
        ("cell A", lambda pair: names[pair.first]),
        ("cell B", lambda pair: names[pair.second]),
        ("only A right", lambda pair: pair.only_first_right),
        ("only B right", lambda pair: pair.only_second_right),
        ("accuracy B − A", lambda pair: signed(pair.accuracy_difference)),
        ("p", lambda pair: PValue(pair.p_value)),
        ("p (Holm)", lambda pair: PValue(pair.p_holm)),
        ("significant", lambda pair: "yes" if pair.significant else "no"),
        ("test", lambda pair: pair.method),
    ]
    return title + intro + column_table(columns, figures.pairs) + "\n"


def _agreement(figures: StudyFigures) -> str:
    title = "## Agreement between models\n\n"
    pairs = figures.pairs_differing_in("model")
    if not pairs:
        return title + "One model only: no agreement between models to show.\n"
    intro = (
        "Cohen's κ (scikit-learn; every answer counts, unparsed included) and the share of "
        f"identical answers between two models under the same answer mode and prompt, on "
        f"the {figures.shared} shared images.\n\n"
    )
    cells = figures.cells
    columns: list[tuple[str, Callable[[PairTest], Any]]] = [
        ("answer · variant", lambda p: " · ".join(cells[p.first].factors[f] for f in _SETTINGS)),
        ("model A", lambda p: cells[p.first].factors["model"]),
        ("model B", lambda p: cells[p.second].factors["model"]),
        ("Cohen's κ", lambda p: p.kappa),
        ("same answer", lambda p: p.agreement),
    ]
    return title + intro + column_table(columns, pairs) + "\n"


def _answer_shares(figures: StudyFigures) -> str:
    header = ["cell", *figures.labels, UNPARSED]
    rows = [
        [cell.name, *(cell.answer_shares[name] for name in [*figures.labels, UNPARSED])]
        for cell in figures.cells
    ]
    rows.append(["(true labels)", *_truth_shares(figures), None])
    return (
        "## Answers per label\n\n"
        f"Share of the {figures.shared} shared images given each answer: a prompt variant "
        "that lists the labels in another order and shifts these shares shows position "
        "bias.\n\n" + table(header, rows) + "\n"
    )


def _truth_shares(figures: StudyFigures) -> list[float]:
    support = figures.cells[0].metrics.per_class
    total = sum(support[label].support for label in figures.labels) or 1
    return [support[label].support / total for label in figures.labels]


def _variants(spec: StudySpec) -> str:
    columns: list[tuple[str, Callable[[Variant], Any]]] = [
        ("variant", lambda variant: variant.name),
        ("task", lambda variant: variant.task.name),
        ("label order", lambda variant: ", ".join(variant.task.labels)),
        ("definitions listed", lambda variant: "yes" if variant.task.list_definitions else "no"),
        ("prompt sha256", lambda variant: f"`{variant.task.prompt_sha256[:12]}`"),
    ]
    return (
        "## Prompt variants\n\nEach cell's manifest.json holds its whole system prompt.\n\n"
        + column_table(columns, spec.variants)
        + "\n"
    )

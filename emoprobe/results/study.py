"""The numbers of a study's report: every cell on the same images, and paired tests.

Pure over run records: each cell is a run folder (manifest.json and predictions.csv),
so every figure here can be re-derived from them. Figures are on the images that every
cell scored (`ok` or `unparsed`, matched by sha256 and path); each cell also says how
many it scored in all.

Tests: McNemar's test on which images two cells got right, for every pair of cells that
differ in exactly one factor (the model, the answer mode or the prompt variant, the
rest the same); Holm's correction over all those tests together. Agreement: Cohen's κ
(scikit-learn) and the share of identical answers for every such pair; the pairs that
differ in the model are the agreement between models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from emoprobe.errors import ConfigError
from emoprobe.results import stats
from emoprobe.results.comparison import shared_scored
from emoprobe.results.load import RunRecord
from emoprobe.results.metrics import Metrics, compute_metrics, encode
from emoprobe.results.speed import images_per_second
from emoprobe.task.definition import UNPARSED

FACTORS = ("model", "answer_mode", "variant")
ALPHA = 0.05


@dataclass(frozen=True)
class CellRun:
    """One cell of a study and its run: `factors` maps each of FACTORS to its value."""

    name: str
    factors: dict[str, str]
    run: RunRecord
    sampled: int | None = None  # images in its sample, where the caller knows it


@dataclass(frozen=True)
class CellFigures:
    name: str
    factors: dict[str, str]
    folder: str
    quantization: str
    prompt_sha256: str
    sampled: int | None  # images in the cell's sample; None where nothing says
    scored_all: int  # images the cell scored in all
    metrics: Metrics  # on the shared images
    accuracy_interval: tuple[float, float]
    f1_interval: tuple[float, float]
    answer_shares: dict[str, float]  # label (and `unparsed`) -> share of shared images
    images_per_s: float | None


@dataclass(frozen=True)
class PairTest:
    """Two cells that differ in one factor, on the shared images."""

    first: int  # indexes into StudyFigures.cells
    second: int
    factor: str
    only_first_right: int
    only_second_right: int
    accuracy_difference: float  # second − first
    p_value: float
    p_holm: float
    method: str
    kappa: float | None
    agreement: float | None

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


@dataclass(frozen=True)
class StudyFigures:
    labels: list[str]
    shared: int
    cells: list[CellFigures]
    pairs: list[PairTest]
    resamples: int
    seed: int

    def pairs_differing_in(self, factor: str) -> list[PairTest]:
        return [pair for pair in self.pairs if pair.factor == factor]


def study_figures(
    cells: Sequence[CellRun],
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> StudyFigures:
    """Every figure of a study's report; ConfigError when the cells share no image."""
    if not cells:
        raise ConfigError("the study has no cell with results yet")
    runs = [cell.run for cell in cells]
    labels = list(runs[0].labels)
    for run in runs[1:]:
        if sorted(run.labels) != sorted(labels):
            raise ConfigError(
                f"{run.path} has the labels {', '.join(run.labels)}, {runs[0].path} has "
                f"{', '.join(labels)}: a study's cells must share their labels",
                path=run.path,
            )
    tables, subsets = shared_scored(runs)
    y_true = encode(subsets[0], labels)[0]
    predictions = [encode(subset, labels)[1] for subset in subsets]
    boot = stats.paired_bootstrap(y_true, predictions, len(labels), resamples, seed)
    figures = []
    for index, (cell, table, subset) in enumerate(zip(cells, tables, subsets, strict=True)):
        run = cell.run
        answers = subset["prediction"].fillna(UNPARSED).astype(str)
        counts = answers.where(answers.isin(labels), UNPARSED).value_counts()
        figures.append(
            CellFigures(
                name=cell.name,
                factors=dict(cell.factors),
                folder=run.path.name,
                quantization=run.manifest.model.quantization or "–",
                prompt_sha256=run.manifest.task.prompt_sha256,
                sampled=_sampled(cell),
                scored_all=len(table),
                metrics=compute_metrics(subset, labels),
                accuracy_interval=boot.interval("accuracy", index),
                f1_interval=boot.interval("f1_weighted", index),
                answer_shares={
                    name: int(counts.get(name, 0)) / len(subset) for name in [*labels, UNPARSED]
                },
                images_per_s=images_per_second(run.manifest.sessions),
            )
        )
    correct = [prediction == y_true for prediction in predictions]
    answers_by_cell = [list(subset["prediction"].astype(str)) for subset in subsets]
    tests = []
    for a, b in combinations(range(len(cells)), 2):
        differing = [f for f in FACTORS if cells[a].factors[f] != cells[b].factors[f]]
        if len(differing) == 1:
            tests.append((a, b, differing[0], stats.mcnemar(correct[a], correct[b])))
    adjusted = stats.holm([test.p_value for *_, test in tests])
    pairs = [
        PairTest(
            first=a,
            second=b,
            factor=factor,
            only_first_right=test.b,
            only_second_right=test.c,
            accuracy_difference=float(correct[b].mean() - correct[a].mean()),
            p_value=test.p_value,
            p_holm=p_holm,
            method=test.method,
            kappa=stats.cohen_kappa(answers_by_cell[a], answers_by_cell[b]),
            agreement=stats.agreement(answers_by_cell[a], answers_by_cell[b]),
        )
        for (a, b, factor, test), p_holm in zip(tests, adjusted, strict=True)
    ]
    return StudyFigures(labels, len(y_true), figures, pairs, resamples, seed)


def _sampled(cell: CellRun) -> int | None:
    """The cell's sample size: as given, else the dataset's size when every image was
    used; None where neither says (a per-class sample of an unfinished run)."""
    dataset = cell.run.manifest.dataset
    if cell.sampled is not None:
        return cell.sampled
    return dataset.n_items if not dataset.per_class else None

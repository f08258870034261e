"""`emoprobe compare`: runs on the same images, side by side and paired.

Runs are read from their folders alone (manifest.json and predictions.csv); images are
paired by sha256 and path, and only images that every run scored are compared, so every
figure here is on the same images. Against the first run, each run gets the difference
in weighted F1 and accuracy with a paired bootstrap 95% interval, McNemar's test on which
images each got right, and Cohen's kappa between their answers (stats.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError
from emoprobe.files import write_atomic
from emoprobe.reporting.markdown import (
    PValue,
    dataset_name,
    fixed,
    interval,
    sample_text,
    signed,
    speed_summary,
    table,
)
from emoprobe.results.metrics import compute_metrics, encode, latency_stats
from emoprobe.results.predictions import OK, UNPARSED_STATUS, Row
from emoprobe.results.rundir import MANIFEST, RunDir
from emoprobe.task.definition import UNPARSED

COMPARISON = "comparison.md"
PLOT = "comparison.png"
SCORED = (OK, UNPARSED_STATUS)


@dataclass
class Run:
    """One run folder as read from disk."""

    path: Path
    manifest: dict[str, Any]
    rows: list[Row]
    name: str = ""

    @property
    def model(self) -> dict[str, Any]:
        return self.manifest.get("model", {})

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.get("task", {}).get("labels", []))

    @property
    def task(self) -> str:
        return str(self.manifest.get("task", {}).get("name", "?"))


@dataclass
class Paired:
    """One run against the first, on the shared images."""

    f1_difference: float
    f1_interval: tuple[float, float]
    accuracy_difference: float
    accuracy_interval: tuple[float, float]
    mcnemar: Any  # stats.McNemar
    kappa: float | None
    agreement: float | None
    f1_per_class_difference: dict[str, float]


@dataclass
class Comparison:
    runs: list[Run]
    labels: list[str]
    shared: int  # images every run scored, matched by sha256 and path
    scored: list[int]  # images each run scored in all
    metrics: list[dict[str, Any]]  # per run, on the shared images
    speed: list[dict[str, Any]]  # per run, over all its sessions
    f1_intervals: list[tuple[float, float]]
    accuracy_intervals: list[tuple[float, float]]
    paired: list[Paired]  # runs[1:] against runs[0]
    resamples: int
    seed: int
    differences: list[str] = field(default_factory=list)


def load_run(path: Path) -> Run:
    """A run folder's manifest and final rows; one-line errors for anything else."""
    path = Path(path)
    rundir = RunDir(path)
    if not path.is_dir():
        raise ConfigError(f"run folder {path} does not exist")
    if not (path / MANIFEST).is_file():
        raise ConfigError(f"{path} is not an emoprobe run folder (no {MANIFEST})")
    if not rundir.predictions.is_file():
        raise ConfigError(f"{path} holds no predictions.csv: nothing to compare")
    manifest = rundir.read_manifest() or {}
    if not manifest.get("task", {}).get("labels"):
        raise ConfigError(f"{path / MANIFEST} names no task labels")
    return Run(path, manifest, rundir.final_rows(manifest))


def build_comparison(paths: list[Path], resamples: int = 2000, seed: int = 0) -> Comparison:
    """Load, check and pair the runs; compute every figure of comparison.md."""
    from emoprobe.results import stats

    if len(paths) < 2:
        raise ConfigError("give at least two run folders to compare")
    if resamples < 1000:
        raise ConfigError("--resamples must be at least 1000")
    resolved = [Path(path).resolve() for path in paths]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise ConfigError(f"{paths[index]} is given twice")
    runs = [load_run(path) for path in paths]
    _check_same_task(runs)
    _name_runs(runs)
    labels = runs[0].labels
    scored = [{(row.sha256, row.path): row for row in run.rows if _paired(row)} for run in runs]
    keys = [key for key in scored[0] if all(key in other for other in scored[1:])]
    if not keys:
        raise ConfigError(
            "the runs share no scored image (matched by sha256 and path): "
            "nothing to compare; were they made on the same dataset?"
        )
    disagree = sum(len({by_key[key].label for by_key in scored}) > 1 for key in keys)
    if disagree:
        raise ConfigError(
            f"the runs disagree on the true label of {disagree} shared images: "
            "their datasets label them differently, so they cannot be compared"
        )
    subsets = [[by_key[key] for key in keys] for by_key in scored]
    columns = [*labels, UNPARSED]
    y_true, _ = encode(subsets[0], columns)
    predictions = [encode(subset, columns)[1] for subset in subsets]
    boot = stats.paired_bootstrap(y_true, predictions, len(labels), resamples, seed)
    metrics = [compute_metrics(subset, labels) for subset in subsets]
    answers = [[row.prediction or UNPARSED for row in subset] for subset in subsets]
    correct = [prediction == y_true for prediction in predictions]
    paired = []
    for j in range(1, len(runs)):
        paired.append(
            Paired(
                f1_difference=metrics[j]["f1_weighted"] - metrics[0]["f1_weighted"],
                f1_interval=boot.difference_interval("f1_weighted", j),
                accuracy_difference=metrics[j]["accuracy"] - metrics[0]["accuracy"],
                accuracy_interval=boot.difference_interval("accuracy", j),
                mcnemar=stats.mcnemar(correct[0], correct[j]),
                kappa=stats.cohen_kappa(answers[0], answers[j]),
                agreement=stats.agreement(answers[0], answers[j]),
                f1_per_class_difference={
                    label: metrics[j]["per_class"][label]["f1"]
                    - metrics[0]["per_class"][label]["f1"]
                    for label in labels
                },
            )
        )
    return Comparison(
        runs=runs,
        labels=labels,
        shared=len(keys),
        scored=[len(by_key) for by_key in scored],
        metrics=metrics,
        speed=[speed_summary(run.manifest, latency_stats(run.rows)) for run in runs],
        f1_intervals=[boot.interval("f1_weighted", r) for r in range(len(runs))],
        accuracy_intervals=[boot.interval("accuracy", r) for r in range(len(runs))],
        paired=paired,
        resamples=resamples,
        seed=seed,
        differences=_differences(runs),
    )


def _paired(row: Row) -> bool:
    return row.status in SCORED and bool(row.sha256)


def _check_same_task(runs: list[Run]) -> None:
    first = runs[0]
    for run in runs[1:]:
        if run.task != first.task or sorted(run.labels) != sorted(first.labels):
            raise ConfigError(
                f"{run.path} is task {run.task!r} with labels {', '.join(run.labels)}, but "
                f"{first.path} is task {first.task!r} with labels {', '.join(first.labels)}: "
                "only runs of the same task can be compared"
            )


def _name_runs(runs: list[Run]) -> None:
    """The model's name; the folder's name added where two runs share a model."""
    names = [str(run.model.get("name") or run.path.name) for run in runs]
    for run, name in zip(runs, names, strict=True):
        run.name = name if names.count(name) == 1 else f"{name} ({run.path.name})"


def _differences(runs: list[Run]) -> list[str]:
    """The settings that are not the same in every run, each as one short line."""
    settings = {
        "model": lambda run: run.model.get("name"),
        "model digest": lambda run: (run.model.get("digest") or "")[:12],
        "quantization": lambda run: run.model.get("quantization"),
        "options": lambda run: _options(run.manifest.get("options", {})),
        "prompt sha256": lambda run: (run.manifest.get("task", {}).get("prompt_sha256") or "")[:12],
        "images sent": lambda run: run.manifest.get("max_side") or "as stored",
        "sample": lambda run: sample_text(run.manifest.get("dataset", {})),
        "Ollama": lambda run: run.manifest.get("server", {}).get("version"),
    }
    lines = []
    for what, value in settings.items():
        values = [str(value(run)) for run in runs]
        if len(set(values)) > 1:
            lines.append(f"{what}: " + "; ".join(values))
    return lines


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "defaults"


# -- Markdown ------------------------------------------------------------------------
def runs_table(comparison: Comparison) -> str:
    """Every run's metrics (on the shared images) and speed (over its own sessions)."""
    header = [
        "run",
        "quantization",
        "size (GB)",
        "F1",
        "F1 95% CI",
        "accuracy",
        "precision",
        "recall",
        "macro F1",
        "unparsed share",
        "images/s",
        "median latency (s)",
        "tokens/s",
    ]
    rows = []
    for r, run in enumerate(comparison.runs):
        metrics, speed = comparison.metrics[r], comparison.speed[r]
        size = run.model.get("size_bytes") or 0
        rows.append(
            [
                run.name,
                run.model.get("quantization") or "?",
                fixed(size / 1e9, 2) if size else None,
                metrics["f1_weighted"],
                interval(comparison.f1_intervals[r]),
                metrics["accuracy"],
                metrics["precision_weighted"],
                metrics["recall_weighted"],
                metrics["f1_macro"],
                metrics["n_unparsed"] / metrics["n_scored"],
                fixed(speed["images_per_s"], 2),
                fixed(speed["latency_median_s"], 3),
                fixed(speed["generated_tokens_per_s"], 1),
            ]
        )
    return table(header, rows)


def paired_table(comparison: Comparison) -> str:
    """Each run against the first: differences, their paired intervals, McNemar, kappa."""
    header = [
        "run",
        "Δ F1",
        "Δ F1 95% CI",
        "Δ accuracy",
        "Δ accuracy 95% CI",
        "only first right (b)",
        "only this right (c)",
        "McNemar p",
        "McNemar test",
        "Cohen's κ",
        "same answer",
    ]
    rows = []
    for run, pair in zip(comparison.runs[1:], comparison.paired, strict=True):
        test = pair.mcnemar
        rows.append(
            [
                run.name,
                signed(pair.f1_difference),
                _signed_interval(pair.f1_interval),
                signed(pair.accuracy_difference),
                _signed_interval(pair.accuracy_interval),
                test.b,
                test.c,
                PValue(test.p_value),
                test.method,
                pair.kappa,
                pair.agreement,
            ]
        )
    return table(header, rows)


def per_class_table(comparison: Comparison) -> str:
    first = comparison.runs[0]
    header = ["class", f"F1 {first.name}", *(f"Δ {run.name}" for run in comparison.runs[1:])]
    rows = []
    for label in comparison.labels:
        row: list[Any] = [label, comparison.metrics[0]["per_class"][label]["f1"]]
        row += [signed(pair.f1_per_class_difference[label]) for pair in comparison.paired]
        rows.append(row)
    return table(header, rows)


def _signed_interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:+.4f}, {bounds[1]:+.4f}]"


def coverage_line(comparison: Comparison) -> str:
    counts = ", ".join(
        f"{run.name}: {n:,}" for run, n in zip(comparison.runs, comparison.scored, strict=True)
    )
    line = (
        f"Compared on **{comparison.shared:,} images** that every run scored, matched by sha256 "
        f"and path (images each run scored: {counts})."
    )
    if any(n != comparison.shared for n in comparison.scored):
        line += (
            " The runs cover different images: every figure below is on the shared "
            "images only, so it can differ from the runs' own reports."
        )
    return line


def render_comparison(comparison: Comparison, plot: str | None = None) -> str:
    first = comparison.runs[0].name
    runs = comparison.runs
    parts = [
        f"# emoprobe comparison: {len(runs)} runs on {dataset_name(runs[0].manifest)}",
        coverage_line(comparison),
        "**Scoring**, as in each run's report: an unparsed answer counts as wrong and stays "
        "in every denominator; unreadable images are left out. Metrics are scikit-learn's, "
        "weighted averages as in the paper's Table 1.",
        "## Runs\n\nMetrics on the shared images; speed over each run's own requests "
        "(answers from the cache cost nothing and are not timed; tokens/s are generated "
        "tokens by the server's timings). F1 95% CI: percentile bootstrap over the "
        "shared images.\n\n" + runs_table(comparison),
        f"## Each run against {first}\n\n" + paired_table(comparison),
        "## Per-class F1\n\n" + per_class_table(comparison),
    ]
    if comparison.differences:
        parts.append(
            "## What differs between the runs\n\n"
            + "\n".join(f"- {line}" for line in comparison.differences)
        )
    parts.append(_how_to_read(comparison))
    if plot:
        parts.append(f"![Weighted F1 with its 95% interval, against model size and speed]({plot})")
    return "\n\n".join(parts) + "\n"


def _how_to_read(comparison: Comparison) -> str:
    return (
        "## How to read this\n\n"
        f"- **Δ and its 95% CI** (each run minus {comparison.runs[0].name}): the images are "
        f"resampled with replacement {comparison.resamples:,} times (seed {comparison.seed}), "
        "the same images for both runs, and the difference recomputed each time; the "
        "interval holds the middle 95%. Pairing removes the luck of which images were "
        "drawn, so it is much narrower than comparing two separate intervals. An interval "
        "that spans 0 means these images cannot tell the two apart.\n"
        "- **McNemar's test** looks only at the images on which the runs differ in being "
        "right: *b* got right by the first run only, *c* by this run only. With fewer than "
        "25 such images the p-value is the exact two-sided binomial test, else the "
        "chi-square test with continuity correction. A small p says one run is right more "
        "often than chance would explain on these images; it says nothing about how much "
        "better, nor about other images or prompts.\n"
        "- **Cohen's κ** measures how often the two runs give the *same answer* (right or "
        "wrong, `unparsed` included) beyond what their answer frequencies would give by "
        "chance: 1 identical, 0 chance level. Two builds with equal F1 but low κ are "
        "right on different images.\n"
        "- Each run is one pass at the recorded options; several runs per setting, or "
        "several comparisons at once, call for more caution than one p-value suggests."
    )


def write_comparison(out: Path, comparison: Comparison) -> Path:
    """comparison.md and its plot into `out`; returns comparison.md's path."""
    from emoprobe.reporting import plots

    out.mkdir(parents=True, exist_ok=True)
    sizes = [(run.model.get("size_bytes") or 0) / 1e9 or None for run in comparison.runs]
    data = plots.comparison_png(
        [run.name for run in comparison.runs],
        [metrics["f1_weighted"] for metrics in comparison.metrics],
        comparison.f1_intervals,
        sizes,
        [speed["images_per_s"] for speed in comparison.speed],
    )
    write_atomic(out / PLOT, data)
    path = out / COMPARISON
    write_atomic(path, render_comparison(comparison, PLOT))
    return path


def summary_text(comparison: Comparison) -> str:
    """What the command prints: coverage, the runs table and the paired table."""
    return "\n\n".join(
        [coverage_line(comparison), runs_table(comparison), paired_table(comparison)]
    )


def default_comparison_dir(reports: Path, name: str) -> Path:
    """reports/comparison-<dataset>-<timestamp>/."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "dataset"
    return reports / f"comparison-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"

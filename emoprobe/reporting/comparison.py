"""comparison.md and comparison.png: the rendering of `results.comparison.Comparison`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emoprobe.files import slug, write_atomic
from emoprobe.reporting.markdown import (
    PValue,
    alarm_text,
    column_table,
    dataset_name,
    fixed,
    inert,
    interval,
    signed,
    table,
)
from emoprobe.results.comparison import Comparison

COMPARISON = "comparison.md"
PLOT = "comparison.png"
PER_CLASS_PLOT = "comparison_per_class_f1.png"


def runs_table(comparison: Comparison) -> str:
    """Every run's metrics (on the shared images) and speed (over its own sessions)."""
    runs, metrics, speed = comparison.runs, comparison.metrics, comparison.speed
    sizes = [run.manifest.model.size_bytes / 1e9 or None for run in runs]
    columns: list[tuple[str, Callable[[int], Any]]] = [
        ("run", lambda r: comparison.names[r]),
        ("quantization", lambda r: runs[r].manifest.model.quantization or "?"),
        ("size (GB)", lambda r: fixed(sizes[r], 2)),
        ("F1", lambda r: metrics[r].f1_weighted),
        ("F1 95% CI", lambda r: interval(comparison.f1_intervals[r])),
        ("accuracy", lambda r: metrics[r].accuracy),
        ("precision", lambda r: metrics[r].precision_weighted),
        ("recall", lambda r: metrics[r].recall_weighted),
        ("macro F1", lambda r: metrics[r].f1_macro),
        ("unparsed share", lambda r: metrics[r].n_unparsed / metrics[r].n_scored),
        ("images/s", lambda r: fixed(speed[r].images_per_s, 2)),
        ("median latency (s)", lambda r: fixed(speed[r].latency_median_s, 3)),
        ("tokens/s", lambda r: fixed(speed[r].generated_tokens_per_s, 1)),
    ]
    return column_table(columns, range(len(runs)))


def paired_table(comparison: Comparison) -> str:
    """Each run against the first: differences, their paired intervals, McNemar, kappa."""
    names, paired = comparison.names[1:], comparison.paired
    columns: list[tuple[str, Callable[[int], Any]]] = [
        ("run", lambda j: names[j]),
        ("Δ F1", lambda j: signed(paired[j].f1_difference)),
        ("Δ F1 95% CI", lambda j: _signed_interval(paired[j].f1_interval)),
        ("Δ accuracy", lambda j: signed(paired[j].accuracy_difference)),
        ("Δ accuracy 95% CI", lambda j: _signed_interval(paired[j].accuracy_interval)),
        ("only first right (b)", lambda j: paired[j].mcnemar.b),
        ("only this right (c)", lambda j: paired[j].mcnemar.c),
        ("McNemar p", lambda j: PValue(paired[j].mcnemar.p_value)),
        ("McNemar test", lambda j: paired[j].mcnemar.method),
        ("Cohen's κ", lambda j: paired[j].kappa),
        ("same answer", lambda j: paired[j].agreement),
    ]
    return column_table(columns, range(len(paired)))


def per_class_table(comparison: Comparison) -> str:
    first, *others = comparison.names
    header = ["class", f"F1 {first}", *(f"Δ {name}" for name in others)]
    rows = []
    for label in comparison.labels:
        row: list[Any] = [label, comparison.metrics[0].per_class[label].f1]
        row += [signed(pair.f1_per_class_difference[label]) for pair in comparison.paired]
        rows.append(row)
    return table(header, rows)


def _signed_interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:+.4f}, {bounds[1]:+.4f}]"


def coverage_line(comparison: Comparison) -> str:
    counts = ", ".join(
        f"{inert(name)}: {n:,}" for name, n in zip(comparison.names, comparison.scored, strict=True)
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


def alarms_text(comparison: Comparison) -> str:
    """Each run's alarms on the shared images, or one line saying there are none."""
    lines = [
        f"- **{name}**: {alarm_text(alarm)}"
        for name, alarms in zip(comparison.names, comparison.alarms, strict=True)
        for alarm in alarms
    ]
    if not lines:
        return (
            "**Alarms** (on the shared images): none — no run leaves a class unpredicted, "
            "puts more than half of its answers on one class, has many answers without a "
            "label, or scores no better than always answering the most frequent class."
        )
    return "**Alarms** (on the shared images):\n\n" + "\n".join(lines)


def differences_text(comparison: Comparison) -> str:
    """What differs between the runs, and how many images they share."""
    lines = [
        f"- images: {comparison.shared:,} shared by every run (each run scored "
        + ", ".join(f"{n:,}" for n in comparison.scored)
        + ")"
    ]
    lines += [f"- {inert(line)}" for line in comparison.differences]
    if not comparison.differences:
        lines.append("- no recorded setting differs")
    return "## What differs between the runs\n\n" + "\n".join(lines)


def render_comparison(
    comparison: Comparison, plot: str | None = None, per_class_plot: str | None = None
) -> str:
    first = comparison.names[0]
    runs = comparison.runs
    parts = [
        f"# emoprobe comparison: {len(runs)} runs on {inert(dataset_name(runs[0].manifest))}",
        coverage_line(comparison),
        alarms_text(comparison),
        differences_text(comparison),
        "**Scoring**, as in each run's report: an unparsed answer counts as wrong and stays "
        "in every denominator; unreadable images are left out. Metrics are scikit-learn's, "
        "weighted averages as in the paper's Table 1.",
        "## Runs\n\nMetrics on the shared images; speed over each run's own requests "
        "(answers from the cache cost nothing and are not timed; tokens/s are generated "
        "tokens by the server's timings). F1 95% CI: percentile bootstrap over the "
        "shared images.\n\n" + runs_table(comparison),
        f"## Each run against {inert(first)}\n\n" + paired_table(comparison),
        "## Per-class F1\n\n"
        + per_class_table(comparison)
        + (f"\n\n![Per-class F1 of every run]({per_class_plot})" if per_class_plot else ""),
        _how_to_read(comparison),
    ]
    if plot:
        parts.append(f"![Weighted F1 with its 95% interval, against model size and speed]({plot})")
    return "\n\n".join(parts) + "\n"


def _how_to_read(comparison: Comparison) -> str:
    return (
        "## How to read this\n\n- **Δ and its 95% CI** (each run minus "
        f"{inert(comparison.names[0])}): the images are resampled with replacement "
        f"{comparison.resamples:,} times (seed {comparison.seed}), the same images for both runs, "
        "and the difference recomputed each time; the interval holds the middle 95%. Pairing "
        "removes the luck of which images were drawn, so it is much narrower than comparing two "
        "separate intervals. An interval that spans 0 means these images cannot tell the two "
        "apart.\n- **McNemar's test** looks only at the images on which the runs differ in being "
        "right: *b* got right by the first run only, *c* by this run only. With fewer than 25 such "
        "images the p-value is the exact two-sided binomial test, else the chi-square test with "
        "continuity correction. A small p says one run is right more often than chance would "
        "explain on these images; it says nothing about how much better, nor about other images or "
        "prompts.\n- **Cohen's κ** measures how often the two runs give the *same answer* (right "
        "or wrong, `unparsed` included) beyond what their answer frequencies would give by chance: "
        "1 identical, 0 chance level. Two builds with equal F1 but low κ are right on different "
        "images.\n- Each run is one pass at the recorded options; several runs per setting, or "
        "several comparisons at once, call for more caution than one p-value suggests."
    )


def write_comparison(out: Path, comparison: Comparison) -> Path:
    """comparison.md and its plot into `out`; returns comparison.md's path."""
    from emoprobe.reporting import plots

    out.mkdir(parents=True, exist_ok=True)
    sizes = [run.manifest.model.size_bytes / 1e9 or None for run in comparison.runs]
    subject = (
        f"{len(comparison.runs)} runs (key below) on {comparison.shared:,} shared images "
        f"of {dataset_name(comparison.runs[0].manifest)}"
    )
    figure = plots.comparison_figure(
        comparison.names,
        [metrics.f1_weighted or 0.0 for metrics in comparison.metrics],
        comparison.f1_intervals,
        sizes,
        [speed.images_per_s for speed in comparison.speed],
        subject=subject,
    )
    write_atomic(out / PLOT, plots._png(figure))
    per_class = plots.per_class_f1_comparison_figure(
        comparison.names,
        comparison.labels,
        [[m.per_class[label].f1 for label in comparison.labels] for m in comparison.metrics],
        subject=subject,
    )
    write_atomic(out / PER_CLASS_PLOT, plots._png(per_class))
    path = out / COMPARISON
    write_atomic(path, render_comparison(comparison, PLOT, PER_CLASS_PLOT))
    return path


def summary_text(comparison: Comparison) -> str:
    """What the command prints: coverage, the runs table and the paired table."""
    return "\n\n".join(
        [coverage_line(comparison), runs_table(comparison), paired_table(comparison)]
    )


def default_comparison_dir(reports: Path, name: str) -> Path:
    """reports/comparison-<dataset>-<timestamp>/."""
    stem = slug(name) or "dataset"
    return reports / f"comparison-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

"""PNG plots for reports and comparisons, drawn with matplotlib's Agg canvas.

No pyplot and no display: each plot is a `matplotlib.figure.Figure` on a
`FigureCanvasAgg`, rendered to PNG bytes. matplotlib is imported only here, and this
module only when a plot is drawn, so the command line stays quick to start.
PNGs carry no timestamp (and no "Software" tag), so the same figures give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from emoprobe.reporting.paper import PaperResult
    from emoprobe.results.calibration import ScoreMetrics
    from emoprobe.results.metrics import Metrics

RUN_COLOUR = "#1f77b4"
PAPER_COLOUR = "#bbbbbb"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def confusion_matrix_png(metrics: Metrics) -> bytes:
    """Heat-map of row shares (each true class sums to 1), every cell annotated with its
    count and share; the `unparsed` column included."""
    confusion = metrics.confusion_matrix
    labels, columns, matrix = confusion.labels, confusion.columns, confusion.matrix
    shares = [[value / sum(row) if sum(row) else 0.0 for value in row] for row in matrix]
    figure = _figure(1.2 * len(columns) + 2.4, 0.75 * len(labels) + 1.8)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            share = shares[i][j]
            axes.text(
                j,
                i,
                f"{count}\n{share:.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if share > 0.55 else "black",
            )
    axes.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (colour: share of the true class; numbers: images)")
    figure.colorbar(image, ax=axes, label="share of row", fraction=0.05)
    return _png(figure)


def per_class_f1_png(metrics: Metrics, paper: PaperResult | None) -> bytes:
    """Per-class F1 bars: this run, and the paper's (two decimals, from its text) beside."""
    labels = list(metrics.per_class)
    mine = [metrics.per_class[label].f1 for label in labels]
    figure = _figure(max(6.0, 1.3 * len(labels) + 1.5), 3.8)
    axes = figure.add_subplot()
    width = 0.38 if paper else 0.6
    offset = width / 2 if paper else 0.0
    positions = range(len(labels))
    bars = axes.bar(
        [x - offset for x in positions], mine, width, label="this run", color=RUN_COLOUR
    )
    axes.bar_label(bars, labels=[f"{v:.2f}" for v in mine], fontsize=8, padding=2)
    if paper:
        theirs = [paper.per_class_f1.get(label, 0.0) for label in labels]
        paper_bars = axes.bar(
            [x + offset for x in positions],
            theirs,
            width,
            label=f"{paper.model} (paper)",
            color=PAPER_COLOUR,
            edgecolor="#666666",
        )
        axes.bar_label(paper_bars, labels=[f"{v:.2f}" for v in theirs], fontsize=8, padding=2)
    axes.set_xticks(list(positions), labels)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("F1")
    axes.set_title("Per-class F1")
    figure.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return _png(figure)


def comparison_png(
    names: Sequence[str],
    f1: Sequence[float],
    f1_intervals: Sequence[tuple[float, float]],
    sizes_gb: Sequence[float | None],
    images_per_s: Sequence[float | None],
) -> bytes:
    """Weighted F1 (with its 95% interval) against model size and against speed.

    A panel is drawn only where at least one run knows the quantity; with neither,
    the runs' F1 are drawn side by side.
    """
    panels = [
        (values, label)
        for values, label in (
            (sizes_gb, "model size on disk (GB)"),
            (images_per_s, "images/s while requesting"),
        )
        if any(v for v in values)
    ]
    figure = _figure(5.2 * max(1, len(panels)), 4.0)
    axes_list = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]
    low = [value - bounds[0] for value, bounds in zip(f1, f1_intervals, strict=True)]
    high = [bounds[1] - value for value, bounds in zip(f1, f1_intervals, strict=True)]
    if not panels:
        axes = axes_list[0]
        positions = list(range(len(names)))
        axes.bar(positions, f1, yerr=[low, high], color=RUN_COLOUR, capsize=4)
        axes.set_xticks(positions, names, rotation=20, ha="right")
        axes.set_ylabel("weighted F1 (95% CI)")
        axes.set_ylim(0, 1)
    for axes, (values, label) in zip(axes_list, panels, strict=True):
        for i, name in enumerate(names):
            if not values[i]:
                continue
            axes.errorbar(
                values[i],
                f1[i],
                yerr=[[low[i]], [high[i]]],
                fmt="o",
                capsize=4,
                color=f"C{i % 10}",
            )
            axes.annotate(
                name, (values[i], f1[i]), textcoords="offset points", xytext=(6, 6), fontsize=8
            )
        axes.margins(x=0.3, y=0.15)
        axes.set_xlabel(label)
        axes.set_ylabel("weighted F1 (95% CI)")
        axes.grid(alpha=0.3)
    figure.suptitle("Weighted F1 on the shared images")
    return _png(figure)


def reliability_png(scores: ScoreMetrics) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, the diagonal is perfect."""
    bins = scores.reliability
    figure = _figure(4.6, 4.2)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color=PAPER_COLOUR, label="perfectly calibrated")
    centres = [(b.low + b.high) / 2 for b in bins]
    axes.bar(
        centres,
        [b.accuracy for b in bins],
        width=0.09,
        color=RUN_COLOUR,
        alpha=0.8,
        label="accuracy in the bin",
    )
    axes.plot(
        [b.confidence for b in bins],
        [b.accuracy for b in bins],
        "o",
        color="#d62728",
        label="mean confidence",
    )
    for centre, b in zip(centres, bins, strict=True):
        axes.annotate(
            str(b.count),
            (centre, b.accuracy),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("confidence (top label score)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"Reliability (ECE {scores.ece:.3f})")
    axes.legend(fontsize=7, loc="upper left", frameon=False)
    return _png(figure)

"""PNG plots for reports and comparisons, drawn with matplotlib's Agg canvas.

No pyplot and no display: each plot is a `matplotlib.figure.Figure` on a
`FigureCanvasAgg`, rendered to PNG bytes. matplotlib is imported only here, and this
module only when a plot is drawn, so the command line stays quick to start.
PNGs carry no timestamp (and no "Software" tag), so the same figures give the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from emoprobe.reporting.paper import PaperResult
    from emoprobe.results.calibration import ScoreMetrics
    from emoprobe.results.metrics import Metrics

RUN_COLOUR = "#1f77b4"
PAPER_COLOUR = "#bbbbbb"
KEY_WIDTH = 48  # characters per line of a run's name in a plot's key


def run_keys(count: int) -> list[str]:
    """Short keys for runs on a plot: A, B, …, Z, then A2, B2, …"""
    return [chr(65 + i % 26) + (str(i // 26 + 1) if i >= 26 else "") for i in range(count)]


def _key_label(key: str, name: str) -> str:
    return textwrap.fill(f"{key}: {name}", KEY_WIDTH, subsequent_indent="    ")


CHAR_INCHES = 0.08  # a 10-point DejaVu Sans character, a little over its mean width


def _figure(width: float, height: float, margins: Margins | None = None) -> Figure:
    """A figure on an Agg canvas: laid out by matplotlib's constrained layout, or with
    fixed `margins` in inches (left, right, bottom, top), which draws in half the time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if margins is None:
        figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    else:
        left, right, bottom, top = margins
        figure = Figure(figsize=(width, height), dpi=100)
        figure.subplots_adjust(
            left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
        )
    FigureCanvasAgg(figure)
    return figure


Margins = tuple[float, float, float, float]


def _text_inches(names: Sequence[str], size: float = 10.0) -> float:
    """About how wide the longest of `names` is drawn at `size` points."""
    return max((len(name) for name in names), default=0) * CHAR_INCHES * size / 10


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def confusion_matrix_png(metrics: Metrics, subject: str = "") -> bytes:
    """Heat-map of row shares (each true class sums to 1), every cell annotated with its
    count and share; the `unparsed` column included. `subject`: model and dataset."""
    confusion = metrics.confusion_matrix
    labels, columns, matrix = confusion.labels, confusion.columns, confusion.matrix
    shares = [[value / sum(row) if sum(row) else 0.0 for value in row] for row in matrix]
    left = _text_inches(labels) + 0.75
    bottom = 0.5 * _text_inches(columns) + 0.75  # tick labels at 30°: sin 30° = 0.5
    width = 1.2 * len(columns) + 1.4 + left
    title = _titled("Confusion matrix (colour: share of the true class; numbers: images)", subject)
    top = _title_inches(title)
    figure = _figure(width, 0.75 * len(labels) + 0.4 + top + bottom, (left, 1.1, bottom, top))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            share = shares[i][j]
            colour = "white" if share > 0.55 else "black"
            axes.text(
                j, i, f"{count}\n{share:.0%}", ha="center", va="center", fontsize=9, color=colour
            )
    axes.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="share of row", fraction=0.05, pad=0.02)
    return _png(figure)


def _title_inches(title: str) -> float:
    """The margin above the axes for a title of 10-point lines."""
    return 0.25 + 0.2 * (title.count("\n") + 1)


def _titled(title: str, subject: str) -> str:
    return f"{textwrap.fill(subject, 70)}\n{title}" if subject else title


def per_class_f1_png(metrics: Metrics, paper: PaperResult | None, subject: str = "") -> bytes:
    """Per-class F1 bars: this run, and the paper's (two decimals, from its text) beside."""
    labels = list(metrics.per_class)
    mine = [metrics.per_class[label].f1 for label in labels]
    title = _titled("Per-class F1", subject)
    top = _title_inches(title)
    figure = _figure(max(6.0, 1.3 * len(labels) + 1.5), 3.4 + top, (0.7, 0.2, 0.8, top))
    axes = figure.add_subplot()
    width = 0.38 if paper else 0.6
    offset = width / 2 if paper else 0.0
    positions = range(len(labels))
    series: list[tuple[list[float], str, str, float, str | None]] = [
        (mine, "this run", RUN_COLOUR, -offset, None)
    ]
    if paper:
        theirs = [paper.per_class_f1.get(label, 0.0) for label in labels]
        series.append((theirs, f"{paper.model} (paper)", PAPER_COLOUR, offset, "#666666"))
    for values, name, colour, shift, edge in series:
        x = [position + shift for position in positions]
        bars = axes.bar(x, values, width, label=name, color=colour, edgecolor=edge)
        axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8, padding=2)
    axes.set_xticks(list(positions), labels)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("F1")
    axes.set_title(title, fontsize=10)
    figure.legend(loc="lower center", ncols=2, fontsize=8, frameon=False)
    return _png(figure)


def per_class_f1_comparison_figure(
    names: Sequence[str], labels: Sequence[str], f1: Sequence[Sequence[float]], subject: str = ""
) -> Figure:
    """Per-class F1 of every compared run: a group of bars per class, a bar per run (A, B, …)."""
    keys = run_keys(len(names))
    key_lines = sum(_key_label(k, n).count("\n") + 1 for k, n in zip(keys, names, strict=True))
    columns = 1 if len(names) < 3 else 2
    figure = _figure(
        min(12.0, max(7.0, 0.35 * len(labels) * len(names) + 2.0)), 3.6 + 0.2 * key_lines
    )
    axes = figure.add_subplot()
    width = 0.8 / len(names)
    for r, (key, name) in enumerate(zip(keys, names, strict=True)):
        positions = [x - 0.4 + width * (r + 0.5) for x in range(len(labels))]
        bars = axes.bar(
            positions, f1[r], width * 0.95, color=f"C{r % 10}", label=_key_label(key, name)
        )
        shown = [f"{v:.2f}" for v in f1[r]] if len(names) <= 3 else [key] * len(labels)
        axes.bar_label(bars, labels=shown, fontsize=6, padding=1)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("F1")
    axes.set_title(_titled("Per-class F1 of each run", subject), fontsize=10)
    figure.legend(
        loc="outside lower center", ncols=columns, fontsize=7, frameon=False, title="runs"
    )
    return figure


def comparison_figure(
    names: Sequence[str],
    f1: Sequence[float],
    f1_intervals: Sequence[tuple[float, float]],
    sizes_gb: Sequence[float | None],
    images_per_s: Sequence[float | None],
    subject: str = "",
) -> Figure:
    """Weighted F1 (with its 95% interval) against model size and against speed. A panel is
    drawn only where at least one run knows the quantity (a run whose speed this run did not
    measure is left out of that panel and says so in the key); with neither, the runs' F1
    are drawn side by side. Points carry short keys (A, B, …); the key under the panels
    names each run, wrapped."""
    from matplotlib.lines import Line2D

    panels = [
        (values, label)
        for values, label in (
            (sizes_gb, "model size on disk (GB)"),
            (images_per_s, "images/s while requesting"),
        )
        if any(v for v in values)
    ]
    keys = run_keys(len(names))
    labels = []
    for i, (key, name) in enumerate(zip(keys, names, strict=True)):
        missing = [what for values, what in panels if not values[i]]
        note = " (no " + ", ".join(w.split(" (")[0] for w in missing) + ")" if missing else ""
        labels.append(_key_label(key, name + note))
    key_lines = sum(label.count("\n") + 1 for label in labels)
    columns = 1 if len(names) < 3 else 2
    height = 4.0 + 0.2 * (key_lines / columns + 2)
    figure = _figure(5.2 * max(1, len(panels)) + (1.5 if columns > 1 else 0), height)
    axes_list = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]
    low = [value - bounds[0] for value, bounds in zip(f1, f1_intervals, strict=True)]
    high = [bounds[1] - value for value, bounds in zip(f1, f1_intervals, strict=True)]
    if not panels:
        axes = axes_list[0]
        positions = list(range(len(names)))
        axes.bar(
            positions, f1, yerr=[low, high], color=[f"C{i % 10}" for i in positions], capsize=4
        )
        axes.set_xticks(positions, keys)
        axes.set_ylabel("weighted F1 (95% CI)")
        axes.set_ylim(0, 1)
    for axes, (values, label) in zip(axes_list, panels, strict=True):
        for i, key in enumerate(keys):
            if not values[i]:
                continue
            axes.errorbar(
                values[i], f1[i], yerr=[[low[i]], [high[i]]], fmt="o", capsize=4, color=f"C{i % 10}"
            )
            axes.annotate(
                key,
                (values[i], f1[i]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=9,
                fontweight="bold",
                color=f"C{i % 10}",
            )
        axes.margins(x=0.3, y=0.15)
        axes.set_xlabel(label)
        axes.set_ylabel("weighted F1 (95% CI)")
        axes.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=f"C{i % 10}") for i in range(len(names))
    ]
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=columns,
        fontsize=7,
        frameon=False,
        title="runs",
        title_fontsize=8,
    )
    figure.suptitle(_titled("Weighted F1", subject or "the shared images"), fontsize=10)
    return figure


def reliability_png(scores: ScoreMetrics, subject: str = "") -> bytes:
    """Reliability diagram: accuracy against confidence per bin, the diagonal is perfect."""
    bins = scores.reliability
    figure = _figure(4.6, 4.2)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color=PAPER_COLOUR, label="perfectly calibrated")
    centres = [(b.low + b.high) / 2 for b in bins]
    accuracy = [b.accuracy for b in bins]
    axes.bar(
        centres, accuracy, width=0.09, color=RUN_COLOUR, alpha=0.8, label="accuracy in the bin"
    )
    axes.plot([b.confidence for b in bins], accuracy, "o", color="#d62728", label="mean confidence")
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
    axes.set_title(
        _titled(f"Reliability (ECE {scores.ece:.3f}, {scores.n_with_scores} answers)", subject),
        fontsize=9,
    )
    axes.legend(fontsize=7, loc="upper left", frameon=False)
    return _png(figure)

"""Statistics for honest comparisons: bootstrap intervals, McNemar's test, Cohen's kappa.

Pure functions over integer-coded labels (numpy arrays); no files, no printing.

Codes: the task's labels are 0 … K-1; any other answer (`unparsed`, a stray word) has a
code ≥ K, so it is never right and is no class of its own in the averages — exactly how
scikit-learn scores predictions given `labels=` the task's labels.

The bootstrap resamples *images* with replacement, the same images for a run and the
first run (paired), and recomputes each metric per resample. Every metric here depends only on how
many images show each pattern (true label, each run's prediction), so a resample is drawn
as multinomial counts over the distinct patterns: the same distribution as drawing image
indices, at a cost that does not grow with the number of images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
EXACT_BELOW = 25  # McNemar: exact binomial test when fewer discordant pairs than this
EXACT, CHI2 = "exact binomial", "chi-square, continuity-corrected"
_CHUNK = 500  # resamples drawn at a time, to bound memory


# -- metrics from confusion counts (vectorised over resamples) ------------------------
def scores_from_confusion(confusion: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Weighted F1, accuracy and per-class F1 from confusion counts. `confusion[..., t, p]`
    counts images of true code t predicted as code p, with shape (..., n_labels, C) where C
    ≥ n_labels (columns past the labels: wrong answers that are no label). F1 per class is
    2·TP / (predicted + true), 0 where both are 0 — scikit-learn's with `zero_division=0`;
    the weighted average weighs by support."""
    confusion = np.asarray(confusion, dtype=np.float64)
    k = n_labels
    diagonal = np.diagonal(confusion[..., :k, :k], axis1=-2, axis2=-1)
    support = confusion.sum(axis=-1)[..., :k]
    predicted = confusion[..., :k, :k].sum(axis=-2)
    denominator = predicted + support
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denominator > 0, 2 * diagonal / np.where(denominator > 0, denominator, 1), 0)
    total_support = support.sum(axis=-1)
    total = confusion.sum(axis=(-2, -1))
    safe_support = np.where(total_support > 0, total_support, 1)
    safe_total = np.where(total > 0, total, 1)
    return {
        "f1_weighted": (f1 * support).sum(axis=-1) / safe_support,
        "accuracy": diagonal.sum(axis=-1) / safe_total,
        "f1_per_class": f1,
    }


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, n_columns: int
) -> np.ndarray:
    """(n_labels, n_columns) counts; predictions with codes ≥ n_columns fold into the last."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.minimum(np.asarray(y_pred, dtype=np.int64), n_columns - 1)
    keep = y_true < n_labels
    cells = y_true[keep] * n_columns + y_pred[keep]
    return np.bincount(cells, minlength=n_labels * n_columns).reshape(n_labels, n_columns)


# -- the paired bootstrap ------------------------------------------------------------
@dataclass(frozen=True)
class Bootstrap:
    """Each metric's value on every resample: arrays of shape (runs, resamples). `first_*`:
    the first run's value on the resamples each run was drawn with (the same as row 0 for
    one or two runs), for the paired differences."""

    resamples: int
    seed: int
    f1_weighted: np.ndarray
    accuracy: np.ndarray
    f1_per_class: np.ndarray  # (runs, resamples, labels)
    first_f1_weighted: np.ndarray
    first_accuracy: np.ndarray

    def interval(self, metric: str, run: int) -> tuple[float, float]:
        """Percentile interval of one run's metric."""
        return percentile_interval(getattr(self, metric)[run])

    def difference_interval(self, metric: str, run: int) -> tuple[float, float]:
        """Percentile interval of `run` minus the first run, paired resample by resample."""
        return percentile_interval(
            getattr(self, metric)[run] - getattr(self, f"first_{metric}")[run]
        )


def paired_bootstrap(
    y_true: np.ndarray,
    y_preds: Sequence[np.ndarray],
    n_labels: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Bootstrap:
    """Resample images with replacement, the same ones for a run and the first; score. One
    or two runs share one draw. With more, each run is drawn jointly with the first
    (patterns of true label, first run's and this run's answer: at most K·(K+1)² of them),
    since a draw over the patterns of all runs at once costs as many categories as images.
    Deterministic for a seed (numpy's PCG64)."""
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(y_true) == 0 or len(y_preds) == 0:
        raise ValueError("nothing to resample")
    if y_true.min() < 0 or y_true.max() >= n_labels:
        raise ValueError("true labels must be codes below n_labels")
    rng = np.random.default_rng(seed)
    if len(y_preds) <= 2:
        f1, accuracy, per_class = _draw(y_true, y_preds, n_labels, resamples, rng)
        first_values = [np.broadcast_to(metric[0], metric.shape) for metric in (f1, accuracy)]
        return Bootstrap(resamples, seed, f1, accuracy, per_class, *first_values)
    pairs = [_draw(y_true, [y_preds[0], other], n_labels, resamples, rng) for other in y_preds[1:]]
    first = pairs[0]  # each pair, per metric (F1, accuracy, per class): the first run, the other
    values = [np.stack([first[m][0], *(pair[m][1] for pair in pairs)]) for m in range(3)]
    first_values = [np.stack([first[m][0], *(pair[m][0] for pair in pairs)]) for m in range(2)]
    return Bootstrap(resamples, seed, *values, *first_values)


def _draw(
    y_true: np.ndarray,
    y_preds: Sequence[np.ndarray],
    n_labels: int,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F1, accuracy and per-class F1 of `y_preds` on the same `resamples` draws."""
    n = len(y_true)
    runs = len(y_preds)
    n_columns = n_labels + 1  # every non-label answer is simply wrong: one column for all
    patterns = np.stack(
        [y_true, *(np.minimum(np.asarray(p, dtype=np.int64), n_labels) for p in y_preds)], axis=1
    )
    # the distinct rows in np.unique(axis=0)'s order, from one integer per row (faster)
    flat = patterns @ (n_columns ** np.arange(patterns.shape[1] - 1, -1, -1, dtype=np.int64))
    _, first, counts = np.unique(flat, return_index=True, return_counts=True)
    distinct = patterns[first]
    probabilities = counts / n
    one_hot = []  # per run: (patterns, confusion cells), 1 where a pattern falls
    for r in range(runs):
        matrix = np.zeros((len(distinct), n_labels * n_columns))
        matrix[np.arange(len(distinct)), distinct[:, 0] * n_columns + distinct[:, 1 + r]] = 1
        one_hot.append(matrix)
    f1 = np.empty((runs, resamples))
    accuracy = np.empty((runs, resamples))
    per_class = np.empty((runs, resamples, n_labels))
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        draws = rng.multinomial(n, probabilities, size=size).astype(np.float64)
        for r in range(runs):
            confusion = (draws @ one_hot[r]).reshape(size, n_labels, n_columns)
            scores = scores_from_confusion(confusion, n_labels)
            f1[r, start : start + size] = scores["f1_weighted"]
            accuracy[r, start : start + size] = scores["accuracy"]
            per_class[r, start : start + size] = scores["f1_per_class"]
    return f1, accuracy, per_class


def percentile_interval(values: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
    """The central `level` share of `values` (linear interpolation, numpy's default)."""
    tail = round((1 - level) * 50, 9)  # 2.5 for 95%, not 2.5000000000000022
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


# -- McNemar's test -----------------------------------------------------------------
@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two runs: `b` images only the first got right, `c` only the second."""

    b: int
    c: int
    p_value: float
    method: str  # EXACT or CHI2
    statistic: float | None = None  # the chi-square statistic, when that test was used

    @property
    def discordant(self) -> int:
        return self.b + self.c


def mcnemar(
    first_correct: Sequence[bool] | np.ndarray, second_correct: Sequence[bool] | np.ndarray
) -> McNemar:
    """McNemar's test from two runs' per-image correctness (same images, same order)."""
    first = np.asarray(first_correct, dtype=bool)
    second = np.asarray(second_correct, dtype=bool)
    if first.shape != second.shape:
        raise ValueError("both runs must score the same images")
    b = int(np.count_nonzero(first & ~second))
    c = int(np.count_nonzero(~first & second))
    return mcnemar_from_counts(b, c)


def mcnemar_from_counts(b: int, c: int, exact_below: int = EXACT_BELOW) -> McNemar:
    """Exact two-sided binomial test when b + c < `exact_below`, else the chi-square test
    with continuity correction, max(0, |b − c| − 1)² / (b + c), on 1 degree of freedom."""
    n = b + c
    if n < exact_below:
        return McNemar(b, c, exact_binomial_p(min(b, c), n), EXACT)
    statistic = max(0, abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, chi2_1df_p(statistic), CHI2, statistic)


def exact_binomial_p(k: int, n: int) -> float:
    """Two-sided p of k successes in n fair coin tosses (scipy's exact binomial test)."""
    from scipy.stats import binomtest

    return 1.0 if n == 0 else float(binomtest(k, n, 0.5).pvalue)


def chi2_1df_p(statistic: float) -> float:
    """Upper-tail p of a chi-square statistic with one degree of freedom."""
    from scipy.stats import chi2

    return float(chi2.sf(statistic, 1))


# -- many comparisons ---------------------------------------------------------------
def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given. Sorted ascending, the i-th
    smallest (0-based) of m becomes (m − i)·p, made non-decreasing along that order and
    capped at 1; rejecting where the adjusted value is below α keeps the chance of any false
    rejection among all m tests below α."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        p = float(p_values[index])
        if not 0.0 <= p <= 1.0 or math.isnan(p):
            raise ValueError(f"a p-value must lie in [0, 1] (got {p})")
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


# -- agreement -----------------------------------------------------------------------
def cohen_kappa(
    first: Sequence[Any] | np.ndarray, second: Sequence[Any] | np.ndarray
) -> float | None:
    """scikit-learn's Cohen's kappa between two runs' predictions (every answer counts,
    `unparsed` included); None where it is undefined (both runs always say one thing)."""
    from sklearn.metrics import cohen_kappa_score

    if len(first) == 0:
        return None
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(first, second))
    return None if math.isnan(value) else value


def agreement(first: Sequence[Any], second: Sequence[Any]) -> float | None:
    """Share of images on which two runs gave the same answer."""
    a, b = np.asarray(first), np.asarray(second)
    return float(np.mean(a == b)) if len(a) else None

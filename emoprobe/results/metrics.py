"""Predictions → the paper's metrics, computed by scikit-learn on integer label codes.
Pure: a predictions table in, a `Metrics` record out; `Metrics.to_json` is metrics.json.

Every image the model answered is scored (`SCORED_STATUSES`): an answer with no label
(unparsed, refused, truncated, empty after thinking) counts as a wrong prediction and
stays in the denominator. Images without an answer (unreadable, not in the cache, failed
requests) are left out of the scores and counted.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from emoprobe.results.alarms import Alarm, alarms_for
from emoprobe.results.answer_forms import AnswerForms, answer_forms
from emoprobe.results.calibration import ScoreMetrics, score_metrics
from emoprobe.results.predictions import (
    FAILED,
    OK,
    SCORE_PREFIX,
    SCORED_STATUSES,
    STATUSES,
    TRUNCATED_STATUS,
    UNANSWERED_STATUSES,
)
from emoprobe.results.sample import SampleCounts, sample_counts
from emoprobe.task.definition import UNPARSED

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

    from emoprobe.results.manifest import Manifest


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Confusion:
    """Counts of true `labels` (rows) by predicted `columns` (the labels, `unparsed`)."""

    labels: list[str]
    columns: list[str]
    matrix: list[list[int]]

    def predicted(self) -> dict[str, int]:
        """How often each column was predicted, right or wrong."""
        return {c: sum(row[i] for row in self.matrix) for i, c in enumerate(self.columns)}


@dataclass(frozen=True)
class Intervals:
    """95% percentile-bootstrap intervals of one run's weighted F1 and accuracy."""

    method: str
    resamples: int
    seed: int
    f1_weighted: tuple[float, float]
    accuracy: tuple[float, float]


@dataclass(frozen=True)
class Baseline:
    """Always answering the most frequent true class of the scored images."""

    label: str
    accuracy: float


@dataclass(frozen=True)
class Metrics:
    """One run's (or one subset's) figures; field order is metrics.json's key order.
    `n_unparsed` counts answers with no label of any kind (unparsed, refused, truncated,
    empty after thinking: the confusion matrix's `unparsed` column); `n_error` images
    without an answer (unreadable, not in cache; `statuses` splits both, with failed
    requests, which have no row, from the manifest's last session)."""

    n: int
    n_scored: int
    n_ok: int
    n_unparsed: int
    n_error: int
    n_truncated: int
    statuses: dict[str, int]
    accuracy: float | None
    precision_weighted: float | None
    recall_weighted: float | None
    f1_weighted: float | None
    precision_macro: float | None
    recall_macro: float | None
    f1_macro: float | None
    labels: list[str]
    per_class: dict[str, ClassScores]
    confusion_matrix: Confusion
    balanced_accuracy: float | None = None
    cohen_kappa: float | None = None  # against the true labels, `unparsed` included
    majority_baseline: Baseline | None = None
    sample: SampleCounts | None = None
    alarms: list[Alarm] = field(default_factory=list)
    answer_forms: AnswerForms | None = None
    latency_median_s: float | None = None
    latency_p95_s: float | None = None
    ci95: Intervals | None = None
    scores: ScoreMetrics | None = None
    has_score_columns: bool = field(default=False, repr=False)  # "scores" key, even null

    def to_json(self) -> str:
        """metrics.json's text."""
        data = asdict(self)
        del data["has_score_columns"]
        if not self.has_score_columns:
            del data["scores"]
        return json.dumps(data, indent=2)

    def to_dict(self) -> dict[str, Any]:
        """metrics.json as JSON data (lists, not tuples)."""
        return cast(dict[str, Any], json.loads(self.to_json()))


def run_metrics(
    frame: pd.DataFrame, labels: Sequence[str], manifest: Manifest | None = None
) -> Metrics:
    """metrics.json of a run: `compute_metrics`, latency, 95% intervals, label scores;
    with the manifest, failed requests, the sample as drawn and the alarms."""
    with_scores = any(str(column).startswith(SCORE_PREFIX) for column in frame.columns)
    latency: dict[str, Any] = latency_stats(frame)
    metrics = compute_metrics(frame, labels)
    statuses = dict(metrics.statuses)
    if manifest is not None and manifest.sessions:
        statuses[FAILED] = manifest.sessions[-1].failed
    sample = sample_counts(manifest, frame, labels) if manifest is not None else None
    mode = manifest.answer_mode if manifest is not None else "text"
    metrics = replace(
        metrics,
        statuses=statuses,
        sample=sample,
        answer_forms=answer_forms(frame, labels, mode),
        **latency,
        ci95=confidence_intervals(frame, labels),
        scores=score_metrics(frame, labels) if with_scores else None,
        has_score_columns=with_scores,
    )
    return replace(metrics, alarms=alarms_for(metrics))


def scored(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the model answered (`ok`, `unparsed`, `truncated`): those the scores count."""
    return cast("pd.DataFrame", frame[frame["status"].isin(SCORED_STATUSES)])


def confidence_intervals(frame: pd.DataFrame, labels: Sequence[str]) -> Intervals | None:
    """Percentile intervals of weighted F1 and accuracy over the images (stats.py)."""
    from emoprobe.results.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_bootstrap

    answered = scored(frame)
    if answered.empty:
        return None
    y_true, y_pred = encode(answered, labels)
    boot = paired_bootstrap(y_true, [y_pred], len(labels), DEFAULT_RESAMPLES, DEFAULT_SEED)
    return Intervals(
        method="percentile bootstrap over the scored images",
        resamples=boot.resamples,
        seed=boot.seed,
        f1_weighted=boot.interval("f1_weighted", 0),
        accuracy=boot.interval("accuracy", 0),
    )


def compute_metrics(frame: pd.DataFrame, labels: Sequence[str]) -> Metrics:
    """Weighted and macro precision/recall/F1, accuracy, per-class table, confusion matrix.
    Labels are scored as integer codes (`encode`): the same counts, hence the same figures,
    as strings give, many times faster on tens of thousands of rows."""
    labels = list(labels)
    status = frame["status"]
    answered = scored(frame)
    columns = [*labels, UNPARSED]
    statuses = {name: int((status == name).sum()) for name in STATUSES}
    counts: dict[str, Any] = {
        "n": len(frame),
        "n_scored": len(answered),
        "n_ok": statuses[OK],
        "n_unparsed": len(answered) - statuses[OK],
        "n_error": sum(statuses[name] for name in UNANSWERED_STATUSES),
        "n_truncated": statuses[TRUNCATED_STATUS],
        "statuses": statuses,
        "labels": labels,
    }
    per_class: dict[str, ClassScores] = {}
    if answered.empty:
        figures: dict[str, Any] = dict.fromkeys(_SCORE_KEYS)
        matrix = [[0] * len(columns) for _ in labels]
    else:
        y_true, y_pred = encode(answered, labels)
        figures, scores, matrix = label_scores(y_true, y_pred, len(labels), len(columns))
        figures |= _agreement(y_true, y_pred, labels)
        per_class = dict(zip(labels, scores, strict=True))
    return Metrics(
        **counts,
        **figures,
        per_class=per_class,
        confusion_matrix=Confusion(labels, columns, matrix),
    )


def _agreement(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Balanced accuracy, Cohen's kappa against the truth (scikit-learn's), majority baseline."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from emoprobe.results.stats import cohen_kappa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # predicted classes absent from the truth
        balanced = float(balanced_accuracy_score(y_true, y_pred))
    support = np.bincount(y_true, minlength=len(labels))[: len(labels)]
    majority = int(np.argmax(support))  # the first of equals, in the task's order
    return {
        "balanced_accuracy": balanced,
        "cohen_kappa": cohen_kappa(y_true, y_pred),
        "majority_baseline": Baseline(labels[majority], float(support[majority] / len(y_true))),
    }


def label_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, n_columns: int
) -> tuple[dict[str, Any], list[ClassScores], list[list[int]]]:
    """scikit-learn's accuracy, weighted and macro precision/recall/F1 over the task's
    labels (`zero_division=0`), per-class scores and the confusion counts, of integer
    codes. Codes ≥ `n_labels` are answers that are no label; the matrix keeps the codes
    below `n_columns`."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    codes = list(range(n_labels))
    figures: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("weighted", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=codes, average=average, zero_division=0
        )
        figures |= {
            f"precision_{average}": float(precision),
            f"recall_{average}": float(recall),
            f"f1_{average}": float(f1),
        }
    each = precision_recall_fscore_support(y_true, y_pred, labels=codes, zero_division=0)
    per_class = [
        ClassScores(float(each[0][i]), float(each[1][i]), float(each[2][i]), int(each[3][i]))
        for i in codes
    ]
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(n_columns)))
    return figures, per_class, matrix[:n_labels].tolist()


def encode(frame: pd.DataFrame, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) as numpy integer codes: the index in `labels`, then `unparsed`
    (also for an answered row without a prediction), then one code per other name, so
    that no two different names ever compare equal."""
    import numpy as np

    index = {name: code for code, name in enumerate([*labels, UNPARSED])}
    categories = frame["label"].cat.categories  # the prediction column's too (to_frame)
    codes = [index.setdefault(name, len(index)) for name in categories]
    lookup = np.array([*codes, index[UNPARSED]])  # the last for code -1: no prediction
    y_true = lookup[frame["label"].cat.codes.to_numpy(dtype=np.int64)]
    return y_true, lookup[frame["prediction"].cat.codes.to_numpy(dtype=np.int64)]


_SCORE_KEYS = (
    "accuracy",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "f1_macro",
)


def latency_stats(frame: pd.DataFrame) -> dict[str, float | None]:
    """Median and 95th-percentile request latency over this run's own requests: rows
    answered from the cache are left out (older folders kept the first request's)."""
    import numpy as np

    values = frame["latency_s"][~frame["cached"].to_numpy(dtype=bool)].to_numpy(dtype=np.float64)
    latencies = np.sort(values[~np.isnan(values)])
    if not len(latencies):
        return {"latency_median_s": None, "latency_p95_s": None}
    median = np.median(latencies)  # as `statistics.median`: the middle two's mean
    p95_index = min(len(latencies) - 1, max(0, round(0.95 * len(latencies)) - 1))
    return {"latency_median_s": float(median), "latency_p95_s": float(latencies[p95_index])}

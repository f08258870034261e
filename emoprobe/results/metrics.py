"""Predictions → the paper's metrics, with scikit-learn. Pure: rows in, a dict out.

Every image the model answered is scored; an `unparsed` answer counts as a wrong
prediction and stays in the denominator. Unreadable images (`error` rows) are left
out of the scores and counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from emoprobe.results.predictions import ERROR, OK, UNPARSED_STATUS, Row
from emoprobe.task.definition import UNPARSED


def run_metrics(rows: Sequence[Row], labels: Sequence[str]) -> dict[str, Any]:
    """metrics.json of a run: `compute_metrics`, latency, and 95% bootstrap intervals."""
    metrics = compute_metrics(rows, labels)
    metrics.update(latency_stats(rows))
    metrics["ci95"] = confidence_intervals(rows, labels)
    if any(row.scores for row in rows):
        from emoprobe.results.calibration import score_metrics

        metrics["scores"] = score_metrics(rows, labels)
    return metrics


def confidence_intervals(rows: Sequence[Row], labels: Sequence[str]) -> dict[str, Any] | None:
    """Percentile intervals of weighted F1 and accuracy over the images (stats.py)."""
    from emoprobe.results.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, paired_bootstrap

    scored = [row for row in rows if row.status in (OK, UNPARSED_STATUS)]
    if not scored:
        return None
    y_true, y_pred = encode(scored, [*labels, UNPARSED])
    boot = paired_bootstrap(y_true, [y_pred], len(labels), DEFAULT_RESAMPLES, DEFAULT_SEED)
    return {
        "method": "percentile bootstrap over the scored images",
        "resamples": boot.resamples,
        "seed": boot.seed,
        "f1_weighted": list(boot.interval("f1_weighted", 0)),
        "accuracy": list(boot.interval("accuracy", 0)),
    }


def compute_metrics(rows: Sequence[Row], labels: Sequence[str]) -> dict[str, Any]:
    """Weighted and macro precision/recall/F1, accuracy, per-class table, confusion matrix.

    Labels go to scikit-learn as integer codes (the task's labels, then `unparsed`, then
    any other answer, each its own code): the same counts, hence the same figures, as
    strings give, many times faster on tens of thousands of rows.
    """
    labels = list(labels)
    scored = [row for row in rows if row.status in (OK, UNPARSED_STATUS)]
    counts = {
        "n": len(rows),
        "n_scored": len(scored),
        "n_ok": sum(row.status == OK for row in rows),
        "n_unparsed": sum(row.status == UNPARSED_STATUS for row in rows),
        "n_error": sum(row.status == ERROR for row in rows),
    }
    columns = [*labels, UNPARSED]
    if not scored:
        empty = {key: None for key in _SCORE_KEYS}
        matrix = [[0] * len(columns) for _ in labels]
        return {
            **counts,
            **empty,
            "labels": labels,
            "per_class": {},
            "confusion_matrix": {"labels": labels, "columns": columns, "matrix": matrix},
        }
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    y_true, y_pred = encode(scored, columns)
    codes = list(range(len(labels)))
    result: dict[str, Any] = {**counts, "accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("weighted", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=codes, average=average, zero_division=0
        )
        result[f"precision_{average}"] = float(precision)
        result[f"recall_{average}"] = float(recall)
        result[f"f1_{average}"] = float(f1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=codes, average=None, zero_division=0
    )
    result["labels"] = labels
    result["per_class"] = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(columns))))[: len(labels)]
    result["confusion_matrix"] = {
        "labels": labels,
        "columns": columns,
        "matrix": matrix.tolist(),
    }
    return result


def encode(scored: Sequence[Row], columns: Sequence[str]) -> tuple[Any, Any]:
    """(true, predicted) as numpy integer codes: the index in `columns`; other names get
    codes past the end, one per name, so that no two different names ever compare equal."""
    import numpy as np

    index = {name: code for code, name in enumerate(columns)}

    def code(name: str) -> int:
        return index.setdefault(name, len(index))

    y_true = np.fromiter((code(row.label) for row in scored), dtype=np.int64, count=len(scored))
    y_pred = np.fromiter(
        (code(row.prediction or UNPARSED) for row in scored), dtype=np.int64, count=len(scored)
    )
    return y_true, y_pred


_SCORE_KEYS = (
    "accuracy",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "f1_macro",
)


def latency_stats(rows: Sequence[Row]) -> dict[str, float | None]:
    """Median and 95th-percentile request latency over the rows that have one."""
    latencies = sorted(float(row.latency_s) for row in rows if row.latency_s)
    if not latencies:
        return {"latency_median_s": None, "latency_p95_s": None}
    p95_index = min(len(latencies) - 1, max(0, round(0.95 * len(latencies)) - 1))
    return {
        "latency_median_s": statistics.median(latencies),
        "latency_p95_s": latencies[p95_index],
    }

"""Predictions → the paper's metrics, with scikit-learn. Pure: rows in, a dict out.

Every image the model answered is scored; an `unparsed` answer counts as a wrong
prediction and stays in the denominator. Unreadable images (`error` rows) are left
out of the scores and counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .predictions import ERROR, OK, UNPARSED_STATUS, Row
from .tasks import UNPARSED


def compute_metrics(rows: Sequence[Row], labels: Sequence[str]) -> dict[str, Any]:
    """Weighted and macro precision/recall/F1, accuracy, per-class table, confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

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
    y_true = [row.label for row in scored]
    y_pred = [row.prediction or UNPARSED for row in scored]
    result: dict[str, Any] = {**counts, "accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("weighted", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        result[f"precision_{average}"] = float(precision)
        result[f"recall_{average}"] = float(recall)
        result[f"f1_{average}"] = float(f1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
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
    matrix = confusion_matrix(y_true, y_pred, labels=columns)[: len(labels)]
    result["confusion_matrix"] = {
        "labels": labels,
        "columns": columns,
        "matrix": matrix.tolist(),
    }
    return result


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

"""Scores per label (`--answer logprobs`) → ROC-AUC, calibration error, reliability bins.

Pure: rows in, a dict out. Only rows the model answered and that carry a score for
every label are used; the top score's label is the scores' own prediction, which can
differ from the parsed text answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emoprobe.results.predictions import OK, UNPARSED_STATUS, Row

BINS = 10


def score_metrics(rows: Sequence[Row], labels: Sequence[str]) -> dict[str, Any] | None:
    """One-vs-rest ROC-AUC per class and macro, expected calibration error, bins."""
    labels = list(labels)
    scored = [
        row
        for row in rows
        if row.status in (OK, UNPARSED_STATUS)
        and len(row.scores) == len(labels)
        and all(row.scores)
        and row.label in labels
    ]
    if not scored:
        return None
    import numpy as np
    from sklearn.metrics import roc_auc_score

    probabilities = np.array([[float(value) for value in row.scores] for row in scored])
    truth = np.array([labels.index(row.label) for row in scored])
    per_class: dict[str, float | None] = {}
    for index, label in enumerate(labels):
        positive = truth == index
        if positive.all() or not positive.any():
            per_class[label] = None  # AUC needs both classes present
        else:
            per_class[label] = float(roc_auc_score(positive, probabilities[:, index]))
    known = [value for value in per_class.values() if value is not None]
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    bins = reliability_bins(confidence, correct)
    ece = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / len(scored)
    return {
        "n_with_scores": len(scored),
        "n_without_scores": sum(r.status in (OK, UNPARSED_STATUS) for r in rows) - len(scored),
        "roc_auc_ovr_macro": float(np.mean(known)) if known else None,
        "roc_auc_ovr": per_class,
        "top_score_accuracy": float(correct.mean()),
        "ece": float(ece),
        "reliability": bins,
    }


def reliability_bins(confidence: Any, correct: Any, bins: int = BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins: how sure the scores were, and how often right."""
    result = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        inside = (confidence > low) & (confidence <= high) if index else confidence <= high
        count = int(inside.sum())
        if count:
            result.append(
                {
                    "low": low,
                    "high": high,
                    "count": count,
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                }
            )
    return result

"""Scores per label (`--answer logprobs`) → ROC-AUC, calibration error, reliability bins.

Pure: a predictions table in, a record out. Only `ok` rows (answers with a label) that
carry a score for every label are used: this version scores only those, from where the
answer names its label. The top score's label can still differ from the parsed label
(the probability of the other labels' tokens there, summed, can exceed the chosen one's;
folders of emoprobe < 0.3 took the first label-like token instead): such rows are
counted (`n_top_differs`). Scores on rows without a label (older folders) are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emoprobe.results.predictions import OK, SCORE_PREFIX, SCORED_STATUSES

if TYPE_CHECKING:
    import pandas as pd

BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class ScoreMetrics:
    """`n_with_scores` of `n_answered` answers are covered: `n_ok_without_scores` answers
    named a label where no score could be read (no log-probabilities at that word), the
    other answers named no label and get none."""

    n_with_scores: int
    n_without_scores: int  # answered rows without scores: ok ones and those with no label
    n_answered: int
    n_ok_without_scores: int
    n_top_differs: int  # scored rows whose top score is not the parsed label
    roc_auc_ovr_macro: float | None
    roc_auc_ovr: dict[str, float | None]
    top_score_accuracy: float
    ece: float
    reliability: list[ReliabilityBin]
    top_differs: dict[str, int] = field(default_factory=dict)  # "prediction → top": rows


def score_metrics(frame: pd.DataFrame, labels: Sequence[str]) -> ScoreMetrics | None:
    """One-vs-rest ROC-AUC per class and macro, expected calibration error, bins."""
    labels = list(labels)
    columns = [SCORE_PREFIX + label for label in labels]
    answered = frame[frame["status"].isin(SCORED_STATUSES)]
    if not set(columns) <= set(frame.columns):
        return None
    ok = answered[answered["status"] == OK]
    with_scores = ok[columns].notna().all(axis=1)
    usable = ok[with_scores & ok["label"].isin(labels)]
    if usable.empty:
        return None
    import numpy as np
    from sklearn.metrics import roc_auc_score

    probabilities = usable[columns].to_numpy(dtype=np.float64)
    truth = usable["label"].cat.codes.to_numpy()
    per_class: dict[str, float | None] = {}
    for index, label in enumerate(labels):
        positive = truth == index
        both = positive.any() and not positive.all()  # AUC needs both classes present
        per_class[label] = float(roc_auc_score(positive, probabilities[:, index])) if both else None
    known = [value for value in per_class.values() if value is not None]
    confidence = probabilities.max(axis=1)
    top = probabilities.argmax(axis=1)
    correct = top == truth
    predicted = usable["prediction"].astype(str).to_numpy()
    pairs = Counter(
        f"{p} → {labels[i]}" for i, p in zip(top, predicted, strict=True) if labels[i] != p
    )
    bins = reliability_bins(confidence, correct)
    ece = sum(b.count * abs(b.accuracy - b.confidence) for b in bins) / len(usable)
    return ScoreMetrics(
        n_with_scores=len(usable),
        n_without_scores=len(answered) - len(usable),
        n_answered=len(answered),
        n_ok_without_scores=int((~with_scores).sum()),
        n_top_differs=sum(pairs.values()),
        roc_auc_ovr_macro=float(np.mean(known)) if known else None,
        roc_auc_ovr=per_class,
        top_score_accuracy=float(correct.mean()),
        ece=float(ece),
        reliability=bins,
        top_differs=dict(sorted(pairs.items(), key=lambda item: (-item[1], item[0]))),
    )


def reliability_bins(confidence: Any, correct: Any, bins: int = BINS) -> list[ReliabilityBin]:
    """Equal-width confidence bins: how sure the scores were, and how often right."""
    result = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        inside = (confidence > low) & (confidence <= high) if index else confidence <= high
        if count := int(inside.sum()):
            sure, right = float(confidence[inside].mean()), float(correct[inside].mean())
            result.append(ReliabilityBin(low, high, count, sure, right))
    return result

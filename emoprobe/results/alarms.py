"""Alarms for degenerate runs: a class never predicted, one class taking most of the
predictions, many answers without a label, accuracy no better than always answering the
most frequent class, a sample short of the request.

Pure: a `Metrics` record (`Figures`) in, a list of `Alarm`s out (metrics.json's `alarms`); the
sentences are `emoprobe.reporting`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from emoprobe.results.predictions import NO_LABEL_STATUSES

COLLAPSE_SHARE = 0.5  # one class in more than half of the predictions …
COLLAPSE_OVER_TRUTH = 1.5  # … and more than 1.5 times its share of the true labels
NO_LABEL_SHARE = 0.10  # unparsed, refused, truncated or empty answers, each status apart

NEVER_PREDICTED = "never_predicted"
COLLAPSE = "class_collapse"
STATUS_SHARE = "status_share"
NOT_ABOVE_BASELINE = "not_above_baseline"
SHORT_SAMPLE = "short_sample"


class Figures(Protocol):
    """What the alarms read of a `metrics.Metrics` (named apart: metrics imports us)."""

    @property
    def labels(self) -> list[str]: ...
    @property
    def n_scored(self) -> int: ...
    @property
    def statuses(self) -> dict[str, int]: ...
    @property
    def accuracy(self) -> float | None: ...
    @property
    def per_class(self) -> Mapping[str, Any]: ...  # label → ClassScores (`support`)
    @property
    def confusion_matrix(self) -> Any: ...  # Confusion (`predicted()`)
    @property
    def majority_baseline(self) -> Any: ...  # Baseline | None
    @property
    def sample(self) -> Any: ...  # SampleCounts | None


@dataclass(frozen=True)
class Alarm:
    """`kind`; `subject`: the class or status; `value` against `threshold` (a share,
    an accuracy or, for a short sample, images drawn against requested)."""

    kind: str
    subject: str
    value: float
    threshold: float


def alarms_for(metrics: Figures) -> list[Alarm]:
    """Every alarm a run's figures raise, in a fixed order."""
    found: list[Alarm] = []
    sample = metrics.sample
    if sample is not None and sample.per_class:
        found += [
            Alarm(SHORT_SAMPLE, label, sample.drawn[label], sample.per_class)
            for label in sample.short
        ]
    scored = metrics.n_scored
    if not scored:
        return found
    predicted = metrics.confusion_matrix.predicted()
    support = {label: scores.support for label, scores in metrics.per_class.items()}
    for label in metrics.labels:
        if not predicted.get(label):
            found.append(Alarm(NEVER_PREDICTED, label, 0.0, 0.0))
    for label in metrics.labels:
        share = predicted.get(label, 0) / scored
        limit = max(COLLAPSE_SHARE, COLLAPSE_OVER_TRUTH * support.get(label, 0) / scored)
        if share > limit:
            found.append(Alarm(COLLAPSE, label, share, limit))
    for status in NO_LABEL_STATUSES:
        share = metrics.statuses.get(status, 0) / scored
        if share > NO_LABEL_SHARE:
            found.append(Alarm(STATUS_SHARE, status, share, NO_LABEL_SHARE))
    baseline = metrics.majority_baseline
    if baseline and metrics.accuracy is not None and metrics.accuracy <= baseline.accuracy:
        found.append(Alarm(NOT_ABOVE_BASELINE, baseline.label, metrics.accuracy, baseline.accuracy))
    return found

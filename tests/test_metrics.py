"""Metrics equal scikit-learn's on the same rows; unparsed is wrong, errors are left out."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from emoprobe.results import metrics as metrics_module
from emoprobe.results.metrics import Metrics, latency_stats
from emoprobe.results.predictions import Row, to_frame

LABELS = ["confused", "distracted", "happy", "tired", "neutral"]


def row(label: str, prediction: str, status: str = "ok", latency: float | None = 1.0) -> Row:
    return Row(
        f"{label}/{random.random()}", "", label, prediction, prediction, status, "", latency, False
    )


def compute_metrics(rows: list[Row], labels: list[str]) -> Metrics:
    return metrics_module.compute_metrics(to_frame(rows, labels), labels)


def random_rows(seed: int, n: int = 200) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(LABELS)
        roll = rng.random()
        if roll < 0.1:
            rows.append(row(label, "unparsed", "unparsed"))
        elif roll < 0.15:
            rows.append(row(label, "", "error", None))
        else:
            rows.append(row(label, label if roll < 0.6 else rng.choice(LABELS)))
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_scikit_learn_on_the_same_rows(seed):
    rows = random_rows(seed)
    metrics = compute_metrics(rows, LABELS)
    scored = [r for r in rows if r.status != "error"]
    y_true = [r.label for r in scored]
    y_pred = [r.prediction for r in scored]
    assert metrics.accuracy == accuracy_score(y_true, y_pred)
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=LABELS, average=average, zero_division=0
        )
        assert getattr(metrics, f"precision_{average}") == p
        assert getattr(metrics, f"recall_{average}") == r
        assert getattr(metrics, f"f1_{average}") == f
    cm = confusion_matrix(y_true, y_pred, labels=[*LABELS, "unparsed"])
    assert metrics.confusion_matrix.matrix == cm[:5].tolist()
    assert metrics.n == len(rows)
    assert metrics.n_error == len(rows) - len(scored)
    assert metrics.n_ok + metrics.n_unparsed == len(scored)


def test_unparsed_counts_as_wrong_and_stays_in_the_denominator():
    rows = [
        row("happy", "happy"),
        row("happy", "unparsed", "unparsed"),
        row("tired", "tired"),
        row("tired", "", "error", None),
    ]
    metrics = compute_metrics(rows, LABELS)
    assert metrics.accuracy == pytest.approx(2 / 3)
    assert asdict(metrics.per_class["happy"]) == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert metrics.per_class["tired"].support == 1
    assert metrics.confusion_matrix.columns[-1] == "unparsed"
    assert metrics.confusion_matrix.matrix[2] == [0, 0, 1, 0, 0, 1]


def test_no_scored_rows_gives_empty_scores_not_a_crash():
    metrics = compute_metrics([row("happy", "", "error", None)], LABELS)
    assert metrics.accuracy is None and metrics.f1_weighted is None
    assert metrics.n_error == 1


def test_latency_median_and_p95():
    rows = [row("happy", "happy", latency=float(x)) for x in range(1, 101)]
    assert latency_stats(to_frame(rows, LABELS)) == {
        "latency_median_s": 50.5,
        "latency_p95_s": 95.0,
    }
    assert latency_stats(to_frame([], LABELS)) == {
        "latency_median_s": None,
        "latency_p95_s": None,
    }

"""Runs on the same images, side by side and paired: the numbers of `emoprobe compare`.

Runs are read from their folders alone (manifest.json and predictions.csv); images are
paired by sha256 and path, and only images that every run scored are compared, so every
figure here is on the same images. Against the first run, each run gets the difference
in weighted F1 and accuracy with a paired bootstrap 95% interval, McNemar's test on which
images each got right, and Cohen's kappa between their answers (stats.py). Rendering is
`emoprobe.reporting.comparison`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emoprobe.backends.weights import quantization_scope
from emoprobe.errors import ConfigError
from emoprobe.results import stats
from emoprobe.results.alarms import Alarm, alarms_for
from emoprobe.results.load import RunRecord, load_run
from emoprobe.results.manifest import Manifest
from emoprobe.results.metrics import Metrics, compute_metrics, encode, latency_stats, scored
from emoprobe.results.speed import Speed, speed_summary

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Paired:
    """One run against the first, on the shared images."""

    f1_difference: float
    f1_interval: tuple[float, float]
    accuracy_difference: float
    accuracy_interval: tuple[float, float]
    mcnemar: stats.McNemar
    kappa: float | None
    agreement: float | None
    f1_per_class_difference: dict[str, float]


@dataclass
class Comparison:
    runs: list[RunRecord]
    names: list[str]  # the model's name, with the folder's where two runs share one
    labels: list[str]
    shared: int  # images every run scored, matched by sha256 and path
    scored: list[int]  # images each run scored in all
    metrics: list[Metrics]  # per run, on the shared images
    speed: list[Speed]  # per run, over all its sessions
    f1_intervals: list[tuple[float, float]]
    accuracy_intervals: list[tuple[float, float]]
    paired: list[Paired]  # runs[1:] against runs[0]
    resamples: int
    seed: int
    differences: list[str] = field(default_factory=list)
    alarms: list[list[Alarm]] = field(default_factory=list)  # per run, on the shared images


MIN_RESAMPLES = 1000


def build_comparison(paths: list[Path], resamples: int = 2000, seed: int = 0) -> Comparison:
    """Load, check and pair the runs; compute every figure of comparison.md."""
    if len(paths) < 2:
        raise ConfigError("give at least two run folders to compare")
    if resamples < MIN_RESAMPLES:
        raise ConfigError(f"resamples must be at least {MIN_RESAMPLES}", setting="resamples")
    resolved = [Path(path).resolve() for path in paths]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise ConfigError(f"{paths[index]} is given twice", path=paths[index])
    runs = [load_run(path) for path in paths]
    _check_same_task(runs)
    labels = runs[0].labels
    tables, subsets = shared_scored(runs)
    y_true = encode(subsets[0], labels)[0]
    predictions = [encode(subset, labels)[1] for subset in subsets]
    boot = stats.paired_bootstrap(y_true, predictions, len(labels), resamples, seed)
    metrics = [compute_metrics(subset, labels) for subset in subsets]
    answers = [subset["prediction"].astype(str).to_numpy() for subset in subsets]
    correct = [prediction == y_true for prediction in predictions]
    paired = [
        Paired(
            f1_difference=_difference(metrics[j].f1_weighted, metrics[0].f1_weighted),
            f1_interval=boot.difference_interval("f1_weighted", j),
            accuracy_difference=_difference(metrics[j].accuracy, metrics[0].accuracy),
            accuracy_interval=boot.difference_interval("accuracy", j),
            mcnemar=stats.mcnemar(correct[0], correct[j]),
            kappa=stats.cohen_kappa(list(answers[0]), list(answers[j])),
            agreement=stats.agreement(list(answers[0]), list(answers[j])),
            f1_per_class_difference={
                label: metrics[j].per_class[label].f1 - metrics[0].per_class[label].f1
                for label in labels
            },
        )
        for j in range(1, len(runs))
    ]
    return Comparison(
        runs=runs,
        names=_names(runs),
        labels=labels,
        shared=len(subsets[0]),
        scored=[len(table) for table in tables],
        metrics=metrics,
        speed=[speed_summary(run.manifest, **latency_stats(run.predictions)) for run in runs],
        f1_intervals=[boot.interval("f1_weighted", r) for r in range(len(runs))],
        accuracy_intervals=[boot.interval("accuracy", r) for r in range(len(runs))],
        paired=paired,
        resamples=resamples,
        seed=seed,
        differences=_differences(runs),
        alarms=[alarms_for(m) for m in metrics],
    )


def shared_scored(runs: list[RunRecord]) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Per run: its scored rows, and those of the images every run scored (matched by
    sha256 and path, in the first run's order); one-line errors when there are none or
    the runs label them differently."""
    tables = []
    for run in runs:
        answered = scored(run.predictions)
        tables.append(answered[answered["sha256"] != ""].reset_index(drop=True))
    rows = [  # (sha256, path) → row number, per run
        {key: n for n, key in enumerate(zip(t["sha256"].tolist(), t["path"].tolist(), strict=True))}
        for t in tables
    ]
    everywhere = set(rows[0]).intersection(*rows[1:])
    keys = [key for key in rows[0] if key in everywhere]
    if not keys:
        raise ConfigError(
            "the runs share no scored image (matched by sha256 and path): "
            "nothing to compare; were they made on the same dataset?"
        )
    subsets = [
        table.iloc[[place[key] for key in keys]].reset_index(drop=True)
        for table, place in zip(tables, rows, strict=True)
    ]
    truth = np.stack([subset["label"].astype(str).to_numpy() for subset in subsets])
    disagree = int((truth != truth[0]).any(axis=0).sum())
    if disagree:
        raise ConfigError(
            f"the runs disagree on the true label of {disagree} shared images: "
            "their datasets label them differently, so they cannot be compared"
        )
    return tables, subsets


def _difference(value: float | None, reference: float | None) -> float:
    assert value is not None and reference is not None  # the shared images are scored
    return value - reference


def _check_same_task(runs: list[RunRecord]) -> None:
    first = runs[0]
    for run in runs[1:]:
        task, other = run.manifest.task, first.manifest.task
        if task.name != other.name or sorted(task.labels) != sorted(other.labels):
            raise ConfigError(
                f"{run.path} is task {task.name!r} with labels {', '.join(task.labels)}, but "
                f"{first.path} is task {other.name!r} with labels {', '.join(other.labels)}: "
                "only runs of the same task can be compared"
            )


def _names(runs: list[RunRecord]) -> list[str]:
    """The model's name; the folder's name added where two runs share a model."""
    names = [run.manifest.model.name or run.path.name for run in runs]
    return [
        name if names.count(name) == 1 else f"{name} ({run.path.name})"
        for run, name in zip(runs, names, strict=True)
    ]


def _differences(runs: list[RunRecord]) -> list[str]:
    """The settings that are not the same in every run, each as one short line: all
    that changes answers (the build, how it was asked, what it was shown, which images)."""
    settings: dict[str, Callable[[Manifest], object]] = {
        "model": lambda m: m.model.name,
        "model digest": lambda m: m.model.digest[:12] or "?",
        "quantization": lambda m: m.model.quantization or "?",
        "answer mode": lambda m: (
            m.answer_mode
            + (f" (scoring v{m.scoring_version or 1})" if m.answer_mode == "logprobs" else "")
        ),
        "task": lambda m: f"{m.task.name} ({', '.join(m.task.labels)})",
        "prompt sha256": lambda m: m.task.prompt_sha256[:12],
        "user text": lambda m: m.task.user_text or "none",
        "weights quantization changes": lambda m: quantization_scope(
            m.model.language_weights, m.model.vision_weights
        ),
        "options": lambda m: (
            ", ".join(f"{k}={v}" for k, v in sorted(m.options.items())) or "defaults"
        ),
        "images sent": lambda m: m.max_side or "as stored",
        "backend": lambda m: m.backend,
        "server version": lambda m: m.server.version or "?",
        "emoprobe (its parser reads the answers)": lambda m: m.emoprobe_version or "?",
        "sample": lambda m: m.dataset.sample_text(),
        "sample drawn": lambda m: (
            ", ".join(f"{label} {n}" for label, n in m.dataset.drawn.items())
            if m.dataset.drawn is not None
            else "not recorded"
        ),
        "dataset": lambda m: f"{m.dataset.format or '?'} format, {m.dataset.n_items} images",
    }
    lines = []
    for what, value in settings.items():
        values = [str(value(run.manifest)) for run in runs]
        if len(set(values)) > 1:
            lines.append(f"{what}: " + "; ".join(values))
    return lines

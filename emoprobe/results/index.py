"""Every run folder under a directory, as one table of numbers (`emoprobe runs`).

`read_run` is the one place that reads a run folder for `runs` and `view`; everything
else here is pure: a run's record in, its summary row out. A folder that cannot be read
becomes a row with the reason, never a silent gap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError, EmoprobeError
from emoprobe.files import os_error_text
from emoprobe.results.predictions import FILENAME, UNPARSED_STATUS, Row
from emoprobe.results.rundir import MANIFEST, METRICS, RunDir

REFUSED_STATUS = "refused"  # not a status yet: rows may carry it once parsing tells refusals


@dataclass(frozen=True)
class RunRecord:
    """One run folder as read from disk: its manifest, final rows and metrics.json."""

    path: Path
    manifest: dict[str, Any]
    rows: list[Row]
    metrics: dict[str, Any] | None  # None when metrics.json is missing or unreadable

    @property
    def labels(self) -> list[str]:
        return [str(label) for label in self.manifest.get("task", {}).get("labels", [])]


def read_run(path: Path) -> RunRecord:
    """A run folder's manifest, final rows (sample order) and metrics; one-line errors."""
    path = Path(path)
    rundir = RunDir(path)
    if not path.is_dir():
        raise ConfigError(f"run folder {path} does not exist")
    if not (path / MANIFEST).is_file():
        raise ConfigError(f"{path} is not an emoprobe run folder (no {MANIFEST})")
    manifest = rundir.read_manifest() or {}
    if not rundir.predictions.is_file():
        raise ConfigError(f"{path} holds no {FILENAME}")
    if not isinstance(manifest, dict) or not manifest.get("task", {}).get("labels"):
        raise ConfigError(f"{path / MANIFEST} names no task labels")
    return RunRecord(path, manifest, rundir.final_rows(manifest), _read_metrics(path / METRICS))


def _read_metrics(path: Path) -> dict[str, Any] | None:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


@dataclass(frozen=True)
class RunSummary:
    """One line of `emoprobe runs`; `error` says why a folder could not be read."""

    path: str
    model: str | None = None
    quantization: str | None = None
    answer_mode: str | None = None
    task: str | None = None
    done: int | None = None  # images with a final row
    sampled: int | None = None  # images in the sample; None where the manifest cannot say
    accuracy: float | None = None
    f1_weighted: float | None = None
    f1_ci95: tuple[float, float] | None = None
    unparsed_share: float | None = None
    refused_share: float | None = None  # None: no row says "refused" (no such status yet)
    images_per_s: float | None = None
    date: str | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["f1_ci95"] = list(self.f1_ci95) if self.f1_ci95 else None
        return record


def read_run_summary(path: Path) -> RunSummary:
    """The summary of the run folder `path`, or a row naming why it cannot be read."""
    try:
        return summarize(read_run(path))
    except (EmoprobeError, ValueError) as error:
        return RunSummary(str(path), error=" ".join(str(error).split()))
    except OSError as error:
        return RunSummary(str(path), error=os_error_text(error))


def summarize(run: RunRecord) -> RunSummary:
    """A run's figures: metrics.json's where it is current, else recomputed from the rows."""
    manifest, rows = run.manifest, run.rows
    metrics, notes = run.metrics, []
    if metrics is None or metrics.get("n") != len(rows):
        from emoprobe.results.metrics import run_metrics

        metrics = run_metrics(rows, run.labels)
        notes.append(f"figures recomputed from {FILENAME} ({METRICS} missing or out of date)")
    interval = (metrics.get("ci95") or {}).get("f1_weighted")
    dataset = manifest.get("dataset", {})
    model = manifest.get("model", {})
    return RunSummary(
        path=str(run.path),
        model=model.get("name") or manifest.get("fingerprint", {}).get("model"),
        quantization=model.get("quantization") or None,
        answer_mode=manifest.get("answer_mode", "text"),
        task=manifest.get("task", {}).get("name"),
        done=len(rows),
        sampled=None if dataset.get("per_class") else dataset.get("n_items"),
        accuracy=metrics.get("accuracy"),
        f1_weighted=metrics.get("f1_weighted"),
        f1_ci95=(float(interval[0]), float(interval[1])) if interval else None,
        unparsed_share=_share(rows, UNPARSED_STATUS),
        refused_share=_share(rows, REFUSED_STATUS) if _has_status(rows, REFUSED_STATUS) else None,
        images_per_s=images_per_second(manifest.get("sessions", [])),
        date=manifest.get("updated_at") or manifest.get("created_at"),
        notes=notes,
    )


def _share(rows: Sequence[Row], status: str) -> float | None:
    return sum(row.status == status for row in rows) / len(rows) if rows else None


def _has_status(rows: Sequence[Row], status: str) -> bool:
    return any(row.status == status for row in rows)


def images_per_second(sessions: Sequence[dict[str, Any]]) -> float | None:
    """Requests per second of wall time over the sessions that sent any (cache hits aside)."""
    requests = sum(session.get("requests", 0) for session in sessions)
    wall = sum(session.get("wall_s", 0.0) for session in sessions if session.get("requests"))
    return requests / wall if wall else None


def find_run_folders(root: Path) -> Iterator[Path]:
    """Folders under `root` (itself included) that hold a manifest.json or predictions.csv,
    in sorted order; the inside of a run folder is not searched further."""
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        if MANIFEST in files or FILENAME in files:
            subfolders.clear()
            yield Path(folder)


def runs_index(root: Path) -> list[RunSummary]:
    """A summary of every run folder under `root`; one-line error when `root` is no folder."""
    if not Path(root).is_dir():
        raise ConfigError(f"{root} is not a folder of runs")
    return [read_run_summary(folder) for folder in find_run_folders(root)]

"""Every run folder under a directory, as one table of numbers (`emoprobe runs`).

`read_run` is the one place that reads a run folder for `runs` and `view`; everything
else here is pure: a run's record in, its summary row out. A folder that cannot be read
becomes a row with the reason, never a silent gap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError, EmoprobeError
from emoprobe.files import os_error_text
from emoprobe.results.load import RunRecord, load_run
from emoprobe.results.manifest import FILENAME as MANIFEST
from emoprobe.results.predictions import FILENAME, FINAL_STATUSES, REFUSED, UNPARSED_STATUS, Row
from emoprobe.results.speed import images_per_second


def read_run(path: Path) -> RunRecord:
    """A run folder's typed record (`load_run`); one-line errors."""
    return load_run(path)


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
    unparsed_share: float | None = None  # of the rows, as refused_share
    refused_share: float | None = None
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
    manifest, rows, metrics = run.manifest, run.rows, run.metrics
    interval = metrics.ci95.f1_weighted if metrics.ci95 else None
    dataset = manifest.dataset
    return RunSummary(
        path=str(run.path),
        model=manifest.model.name or (manifest.fingerprint.model if manifest.fingerprint else None),
        quantization=manifest.model.quantization or None,
        answer_mode=manifest.answer_mode,
        task=manifest.task.name,
        done=sum(row.status in FINAL_STATUSES for row in rows),
        sampled=sum(dataset.drawn.values())
        if dataset.drawn is not None
        else (None if dataset.per_class else dataset.n_items),
        accuracy=metrics.accuracy,
        f1_weighted=metrics.f1_weighted,
        f1_ci95=(float(interval[0]), float(interval[1])) if interval else None,
        unparsed_share=_share(rows, UNPARSED_STATUS),
        refused_share=_share(rows, REFUSED),
        images_per_s=images_per_second(manifest.sessions),
        date=manifest.updated_at or manifest.created_at,
    )


def _share(rows: Sequence[Row], status: str) -> float | None:
    return sum(row.status == status for row in rows) / len(rows) if rows else None


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

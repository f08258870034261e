"""A finished (or stopped) run, read back from its folder: `load_run(path)`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from emoprobe.errors import ConfigError
from emoprobe.results.manifest import FILENAME as MANIFEST
from emoprobe.results.manifest import Manifest, read_manifest
from emoprobe.results.metrics import Metrics, run_metrics
from emoprobe.results.predictions import FILENAME as PREDICTIONS
from emoprobe.results.predictions import Row, read_rows, to_frame

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunRecord:
    """A run folder as read: its manifest, its rows and, computed from them on first
    use, the predictions table and the metrics."""

    path: Path
    manifest: Manifest
    rows: list[Row]  # the last final row of every image, in the sample's order

    @property
    def labels(self) -> list[str]:
        return self.manifest.task.labels

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """One row per image (see `predictions.to_frame` for the columns' types)."""
        return to_frame(self.rows, self.labels)

    @cached_property
    def metrics(self) -> Metrics:
        """metrics.json's figures, recomputed from the predictions."""
        return run_metrics(self.predictions, self.labels, self.manifest)


def load_run(path: Path | str) -> RunRecord:
    """The run in folder `path`; a one-line `ConfigError` naming it for anything else.

    Reads manifest.json and predictions.csv only, without taking the run's lock: a
    run still writing shows the rows it has finished.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"run folder {path} does not exist", path=path)
    manifest = read_manifest(path / MANIFEST)
    if manifest is None:
        raise ConfigError(f"{path} is not an emoprobe run folder (no {MANIFEST})", path=path)
    if not (path / PREDICTIONS).is_file():
        raise ConfigError(f"{path} holds no {PREDICTIONS}: no image was recorded", path=path)
    if not manifest.task.labels:
        raise ConfigError(f"{path / MANIFEST} names no task labels", path=path / MANIFEST)
    return RunRecord(path, manifest, final_rows(path / PREDICTIONS, manifest))


def final_rows(predictions: Path, manifest: Manifest | None) -> list[Row]:
    """The last final row of every image: in the manifest's file order (the sample's),
    then rows it does not list yet (a run stopped before it could record them)."""
    by_path = {row.path: row for row in read_rows(predictions)}
    listed = [entry.path for entry in manifest.files] if manifest else []
    ordered = [by_path.pop(path) for path in listed if path in by_path]
    return ordered + list(by_path.values())

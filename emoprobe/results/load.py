"""A finished (or stopped) run, read back from its folder: `load_run(path)`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from emoprobe.errors import ConfigError
from emoprobe.results.manifest import FILENAME as MANIFEST
from emoprobe.results.manifest import Manifest, read_manifest
from emoprobe.results.metrics import Metrics, run_metrics
from emoprobe.results.predictions import FILENAME as PREDICTIONS
from emoprobe.results.predictions import Row, read_frame, rows_of, to_frame

if TYPE_CHECKING:
    import pandas as pd


class RunRecord:
    """A run folder as read: its manifest, its rows and, computed from them on first
    use, the predictions table and the metrics. Built from rows, or from the table
    (as `load_run` reads it: columns, no row objects until `rows` is asked for)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        rows: list[Row] | None = None,
        *,
        predictions: pd.DataFrame | None = None,
    ) -> None:
        if (rows is None) == (predictions is None):
            raise ValueError("give the rows or the predictions table")
        self.path = path
        self.manifest = manifest
        if rows is not None:
            self.__dict__["rows"] = rows
        if predictions is not None:
            self.__dict__["predictions"] = predictions

    @property
    def labels(self) -> list[str]:
        return self.manifest.task.labels

    @cached_property
    def rows(self) -> list[Row]:
        """The last final row of every image, in the sample's order."""
        return rows_of(self.predictions)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """One row per image (see `predictions.to_frame` for the columns' types)."""
        return to_frame(self.rows, self.labels)

    @cached_property
    def metrics(self) -> Metrics:
        """metrics.json's figures, recomputed from the predictions."""
        return run_metrics(self.predictions, self.labels, self.manifest)


def load_run(path: Path | str) -> RunRecord:
    """The run in folder `path`; a one-line `ConfigError` naming it for anything else. Reads
    manifest.json and predictions.csv only, without taking the run's lock: a run still
    writing shows the rows it has finished."""
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
    table = read_frame(path / PREDICTIONS, manifest.task.labels)
    return RunRecord(path, manifest, predictions=final_table(table, manifest))


def final_table(table: pd.DataFrame, manifest: Manifest | None) -> pd.DataFrame:
    """The last row of every path, in the manifest's file order (the sample's), then
    the paths it does not list yet (a run stopped before it could record them) in the
    order first seen; categories as `to_frame` gives them for those rows."""
    import numpy as np

    paths = table["path"]
    listed = [entry.path for entry in manifest.files] if manifest else []
    if not paths.duplicated().any() and paths.tolist() == listed:
        assert manifest is not None
        shas = [entry.sha256 for entry in manifest.files]
        table["path"] = listed  # the manifest's own strings: each path held once, not twice
        if table["sha256"].tolist() == shas:
            table["sha256"] = shas
        return table
    first_seen = dict(zip(paths.tolist()[::-1], range(len(paths) - 1, -1, -1), strict=True))
    last = table.drop_duplicates("path", keep="last")
    place = {path: i for i, path in enumerate(listed)}
    unlisted = len(place)
    order = np.array(
        [place.get(path, unlisted + first_seen[path]) for path in last["path"].tolist()]
    )
    final: pd.DataFrame = last.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    names = len(manifest.task.labels) + 1 if manifest else 1  # the labels, `unparsed`
    categories = final["label"].cat.categories
    used = set(final["label"].dropna()) | set(final["prediction"].dropna())
    kept = [*categories[:names], *(name for name in categories[names:] if name in used)]
    for column in ("label", "prediction"):
        final[column] = final[column].cat.set_categories(kept)
    return final

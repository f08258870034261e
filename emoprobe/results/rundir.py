"""A run's folder: its lock, manifest.json, predictions.csv, metrics.json.

JSON files are replaced atomically (write a temporary file, then rename), so a run
killed at any moment leaves either the old file or the new one. report.md and the
plots are the caller's (`emoprobe.reporting.markdown`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from emoprobe.errors import ConfigError, RunLockedError
from emoprobe.files import slug, write_atomic
from emoprobe.results.load import RunRecord, load_run
from emoprobe.results.manifest import FILENAME as MANIFEST
from emoprobe.results.manifest import FileRecord, Fingerprint, Manifest, Session, read_manifest
from emoprobe.results.metrics import Metrics, run_metrics
from emoprobe.results.predictions import FILENAME, Row, to_frame

METRICS = "metrics.json"
LOCK = ".emoprobe.lock"


class RunDir:
    """The output folder of one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def predictions(self) -> Path:
        return self.path / FILENAME

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Create the folder and hold its lock: a second run into it is refused. A run
        that writes nothing (a failed start) leaves no folder or lock behind."""
        created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        lock_existed = (self.path / LOCK).exists()
        lock = FileLock(self.path / LOCK, timeout=0)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout:
            raise RunLockedError(
                f"another emoprobe run is writing into {self.path}; wait for it or write elsewhere",
                path=self.path,
                setting="out",
            ) from None
        except OSError as error:
            raise ConfigError(
                f"cannot write to {self.path}: {error.strerror}", path=self.path, setting="out"
            ) from None
        try:
            yield
        finally:
            if not lock_existed:
                self._tidy(created)
            lock.release()

    def _tidy(self, created: list[Path]) -> None:
        """Remove the lock (still held) and the folders this run made if nothing else is in them."""
        with suppress(OSError):
            if [entry.name for entry in self.path.iterdir()] != [LOCK]:
                return
            (self.path / LOCK).unlink()
            for folder in created:  # deepest first
                folder.rmdir()

    def read_manifest(self) -> Manifest | None:
        return read_manifest(self.path / MANIFEST)

    def write_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.path / MANIFEST, manifest.to_json())

    def finish(
        self,
        manifest: Manifest | None,
        rows: Sequence[Row],
        session: Session,
        labels: Sequence[str],
    ) -> Metrics:
        """Record the session and files in the manifest, then write metrics.json."""
        if manifest is None:
            return run_metrics(to_frame(rows, labels), labels)
        if session.rows_written or session.requests or session.failed:
            manifest.sessions.append(session)
        manifest.files = [FileRecord(row.path, row.label, row.sha256) for row in rows]
        manifest.updated_at = session.finished_at
        self.write_manifest(manifest)
        return self.write_metrics(RunRecord(self.path, manifest, list(rows)))

    def write_metrics(self, run: RunRecord) -> Metrics:
        """metrics.json from the run's rows alone."""
        write_atomic(self.path / METRICS, run.metrics.to_json())
        return run.metrics

    @contextmanager
    def rebuilding(self) -> Iterator[RunRecord]:
        """The run, read under its lock (so that no run writes into it meanwhile) and
        checked; predictions.csv and manifest.json are left untouched."""
        if not (self.path / MANIFEST).is_file():
            raise ConfigError(
                f"{self.path} is not an emoprobe run folder (no {MANIFEST})", path=self.path
            )
        try:
            with self.locked():
                yield load_run(self.path)
        except RunLockedError:
            raise RunLockedError(
                f"an emoprobe run is writing into {self.path}; its report is rewritten "
                "when it stops",
                path=self.path,
            ) from None


def default_out_dir(
    reports: Path, dataset_root: Path, config: Any, fingerprint: Fingerprint
) -> Path:
    """reports/<dataset>-<model>[-n<per class>-seed<seed>], numbered past other settings.
    The same command maps to the same folder, so re-running it resumes."""
    parts = [dataset_root.name or "dataset", config.model]
    if config.per_class:
        parts.append(f"n{config.per_class}-seed{config.seed}")
    stem = slug("-".join(parts))
    for number in range(1, 1000):
        candidate = reports / (stem if number == 1 else f"{stem}-{number}")
        manifest = RunDir(candidate).read_manifest() if candidate.exists() else None
        if manifest is None or not fingerprint.mismatch(manifest.fingerprint):
            return candidate
    raise ConfigError(f"too many runs named {stem} under {reports}", setting="out")


__all__ = ["LOCK", "METRICS", "RunDir", "default_out_dir"]

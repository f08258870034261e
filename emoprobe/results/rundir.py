"""A run's folder: its lock, manifest.json, predictions.csv, metrics.json, report.md, plots.

JSON and Markdown files are replaced atomically (write a temporary file, then rename),
so a run killed at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError, RunLockedError
from emoprobe.files import write_atomic
from emoprobe.results.metrics import run_metrics
from emoprobe.results.predictions import FILENAME, FINAL_STATUSES, Row, read_complete

MANIFEST = "manifest.json"
METRICS = "metrics.json"
REPORT = "report.md"
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
        """Create the folder and hold its lock: a second run into it is refused."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.path / LOCK, "a+")
        except OSError as error:
            raise ConfigError(f"cannot write to --out {self.path}: {error.strerror}") from None
        try:
            _lock(handle, self.path)
            yield
        finally:
            handle.close()

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.path / MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path} is unreadable ({error}); pass another --out") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_atomic(
            self.path / MANIFEST,
            lambda handle: json.dump(manifest, handle, indent=2, ensure_ascii=False),
        )

    def finish(
        self,
        manifest: dict[str, Any] | None,
        rows: Sequence[Row],
        session: dict[str, Any],
        labels: Sequence[str],
    ) -> dict[str, Any]:
        """Record the session and files in the manifest, then `write_results`."""
        if manifest is None:
            return run_metrics(rows, labels)
        if session.get("rows_written") or session.get("requests") or session.get("failed"):
            manifest.setdefault("sessions", []).append(session)
        manifest["files"] = [
            {"path": row.path, "label": row.label, "sha256": row.sha256} for row in rows
        ]
        manifest["updated_at"] = session.get("finished_at")
        self.write_manifest(manifest)
        return self.write_results(manifest, rows, labels)

    def write_results(
        self, manifest: dict[str, Any], rows: Sequence[Row], labels: Sequence[str]
    ) -> dict[str, Any]:
        """metrics.json, the plots and report.md, from `rows` and the manifest alone.

        The one function behind both the end of a run and `emoprobe report`.
        """
        from emoprobe.reporting.markdown import write_report

        metrics = run_metrics(rows, labels)
        write_atomic(self.path / METRICS, json.dumps(metrics, indent=2))
        write_report(self.path, metrics, manifest, rows)
        return metrics

    def rebuild(self) -> dict[str, Any]:
        """`write_results` from predictions.csv and manifest.json: no server, no cache.

        Holds the run's lock, so it never races a run writing into the same folder, and
        leaves predictions.csv and manifest.json untouched.
        """
        if not (self.path / MANIFEST).is_file():
            raise ConfigError(f"{self.path} is not an emoprobe run folder (no {MANIFEST})")
        if not self.predictions.is_file():
            raise ConfigError(f"{self.path} holds no {FILENAME}: nothing to report")
        try:
            with self.locked():
                manifest = self.read_manifest() or {}
                labels = manifest.get("task", {}).get("labels")
                if not labels:
                    raise ConfigError(f"{self.path / MANIFEST} names no task labels")
                return self.write_results(manifest, self.final_rows(manifest), labels)
        except RunLockedError:
            raise RunLockedError(
                f"an emoprobe run is writing into {self.path}; its report is rewritten "
                "when it stops"
            ) from None

    def final_rows(self, manifest: dict[str, Any] | None) -> list[Row]:
        """The last final row of every image: in the manifest's file order (the sample's),
        then rows it does not list yet (a run stopped before it could record them)."""
        by_path = {row.path: row for row in read_rows(self.predictions)}
        listed = [entry["path"] for entry in (manifest or {}).get("files", [])]
        ordered = [by_path.pop(path) for path in listed if path in by_path]
        return ordered + list(by_path.values())


def read_rows(path: Path) -> list[Row]:
    """The complete rows with a final status in a predictions.csv, reading only.

    A half-written last row is skipped, not cut off (`predictions.recover` does that
    when the run that owns the file resumes).
    """
    rows, _ = read_complete(path)
    return [row for row in rows if row.status in FINAL_STATUSES]



def fingerprint_mismatch(manifest: dict[str, Any], fingerprint: dict[str, Any]) -> str:
    """'' when a manifest was made with these settings, else what differs."""
    recorded = manifest.get("fingerprint", {})
    for key, value in fingerprint.items():
        if recorded.get(key) != value:
            return f"{key}: {recorded.get(key)!r} there, {value!r} now"
    return ""


def default_out_dir(
    reports: Path, dataset_root: Path, config: Any, fingerprint: dict[str, Any]
) -> Path:
    """reports/<dataset>-<model>[-n<per class>-seed<seed>], numbered past other settings.

    The same command maps to the same folder, so re-running it resumes.
    """
    parts = [dataset_root.name or "dataset", config.model]
    if config.per_class:
        parts.append(f"n{config.per_class}-seed{config.seed}")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-")
    for number in range(1, 1000):
        candidate = reports / (stem if number == 1 else f"{stem}-{number}")
        manifest = RunDir(candidate).read_manifest() if candidate.exists() else None
        if manifest is None or not fingerprint_mismatch(manifest, fingerprint):
            return candidate
    raise ConfigError(f"too many runs named {stem} under {reports}: pass --out")


def _lock(handle: Any, folder: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one run per folder is on the user
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise RunLockedError(
            f"another emoprobe run is writing into {folder}; wait for it or pass another --out"
        ) from None

"""predictions.csv: one row per image, appended and flushed as each one finishes.

A run killed at any moment leaves at most one half-written last row; `recover`
cuts it off, so that the same command resumes with every complete row kept.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

from emoprobe.files import write_error

FILENAME = "predictions.csv"
OK, UNPARSED_STATUS, ERROR = "ok", "unparsed", "error"
FINAL_STATUSES = frozenset({OK, UNPARSED_STATUS, ERROR})
FSYNC_EVERY_S = 2.0


@dataclass(frozen=True, slots=True)
class Row:
    """One image's outcome; `prediction` is a label, `unparsed`, or empty for errors."""

    path: str
    sha256: str
    label: str
    prediction: str
    raw: str
    status: str
    error: str
    latency_s: str
    cached: str
    scores: tuple[str, ...] = ()  # one per label, with --answer logprobs

    def values(self) -> list[str]:
        """The row's cells in column order (the scores last)."""
        return [getattr(self, name) for name in COLUMNS] + list(self.scores)


COLUMNS = [f.name for f in fields(Row) if f.name != "scores"]
SCORE_PREFIX = "score_"


def header_for(score_labels: tuple[str, ...] | list[str] = ()) -> str:
    """The header line: the fixed columns, then `score_<label>` per scored label."""
    return _row_text([*COLUMNS, *(SCORE_PREFIX + label for label in score_labels)])


def _row_text(values: list[str] | tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


HEADER = header_for()


def read_complete(path: Path) -> tuple[list[Row], int]:
    """The complete rows of `path` and the byte offset where they end, streaming.

    Lines are split on "\n" alone (answers may hold "\r" or "\u2028"); a row counts
    only when its last line ended, so a half-written tail is never returned.
    """
    if not path.exists():
        return [], 0
    consumed = [0]

    def lines(handle: BinaryIO) -> Iterator[str]:
        for line in handle:
            if not line.endswith(b"\n"):
                return  # a tail the writer never finished
            consumed[0] += len(line)
            yield line.decode("utf-8", "replace")

    rows: list[Row] = []
    good = 0
    width = len(COLUMNS)
    fixed = len(COLUMNS)
    with open(path, "rb") as handle:
        reader = csv.reader(lines(handle), strict=True)
        try:
            for values in reader:
                if reader.line_num == 1:
                    if values[:fixed] != COLUMNS:
                        break  # not a predictions.csv header: keep nothing
                    width = len(values)
                    good = consumed[0]
                    continue
                if len(values) != width:
                    break
                rows.append(Row(*values[:fixed], scores=tuple(values[fixed:])))
                good = consumed[0]
        except csv.Error:
            pass
    return rows, good


def recover(path: Path) -> list[Row]:
    """Every complete row in `path`, after cutting off a half-written tail in place."""
    rows, good = read_complete(path)
    if path.exists() and path.stat().st_size != good:
        with open(path, "r+b") as handle:
            handle.truncate(good)
    return rows


def keep_only(path: Path, rows: list[Row], score_labels: tuple[str, ...] = ()) -> None:
    """Rewrite `path` atomically with just `rows` (dropping rows a resume will redo)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(header_for(score_labels) + "".join(_row_text(r.values()) for r in rows))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise write_error(path, error) from None


class PredictionWriter:
    """Appends rows to predictions.csv, each in one write, flushed at once."""

    def __init__(self, path: Path, score_labels: tuple[str, ...] = ()) -> None:
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        self._handle = open(path, "a", encoding="utf-8", newline="")
        self._last_sync = time.monotonic()
        if new:
            self._handle.write(header_for(score_labels))
            self._handle.flush()

    def write(self, row: Row) -> None:
        try:
            self._handle.write(_row_text(row.values()))
            self._handle.flush()
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_EVERY_S:
                os.fsync(self._handle.fileno())
                self._last_sync = now
        except OSError as error:
            raise write_error(self.path, error) from None

    def close(self) -> None:
        if self._handle.closed:
            return
        with contextlib.suppress(OSError):  # a failed write has already said why
            self._handle.flush()
            os.fsync(self._handle.fileno())
        with contextlib.suppress(OSError):
            self._handle.close()


    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


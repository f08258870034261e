"""predictions.csv: one row per image, appended and flushed as each one finishes.

A run killed at any moment leaves at most one half-written last row; `recover`
cuts it off, so that the same command resumes with every complete row kept. The
conversion between `Row` and the file's text is here and nowhere else.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, cast

from emoprobe.errors import ConfigError
from emoprobe.files import writable_text, write_error
from emoprobe.task.definition import UNPARSED

if TYPE_CHECKING:
    import pandas as pd

FILENAME = "predictions.csv"
Status = Literal["ok", "unparsed", "truncated", "error"]
OK: Status = "ok"
UNPARSED_STATUS: Status = "unparsed"
# The answer ran past emoprobe's cap and was cut off: scored as `unparsed` (a wrong answer).
TRUNCATED_STATUS: Status = "truncated"
ERROR: Status = "error"
STATUSES: tuple[Status, ...] = (OK, UNPARSED_STATUS, TRUNCATED_STATUS, ERROR)
FINAL_STATUSES: frozenset[str] = frozenset(STATUSES)
# answered: these rows count in the scores
SCORED_STATUSES = (OK, UNPARSED_STATUS, TRUNCATED_STATUS)
FSYNC_EVERY_S = 2.0
SCORE_PREFIX = "score_"
# Answers may be long (num_predict=-1): no cell of ours is cut by csv's 131,072 limit.
csv.field_size_limit(2**31 - 1)
# A cell starting with one of these is a formula to a spreadsheet: it is stored with a
# leading apostrophe (shown literally there) and read back without it.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


@dataclass(frozen=True, slots=True)
class Row:
    """One image's outcome; `prediction` is a label, `unparsed`, or empty for errors.

    `scores`: label → score (`--answer logprobs`); None where the file has no score
    columns, and without the labels the answer gave no score for.
    """

    path: str
    sha256: str
    label: str
    prediction: str
    raw: str
    status: Status
    error: str = ""
    latency_s: float | None = None
    cached: bool = False
    scores: Mapping[str, float] | None = None

    def cells(self, score_labels: Sequence[str] = ()) -> list[str]:
        """The row's text cells in column order, a score cell per label last."""
        scores = self.scores or {}
        return [
            self.path,
            self.sha256,
            self.label,
            self.prediction,
            _inert(self.raw),
            self.status,
            _inert(self.error),
            "" if self.latency_s is None else f"{self.latency_s:.4f}",
            "true" if self.cached else "false",
            *(f"{scores[label]:.6f}" if label in scores else "" for label in score_labels),
        ]

    @classmethod
    def from_cells(cls, cells: Sequence[str], score_labels: Sequence[str] = ()) -> Row:
        """The row of a line's cells (ValueError for a cell that is no number)."""
        path, sha256, label, prediction, raw, status, error, latency, cached = cells[:9]
        scores = {lab: float(v) for lab, v in zip(score_labels, cells[9:], strict=True) if v}
        return cls(
            path,
            sha256,
            label,
            prediction,
            _restored(raw),
            cast(Status, status),
            _restored(error),
            float(latency) if latency else None,
            cached == "true",
            scores if score_labels else None,
        )


def _inert(text: str) -> str:
    """`text` safe to open in a spreadsheet: a formula start gets an apostrophe first."""
    text = writable_text(text)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _restored(cell: str) -> str:
    """The text `_inert` made the cell from."""
    return cell[1:] if cell.startswith("'") else cell


COLUMNS = [f.name for f in fields(Row) if f.name != "scores"]


def header_for(score_labels: Sequence[str] = ()) -> str:
    """The header line: the fixed columns, then `score_<label>` per scored label."""
    return _row_text([*COLUMNS, *(SCORE_PREFIX + label for label in score_labels)])


def _row_text(values: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


HEADER = header_for()


def read_complete(path: Path) -> tuple[list[Row], int]:
    """The complete rows of `path` and the byte offset where they end, streaming.

    Lines are split on "\n" alone (answers may hold "\r" or "\u2028"); a row counts
    only when its last line ended, so a half-written tail is never returned. Rows of
    another status than the final ones are skipped. A file that is not emoprobe's, or
    a malformed row before the tail, is a `ConfigError` naming the file and line: no row
    is ever dropped quietly. A symlink is refused (its target is not emoprobe's to touch).
    """
    _refuse_symlink(path)
    if not path.exists():
        return [], 0
    consumed = [0]
    ended = [False]  # the file ran out (a tail the writer never finished counts as out)

    def lines(handle: BinaryIO) -> Iterator[str]:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # a tail the writer never finished
            consumed[0] += len(line)
            yield line.decode("utf-8", "replace")
        ended[0] = True

    def malformed(line: int, why: str) -> ConfigError:
        return ConfigError(
            f"{path}, line {line}: {why}; fix or remove that row, or choose another output folder",
            path=path,
            setting="out",
        )

    rows: list[Row] = []
    good = 0
    width = fixed = len(COLUMNS)
    score_labels: list[str] | None = None
    with open(path, "rb") as handle:
        reader = csv.reader(lines(handle), strict=True)
        try:
            for values in reader:
                if score_labels is None:
                    score_labels = _header_labels(path, values)
                    width = fixed + len(score_labels)
                    good = consumed[0]
                    continue
                if len(values) != width:
                    raise malformed(
                        reader.line_num, f"{len(values)} cells where the header has {width}"
                    )
                try:
                    row = Row.from_cells(values, score_labels)
                except ValueError:
                    raise malformed(
                        reader.line_num, "a latency or score that is no number"
                    ) from None
                if row.status in FINAL_STATUSES:
                    rows.append(row)
                good = consumed[0]
        except csv.Error as error:
            if not ended[0]:  # not a half-written last row
                raise malformed(reader.line_num, f"not CSV ({error})") from None
    return rows, good


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise ConfigError(
            f"{path} is a symlink: emoprobe reads and writes only a plain predictions.csv "
            "of its own; choose another output folder",
            path=path,
            setting="out",
        )


def _header_labels(path: Path, values: Sequence[str]) -> list[str]:
    """The score labels of a predictions.csv header; ConfigError for a header not ours."""
    extra = list(values[len(COLUMNS) :])
    if list(values[: len(COLUMNS)]) != COLUMNS or not all(
        name.startswith(SCORE_PREFIX) for name in extra
    ):
        shown = ",".join(values)[:80]
        raise ConfigError(
            f"{path} is not an emoprobe predictions.csv (line 1 is {shown!r}); "
            "emoprobe never replaces a file it did not write: choose another output folder",
            path=path,
            setting="out",
        )
    return [name.removeprefix(SCORE_PREFIX) for name in extra]


def recover(path: Path) -> list[Row]:
    """Every complete row in `path`, after cutting off a half-written tail in place."""
    rows, good = read_complete(path)
    if path.exists() and path.stat().st_size != good:
        with open(path, "r+b") as handle:
            handle.truncate(good)
    return rows


def keep_only(path: Path, rows: Sequence[Row], score_labels: Sequence[str] = ()) -> None:
    """Rewrite `path` atomically with just `rows` (dropping rows a resume will redo)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            body = "".join(_row_text(row.cells(score_labels)) for row in rows)
            handle.write(header_for(score_labels) + body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise write_error(path, error) from None


class PredictionWriter:
    """Appends rows to predictions.csv, each in one write, flushed at once."""

    def __init__(self, path: Path, score_labels: Sequence[str] = ()) -> None:
        self.path = path
        self.score_labels = tuple(score_labels)
        _refuse_symlink(path)
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with open(path, encoding="utf-8", errors="replace", newline="") as existing:
                if existing.readline() != header_for(score_labels):
                    raise ConfigError(
                        f"{path} has other score columns than this run writes; choose "
                        "another output folder",
                        path=path,
                        setting="out",
                    )
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            descriptor = os.open(path, flags, 0o666)
        except OSError as error:
            raise write_error(path, error) from None
        self._handle = open(descriptor, "a", encoding="utf-8", newline="")
        self._last_sync = time.monotonic()
        if new:
            self._handle.write(header_for(score_labels))
            self._handle.flush()

    def write(self, row: Row) -> None:
        try:
            self._handle.write(_row_text(row.cells(self.score_labels)))
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


def read_rows(path: Path) -> list[Row]:
    """The complete rows with a final status in a predictions.csv, reading only.

    A half-written last row is skipped, not cut off (`recover` does that when the run
    that owns the file resumes).
    """
    return read_complete(path)[0]


def to_frame(rows: Sequence[Row], labels: Sequence[str]) -> pd.DataFrame:
    """The rows as a table: label and prediction categorical (the task's labels, then
    `unparsed`, then any other name), status categorical, latency float (NaN where
    none), cached bool, and a float `score_<label>` per label where rows carry scores."""
    import pandas as pd

    names = [*labels, UNPARSED]
    others = {v for row in rows for v in (row.label, row.prediction)} - {*names, ""}
    categories = [*names, *sorted(others)]
    frame = pd.DataFrame(
        {
            "path": [row.path for row in rows],
            "sha256": [row.sha256 for row in rows],
            "label": pd.Categorical([row.label for row in rows], categories),
            "prediction": pd.Categorical([row.prediction or None for row in rows], categories),
            "raw": [row.raw for row in rows],
            "status": pd.Categorical([row.status for row in rows], STATUSES),
            "error": [row.error for row in rows],
            "latency_s": pd.array([row.latency_s for row in rows], dtype="float64"),
            "cached": pd.array([row.cached for row in rows], dtype=bool),
        }
    )
    if any(row.scores is not None for row in rows):
        for label in labels:
            frame[SCORE_PREFIX + label] = pd.array(
                [(row.scores or {}).get(label) for row in rows], dtype="float64"
            )
    table: pd.DataFrame = frame
    return table

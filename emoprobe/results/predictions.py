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
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

from emoprobe.errors import ConfigError
from emoprobe.files import writable_text, write_error
from emoprobe.task.definition import UNPARSED

if TYPE_CHECKING:
    import pandas as pd

FILENAME = "predictions.csv"
Status = Literal[
    "ok",
    "unparsed",
    "refused",
    "truncated",
    "empty_after_thinking",
    "unreadable",
    "not_in_cache",
    "failed",
]
OK: Status = "ok"
UNPARSED_STATUS: Status = "unparsed"  # an answer that names no label
REFUSED: Status = "refused"  # an answer that declines the task ("I'm sorry, I can't…")
# Cut off before naming a label: at the server's length limit (`num_predict`), or past
# emoprobe's own cap on an answer's size (then no label is read from the part).
TRUNCATED_STATUS: Status = "truncated"
EMPTY_AFTER_THINKING: Status = "empty_after_thinking"  # only thinking text, no answer
UNREADABLE: Status = "unreadable"  # the image cannot be used (empty, broken, too large)
NOT_IN_CACHE: Status = "not_in_cache"  # offline, and no cached answer: retried later
FAILED: Status = "failed"  # the request failed after its retries: retried later
# Answered: these rows count in the scores (all but `ok` as wrong predictions).
SCORED_STATUSES: tuple[Status, ...] = (
    OK,
    UNPARSED_STATUS,
    REFUSED,
    TRUNCATED_STATUS,
    EMPTY_AFTER_THINKING,
)
NO_LABEL_STATUSES: tuple[Status, ...] = SCORED_STATUSES[1:]  # answered, but with no label
UNANSWERED_STATUSES: tuple[Status, ...] = (UNREADABLE, NOT_IN_CACHE, FAILED)  # left out
STATUSES: tuple[Status, ...] = (*SCORED_STATUSES, *UNANSWERED_STATUSES)
FINAL_STATUSES: frozenset[str] = frozenset(STATUSES) - {NOT_IN_CACHE, FAILED}
LEGACY_ERROR = "error"  # emoprobe < 0.3: unreadable and not-in-cache rows alike
NOT_IN_CACHE_TEXT = "not in cache"  # the error text of a not-in-cache row


def current_status(status: str, error: str = "") -> str:
    """A status as this version names it: an older `error` row is `not_in_cache` or `unreadable`."""
    if status == LEGACY_ERROR:
        return NOT_IN_CACHE if error == NOT_IN_CACHE_TEXT else UNREADABLE
    return status


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
    `scores`: label → score (`--answer logprobs`); None where the file has no score columns,
    and without the labels the answer gave no score for."""

    path: str
    sha256: str
    label: str
    prediction: str
    raw: str
    status: Status
    error: str = ""
    latency_s: float | None = None  # None for an answer from the cache: not measured here
    cached: bool = False
    prompt_tokens: int | None = None  # the server's timings of this run's request
    output_tokens: int | None = None
    prefill_ms: float | None = None
    decode_ms: float | None = None
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
            _number(self.latency_s, 4),
            "true" if self.cached else "false",
            _number(self.prompt_tokens, 0),
            _number(self.output_tokens, 0),
            _number(self.prefill_ms, 3),
            _number(self.decode_ms, 3),
            *(f"{scores[label]:.6f}" if label in scores else "" for label in score_labels),
        ]

    @classmethod
    def from_cells(
        cls, cells: Sequence[str], score_labels: Sequence[str] = (), fixed: int | None = None
    ) -> Row:
        """The row of a line's cells (ValueError for a cell that is no number); `fixed`:
        how many columns precede the scores (fewer in an older file)."""
        fixed = len(COLUMNS) if fixed is None else fixed
        path, sha256, label, prediction, raw, status, error, latency, cached = cells[:9]
        timings = [*cells[9:fixed], "", "", "", ""][:4]
        scores = {lab: float(v) for lab, v in zip(score_labels, cells[fixed:], strict=True) if v}
        error = _restored(error)
        return cls(
            path,
            sha256,
            label,
            prediction,
            _restored(raw),
            cast(Status, current_status(status, error)),
            error,
            float(latency) if latency else None,
            cached == "true",
            int(timings[0]) if timings[0] else None,
            int(timings[1]) if timings[1] else None,
            float(timings[2]) if timings[2] else None,
            float(timings[3]) if timings[3] else None,
            scores if score_labels else None,
        )


def _inert(text: str) -> str:
    """`text` safe to open in a spreadsheet: a formula start gets an apostrophe first."""
    text = writable_text(text)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _restored(cell: str) -> str:
    """The text `_inert` made the cell from."""
    return cell[1:] if cell.startswith("'") else cell


def _number(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


COLUMNS = [f.name for f in fields(Row) if f.name != "scores"]
LEGACY_COLUMNS = COLUMNS[:9]  # emoprobe < 0.3: no per-request timings


def header_for(score_labels: Sequence[str] = ()) -> str:
    """The header line: the fixed columns, then `score_<label>` per scored label."""
    return _row_text([*COLUMNS, *(SCORE_PREFIX + label for label in score_labels)])


def _row_text(values: Sequence[str]) -> str:
    """One CSV line ending in "\n"; a cell holding "\r" or "\n" is quoted (csv quotes only
    what is in its line terminator, so the row is written with "\r\n" and ends in "\n")."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()[:-2] + "\n"


HEADER = header_for()


_CARRIAGE_RETURN = "\ue000"  # a private-use character stands in for "\r" while csv reads


def _read(path: Path) -> tuple[list[Row], int, bool, list[str]]:
    """The complete rows of `path`, the byte offset where they end, whether the header is an
    older one, and the scored labels, streaming. Lines are split on "\n" alone (answers may
    hold "\r" or "\u2028"); a row counts only when its last line ended, so a half-written
    tail is never returned. Rows of an unknown status are skipped; older statuses are
    renamed (`current_status`, and an older file's refusals are `refused`). A file that is
    not emoprobe's, or a malformed row before the tail, is a `ConfigError` naming the file
    and line: no row is ever dropped quietly. A symlink is refused (its target is not
    emoprobe's to touch)."""
    _refuse_symlink(path)
    if not path.exists():
        return [], 0, False, []
    consumed = [0]
    ended = [False]  # the file ran out (a tail the writer never finished counts as out)

    def lines(handle: BinaryIO) -> Iterator[str]:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # a tail the writer never finished
            consumed[0] += len(line)
            # Older files hold "\r" unquoted, which csv refuses: it is read as itself.
            yield line.decode("utf-8", "replace").replace("\r", _CARRIAGE_RETURN)
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
                values = [cell.replace(_CARRIAGE_RETURN, "\r") for cell in values]
                if score_labels is None:
                    fixed, score_labels = _header_labels(path, values)
                    width = fixed + len(score_labels)
                    good = consumed[0]
                    continue
                if len(values) != width:
                    raise malformed(
                        reader.line_num, f"{len(values)} cells where the header has {width}"
                    )
                try:
                    row = Row.from_cells(values, score_labels, fixed)
                except ValueError:
                    raise malformed(
                        reader.line_num, "a latency or score that is no number"
                    ) from None
                if row.status in STATUSES:
                    rows.append(row)
                good = consumed[0]
        except csv.Error as error:
            if not ended[0]:  # not a half-written last row
                raise malformed(reader.line_num, f"not CSV ({error})") from None
    legacy = fixed == len(LEGACY_COLUMNS)
    if legacy:
        rows = [_renamed(row) for row in rows]
    return rows, good, legacy, score_labels or []


def _renamed(row: Row) -> Row:
    """A row of an older file with this version's status: its refusals, which it
    counted as unparsed, are `refused` (read from the answer, as the run would)."""
    from emoprobe.task.parse import is_refusal

    if row.status == UNPARSED_STATUS and is_refusal(row.raw):
        return replace(row, status=REFUSED)
    return row


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise ConfigError(
            f"{path} is a symlink: emoprobe reads and writes only a plain predictions.csv "
            "of its own; choose another output folder",
            path=path,
            setting="out",
        )


def _header_labels(path: Path, values: Sequence[str]) -> tuple[int, list[str]]:
    """A header's fixed columns (fewer in older files) and score labels; ConfigError if not ours."""
    columns = COLUMNS if list(values[: len(COLUMNS)]) == COLUMNS else LEGACY_COLUMNS
    extra = list(values[len(columns) :])
    if list(values[: len(columns)]) != columns or not all(
        name.startswith(SCORE_PREFIX) for name in extra
    ):
        unknown = [n for n in values if n not in COLUMNS and not n.startswith(SCORE_PREFIX)]
        shown = ",".join(values)[:80]
        if unknown and list(values[: len(columns)]) == columns:
            shown = "…," + ",".join(unknown)[:60]  # our columns, then others: name them
        raise ConfigError(
            f"{path} is not an emoprobe predictions.csv (line 1 is {shown!r}); "
            "emoprobe never replaces a file it did not write: choose another output folder",
            path=path,
            setting="out",
        )
    return len(columns), [name.removeprefix(SCORE_PREFIX) for name in extra]


def recover(path: Path) -> list[Row]:
    """Every complete row in `path`, after cutting off a half-written tail in place; an
    older file is rewritten in this version's columns, so that new rows fit it."""
    rows, good, legacy, score_labels = _read(path)
    if legacy:
        keep_only(path, rows, score_labels)
    elif path.exists() and path.stat().st_size != good:
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
    """The complete rows with a known status in a predictions.csv, reading only. A
    half-written last row is skipped, not cut off (`recover` does that when the run that
    owns the file resumes)."""
    return _read(path)[0]


def read_frame(path: Path, labels: Sequence[str]) -> pd.DataFrame:
    """`to_frame(read_rows(path), labels)`, read as columns by pandas' C parser (no row
    objects: a tenth of the time and memory). Any file the fast reader might read
    otherwise than `read_rows` (a carriage return, a half-written or malformed row, a
    cell that is no number) is read by `read_rows` instead, so the two always agree."""
    _refuse_symlink(path)
    frame = _fast_frame(path, labels)
    return frame if frame is not None else to_frame(read_rows(path), labels)


def _fast_frame(path: Path, labels: Sequence[str]) -> pd.DataFrame | None:
    import pandas as pd

    try:
        data = path.read_bytes()
    except OSError:
        return None
    data = data[: data.rfind(b"\n") + 1]  # a half-written tail is no row
    first_line = data[: data.find(b"\n")].decode("utf-8", "replace")
    header = next(csv.reader([first_line]), [])
    try:
        fixed, score_labels = _header_labels(path, header)
    except ConfigError:
        return None
    if fixed != len(COLUMNS) or b"\r" in data or _END.strip(b",\n") in data:
        return None  # an older file (its rows are renamed), or cells pandas reads otherwise
    # Every line gets a last cell `_END` marks, so a row with too few cells shows (pandas
    # fills them in quietly); a line end inside a quoted answer gets it too, taken out below.
    try:
        cells = pd.read_csv(
            io.BytesIO(data.replace(b"\n", _END)),
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8",
            encoding_errors="replace",
            engine="c",
        )
    except (ValueError, csv.Error):  # pandas' ParserError is a ValueError
        return None
    mark = _END.strip(b",\n").decode()
    if list(cells.columns) != [*header, mark] or not (cells.pop(mark) == mark).all():
        return None  # a short row (the mark in another cell) or a renamed column
    if data.count(b"\n") != len(cells) + 1:  # line ends inside quoted cells: restore them
        for name in cells:
            if cells[name].str.contains(mark, regex=False).any():
                cells[name] = cells[name].str.replace(_END.decode(), "\n", regex=False)
    floats = ["latency_s", "prefill_ms", "decode_ms", *header[fixed:]]
    numbers = {name: _numbers(cells[name]) for name in floats}
    numbers |= {name: _numbers(cells[name], whole=True) for name in _COUNTS}
    if any(column is None for column in numbers.values()):
        return None  # `read_rows` says which cell
    # A cell `_inert` changed starts with ' after a comma (or its opening quote); none
    # does in most files, and then no cell needs looking at.
    inert = b",'" in data or b",\"'" in data
    error = _restored_column(cells["error"]) if inert else cells["error"]
    status = cells["status"]
    if (status == LEGACY_ERROR).any():  # an older file: its `error` rows renamed
        status = pd.Series([current_status(s, e) for s, e in zip(status, error, strict=True)])
    final = status.isin(STATUSES).to_numpy()
    if not final.any():
        return to_frame([], labels)
    keep = None if final.all() else final
    cells, error, status = (_kept(part, keep) for part in (cells, error, status))
    names = [*labels, UNPARSED]
    others = (set(cells["label"].unique()) | set(cells["prediction"].unique())) - {*names, ""}
    categories = [*names, *sorted(others)]
    nan = pd.Series(float("nan"), index=cells.index)
    columns = {name: _kept(column, keep) for name, column in numbers.items() if column is not None}
    frame = pd.DataFrame(
        {
            "path": cells["path"],
            "sha256": cells["sha256"],
            "label": pd.Categorical(cells["label"], categories),
            "prediction": pd.Categorical(cells["prediction"].replace("", None), categories),
            "raw": _restored_column(cells["raw"]) if inert else cells["raw"],
            "status": pd.Categorical(status, STATUSES),
            "error": error,
            "latency_s": columns["latency_s"],
            "cached": (cells["cached"] == "true").to_numpy(),
            **{name: columns[name].astype("Int64") for name in _COUNTS},
            "prefill_ms": columns["prefill_ms"],
            "decode_ms": columns["decode_ms"],
        }
    )
    if score_labels:
        for label in labels:
            frame[SCORE_PREFIX + label] = columns.get(SCORE_PREFIX + label, nan)
    return cast("pd.DataFrame", frame)


_COUNTS = ("prompt_tokens", "output_tokens")  # whole numbers; the other timings are floats


def _kept(part: Any, keep: Any) -> Any:
    """`part` (a Series or DataFrame) with only the rows `keep` marks, numbered afresh."""
    return part if keep is None else part[keep].reset_index(drop=True)


_END = b",\x01\n"  # what `_fast_frame` puts at each line's end


def _restored_column(column: pd.Series) -> pd.Series:
    """`_restored` of every cell."""
    inert = column.str.startswith("'")
    if not inert.any():
        return column
    return cast("pd.Series", column.where(~inert, column.str[1:]))


_WHOLE = re.compile(r"(?:[+-]?[0-9]+\n)*(?:[+-]?[0-9]+)?")  # whole numbers, a line each


def _numbers(column: pd.Series, whole: bool = False) -> pd.Series | None:
    """Cells as float64, NaN where empty; None if a non-empty cell is no number as
    `float` (or, `whole`, `int`) reads it, or not a finite one. numpy converts the
    texts with `float` itself, in one C loop."""
    import numpy as np
    import pandas as pd

    cells = column.tolist()
    filled = [cell for cell in cells if cell]
    if whole and not _WHOLE.fullmatch("\n".join(filled)):  # one match for all cells
        return None
    try:
        numbers = np.array(filled, dtype=np.float64)
    except (ValueError, OverflowError):
        return None
    if not np.isfinite(numbers).all():
        return None
    if len(filled) == len(cells):
        return pd.Series(numbers, index=column.index)
    values = np.full(len(cells), np.nan)
    values[(column != "").to_numpy(dtype=bool)] = numbers
    return cast("pd.Series", pd.Series(values, index=column.index))


def rows_of(frame: pd.DataFrame) -> list[Row]:
    """The rows of a `to_frame` table (its inverse)."""
    import pandas as pd

    labels = [str(c).removeprefix(SCORE_PREFIX) for c in frame if str(c).startswith(SCORE_PREFIX)]
    scores = [frame[SCORE_PREFIX + label].tolist() for label in labels]
    columns = {name: frame[name].tolist() for name in COLUMNS}

    def value(name: str, i: int) -> Any:
        cell = columns[name][i]
        return None if cell is None or cell is pd.NA or cell != cell else cell  # NaN, NA

    rows = []
    for i in range(len(frame)):
        found = {label: v[i] for label, v in zip(labels, scores, strict=True) if v[i] == v[i]}
        rows.append(
            Row(
                path=columns["path"][i],
                sha256=columns["sha256"][i],
                label=value("label", i) or "",
                prediction=value("prediction", i) or "",
                raw=columns["raw"][i],
                status=columns["status"][i],
                error=columns["error"][i],
                latency_s=value("latency_s", i),
                cached=bool(columns["cached"][i]),
                prompt_tokens=value("prompt_tokens", i),
                output_tokens=value("output_tokens", i),
                prefill_ms=value("prefill_ms", i),
                decode_ms=value("decode_ms", i),
                scores=found if labels else None,
            )
        )
    return rows


def to_frame(rows: Sequence[Row], labels: Sequence[str]) -> pd.DataFrame:
    """The rows as a table: label and prediction categorical (the task's labels, then
    `unparsed`, then any other name), status categorical (`STATUSES`), latency, prefill
    and decode ms float (NaN where none), token counts nullable ints, cached bool, and
    a float `score_<label>` per label where rows carry scores."""
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
            "status": pd.Categorical(
                [current_status(row.status, row.error) for row in rows], STATUSES
            ),
            "error": [row.error for row in rows],
            "latency_s": pd.array([row.latency_s for row in rows], dtype="float64"),
            "cached": pd.array([row.cached for row in rows], dtype=bool),
            "prompt_tokens": pd.array([row.prompt_tokens for row in rows], dtype="Int64"),
            "output_tokens": pd.array([row.output_tokens for row in rows], dtype="Int64"),
            "prefill_ms": pd.array([row.prefill_ms for row in rows], dtype="float64"),
            "decode_ms": pd.array([row.decode_ms for row in rows], dtype="float64"),
        }
    )
    if any(row.scores is not None for row in rows):
        for label in labels:
            frame[SCORE_PREFIX + label] = pd.array(
                [(row.scores or {}).get(label) for row in rows], dtype="float64"
            )
    return cast("pd.DataFrame", frame)

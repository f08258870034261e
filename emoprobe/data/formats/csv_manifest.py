"""CSV manifest: a ``path,label`` header (any case, extra columns ignored), one row per image.

Paths are relative to the CSV's folder; the file is UTF-8 with or without a BOM; cells are
stripped of surrounding space. Rows whose file is missing are kept (one warning); if *no*
listed file exists the CSV is almost certainly in the wrong place, and that raises.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from emoprobe.data.formats.common import (
    EXAMPLES,
    Format,
    LabelSpace,
    ignored_warning,
    missing_labels_warning,
    os_reason,
    quoted,
    show,
)
from emoprobe.data.records import Dataset, Item, is_image_name
from emoprobe.errors import DatasetError

if TYPE_CHECKING:
    from _csv import Reader

_EXPECTED = "expected a header line path,label and one row per image"


def load(csv_path: Path, space: LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """The images a CSV manifest lists."""
    shown = show(csv_path)
    root = csv_path.parent
    if not csv_path.is_file():
        raise DatasetError(f"CSV manifest {shown} is not a regular file", path=csv_path)
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"cannot read CSV manifest {shown}: {os_reason(exc)}", path=csv_path
        ) from None
    if not raw.strip():
        raise DatasetError(f"CSV manifest {shown} is empty: {_EXPECTED}", path=csv_path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"CSV manifest {shown} is not UTF-8 text (undecodable byte at offset {exc.start}): "
            "save it as UTF-8 CSV",
            path=csv_path,
        ) from None
    if "\x00" in text:
        raise DatasetError(
            f"CSV manifest {shown} is not a text file (it contains NUL bytes): {_EXPECTED}",
            path=csv_path,
        )

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    skipped: Counter[str] = Counter()
    try:
        path_col, label_col = _columns(next(reader, []), shown)
        rows = _rows(reader, path_col, label_col, shown, space, skipped)
    except csv.Error as exc:
        raise DatasetError(
            f"CSV manifest {shown} is malformed at line {reader.line_num}: {show(str(exc))}",
            path=csv_path,
        ) from None
    if not rows and skipped:
        raise DatasetError(
            f"CSV manifest {shown} lists only images whose labels the task ignores "
            f"({quoted(list(skipped), 5)}): the allowed labels are {', '.join(space.labels)}",
            path=csv_path,
        )
    if not rows:
        raise DatasetError(
            f"CSV manifest {shown} has a header but no rows: {_EXPECTED}", path=csv_path
        )

    warnings = ignored_warning(skipped, shown)
    items = _items(rows, root, shown, warnings)
    items.sort(key=lambda it: (it.label, it.relpath))
    warnings += missing_labels_warning(space.labels, items)
    return Dataset(root=root, format=FORMAT.name, items=items, warnings=warnings)


def _columns(header: list[str], shown: str) -> tuple[int, int]:
    names = [cell.strip().casefold() for cell in header]
    missing = [col for col in ("path", "label") if col not in names]
    if not missing:
        return names.index("path"), names.index("label")
    columns = quoted([cell.strip() for cell in header], 10) if header else "none"
    hint = ""
    if len(header) == 1:
        for sep, sep_name in ((";", "';'"), ("\t", "tabs")):
            if sep in header[0]:
                hint = f" (it looks separated by {sep_name}: use commas)"
                break
    raise DatasetError(
        f"CSV manifest {shown} has no {' or '.join(repr(m) for m in missing)} column "
        f"(its columns: {columns}){hint}: the first line must be a header naming "
        "'path' and 'label' columns"
    )


def _rows(
    reader: Reader,
    path_col: int,
    label_col: int,
    shown: str,
    space: LabelSpace,
    skipped: Counter[str],
) -> list[tuple[int, str, str]]:
    """(line, path cell, canonical label) for each non-blank row; rows whose label the task
    ignores are counted into `skipped` instead."""
    rows: list[tuple[int, str, str]] = []
    unknown: dict[str, int] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank line
        line = reader.line_num
        path = row[path_col].strip() if path_col < len(row) else ""
        value = row[label_col].strip() if label_col < len(row) else ""
        for cell, what in ((path, "path"), (value, "label")):
            if not cell:
                raise DatasetError(
                    f"CSV manifest {shown} line {line}: empty {what} cell "
                    "(every row needs a path and a label)"
                )
        label = space.canonical(value)
        if label is None and space.ignored(value):
            skipped[value] += 1
        elif label is None:
            unknown.setdefault(value, line)
        else:
            rows.append((line, path, label))
    if unknown:
        first_line = min(unknown.values())
        raise DatasetError(
            f"CSV manifest {shown} has unknown label(s) {quoted(list(unknown), 5)} "
            f"(first on line {first_line}): the allowed labels are {', '.join(space.labels)}"
        )
    return rows


def _items(
    rows: list[tuple[int, str, str]], root: Path, shown: str, warnings: list[str]
) -> list[Item]:
    first_seen: dict[str, tuple[int, str]] = {}
    items: list[Item] = []
    same_label: list[str] = []
    conflicts: list[str] = []
    missing: list[tuple[int, str]] = []
    not_images: list[tuple[int, str]] = []
    for line, cell, label in rows:
        pure = PurePath(cell)
        full = root / pure  # an absolute path stays itself
        relpath = pure.as_posix()
        if pure.is_absolute() and pure.is_relative_to(root):
            relpath = pure.relative_to(root).as_posix()
        if relpath in first_seen:
            first_line, first_label = first_seen[relpath]
            if first_label == label:
                same_label.append(f"'{show(relpath)}' (lines {first_line} and {line})")
            else:
                conflicts.append(
                    f"'{show(relpath)}' (line {first_line} '{first_label}', line {line} '{label}')"
                )
            continue
        first_seen[relpath] = (line, label)
        items.append(Item(full, relpath, label))
        if not _exists(full):
            missing.append((line, relpath))
        if not is_image_name(relpath):
            not_images.append((line, relpath))

    if items and len(missing) == len(items):
        raise DatasetError(
            f"none of the {len(items)} files listed in CSV manifest {shown} exist (first: "
            f"line {missing[0][0]} '{show(missing[0][1])}'): paths must be relative to the "
            f"CSV's folder {show(root)}"
        )
    for twice, what in ((same_label, "the same label"), (conflicts, "different labels")):
        if twice:
            kept = "one of each" if twice is same_label else "the first label of each"
            more = f" and {len(twice) - EXAMPLES} more" if len(twice) > EXAMPLES else ""
            warnings.append(
                f"{len(twice)} path(s) listed twice with {what} in {shown}; kept {kept}: "
                f"{', '.join(twice[:EXAMPLES])}{more}"
            )
    if missing:
        warnings.append(
            f"{len(missing)} row(s) of {shown} point at files that do not exist (first: line "
            f"{missing[0][0]} '{show(missing[0][1])}'); they will be reported as errors"
        )
    if not_images:
        warnings.append(
            f"{len(not_images)} row(s) of {shown} name files without an image suffix (first: "
            f"line {not_images[0][0]} '{show(not_images[0][1])}'); they are kept and checked "
            "when read"
        )
    return items


def _exists(path: Path) -> bool:
    """False only when the file is certainly absent (unreadable ones are left to the loader)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return True
    return True


FORMAT = Format("csv", "a CSV file with path,label columns", lambda path, is_dir: not is_dir, load)

"""FER2013: ``fer2013.csv`` with columns ``emotion,pixels,Usage`` (or the
``icml_face_data.csv`` variant, whose column names start with a space).

The images live in the CSV as 48x48 grayscale pixel strings; they are written once, as PNG
files, to ``<cache_dir>/datasets/fer2013-<sha256 of the CSV, 12 hex>/<row>.png`` (row:
0-based data row, five digits), each atomically, and reused on the next run. Every row is
used, whatever its ``Usage``. Codes: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad,
5 Surprise, 6 Neutral.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from emoprobe.data.formats.common import BASIC_HINT, Format, Labeller, LabelSpace, os_reason, show
from emoprobe.data.records import Dataset, Item
from emoprobe.errors import CacheError, DatasetError, WriteError
from emoprobe.files import write_atomic
from emoprobe.settings import default_cache_dir

EXPECTS = "a FER2013 CSV file (fer2013.csv or icml_face_data.csv) with emotion and pixels columns"

_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")  # by code
NAMES = {str(code): name for code, name in enumerate(_CLASSES)}
_READ_CHUNK = 1 << 20


def looks_like(path: Path, is_dir: bool) -> bool:
    """A CSV file whose header has ``emotion`` and ``pixels``."""
    if is_dir or not path.is_file():  # never open a FIFO or a device
        return False
    header = _header(path)
    return header is not None and "emotion" in header and "pixels" in header


def _header(path: Path) -> list[str] | None:
    """The header cells of a CSV (stripped, casefolded), or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return None
    line = head.split(b"\n", 1)[0]
    try:
        text = line.decode("utf-8-sig")
        cells = next(csv.reader([text]), [])
    except (UnicodeDecodeError, csv.Error):
        return None
    return [cell.strip().casefold() for cell in cells]


def load(path: Path, space: LabelSpace, cache_dir: Path | None) -> Dataset:
    """FER2013's CSV: its pixel strings written once as PNG files under `cache_dir`."""
    shown = show(path)
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "datasets"
    folder /= f"fer2013-{_sha256_file(path, shown)[:12]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        present = {entry.name for entry in os.scandir(folder)}
    except OSError as exc:
        raise CacheError(
            f"cannot write FER2013's images to {show(folder)}: {os_reason(exc)}; "
            "choose another cache folder",
            path=folder,
            setting="cache_dir",
        ) from None

    labeller = Labeller(space, f"FER2013 CSV {shown}", BASIC_HINT)
    rows: list[tuple[int, str]] = []  # index, label
    bad: list[int] = []
    for index, line, code, pixels in _rows(path, shown):
        label = labeller.label(NAMES.get(code, code), code, f"line {line}")
        if label is None:
            continue
        rows.append((index, label))
        name = _file_name(index)
        if labeller.failed or name in present:
            continue  # failed: the run will not start, so write nothing more
        image = _pixels(pixels)
        if image is None:
            bad.append(line)
            continue
        try:
            write_atomic(folder / name, _png(*image))
        except WriteError as exc:  # the cache folder filled up or turned read-only
            raise CacheError(exc.message, path=folder, setting="cache_dir") from None
        present.add(name)

    items = [
        Item(folder / _file_name(index), _file_name(index), label)
        for index, label in rows
        if _file_name(index) in present
    ]
    warnings = []
    if bad:
        warnings.append(
            f"left out {len(bad)} row(s) of FER2013 CSV {shown} whose pixels are not a square "
            f"grayscale image of numbers 0-255 (first: line {bad[0]})"
        )
    return labeller.finish(path, FORMAT, items, warnings)


def _file_name(index: int) -> str:
    return f"{index:05d}.png"


def _sha256_file(path: Path, shown: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DatasetError(f"cannot read FER2013 CSV {shown}: {os_reason(exc)}") from None
    return digest.hexdigest()


def _rows(path: Path, shown: str) -> Iterator[tuple[int, int, str, str]]:
    """(data row index, line, emotion cell, pixels cell) for each non-blank row."""
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DatasetError(f"cannot read FER2013 CSV {shown}: {os_reason(exc)}") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [cell.strip().casefold() for cell in next(reader, [])]
            missing = [col for col in ("emotion", "pixels") if col not in header]
            if missing:
                raise DatasetError(
                    f"FER2013 CSV {shown} has no {' or '.join(map(repr, missing))} column: "
                    f"format fer2013 expects {FORMAT.expects}"
                )
            emotion_col, pixels_col = header.index("emotion"), header.index("pixels")
            index = 0
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                emotion = row[emotion_col].strip() if emotion_col < len(row) else ""
                pixels = row[pixels_col] if pixels_col < len(row) else ""
                yield index, reader.line_num, emotion, pixels
                index += 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(
                f"FER2013 CSV {shown} is malformed at line {reader.line_num + 1}: "
                f"{show(' '.join(str(exc).split()))}"
            ) from None


def _pixels(cell: str) -> tuple[int, bytes] | None:
    """(side, bytes) of a square grayscale image from a pixel string, or None if it is not."""
    import numpy as np

    count = len(cell.split())
    side = math.isqrt(count)
    if not count or side * side != count:
        return None
    with warnings.catch_warnings():  # numpy warns when text is left unread: checked below
        warnings.simplefilter("ignore")
        try:
            values = np.fromstring(cell, dtype=np.int64, sep=" ")
        except ValueError:
            return None
    if values.size != count or values.min() < 0 or values.max() > 255:
        return None
    return side, values.astype(np.uint8).tobytes()


def _png(side: int, data: bytes) -> bytes:
    """A grey `side`×`side` image's pixels as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("L", (side, side), data).save(buffer, "PNG")
    return buffer.getvalue()


FORMAT = Format("fer2013", EXPECTS, looks_like, load)

"""Adapters: the layouts public facial-expression data sets ship in, read as a `Dataset`.

emoprobe never downloads a data set: each adapter reads the user's own copy, in the layout
its authors distribute it in, and turns it into the same items an ImageFolder gives. One
small loader per format, all reached through `emoprobe.datasets.load_dataset`:

* **fer2013**: ``fer2013.csv`` with columns ``emotion,pixels,Usage`` (or the
  ``icml_face_data.csv`` variant, whose column names start with a space). The images live in
  the CSV as 48x48 grayscale pixel strings; they are written once, as PNG files, to
  ``<cache_dir>/datasets/fer2013-<sha256 of the CSV, 12 hex>/<row>.png`` (row: 0-based data
  row, five digits), each atomically, and reused on the next run. Every row is used,
  whatever its ``Usage``. Codes: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise,
  6 Neutral.
* **rafdb** (RAF-DB basic): ``EmoLabel/list_patition_label.txt`` with lines
  ``train_00001.jpg 5``, and the images in ``Image/aligned/train_00001_aligned.jpg`` (used
  when that folder exists) or else ``Image/original/train_00001.jpg``. Codes: 1 Surprise,
  2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral.
* **affectnet**: ``images/<id>.jpg`` beside ``annotations/<id>_exp.npy``, each .npy holding
  the expression code (as a number or a string), either in the folder itself or in each of
  its subfolders (``train_set/``, ``val_set/``). Codes: 0 Neutral, 1 Happy, 2 Sad,
  3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt (the full release adds 8 None,
  9 Uncertain, 10 Non-Face). The Kaggle "AffectNet" layout of class-named folders is a
  plain ImageFolder.
* **daisee**: ``Labels/AllLabels.csv`` (else every ``Labels/*Labels.csv``) with columns
  ``ClipID,Boredom,Engagement,Confusion,Frustration`` (header cells stripped: some files
  have ``"Frustration "``), each level 0-3, and frames the user extracted from the videos as
  images in clip folders ``DataSet/<split>/<subject>/<clip id without extension>/``. Every
  frame is an item labelled with its clip's *dominant* state: the highest level, ties going
  to boredom, then confusion, frustration, engagement (`DAISEE_TIE_ORDER`).

Each adapter gives every image its data set's class *name* (FER2013 ``Happy``, RAF-DB
``Happiness``), which goes through `Task.canonical_label` (so a task's ``label_map`` turns it
into one of the task's labels); when the name is unknown to the task the raw code (``"3"``)
is tried too. Labels the task lists in ``ignore_labels`` are left out with a warning; any
other unknown label is one `DatasetError` naming them and the allowed labels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from emoprobe.data.datasets import (
    Dataset,
    Item,
    _is_image_name,
    _LabelSpace,
    _missing_labels_warning,
    _os_reason,
    _quoted,
    _scandir_sorted,
    _show,
    _utf8,
)
from emoprobe.errors import CacheError, DatasetError
from emoprobe.files import write_atomic

FER2013_NAMES = {
    "0": "Angry",
    "1": "Disgust",
    "2": "Fear",
    "3": "Happy",
    "4": "Sad",
    "5": "Surprise",
    "6": "Neutral",
}
RAFDB_NAMES = {
    "1": "Surprise",
    "2": "Fear",
    "3": "Disgust",
    "4": "Happiness",
    "5": "Sadness",
    "6": "Anger",
    "7": "Neutral",
}
AFFECTNET_NAMES = {
    "0": "Neutral",
    "1": "Happy",
    "2": "Sad",
    "3": "Surprise",
    "4": "Fear",
    "5": "Disgust",
    "6": "Anger",
    "7": "Contempt",
    "8": "None",
    "9": "Uncertain",
    "10": "Non-Face",
}
DAISEE_STATES = ("boredom", "engagement", "confusion", "frustration")  # the CSV's order
DAISEE_TIE_ORDER = ("boredom", "confusion", "frustration", "engagement")
DAISEE_LEVELS = range(4)

_BASIC_HINT = " (a task file can map them: --task examples/tasks/basic-emotions.toml)"
_DAISEE_HINT = " (a task file can map them: --task examples/tasks/daisee-engagement.toml)"
_RAFDB_LABELS = ("EmoLabel", "list_patition_label.txt")
_READ_CHUNK = 1 << 20

# What each format expects, for the error when --format names one the path is not.
EXPECTS = {
    "imagefolder": "a folder ROOT/<label>/<image>",
    "csv": "a CSV file with path,label columns",
    "fer2013": "a FER2013 CSV file (fer2013.csv or icml_face_data.csv) with emotion and "
    "pixels columns",
    "rafdb": "a RAF-DB basic folder with EmoLabel/list_patition_label.txt and Image/aligned/ "
    "or Image/original/",
    "affectnet": "an AffectNet folder with images/ and annotations/<id>_exp.npy (or "
    "subfolders such as train_set/ holding them)",
    "daisee": "a DAiSEE folder with Labels/AllLabels.csv (or Labels/*Labels.csv) and "
    "DataSet/<split>/<subject>/<clip>/ folders of extracted frames",
}


# ---------------------------------------------------------------------------------------
# Detection


def _child(folder: Path, name: str, want_dir: bool | None = None) -> Path | None:
    """The entry of `folder` called `name` (exactly, else ignoring case), or None."""
    exact = folder / name
    try:
        if exact.exists() and (want_dir is None or exact.is_dir() == want_dir):
            return exact
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.casefold() != name.casefold():
                    continue
                if want_dir is None or entry.is_dir() == want_dir:
                    return Path(entry.path)
    except OSError:
        return None
    return None


def _fer2013_header(path: Path) -> list[str] | None:
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


def _is_fer2013(path: Path, is_dir: bool) -> bool:
    if is_dir or not path.is_file():  # never open a FIFO or a device
        return False
    header = _fer2013_header(path)
    return header is not None and "emotion" in header and "pixels" in header


def _rafdb_label_file(root: Path) -> Path | None:
    folder = _child(root, _RAFDB_LABELS[0], want_dir=True)
    return _child(folder, _RAFDB_LABELS[1], want_dir=False) if folder else None


def _is_rafdb(root: Path, is_dir: bool) -> bool:
    return is_dir and _rafdb_label_file(root) is not None


def _has_exp_files(folder: Path) -> bool:
    """Whether `folder`/annotations holds an ``_exp.npy`` (exact names: the subfolders of an
    ImageFolder's root are probed too, and they may hold many thousand images)."""
    try:
        with os.scandir(folder / "annotations") as it:
            return any(entry.name.endswith("_exp.npy") for entry in it)
    except OSError:
        return False


def _affectnet_splits(root: Path) -> list[Path]:
    """The folders holding images/ and annotations/: the root itself, else its subfolders."""
    if _has_exp_files(root):
        return [root]
    try:
        with os.scandir(root) as it:
            subfolders = sorted(
                Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir()
            )
    except OSError:
        return []
    return [sub for sub in subfolders if _has_exp_files(sub)]


def _is_affectnet(root: Path, is_dir: bool) -> bool:
    return is_dir and bool(_affectnet_splits(root))


def _daisee_label_files(root: Path) -> list[Path]:
    folder = _child(root, "Labels", want_dir=True)
    if folder is None:
        return []
    every = _child(folder, "AllLabels.csv", want_dir=False)
    if every is not None:
        return [every]
    try:
        with os.scandir(folder) as it:
            return sorted(
                Path(e.path)
                for e in it
                if e.name.casefold().endswith("labels.csv") and not e.name.startswith(".")
            )
    except OSError:
        return []


def _is_daisee(root: Path, is_dir: bool) -> bool:
    return (
        is_dir
        and _child(root, "DataSet", want_dir=True) is not None
        and bool(_daisee_label_files(root))
    )


_DETECTORS: dict[str, Callable[[Path, bool], bool]] = {
    "fer2013": _is_fer2013,
    "rafdb": _is_rafdb,
    "affectnet": _is_affectnet,
    "daisee": _is_daisee,
}


def detect(root: Path, is_dir: bool) -> str | None:
    """The adapter format `root` is laid out in, or None (an ImageFolder or CSV manifest)."""
    if not is_dir and root.suffix.casefold() != ".csv":
        return None
    for name, looks_like in _DETECTORS.items():
        if looks_like(root, is_dir):
            return name
    return None


def check_layout(format: str, root: Path, is_dir: bool) -> None:
    """Raise a one-line DatasetError when `root` cannot be a dataset of `format`."""
    if format in _DETECTORS:
        fits = _DETECTORS[format](root, is_dir)
    else:  # imagefolder wants a folder, csv a file
        fits = is_dir == (format == "imagefolder")
    if not fits:
        what = "a folder" if is_dir else "a file"
        raise DatasetError(
            f"{_show(root)} is not a {format} dataset ({what}): format {format} expects "
            f"{EXPECTS[format]}"
        )


# ---------------------------------------------------------------------------------------
# Labels


@dataclass
class _Labeller:
    """Turns each image's data-set label into a task label, collecting what it cannot."""

    space: _LabelSpace
    source: str  # "FER2013 CSV /path/fer2013.csv", for messages
    hint: str = ""
    unknown: dict[str, str] = field(default_factory=dict)  # shown label -> where first seen
    skipped: Counter[str] = field(default_factory=Counter)

    def label(self, name: str, code: str | None, where: str) -> str | None:
        """The task's label for an image whose data set calls it `name` (code `code`)."""
        label = self.space.canonical(name)
        if label is None and code is not None and code != name:
            label = self.space.canonical(code)
        if label is not None:
            return label
        if self.space.ignored(name) or (code is not None and self.space.ignored(code)):
            self.skipped[name] += 1
        else:
            shown = name if code is None or code == name else f"{name} ({code})"
            self.unknown.setdefault(shown, where)
        return None

    @property
    def failed(self) -> bool:
        return bool(self.unknown)

    def check(self) -> list[str]:
        """Raise for unknown labels; else the warnings about images left out."""
        if self.unknown:
            first = next(iter(self.unknown.values()))
            raise DatasetError(
                f"{self.source} has unknown label(s) {_quoted(list(self.unknown), 7)} "
                f"(first: {first}): the allowed labels are "
                f"{', '.join(self.space.labels)}{self.hint}"
            )
        if not self.skipped:
            return []
        counts = ", ".join(f"{n} '{_show(name)}'" for name, n in sorted(self.skipped.items()))
        return [
            f"left out {sum(self.skipped.values())} image(s) of {self.source} whose labels "
            f"the task ignores: {counts}"
        ]


def _finish(
    root: Path,
    format: str,
    items: list[Item],
    labeller: _Labeller,
    warnings: list[str],
) -> Dataset:
    warnings = labeller.check() + warnings
    if not items and labeller.skipped:
        raise DatasetError(
            f"{labeller.source} has no images the task keeps: it ignores all their labels "
            f"({_quoted(sorted(labeller.skipped), 5)}); the allowed labels are "
            f"{', '.join(labeller.space.labels)}"
        )
    if not items:
        raise DatasetError(
            f"{labeller.source} has no usable images: format {format} expects {EXPECTS[format]}"
        )
    items.sort(key=lambda it: (it.label, it.relpath))
    warnings += _missing_labels_warning(labeller.space.labels, items)
    return Dataset(root=root, format=format, items=items, warnings=warnings)


def _relpath(path: Path, root: Path) -> str:
    return _utf8(path.relative_to(root).as_posix())


def _first(names: list[str]) -> str:
    return f"first: '{_show(names[0])}'" if names else ""


# ---------------------------------------------------------------------------------------
# FER2013


def _sha256_file(path: Path, shown: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DatasetError(f"cannot read FER2013 CSV {shown}: {_os_reason(exc)}") from None
    return digest.hexdigest()


def _fer_pixels(cell: str) -> tuple[int, bytes] | None:
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



def _fer_rows(path: Path, shown: str) -> Iterator[tuple[int, int, str, str]]:
    """(data row index, line, emotion cell, pixels cell) for each non-blank row."""
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DatasetError(f"cannot read FER2013 CSV {shown}: {_os_reason(exc)}") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [cell.strip().casefold() for cell in next(reader, [])]
            missing = [col for col in ("emotion", "pixels") if col not in header]
            if missing:
                raise DatasetError(
                    f"FER2013 CSV {shown} has no {' or '.join(map(repr, missing))} column: "
                    f"format fer2013 expects {EXPECTS['fer2013']}"
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
                f"{_show(' '.join(str(exc).split()))}"
            ) from None


def load_fer2013(path: Path, space: _LabelSpace, cache_dir: Path | None) -> Dataset:
    """FER2013's CSV: its pixel strings written once as PNG files under `cache_dir`."""
    shown = _show(path)
    if cache_dir is None:
        from emoprobe.settings import default_cache_dir

        cache_dir = default_cache_dir()
    folder = Path(cache_dir) / "datasets" / f"fer2013-{_sha256_file(path, shown)[:12]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        present = {entry.name for entry in os.scandir(folder)}
    except OSError as exc:
        raise CacheError(
            f"cannot write FER2013's images to {_show(folder)}: {_os_reason(exc)} "
            "(pass another --cache-dir)"
        ) from None

    labeller = _Labeller(space, f"FER2013 CSV {shown}", _BASIC_HINT)
    rows: list[tuple[int, int, str, str]] = []  # index, line, code, label
    bad: list[int] = []
    for index, line, code, pixels in _fer_rows(path, shown):
        label = labeller.label(FER2013_NAMES.get(code, code), code, f"line {line}")
        if label is None:
            continue
        rows.append((index, line, code, label))
        if labeller.failed:
            continue  # the run will not start: write nothing more
        name = _fer_name(index)
        if name in present:
            continue
        image = _fer_pixels(pixels)
        if image is None:
            bad.append(line)
            continue
        try:
            write_atomic(folder / name, _png(*image))
        except OSError as exc:
            raise CacheError(
                f"cannot write FER2013's images to {_show(folder)}: {_os_reason(exc)} "
                "(pass another --cache-dir)"
            ) from None
        present.add(name)

    items = [
        Item(folder / _fer_name(index), _fer_name(index), label)
        for index, _line, _code, label in rows
        if _fer_name(index) in present
    ]
    warnings = []
    if bad:
        warnings.append(
            f"left out {len(bad)} row(s) of FER2013 CSV {shown} whose pixels are not a square "
            f"grayscale image of numbers 0-255 (first: line {bad[0]})"
        )
    return _finish(path, "fer2013", items, labeller, warnings)


def _fer_name(index: int) -> str:
    return f"{index:05d}.png"


# ---------------------------------------------------------------------------------------
# RAF-DB


def load_rafdb(root: Path, space: _LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """RAF-DB basic: EmoLabel/list_patition_label.txt and Image/aligned/ (else original/)."""
    label_file = _rafdb_label_file(root)
    assert label_file is not None  # checked by detect/check_layout
    shown = _show(label_file)
    image_root = _child(root, "Image", want_dir=True)
    aligned = _child(image_root, "aligned", want_dir=True) if image_root else None
    original = _child(image_root, "original", want_dir=True) if image_root else None
    folder = aligned or original
    if folder is None:
        raise DatasetError(
            f"RAF-DB folder {_show(root)} has no Image/aligned/ or Image/original/ folder: "
            f"format rafdb expects {EXPECTS['rafdb']}"
        )
    present = {entry.name for entry in _scandir_sorted(str(folder))}
    text = _read_labels(label_file, f"RAF-DB labels {shown}")

    labeller = _Labeller(space, f"RAF-DB labels {shown}", _BASIC_HINT)
    items: list[Item] = []
    missing: list[str] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(
                f"RAF-DB labels {shown} line {line_number}: expected '<image> <code>' "
                f"(e.g. 'train_00001.jpg 5'), got '{_show(line.strip()[:60])}'"
            )
        image, code = parts
        label = labeller.label(RAFDB_NAMES.get(code, code), code, f"line {line_number}")
        if label is None:
            continue
        stem, suffix = os.path.splitext(image)
        name = f"{stem}_aligned{suffix}" if folder is aligned else image
        if name not in present:
            missing.append(name)
        items.append(Item(folder / name, _relpath(folder / name, root), label))
    warnings = []
    if missing and len(missing) == len(items) and not labeller.failed:
        raise DatasetError(
            f"none of the {len(items)} images listed in {shown} is in {_show(folder)} "
            f"({_first(missing)}): format rafdb expects {EXPECTS['rafdb']}"
        )
    if missing:
        warnings.append(
            f"{len(missing)} image(s) listed in {shown} are not in {_show(folder)} "
            f"({_first(missing)}); they will be reported as errors"
        )
    return _finish(root, "rafdb", items, labeller, warnings)


# ---------------------------------------------------------------------------------------
# AffectNet


def _affectnet_code(path: str) -> str | None:
    """The expression code an ``_exp.npy`` file holds, as text ("3"), or None."""
    import numpy as np

    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if getattr(value, "size", 0) != 1:
        return None
    item = value.reshape(()).item()
    if isinstance(item, bytes):
        item = item.decode("ascii", "replace")
    try:
        number = float(str(item).strip())
    except ValueError:
        return None
    return str(int(number)) if number.is_integer() else None


def load_affectnet(root: Path, space: _LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """AffectNet: images/<id>.jpg and annotations/<id>_exp.npy, in the root or its subfolders."""
    labeller = _Labeller(space, f"AffectNet folder {_show(root)}", _BASIC_HINT)
    items: list[Item] = []
    no_image: list[str] = []
    unreadable: list[str] = []
    unannotated = 0
    for split in _affectnet_splits(root):
        images_dir = split / "images"
        if not images_dir.is_dir():
            raise DatasetError(
                f"AffectNet folder {_show(split)} has annotations/ but no images/ folder: "
                f"format affectnet expects {EXPECTS['affectnet']}"
            )
        images: dict[str, str] = {}
        for entry in _scandir_sorted(str(images_dir)):
            if _is_image_name(entry.name) and not entry.name.startswith("."):
                images.setdefault(os.path.splitext(entry.name)[0], entry.name)
        annotations = split / "annotations"
        annotated: set[str] = set()
        for entry in _scandir_sorted(str(annotations)):
            if not entry.name.endswith("_exp.npy") or entry.name.startswith("."):
                continue
            image_id = entry.name[: -len("_exp.npy")]
            annotated.add(image_id)
            where = _relpath(Path(entry.path), root)
            code = _affectnet_code(entry.path)
            if code is None:
                unreadable.append(where)
                continue
            label = labeller.label(AFFECTNET_NAMES.get(code, code), code, f"'{_show(where)}'")
            if label is None:
                continue
            if image_id not in images:
                no_image.append(where)
                continue
            path = images_dir / images[image_id]
            items.append(Item(path, _relpath(path, root), label))
        unannotated += len(images.keys() - annotated)

    warnings = []
    if unreadable:
        warnings.append(
            f"left out {len(unreadable)} image(s) whose _exp.npy holds no expression code "
            f"({_first(unreadable)})"
        )
    if no_image:
        warnings.append(
            f"left out {len(no_image)} annotation(s) without an image in images/ "
            f"({_first(no_image)})"
        )
    if unannotated:
        warnings.append(f"left out {unannotated} image(s) without an annotations/<id>_exp.npy")
    return _finish(root, "affectnet", items, labeller, warnings)


# ---------------------------------------------------------------------------------------
# DAiSEE


def dominant_state(levels: dict[str, int]) -> str:
    """The state with the highest level; ties go to the earliest in `DAISEE_TIE_ORDER`."""
    top = max(levels.values())
    return next(state for state in DAISEE_TIE_ORDER if levels[state] == top)


def _daisee_labels(files: list[Path], warnings: list[str]) -> dict[str, str]:
    """Clip id (without extension) -> dominant state, from the label CSVs in order."""
    states: dict[str, str] = {}
    conflicts: list[str] = []
    for file in files:
        shown = _show(file)
        text = _read_labels(file, f"DAiSEE labels {shown}")
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = [cell.strip().casefold() for cell in next(reader, [])]
            wanted = ("clipid", *DAISEE_STATES)
            missing = [col for col in wanted if col not in header]
            if missing:
                raise DatasetError(
                    f"DAiSEE labels {shown} have no {', '.join(missing)} column(s): expected "
                    "ClipID,Boredom,Engagement,Confusion,Frustration"
                )
            columns = {col: header.index(col) for col in wanted}
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                cells = {
                    col: (row[i].strip() if i < len(row) else "") for col, i in columns.items()
                }
                levels: dict[str, int] = {}
                for state in DAISEE_STATES:
                    try:
                        levels[state] = int(cells[state])
                    except ValueError:
                        levels[state] = -1
                    if levels[state] not in DAISEE_LEVELS:
                        raise DatasetError(
                            f"DAiSEE labels {shown} line {reader.line_num}: {state} must be a "
                            f"level 0-3 (got '{_show(cells[state][:20])}')"
                        )
                clip = os.path.splitext(cells["clipid"])[0]
                if not clip:
                    raise DatasetError(f"DAiSEE labels {shown} line {reader.line_num}: no ClipID")
                state = dominant_state(levels)
                if states.setdefault(clip, state) != state:
                    conflicts.append(clip)
        except csv.Error as exc:
            raise DatasetError(
                f"DAiSEE labels {shown} are malformed at line {reader.line_num}: {_show(str(exc))}"
            ) from None
    if conflicts:
        warnings.append(
            f"{len(conflicts)} clip(s) are labelled differently in two label files; kept the "
            f"first ({_first(conflicts)})"
        )
    return states


def load_daisee(root: Path, space: _LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """DAiSEE: Labels/*Labels.csv, and the frames extracted into DataSet/.../<clip>/."""
    warnings: list[str] = []
    files = _daisee_label_files(root)
    clips = _daisee_labels(files, warnings)
    dataset_dir = _child(root, "DataSet", want_dir=True)
    assert dataset_dir is not None  # checked by detect/check_layout
    labeller = _Labeller(space, f"DAiSEE labels {_show(files[0])}", _DAISEE_HINT)
    items: list[Item] = []
    no_frames: list[str] = []
    unlabelled: list[str] = []
    stack = [dataset_dir]
    while stack:
        folder = stack.pop()
        entries = [e for e in _scandir_sorted(str(folder)) if not e.name.startswith(".")]
        frames = [e for e in entries if _is_image_name(e.name) and e.is_file()]
        state = clips.get(folder.name) if folder != dataset_dir else None
        if state is not None:
            label = labeller.label(state, None, f"clip {folder.name}")
            if not frames:
                no_frames.append(folder.name)
            if label is not None:
                for frame in frames:
                    path = Path(frame.path)
                    items.append(Item(path, _relpath(path, root), label))
            continue  # a clip folder: its subfolders are not clips
        if frames:
            unlabelled.append(_relpath(folder, root))
        stack += reversed([Path(e.path) for e in entries if e.is_dir()])

    if not items and not labeller.failed and not labeller.skipped and not unlabelled:
        raise DatasetError(
            f"no extracted frames found under {_show(dataset_dir)}: emoprobe reads images, "
            "not videos; extract frames into each clip's folder first (e.g. ffmpeg -i "
            "1100011002.avi -vf fps=1 1100011002/%03d.jpg)"
        )
    if no_frames:
        warnings.append(
            f"{len(no_frames)} labelled clip folder(s) hold no extracted frames "
            f"({_first(no_frames)}); extract frames to use them"
        )
    if unlabelled:
        warnings.append(
            f"left out the frames of {len(unlabelled)} folder(s) that are not a labelled clip "
            f"({_first(unlabelled)})"
        )
    return _finish(root, "daisee", items, labeller, warnings)


LOADERS: dict[str, Callable[[Path, _LabelSpace, Path | None], Dataset]] = {
    "fer2013": load_fer2013,
    "rafdb": load_rafdb,
    "affectnet": load_affectnet,
    "daisee": load_daisee,
}


def _read_labels(path: Path, what: str) -> str:
    """A label file's text (UTF-8, with or without a BOM), or one line saying why not."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"cannot read {what}: {_os_reason(exc)}") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{what} are not text (undecodable byte at offset {exc.start})"
        ) from None


def _png(side: int, data: bytes) -> bytes:
    """A grey `side`×`side` image's pixels as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("L", (side, side), data).save(buffer, "PNG")
    return buffer.getvalue()

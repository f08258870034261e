"""RAF-DB (basic): ``EmoLabel/list_patition_label.txt`` with lines ``train_00001.jpg 5``.

The images are in ``Image/aligned/train_00001_aligned.jpg`` (used when that folder exists)
or else ``Image/original/train_00001.jpg``. Codes: 1 Surprise, 2 Fear, 3 Disgust,
4 Happiness, 5 Sadness, 6 Anger, 7 Neutral.
"""

from __future__ import annotations

import os
from pathlib import Path

from emoprobe.data.formats.common import BASIC_HINT, Format, Labeller, LabelSpace, first, show
from emoprobe.data.formats.listing import child, read_labels, relpath, scandir_sorted
from emoprobe.data.records import Dataset, Item
from emoprobe.errors import DatasetError

EXPECTS = (
    "a RAF-DB basic folder with EmoLabel/list_patition_label.txt and Image/aligned/ "
    "or Image/original/"
)

_CLASSES = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
NAMES = {str(code): name for code, name in enumerate(_CLASSES, 1)}  # codes 1-7


def _label_file(root: Path) -> Path | None:
    folder = child(root, "EmoLabel", want_dir=True)
    return child(folder, "list_patition_label.txt", want_dir=False) if folder else None


def looks_like(root: Path, is_dir: bool) -> bool:
    """A folder with ``EmoLabel/list_patition_label.txt``."""
    return is_dir and _label_file(root) is not None


def load(root: Path, space: LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """RAF-DB basic: EmoLabel/list_patition_label.txt and Image/aligned/ (else original/)."""
    label_file = _label_file(root)
    assert label_file is not None  # checked by looks_like
    shown = show(label_file)
    image_root = child(root, "Image", want_dir=True)
    aligned = child(image_root, "aligned", want_dir=True) if image_root else None
    original = child(image_root, "original", want_dir=True) if image_root else None
    folder = aligned or original
    if folder is None:
        raise DatasetError(
            f"RAF-DB folder {show(root)} has no Image/aligned/ or Image/original/ folder: "
            f"format rafdb expects {FORMAT.expects}",
            path=root,
        )
    present = {entry.name for entry in scandir_sorted(folder)}
    text = read_labels(label_file, f"RAF-DB labels {shown}")

    labeller = Labeller(space, f"RAF-DB labels {shown}", BASIC_HINT)
    items: list[Item] = []
    missing: list[str] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(
                f"RAF-DB labels {shown} line {line_number}: expected '<image> <code>' "
                f"(e.g. 'train_00001.jpg 5'), got '{show(line.strip()[:60])}'",
                path=label_file,
            )
        image, code = parts
        label = labeller.label(NAMES.get(code, code), code, f"line {line_number}")
        if label is None:
            continue
        stem, suffix = os.path.splitext(image)
        name = f"{stem}_aligned{suffix}" if folder is aligned else image
        if name not in present:
            missing.append(name)
        items.append(Item(folder / name, relpath(folder / name, root), label))
    if missing and len(missing) == len(items) and not labeller.failed:
        raise DatasetError(
            f"none of the {len(items)} images listed in {shown} is in {show(folder)} "
            f"({first(missing)}): format rafdb expects {FORMAT.expects}",
            path=folder,
        )
    absent = (
        f"{len(missing)} image(s) listed in {shown} are not in {show(folder)} "
        f"({first(missing)}); they will be reported as errors"
    )
    return labeller.finish(root, FORMAT, items, [absent] if missing else [])


FORMAT = Format("rafdb", EXPECTS, looks_like, load)

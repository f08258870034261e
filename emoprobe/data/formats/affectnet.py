"""AffectNet: ``images/<id>.jpg`` beside ``annotations/<id>_exp.npy``.

Each .npy holds the expression code (as a number or a string), either in the folder itself
or in each of its subfolders (``train_set/``, ``val_set/``). Codes: 0 Neutral, 1 Happy,
2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt (the full release adds 8 None,
9 Uncertain, 10 Non-Face). The Kaggle "AffectNet" layout of class-named folders is a plain
ImageFolder.
"""

from __future__ import annotations

import os
from pathlib import Path

from emoprobe.data.formats.common import BASIC_HINT, Format, Labeller, LabelSpace, first, show
from emoprobe.data.formats.listing import relpath, scandir_sorted
from emoprobe.data.records import Dataset, Item, is_image_name
from emoprobe.errors import DatasetError

EXPECTS = (
    "an AffectNet folder with images/ and annotations/<id>_exp.npy (or subfolders such as "
    "train_set/ holding them)"
)

_CLASSES = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
_OTHERS = ("None", "Uncertain", "Non-Face")  # codes 8-10, in the full release only
NAMES = {str(code): name for code, name in enumerate((*_CLASSES, *_OTHERS))}
_EXP = "_exp.npy"


def _has_exp_files(folder: Path) -> bool:
    """Whether `folder`/annotations holds an ``_exp.npy`` (exact names: the subfolders of an
    ImageFolder's root are probed too, and they may hold many thousand images)."""
    try:
        with os.scandir(folder / "annotations") as it:
            return any(entry.name.endswith(_EXP) for entry in it)
    except OSError:
        return False


def _splits(root: Path) -> list[Path]:
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


def looks_like(root: Path, is_dir: bool) -> bool:
    """A folder with ``annotations/*_exp.npy``, or whose subfolders have them."""
    return is_dir and bool(_splits(root))


def _code(path: str) -> str | None:
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


def load(root: Path, space: LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """AffectNet: images/<id>.jpg and annotations/<id>_exp.npy, in the root or its subfolders."""
    labeller = Labeller(space, f"AffectNet folder {show(root)}", BASIC_HINT)
    items: list[Item] = []
    no_image: list[str] = []
    unreadable: list[str] = []
    unannotated = 0
    for split in _splits(root):
        images_dir = split / "images"
        if not images_dir.is_dir():
            raise DatasetError(
                f"AffectNet folder {show(split)} has annotations/ but no images/ folder: "
                f"format affectnet expects {FORMAT.expects}",
                path=split,
            )
        images: dict[str, str] = {}
        for entry in scandir_sorted(images_dir):
            if is_image_name(entry.name) and not entry.name.startswith("."):
                images.setdefault(os.path.splitext(entry.name)[0], entry.name)
        annotated: set[str] = set()
        for entry in scandir_sorted(split / "annotations"):
            if not entry.name.endswith(_EXP) or entry.name.startswith("."):
                continue
            image_id = entry.name[: -len(_EXP)]
            annotated.add(image_id)
            where = relpath(Path(entry.path), root)
            code = _code(entry.path)
            if code is None:
                unreadable.append(where)
                continue
            label = labeller.label(NAMES.get(code, code), code, f"'{show(where)}'")
            if label is None:
                continue
            if image_id not in images:
                no_image.append(where)
                continue
            path = images_dir / images[image_id]
            items.append(Item(path, relpath(path, root), label))
        unannotated += len(images.keys() - annotated)

    warnings = []
    if unreadable:
        warnings.append(
            f"left out {len(unreadable)} image(s) whose _exp.npy holds no expression code "
            f"({first(unreadable)})"
        )
    if no_image:
        warnings.append(
            f"left out {len(no_image)} annotation(s) without an image in images/ "
            f"({first(no_image)})"
        )
    if unannotated:
        warnings.append(f"left out {unannotated} image(s) without an annotations/<id>_exp.npy")
    return labeller.finish(root, FORMAT, items, warnings)


FORMAT = Format("affectnet", EXPECTS, looks_like, load)

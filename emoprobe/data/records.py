"""What a dataset is: labelled image files (`Item`) and the set of them (`Dataset`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)


@dataclass(frozen=True)
class Item:
    """One labelled image of a dataset."""

    path: Path  # absolute path to open
    relpath: str  # relative to the dataset root, POSIX separators, valid UTF-8, unique
    label: str  # the task's canonical label


@dataclass
class Dataset:
    """The items of a dataset, sorted by label then relpath, and what looked suspicious."""

    root: Path
    format: str  # one of `emoprobe.data.dataset.DATASET_FORMATS`
    items: list[Item]
    warnings: list[str]


def is_image_name(name: str) -> bool:
    """Whether a file name has one of `IMAGE_SUFFIXES` (any case): no file is opened."""
    return os.path.splitext(name)[1].casefold() in IMAGE_SUFFIXES

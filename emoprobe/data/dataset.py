"""Load a dataset: the labelled images to stream through a model, in one of `DATASET_FORMATS`.

No image is opened here: which files are images is decided by suffix alone
(`IMAGE_SUFFIXES`), and a listed file that turns out unreadable becomes an error row later
(`emoprobe.data.images.prepare_image` says why). Anything wrong with the dataset as a whole
raises `DatasetError` with one actionable line; suspicious things that were accepted come
back as one-line `Dataset.warnings`. How labels are matched: `emoprobe.data.formats`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from emoprobe.data.formats import affectnet, csv_manifest, daisee, fer2013, imagefolder, rafdb
from emoprobe.data.formats.common import Format, LabelSpace, layout_hint, os_reason, show
from emoprobe.data.records import Dataset
from emoprobe.errors import ConfigError, DatasetError
from emoprobe.task.definition import PAPER_TASK, Task

# The public sets' layouts, in the order detection tries them.
_DETECTED = (fer2013.FORMAT, rafdb.FORMAT, affectnet.FORMAT, daisee.FORMAT)
FORMATS: dict[str, Format] = {
    f.name: f for f in (imagefolder.FORMAT, csv_manifest.FORMAT, *_DETECTED)
}
DATASET_FORMATS: tuple[str, ...] = tuple(FORMATS)


def load_dataset(
    path: str | os.PathLike[str],
    task: Task | Sequence[str] = PAPER_TASK,
    format: str | None = None,
    cache_dir: Path | None = None,
) -> Dataset:
    """The labelled images at `path`, in the format named or, without one, detected.

    `task` is a `Task` or just the sequence of allowed labels. `format` is one of
    `DATASET_FORMATS` (None: `detect_format`). `cache_dir` is where FER2013's images are
    written as PNG files on first use (None: the default cache directory). Raises
    `DatasetError` with one actionable line when the dataset cannot be used, and
    `ConfigError` for a format name that is not one of `DATASET_FORMATS`.
    """
    if format is not None and format not in FORMATS:
        raise ConfigError(
            f"unknown dataset format {show(str(format))!r}: expected one of "
            f"{', '.join(DATASET_FORMATS)}",
            setting="format",
        )
    space = LabelSpace.of(task)
    root = Path(os.path.abspath(os.fspath(path)))
    try:
        is_dir = stat.S_ISDIR(os.stat(root).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetError(
            f"dataset not found: {show(root)} does not exist "
            "(pass an image folder or a CSV manifest)",
            path=root,
        ) from None
    except OSError as exc:
        reason = os_reason(exc)
        raise DatasetError(f"cannot open dataset {show(root)}: {reason}", path=root) from None
    if format is None:
        chosen = FORMATS[_detect(root, is_dir)]
        if chosen is csv_manifest.FORMAT and root.suffix.casefold() != ".csv":
            raise DatasetError(
                f"dataset {show(root)} is a file but not a .csv manifest: pass a folder with "
                f"{layout_hint(space.labels)} or a CSV file with path,label columns",
                path=root,
            )
    else:
        chosen = FORMATS[format]
        if not chosen.looks_like(root, is_dir):
            what = "a folder" if is_dir else "a file"
            raise DatasetError(
                f"{show(root)} is not a {format} dataset ({what}): format {format} expects "
                f"{chosen.expects}",
                path=root,
                setting="format",
            )
    return chosen.load(root, space, cache_dir)


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format `load_dataset` reads `path` as when none is named: the first public set's
    layout (fer2013, rafdb, affectnet, daisee) whose `looks_like` takes it, else imagefolder
    for a folder and csv for a file."""
    root = Path(os.path.abspath(os.fspath(path)))
    return _detect(root, root.is_dir())


def _detect(root: Path, is_dir: bool) -> str:
    if is_dir or root.suffix.casefold() == ".csv":
        for candidate in _DETECTED:
            if candidate.looks_like(root, is_dir):
                return candidate.name
    return imagefolder.FORMAT.name if is_dir else csv_manifest.FORMAT.name

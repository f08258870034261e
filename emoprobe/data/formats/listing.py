"""Listing a dataset's folders without tripping on what is in them, and reading label files."""

from __future__ import annotations

import os
from pathlib import Path

from emoprobe.data.formats.common import os_reason, show, utf8
from emoprobe.errors import DatasetError


def scandir_sorted(folder: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    """The entries of `folder` sorted by name; an unreadable folder raises DatasetError."""
    try:
        with os.scandir(os.fspath(folder)) as it:
            entries = list(it)
    except OSError as exc:
        raise DatasetError(
            f"cannot read folder {show(folder)}: {os_reason(exc)} "
            "(fix its permissions or remove it from the dataset)",
            path=os.fspath(folder),
        ) from None
    entries.sort(key=lambda e: e.name)
    return entries


def entry_is_dir(entry: os.DirEntry[str]) -> bool | None:
    """Whether `entry` is (or links to) a folder; None when it cannot be told (symlink loop)."""
    try:
        return entry.is_dir()
    except OSError:
        return None


def child(folder: Path, name: str, want_dir: bool) -> Path | None:
    """The entry of `folder` called `name` (exactly, else ignoring case) that is a folder, or
    is not, as `want_dir` says; None when there is none."""
    exact = folder / name
    try:
        if exact.exists() and exact.is_dir() == want_dir:
            return exact
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.casefold() == name.casefold() and entry.is_dir() == want_dir:
                    return Path(entry.path)
    except OSError:
        return None
    return None


def relpath(path: Path, root: Path) -> str:
    return utf8(path.relative_to(root).as_posix())


def read_labels(path: Path, what: str) -> str:
    """A label file's text (UTF-8, with or without a BOM), or one line saying why not."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"cannot read {what}: {os_reason(exc)}", path=path) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{what} are not text (undecodable byte at offset {exc.start})", path=path
        ) from None

"""ImageFolder: ``ROOT/<label>/<image>``, images possibly in nested folders below the label.

The folder is listed with `os.scandir` and no per-file stat, so tens of thousands of files
list fast. Hidden entries and ``Thumbs.db``/``desktop.ini`` are skipped silently. Symlinks
are followed; each label's folders are remembered by real path, so a link back to a folder
already listed is skipped with a warning instead of recursing forever. An entry that cannot
be inspected (a symlink loop, a dangling link) is listed when its name has an image suffix
(the image loader reports it later), else skipped with a warning; FIFOs, sockets and devices
are never listed. An unreadable folder raises: losing part of a class would skew the scores.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from emoprobe.data.formats.common import (
    Format,
    LabelSpace,
    layout_hint,
    missing_labels_warning,
    quoted,
    show,
    utf8,
)
from emoprobe.data.formats.listing import entry_is_dir, scandir_sorted
from emoprobe.data.records import IMAGE_SUFFIXES, Dataset, Item, is_image_name
from emoprobe.errors import DatasetError

_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini"})


def load(root: Path, space: LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """The images under `root`'s label folders."""
    labels, canonical = space.labels, space.canonical
    shown_root = show(root)
    layout = f"expected {shown_root}/<label>/<image> with {layout_hint(labels)}"
    entries = [e for e in scandir_sorted(root) if not e.name.startswith(".")]
    if not entries:
        raise DatasetError(
            f"dataset folder {shown_root} is empty: {layout}, or a CSV manifest", path=root
        )

    warnings: list[str] = []
    label_dirs: dict[str, list[os.DirEntry[str]]] = {}
    unknown: list[str] = []
    skipped: list[str] = []
    root_images: list[str] = []
    manifests: list[str] = []
    for entry in entries:
        is_dir = entry_is_dir(entry)
        if is_dir:
            label = canonical(entry.name)
            if label is None and space.ignored(entry.name):
                skipped.append(entry.name)
            elif label is None:
                unknown.append(entry.name)
            else:
                label_dirs.setdefault(label, []).append(entry)
        elif canonical(entry.name) is not None and (is_dir is None or entry.is_symlink()):
            raise DatasetError(
                f"label folder {show(entry.path)} is a broken symlink or a symlink loop: "
                "fix or remove it",
                path=entry.path,
            )
        elif is_image_name(entry.name):
            root_images.append(entry.name)
        elif entry.name.casefold().endswith(".csv"):
            manifests.append(entry.name)

    if unknown and manifests:
        manifest = root / min(manifests, key=lambda name: (name.casefold() != "labels.csv", name))
        raise DatasetError(
            f"unknown label folder(s) {quoted(unknown, 5)} in {shown_root}, which holds "
            f"{show(manifest.name)}: pass that file as the dataset ({show(manifest)})",
            path=manifest,
        )
    if unknown:
        raise DatasetError(
            f"unknown label folder(s) {quoted(unknown, 5)} in {shown_root}: the allowed labels "
            f"are {', '.join(labels)} (rename or remove those folders)"
            + _nested_hint(root, unknown, space),
            path=root,
        )
    if skipped:
        warnings.append(
            f"left out label folder(s) {quoted(skipped, 5)} in {shown_root}: the task "
            "ignores those labels"
        )
    if root_images:
        warnings.append(
            f"ignored {len(root_images)} image(s) directly in {shown_root} "
            f"(first: '{show(root_images[0])}'): images must sit in a label folder "
            f"{shown_root}/<label>/"
        )
    if not label_dirs:
        found = (
            f" (found {len(root_images)} image(s) directly in it: move them into label folders)"
            if root_images
            else ""
        )
        raise DatasetError(f"no images found under {shown_root}: {layout}{found}", path=root)

    items: list[Item] = []
    walk = _Walk()
    for label in sorted(label_dirs):
        dirs = label_dirs[label]
        if len(dirs) > 1:
            warnings.append(
                f"folders {quoted([d.name for d in dirs], len(dirs))} in {shown_root} all map "
                f"to label '{label}'; their images are merged"
            )
        # The root counts as listed: a link back to it must not pull in the other labels.
        visited = {os.path.realpath(root)}
        for entry in dirs:
            before = len(items)
            walk.run(entry.path, utf8(entry.name), label, visited, items)
            if len(items) == before:
                warnings.append(f"label folder '{show(entry.name)}' has no images")
    if not items:
        raise DatasetError(f"no images found under {shown_root}: {layout}", path=root)

    warnings += walk.warnings()
    items = _sorted_unique(items, warnings)
    warnings += missing_labels_warning(labels, items)
    return Dataset(root=root, format=FORMAT.name, items=items, warnings=warnings)


def _nested_hint(root: Path, unknown: Sequence[str], space: LabelSpace) -> str:
    """A hint when the label folders seem to sit one level down (e.g. ROOT/train/happy)."""
    for name in unknown:
        try:
            with os.scandir(root / name) as it:
                if any(space.canonical(e.name) is not None and entry_is_dir(e) for e in it):
                    nested = show(root / name)
                    return f"; the label folders seem to be one level down: try {nested}"
        except OSError:
            continue
    return ""


class _Walk:
    """Walks label folders, collecting items and what had to be skipped."""

    def __init__(self) -> None:
        self.loops: list[str] = []
        self.unreadable: list[str] = []
        self.special: list[str] = []
        self.other_suffixes: Counter[str] = Counter()
        self.first_other: str | None = None

    def run(self, top: str, top_rel: str, label: str, visited: set[str], items: list[Item]) -> None:
        real = os.path.realpath(top)
        if real in visited:
            self.loops.append(top_rel)
            return
        visited.add(real)
        stack = [(top, top_rel)]
        while stack:
            folder, rel = stack.pop()
            subfolders = []
            for entry in scandir_sorted(folder):
                name = entry.name
                if name.startswith(".") or name.casefold() in _JUNK_NAMES:
                    continue
                entry_rel = f"{rel}/{utf8(name)}"
                is_dir = entry_is_dir(entry)
                if is_dir:
                    real = os.path.realpath(entry.path)
                    if real in visited:
                        self.loops.append(entry_rel)
                    else:
                        visited.add(real)
                        subfolders.append((entry.path, entry_rel))
                    continue
                is_image = is_image_name(name)
                if is_dir is None:  # cannot stat: a symlink loop; the loader reports it
                    if is_image:
                        items.append(Item(Path(entry.path), entry_rel, label))
                    else:
                        self.unreadable.append(entry_rel)
                elif not is_image:
                    self.other_suffixes[os.path.splitext(name)[1].casefold() or "(none)"] += 1
                    self.first_other = self.first_other or entry_rel
                elif _entry_is_file(entry) or entry.is_symlink():
                    # A regular file, or a dangling symlink ("file not found" later).
                    items.append(Item(Path(entry.path), entry_rel, label))
                else:
                    self.special.append(entry_rel)
            stack.extend(reversed(subfolders))

    def warnings(self) -> list[str]:
        out = []
        if self.loops:
            out.append(
                f"skipped {len(self.loops)} folder link(s) leading back to a folder already "
                f"listed (symlink loop or duplicate link): {quoted(self.loops)}"
            )
        if self.unreadable:
            out.append(
                f"skipped {len(self.unreadable)} entry(ies) that cannot be read "
                f"(symlink loop or broken link): {quoted(self.unreadable)}"
            )
        if self.special:
            out.append(
                f"skipped {len(self.special)} image name(s) that are not regular files "
                f"(FIFO, socket or device): {quoted(self.special)}"
            )
        if self.other_suffixes:
            total = sum(self.other_suffixes.values())
            kinds = ", ".join(
                f"{suffix} x{n}" for suffix, n in sorted(self.other_suffixes.items())[:8]
            )
            out.append(
                f"ignored {total} file(s) without an image suffix ({kinds}; first: "
                f"'{show(self.first_other or '')}'); images need one of "
                f"{' '.join(sorted(IMAGE_SUFFIXES))}"
            )
        return out


def _entry_is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _sorted_unique(items: list[Item], warnings: list[str]) -> list[Item]:
    """Items sorted by (label, relpath); a relpath taken twice keeps the first (by raw bytes).

    Two names can only share a relpath when one holds undecodable bytes and the other the
    literal backslash escape of them.
    """
    items.sort(key=lambda it: (it.label, it.relpath, os.fsencode(it.path)))
    out: list[Item] = []
    clashes: list[str] = []
    seen: set[str] = set()
    for item in items:
        if item.relpath in seen:
            clashes.append(item.relpath)
            continue
        seen.add(item.relpath)
        out.append(item)
    if clashes:
        warnings.append(
            f"skipped {len(clashes)} file(s) whose escaped name clashes with another file's "
            f"name: {quoted(clashes)}"
        )
    return out


FORMAT = Format("imagefolder", "a folder ROOT/<label>/<image>", lambda path, is_dir: is_dir, load)

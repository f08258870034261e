"""Datasets: the labelled images to stream through a model, and a stratified sample of them.

A dataset is either

* an ImageFolder: ``ROOT/<label>/<image>``, with images possibly in nested folders below
  the label folder; or
* a CSV manifest: a ``path,label`` header (case-insensitive, extra columns ignored), paths
  relative to the CSV's folder, UTF-8 with or without a BOM; or
* one of the layouts public facial-expression sets ship in: FER2013, RAF-DB (basic),
  AffectNet, DAiSEE (`emoprobe.adapters`, one small loader each).

`load_dataset` detects the format from the path (`detect_format`) unless one of
`DATASET_FORMATS` is named. Labels are matched to the task's labels ignoring case and
surrounding space, then through the task's ``label_map``; labels the task lists in
``ignore_labels`` are left out with a warning.

Which files are images is decided by suffix alone (`IMAGE_SUFFIXES`); no image is opened
here, and an ImageFolder is listed with `os.scandir` and no per-file stat, so listing tens of
thousands of files is fast. A file that is listed but turns out unreadable or not an image
becomes an error row later (`emoprobe.images.prepare_image` reports why).

Anything wrong with the dataset as a whole raises `DatasetError` with one actionable line;
suspicious things that were accepted come back as one-line `Dataset.warnings`.

Decisions worth knowing:

* Hidden entries (names starting with ".") are skipped everywhere, silently; so are
  ``Thumbs.db`` and ``desktop.ini``.
* Symlinks are followed. Each label's folders are remembered by real path, so a link back
  to a folder already listed is skipped with a warning instead of recursing forever.
* An entry that cannot be inspected (a symlink to itself, a dangling symlink) is listed as an
  item when its name has an image suffix (the image loader then reports "symlink loop or
  unreadable path" / "file not found" for it); without an image suffix it is skipped with a
  warning. FIFOs, sockets and devices are never listed (reading one could block forever).
* An unreadable folder (permission denied) raises: silently losing part of a class would skew
  the scores.
* ``Item.relpath`` is built from the file-system bytes of the name decoded as UTF-8 with
  backslashreplace, so a Linux name like ``b"caf\\xe9.jpg"`` gives ``"caf\\\\xe9.jpg"``.
* CSV cells are stripped of surrounding space. CSV rows whose file is missing are kept
  (one warning); if *no* listed file exists the CSV is almost certainly in the wrong place,
  and that raises.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import random
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from emoprobe.errors import ConfigError, DatasetError
from emoprobe.task.definition import PAPER_TASK, Task

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)

DATASET_FORMATS: tuple[str, ...] = ("imagefolder", "csv", "fer2013", "rafdb", "affectnet", "daisee")

_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_EXAMPLES = 3  # how many offending names a message spells out


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
    format: str  # one of DATASET_FORMATS
    items: list[Item]
    warnings: list[str]


# ---------------------------------------------------------------------------------------
# Small helpers


def _utf8(name: str) -> str:
    """A file-system name as valid UTF-8 text: undecodable bytes become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _show(text: str | os.PathLike[str]) -> str:
    """`text` safe for a one-line message: undecodable bytes and control characters escaped."""
    text = _utf8(os.fspath(text))
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _quoted(names: Sequence[str], limit: int = _EXAMPLES) -> str:
    shown = ", ".join(f"'{_show(n)}'" for n in names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].casefold() in IMAGE_SUFFIXES


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return exc.strerror or type(exc).__name__


_Canonical = Callable[[str], str | None]
_Ignored = Callable[[str], bool]


def _never(name: str) -> bool:
    return False


@dataclass(frozen=True)
class _LabelSpace:
    """What a loader needs of the task: its labels, the label of a dataset label (or None),
    and whether a dataset label's images are to be left out."""

    labels: tuple[str, ...]
    canonical: _Canonical
    ignored: _Ignored


def _label_space(task: Task | Sequence[str]) -> _LabelSpace:
    labels, canonical = _label_matcher(task)
    return _LabelSpace(labels, canonical, task.ignores if isinstance(task, Task) else _never)


def _label_matcher(task: Task | Sequence[str]) -> tuple[tuple[str, ...], _Canonical]:
    """The task's labels and a function mapping a dataset label to one of them (or None)."""
    if isinstance(task, Task):
        return task.labels, task.canonical_label
    if isinstance(task, str) or not all(isinstance(x, str) and x.strip() for x in task):
        raise TypeError("labels must be a Task or a sequence of non-empty strings")
    labels = tuple(task)
    if not labels:
        raise ValueError("labels must not be empty")
    by_key = {label.strip().casefold(): label for label in labels}
    if len(by_key) != len(labels):
        raise ValueError(f"labels differ only in case or space: {labels}")

    def canonical(name: str) -> str | None:
        return by_key.get(name.strip().casefold())

    return labels, canonical


def _layout_hint(labels: Sequence[str]) -> str:
    return f"one folder per label ({', '.join(labels)})"


def _scandir_sorted(folder: str) -> list[os.DirEntry[str]]:
    """The entries of `folder` sorted by name; an unreadable folder raises DatasetError."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        raise DatasetError(
            f"cannot read folder {_show(folder)}: {_os_reason(exc)} "
            "(fix its permissions or remove it from the dataset)"
        ) from None
    entries.sort(key=lambda e: e.name)
    return entries


def _entry_is_dir(entry: os.DirEntry[str]) -> bool | None:
    """Whether `entry` is (or links to) a folder; None when it cannot be told (symlink loop)."""
    try:
        return entry.is_dir()
    except OSError:
        return None


def _missing_labels_warning(labels: Sequence[str], items: Sequence[Item]) -> list[str]:
    present = {item.label for item in items}
    missing = [label for label in labels if label not in present]
    if not missing:
        return []
    return [f"no images for label(s): {', '.join(missing)}; scores for them will be empty"]


# ---------------------------------------------------------------------------------------
# Loading


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
    if format is not None and format not in DATASET_FORMATS:
        raise ConfigError(
            f"unknown dataset format {_show(str(format))!r}: expected one of "
            f"{', '.join(DATASET_FORMATS)}"
        )
    space = _label_space(task)
    labels, canonical = space.labels, space.canonical
    root = Path(os.path.abspath(os.fspath(path)))
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetError(
            f"dataset not found: {_show(root)} does not exist "
            "(pass an image folder or a CSV manifest)"
        ) from None
    except OSError as exc:
        raise DatasetError(f"cannot open dataset {_show(root)}: {_os_reason(exc)}") from None
    is_dir = stat.S_ISDIR(st.st_mode)
    from emoprobe.data import (
        formats as adapters,  # imports this module: imported here, not at the top
    )

    named = format
    if format is None:
        format = adapters.detect(root, is_dir) or ("imagefolder" if is_dir else "csv")
    else:
        adapters.check_layout(format, root, is_dir)
    if format in adapters.LOADERS:
        return adapters.LOADERS[format](root, space, cache_dir)
    if is_dir:
        return _load_folder(root, labels, canonical, space.ignored)
    if named is None and root.suffix.casefold() != ".csv":
        raise DatasetError(
            f"dataset {_show(root)} is a file but not a .csv manifest: pass a folder with "
            f"{_layout_hint(labels)} or a CSV file with path,label columns"
        )
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"CSV manifest {_show(root)} is not a regular file")
    return _load_csv(root, labels, canonical, space.ignored)


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format `load_dataset` reads `path` as when none is named (see `DATASET_FORMATS`).

    A ``.csv`` whose header has ``emotion`` and ``pixels`` is fer2013; a folder with
    ``EmoLabel/list_patition_label.txt`` is rafdb, one with ``annotations/*_exp.npy`` (or
    whose subfolders have them) affectnet, one with ``Labels/*Labels.csv`` and ``DataSet/``
    daisee; any other folder is an imagefolder and any other file a csv manifest.
    """
    from emoprobe.data import formats as adapters

    root = Path(os.path.abspath(os.fspath(path)))
    is_dir = root.is_dir()
    return adapters.detect(root, is_dir) or ("imagefolder" if is_dir else "csv")


def _load_folder(
    root: Path, labels: Sequence[str], canonical: _Canonical, ignored: _Ignored = _never
) -> Dataset:
    shown_root = _show(root)
    layout = f"expected {shown_root}/<label>/<image> with {_layout_hint(labels)}"
    entries = [e for e in _scandir_sorted(str(root)) if not e.name.startswith(".")]
    if not entries:
        raise DatasetError(f"dataset folder {shown_root} is empty: {layout}, or a CSV manifest")

    warnings: list[str] = []
    label_dirs: dict[str, list[os.DirEntry[str]]] = {}
    unknown: list[str] = []
    skipped: list[str] = []
    root_images: list[str] = []
    for entry in entries:
        is_dir = _entry_is_dir(entry)
        if is_dir:
            label = canonical(entry.name)
            if label is None and ignored(entry.name):
                skipped.append(entry.name)
            elif label is None:
                unknown.append(entry.name)
            else:
                label_dirs.setdefault(label, []).append(entry)
        elif canonical(entry.name) is not None and (is_dir is None or entry.is_symlink()):
            raise DatasetError(
                f"label folder {_show(entry.path)} is a broken symlink or a symlink loop: "
                "fix or remove it"
            )
        elif _is_image_name(entry.name):
            root_images.append(entry.name)

    if unknown:
        raise DatasetError(
            f"unknown label folder(s) {_quoted(unknown, 5)} in {shown_root}: the allowed labels "
            f"are {', '.join(labels)} (rename or remove those folders)"
            + _nested_hint(root, unknown, canonical)
        )
    if skipped:
        warnings.append(
            f"left out label folder(s) {_quoted(skipped, 5)} in {shown_root}: the task "
            "ignores those labels"
        )
    if root_images:
        warnings.append(
            f"ignored {len(root_images)} image(s) directly in {shown_root} "
            f"(first: '{_show(root_images[0])}'): images must sit in a label folder "
            f"{shown_root}/<label>/"
        )
    if not label_dirs:
        found = (
            f" (found {len(root_images)} image(s) directly in it: move them into label folders)"
            if root_images
            else ""
        )
        raise DatasetError(f"no images found under {shown_root}: {layout}{found}")

    items: list[Item] = []
    walk = _Walk()
    for label in sorted(label_dirs):
        dirs = label_dirs[label]
        if len(dirs) > 1:
            warnings.append(
                f"folders {_quoted([d.name for d in dirs], len(dirs))} in {shown_root} all map "
                f"to label '{label}'; their images are merged"
            )
        # The root counts as listed: a link back to it must not pull in the other labels.
        visited = {os.path.realpath(root)}
        for entry in dirs:
            before = len(items)
            walk.run(entry.path, _utf8(entry.name), label, visited, items)
            if len(items) == before:
                warnings.append(f"label folder '{_show(entry.name)}' has no images")
    if not items:
        raise DatasetError(f"no images found under {shown_root}: {layout}")

    warnings += walk.warnings()
    items = _sorted_unique(items, warnings)
    warnings += _missing_labels_warning(labels, items)
    return Dataset(root=root, format="imagefolder", items=items, warnings=warnings)


def _nested_hint(root: Path, unknown: Sequence[str], canonical: _Canonical) -> str:
    """A hint when the label folders seem to sit one level down (e.g. ROOT/train/happy)."""
    for name in unknown:
        try:
            with os.scandir(root / name) as it:
                if any(canonical(e.name) is not None and _entry_is_dir(e) for e in it):
                    nested = _show(root / name)
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
            for entry in _scandir_sorted(folder):
                name = entry.name
                if name.startswith(".") or name.casefold() in _JUNK_NAMES:
                    continue
                entry_rel = f"{rel}/{_utf8(name)}"
                is_dir = _entry_is_dir(entry)
                if is_dir:
                    real = os.path.realpath(entry.path)
                    if real in visited:
                        self.loops.append(entry_rel)
                    else:
                        visited.add(real)
                        subfolders.append((entry.path, entry_rel))
                    continue
                is_image = _is_image_name(name)
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
                f"listed (symlink loop or duplicate link): {_quoted(self.loops)}"
            )
        if self.unreadable:
            out.append(
                f"skipped {len(self.unreadable)} entry(ies) that cannot be read "
                f"(symlink loop or broken link): {_quoted(self.unreadable)}"
            )
        if self.special:
            out.append(
                f"skipped {len(self.special)} image name(s) that are not regular files "
                f"(FIFO, socket or device): {_quoted(self.special)}"
            )
        if self.other_suffixes:
            total = sum(self.other_suffixes.values())
            kinds = ", ".join(
                f"{suffix} x{n}" for suffix, n in sorted(self.other_suffixes.items())[:8]
            )
            out.append(
                f"ignored {total} file(s) without an image suffix ({kinds}; first: "
                f"'{_show(self.first_other or '')}'); images need one of "
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
            f"name: {_quoted(clashes)}"
        )
    return out


# ---------------------------------------------------------------------------------------
# CSV manifests


def _load_csv(
    csv_path: Path, labels: Sequence[str], canonical: _Canonical, ignored: _Ignored = _never
) -> Dataset:
    shown = _show(csv_path)
    root = csv_path.parent
    expected = "expected a header line path,label and one row per image"
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read CSV manifest {shown}: {_os_reason(exc)}") from None
    if not raw.strip():
        raise DatasetError(f"CSV manifest {shown} is empty: {expected}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"CSV manifest {shown} is not UTF-8 text (undecodable byte at offset {exc.start}): "
            "save it as UTF-8 CSV"
        ) from None
    if "\x00" in text:
        raise DatasetError(
            f"CSV manifest {shown} is not a text file (it contains NUL bytes): {expected}"
        )

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        path_col, label_col = _csv_columns(header, shown)
        skipped: Counter[str] = Counter()
        rows = _csv_rows(reader, path_col, label_col, shown, labels, canonical, ignored, skipped)
    except csv.Error as exc:
        raise DatasetError(
            f"CSV manifest {shown} is malformed at line {reader.line_num}: {_show(str(exc))}"
        ) from None
    if not rows and skipped:
        raise DatasetError(
            f"CSV manifest {shown} lists only images whose labels the task ignores "
            f"({_quoted(list(skipped), 5)}): the allowed labels are {', '.join(labels)}"
        )
    if not rows:
        raise DatasetError(f"CSV manifest {shown} has a header but no rows: {expected}")

    warnings: list[str] = _ignored_warning(skipped, shown)
    items = _csv_items(rows, root, shown, warnings)
    items.sort(key=lambda it: (it.label, it.relpath))
    warnings += _missing_labels_warning(labels, items)
    return Dataset(root=root, format="csv", items=items, warnings=warnings)


def _csv_columns(header: list[str], shown: str) -> tuple[int, int]:
    names = [cell.strip().casefold() for cell in header]
    missing = [col for col in ("path", "label") if col not in names]
    if not missing:
        return names.index("path"), names.index("label")
    columns = _quoted([cell.strip() for cell in header], 10) if header else "none"
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


def _csv_rows(
    reader: Any,  # a csv.reader: rows and .line_num
    path_col: int,
    label_col: int,
    shown: str,
    labels: Sequence[str],
    canonical: _Canonical,
    ignored: _Ignored = _never,
    skipped: Counter[str] | None = None,
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
        label = canonical(value)
        if label is None and ignored(value):
            if skipped is not None:
                skipped[value] += 1
            continue
        if label is None:
            unknown.setdefault(value, line)
            continue
        rows.append((line, path, label))
    if unknown:
        first_line = min(unknown.values())
        raise DatasetError(
            f"CSV manifest {shown} has unknown label(s) {_quoted(list(unknown), 5)} "
            f"(first on line {first_line}): the allowed labels are {', '.join(labels)}"
        )
    return rows


def _ignored_warning(skipped: Counter[str], where: str) -> list[str]:
    """One warning counting the images left out because the task ignores their labels."""
    if not skipped:
        return []
    counts = ", ".join(f"{n} '{_show(name)}'" for name, n in sorted(skipped.items()))
    return [
        f"left out {sum(skipped.values())} image(s) of {where} whose labels the task "
        f"ignores: {counts}"
    ]


def _csv_items(
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
        if pure.is_absolute():
            full = Path(pure)
            try:
                relpath = pure.relative_to(root).as_posix()
            except ValueError:
                relpath = pure.as_posix()
        else:
            full = root / pure
            relpath = pure.as_posix()
        if relpath in first_seen:
            first_line, first_label = first_seen[relpath]
            if first_label == label:
                same_label.append(f"'{_show(relpath)}' (lines {first_line} and {line})")
            else:
                conflicts.append(
                    f"'{_show(relpath)}' (line {first_line} '{first_label}', line {line} '{label}')"
                )
            continue
        first_seen[relpath] = (line, label)
        items.append(Item(full, relpath, label))
        if not _exists(full):
            missing.append((line, relpath))
        if not _is_image_name(relpath):
            not_images.append((line, relpath))

    if items and len(missing) == len(items):
        raise DatasetError(
            f"none of the {len(items)} files listed in CSV manifest {shown} exist (first: "
            f"line {missing[0][0]} '{_show(missing[0][1])}'): paths must be relative to the "
            f"CSV's folder {_show(root)}"
        )
    if same_label:
        warnings.append(
            f"{len(same_label)} path(s) listed twice with the same label in {shown}; kept "
            f"one of each: {', '.join(same_label[:_EXAMPLES])}"
            + (f" and {len(same_label) - _EXAMPLES} more" if len(same_label) > _EXAMPLES else "")
        )
    if conflicts:
        warnings.append(
            f"{len(conflicts)} path(s) listed twice with different labels in {shown}; kept "
            f"the first label of each: {', '.join(conflicts[:_EXAMPLES])}"
            + (f" and {len(conflicts) - _EXAMPLES} more" if len(conflicts) > _EXAMPLES else "")
        )
    if missing:
        warnings.append(
            f"{len(missing)} row(s) of {shown} point at files that do not exist (first: line "
            f"{missing[0][0]} '{_show(missing[0][1])}'); they will be reported as errors"
        )
    if not_images:
        warnings.append(
            f"{len(not_images)} row(s) of {shown} name files without an image suffix (first: "
            f"line {not_images[0][0]} '{_show(not_images[0][1])}'); they are kept and checked "
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


# ---------------------------------------------------------------------------------------
# Sampling


def _rng(seed: int, purpose: str) -> random.Random:
    """A generator that depends only on (seed, purpose): stable across runs and machines."""
    digest = hashlib.sha256(f"emoprobe-sample\0{seed}\0{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _shuffle(items: list[Item], rng: random.Random) -> None:
    """Fisher-Yates on `rng.random()` alone, whose sequence Python keeps stable across
    versions (unlike `shuffle`/`sample`, whose algorithms may change)."""
    for i in range(len(items) - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        items[i], items[j] = items[j], items[i]


def stratified_sample(
    items: Sequence[Item], per_class: int | None, seed: int
) -> tuple[list[Item], list[str]]:
    """Up to `per_class` items of each label, in a seeded shuffled order; and warnings.

    `per_class=None` keeps every item (still shuffled, so a run stopped early has a mix of
    classes). Each class is drawn with its own generator seeded from (seed, label), so adding
    or removing a class does not change the others' draws. A class with fewer items than
    asked gives all of them and a warning. The input order does not matter.
    """
    if per_class is not None and (
        isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1
    ):
        raise DatasetError(
            f"the per-class sample size must be a whole number >= 1 (got {per_class!r})"
        )
    by_label: dict[str, list[Item]] = {}
    for item in items:
        by_label.setdefault(item.label, []).append(item)

    sample: list[Item] = []
    warnings: list[str] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda it: (it.relpath, os.fsencode(it.path)))
        if per_class is None:
            sample += group
        elif len(group) <= per_class:
            if len(group) < per_class:
                warnings.append(
                    f"class '{label}' has only {len(group)} images; using all {len(group)}"
                )
            sample += group
        else:
            _shuffle(group, _rng(seed, f"class\0{label}"))
            sample += group[:per_class]
    _shuffle(sample, _rng(seed, "order"))
    return sample, warnings

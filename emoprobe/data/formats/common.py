"""What the dataset formats share: the task's label space, one-line messages, labelling.

Names from the file system go into messages through `show`, which escapes undecodable
bytes and control characters, so a hostile file name cannot break a line or a terminal.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emoprobe.data.records import Dataset, Item
from emoprobe.errors import DatasetError
from emoprobe.task.definition import Task

EXAMPLES = 3  # how many offending names a message spells out
BASIC_HINT = " (task examples/tasks/basic-emotions.toml maps them)"


@dataclass(frozen=True)
class LabelSpace:
    """What a loader needs of the task: its labels, the label of a dataset label (or None),
    and whether a dataset label's images are to be left out."""

    labels: tuple[str, ...]
    canonical: Callable[[str], str | None]
    ignored: Callable[[str], bool]

    @classmethod
    def of(cls, task: Task | Sequence[str]) -> LabelSpace:
        """The label space of a `Task`, or of a bare sequence of labels (matched ignoring
        case and surrounding space, ignoring nothing)."""
        if isinstance(task, Task):
            return cls(task.labels, task.canonical_label, task.ignores)
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

        return cls(labels, canonical, lambda name: False)


@dataclass(frozen=True)
class Format:
    """One dataset layout: its name, what it expects, how to recognise and load it."""

    name: str
    expects: str  # for the error when a path named as this format is not one
    looks_like: Callable[[Path, bool], bool]  # (path, is_dir) -> whether it is laid out so
    load: Callable[[Path, LabelSpace, Path | None], Dataset]  # (path, labels, cache_dir)


def utf8(name: str) -> str:
    """A file-system name as valid UTF-8 text: undecodable bytes become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def show(text: str | os.PathLike[str]) -> str:
    """`text` safe for a one-line message: undecodable bytes and control characters escaped."""
    text = utf8(os.fspath(text))
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def quoted(names: Sequence[str], limit: int = EXAMPLES) -> str:
    """The first `limit` names, quoted, and how many more there are."""
    shown = ", ".join(f"'{show(n)}'" for n in names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def first(names: Sequence[str]) -> str:
    return f"first: '{show(names[0])}'" if names else ""


def os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return exc.strerror or type(exc).__name__


def layout_hint(labels: Sequence[str]) -> str:
    return f"one folder per label ({', '.join(labels)})"


def missing_labels_warning(labels: Sequence[str], items: Sequence[Item]) -> list[str]:
    present = {item.label for item in items}
    missing = [label for label in labels if label not in present]
    if not missing:
        return []
    return [f"no images for label(s): {', '.join(missing)}; scores for them will be empty"]


def ignored_warning(skipped: Counter[str], where: str) -> list[str]:
    """One warning counting the images left out because the task ignores their labels."""
    if not skipped:
        return []
    counts = ", ".join(f"{n} '{show(name)}'" for name, n in sorted(skipped.items()))
    return [
        f"left out {sum(skipped.values())} image(s) of {where} whose labels the task "
        f"ignores: {counts}"
    ]


@dataclass
class Labeller:
    """Turns each image's dataset label into a task label, collecting what it cannot."""

    space: LabelSpace
    source: str  # "FER2013 CSV /path/fer2013.csv", for messages
    hint: str = ""
    unknown: dict[str, str] = field(default_factory=dict)  # shown label -> where first seen
    skipped: Counter[str] = field(default_factory=Counter)

    def label(self, name: str, code: str | None, where: str) -> str | None:
        """The task's label for an image whose dataset calls it `name` (code `code`)."""
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

    def finish(self, root: Path, format: Format, items: list[Item], warnings: list[str]) -> Dataset:
        """The dataset a loader read with this labeller; the one line why there is none."""
        if self.unknown:
            where = next(iter(self.unknown.values()))
            raise DatasetError(
                f"{self.source} has unknown label(s) {quoted(list(self.unknown), 7)} "
                f"(first: {where}): the allowed labels are "
                f"{', '.join(self.space.labels)}{self.hint}",
                setting="task" if self.hint else None,
            )
        if not items and self.skipped:
            raise DatasetError(
                f"{self.source} has no images the task keeps: it ignores all their labels "
                f"({quoted(sorted(self.skipped), 5)}); the allowed labels are "
                f"{', '.join(self.space.labels)}",
                path=root,
            )
        if not items:
            raise DatasetError(
                f"{self.source} has no usable images: format {format.name} expects "
                f"{format.expects}",
                path=root,
            )
        items.sort(key=lambda it: (it.label, it.relpath))
        warnings = ignored_warning(self.skipped, self.source) + warnings
        warnings += missing_labels_warning(self.space.labels, items)
        return Dataset(root=root, format=format.name, items=items, warnings=warnings)

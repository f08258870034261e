"""Study files: a matrix of models × answer modes × prompt variants, described once.

A study file is TOML, shown in the README and examples/studies/: the keys `_TOP_KEYS`
names, `[options]` and `[[variants]]` tables of `_VARIANT_KEYS`.

Every mistake is one `ConfigError` line naming the file, the line and the key. Pure
apart from reading the file and its task files.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emoprobe.data.dataset import DATASET_FORMATS
from emoprobe.errors import ConfigError, printable
from emoprobe.files import slug
from emoprobe.task.answers import ANSWER_MODES
from emoprobe.task.definition import PAPER_TASK, Task, load_task, read_toml, toml_type
from emoprobe.task.model_options import DEFAULT_OPTIONS, OPTION_TYPES, typed_option

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on Python 3.10 only
    pass

DEFAULT_VARIANT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Where = tuple[str | int, ...]


@dataclass(frozen=True)
class Variant:
    """One prompt variant: a name and the task it puts to the model."""

    name: str
    task: Task


@dataclass(frozen=True)
class Cell:
    """One run of the study: a model, an answer mode and a prompt variant."""

    model: str
    answer_mode: str
    variant: Variant

    @property
    def name(self) -> str:
        return f"{self.model} · {self.answer_mode} · {self.variant.name}"

    @property
    def folder(self) -> str:
        """The cell's run folder name under the study's folder (readable, unique)."""
        return f"{slug(self.model)}__{self.answer_mode}__{self.variant.name}"


@dataclass(frozen=True)
class StudySpec:
    """A study file, checked: what to run; where to run it comes from the caller."""

    path: Path
    name: str
    dataset: Path | None  # None: the bundled demo set
    dataset_format: str | None
    task: Task
    models: tuple[str, ...]
    answers: tuple[str, ...]
    variants: tuple[Variant, ...]
    per_class: int | None = None
    seed: int = 0
    max_side: int | None = None
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))

    @property
    def cells(self) -> list[Cell]:
        """Every combination, model by model (so one model is loaded at a time)."""
        return [
            Cell(model, answer, variant)
            for model in self.models
            for answer in self.answers
            for variant in self.variants
        ]


_TOP_KEYS = (
    "name",
    "dataset",
    "format",
    "task",
    "per_class",
    "seed",
    "max_side",
    "models",
    "answers",
    "options",
    "variants",
)
_VARIANT_KEYS = (
    "name",
    "task",
    "instruction",
    "context_header",
    "user_text",
    "definitions",
    "label_order",
)


def load_study(path: str | os.PathLike[str]) -> StudySpec:
    """The study a TOML file describes; any mistake is a one-line `ConfigError`."""
    file = Path(os.fspath(path))
    text, doc = read_toml(file, "study file")
    return _StudyReader(file, text, doc).spec()


class _StudyReader:
    """Reads one parsed study file; `fail` makes the one-line error with the line."""

    def __init__(self, path: Path, text: str, doc: dict[str, Any]) -> None:
        self.path = path
        self.shown = printable(os.fspath(path))
        self.lines = text.splitlines()
        self.doc = doc

    def fail(self, where: Where, message: str, *, value: str | None = None) -> ConfigError:
        line = line_of(self.lines, where)
        if line and value is not None:  # a list entry: the line that holds it
            line = _line_holding(self.lines, line, value)
        at = f", line {line}" if line else ""
        return ConfigError(f"study file {self.shown}{at}: {message}", path=self.path)

    def check_keys(self, table: dict[str, Any], known: Sequence[str], where: Where) -> None:
        for key in table:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                inside = f" in {_shown_where(where)}" if where else ""
                raise self.fail(
                    (*where, key),
                    f"unknown key {key!r}{inside}{hint}; the keys are {', '.join(known)}",
                )

    def string(self, value: Any, where: Where, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(
                where, f"{_shown_where(where)} must be a string, not {toml_type(value)}"
            )
        if not value.strip() and not empty_ok:
            raise self.fail(where, f"{_shown_where(where)} is empty")
        return value.strip()

    def name(self, value: Any, where: Where) -> str:
        text = self.string(value, where)
        if not _NAME.match(text):
            raise self.fail(
                where,
                f"{_shown_where(where)} {printable(text)!r} must be letters, digits, '.', "
                "'_' or '-' (it names a folder), at most 64",
            )
        return text

    def integer(self, value: Any, where: Where, least: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(
                where, f"{_shown_where(where)} must be a whole number, not {toml_type(value)}"
            )
        if least is not None and value < least:
            raise self.fail(where, f"{_shown_where(where)} must be at least {least} (got {value})")
        return value

    def strings(self, value: Any, where: Where) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, f"{_shown_where(where)} must be a non-empty list of strings")
        items = tuple(self.string(item, (*where, i)) for i, item in enumerate(value))
        for i, item in enumerate(items):
            if item in items[:i]:
                raise self.fail(
                    (*where, i), f"{_shown_where(where)} lists {item!r} twice", value=item
                )
        return items

    def task_file(self, value: Any, where: Where) -> Task:
        relative = self.string(value, where)
        try:
            return load_task(self.path.parent / relative)
        except ConfigError as error:
            raise self.fail(where, f"{_shown_where(where)}: {error}") from None

    def spec(self) -> StudySpec:
        doc = self.doc
        self.check_keys(doc, _TOP_KEYS, ())
        if "models" not in doc:
            raise self.fail((), "missing key 'models' (a list of model names)")
        name = self.name(doc.get("name", slug(self.path.stem, "-.") or "study"), ("name",))
        dataset = None
        if "dataset" in doc:
            relative = self.string(doc["dataset"], ("dataset",))
            dataset = Path(os.path.normpath(self.path.parent / relative))
            if not dataset.exists():
                raise self.fail(
                    ("dataset",),
                    f"dataset {printable(str(dataset))} does not exist (a path relative to "
                    "the study file)",
                )
        dataset_format = None
        if "format" in doc:
            dataset_format = self.string(doc["format"], ("format",))
            if dataset_format not in DATASET_FORMATS:
                raise self.fail(
                    ("format",),
                    f"format {dataset_format!r} is not one of {', '.join(DATASET_FORMATS)}",
                )
        task = self.task_file(doc["task"], ("task",)) if "task" in doc else PAPER_TASK
        models = self.strings(doc["models"], ("models",))
        answers = self.strings(doc.get("answers", ["text"]), ("answers",))
        for i, answer in enumerate(answers):
            if answer not in ANSWER_MODES:
                raise self.fail(
                    ("answers", i),
                    f"answer mode {answer!r} is not one of {', '.join(ANSWER_MODES)}",
                    value=answer,
                )

        def at_least(key: str, least: int) -> int | None:
            return self.integer(doc[key], (key,), least=least) if key in doc else None

        per_class, max_side = at_least("per_class", 1), at_least("max_side", 28)
        return StudySpec(
            path=self.path,
            name=name,
            dataset=dataset,
            dataset_format=dataset_format,
            task=task,
            models=models,
            answers=answers,
            variants=self.variants(task),
            per_class=per_class,
            seed=self.integer(doc.get("seed", 0), ("seed",)),
            max_side=max_side,
            options=self.options(),
        )

    def options(self) -> dict[str, Any]:
        table = self.doc.get("options", {})
        if not isinstance(table, dict):
            raise self.fail(
                ("options",), f"options must be a table ([options]), not {toml_type(table)}"
            )
        options = dict(DEFAULT_OPTIONS)
        for key, value in table.items():
            if key not in OPTION_TYPES:
                self.check_keys({key: value}, sorted(OPTION_TYPES), ("options",))
            try:
                options[key] = typed_option(key, value)
            except ValueError as error:
                raise self.fail(("options", key), f"option {key!r} {error}") from None
        return options

    def variants(self, task: Task) -> tuple[Variant, ...]:
        tables = self.doc.get("variants", [{"name": DEFAULT_VARIANT}])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(("variants",), "variants must be tables: write each as [[variants]]")
        if not tables:
            raise self.fail(("variants",), "variants is empty: give at least one [[variants]]")
        variants: list[Variant] = []
        for index, table in enumerate(tables):
            variant = self.variant(task, table, ("variants", index))
            if any(other.name == variant.name for other in variants):
                raise self.fail(
                    ("variants", index, "name"), f"two variants are named {variant.name!r}"
                )
            variants.append(variant)
        return tuple(variants)

    def variant(self, base: Task, table: dict[str, Any], where: Where) -> Variant:
        self.check_keys(table, _VARIANT_KEYS, where)
        if "name" not in table:
            raise self.fail(where, f"{_shown_where(where)} has no name")
        name = self.name(table["name"], (*where, "name"))
        task = self.task_file(table["task"], (*where, "task")) if "task" in table else base
        if sorted(task.labels) != sorted(base.labels):
            raise self.fail(
                (*where, "task"),
                f"variant {name!r} has the labels {', '.join(task.labels)}, the study's task "
                f"{', '.join(base.labels)}: every cell must be scored on the same labels",
            )
        changes: dict[str, Any] = {}
        for key in ("instruction", "context_header", "user_text"):
            if key in table:
                changes[key] = self.string(table[key], (*where, key), empty_ok=key != "instruction")
        if "definitions" in table:
            shown = table["definitions"]
            if not isinstance(shown, bool):
                raise self.fail(
                    (*where, "definitions"),
                    f"definitions must be true or false (show the class definitions), "
                    f"not {toml_type(shown)}",
                )
            changes["list_definitions"] = shown
        if "label_order" in table:
            order = self.label_order(task, table["label_order"], (*where, "label_order"))
            changes["definitions"] = {label: task.definitions[label] for label in order}
        return Variant(name, replace(task, **changes))

    def label_order(self, task: Task, value: Any, where: Where) -> tuple[str, ...]:
        if value == "reversed":
            return tuple(reversed(task.labels))
        if isinstance(value, str):
            raise self.fail(where, 'label_order must be "reversed" or a list of the labels')
        given = self.strings(value, where)
        order = tuple(task.canonical_label(label) or "" for label in given)
        if "" in order or sorted(order) != sorted(task.labels):
            raise self.fail(
                where,
                f"label_order must list each label once: {', '.join(task.labels)} "
                f"(got {', '.join(given)})",
            )
        return order


# -- where a key sits in the file -----------------------------------------------------
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def line_of(lines: Sequence[str], where: Where) -> int | None:
    """The 1-based line of the key (or table) at `where`, e.g. ("variants", 1, "name");
    a list entry's index points at its key's line. None where it cannot be found."""
    keys = [part for part in where if isinstance(part, str)]
    if not where:
        return None
    # the table the key sits in, and the key itself
    if len(where) >= 2 and isinstance(where[1], int) and where[0] == "variants":
        table: tuple[str | int, ...] = where[:2]
        key = where[2] if len(where) > 2 and isinstance(where[2], str) else None
    elif where[0] == "options" and len(where) > 1:
        table, key = ("options",), str(where[1])
    else:
        table, key = (), str(where[0])
    current: tuple[str | int, ...] = ()
    counts: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            name = header.group(2).strip().strip('"')
            if header.group(1) == "[[":
                counts[name] = counts.get(name, -1) + 1
                current = (name, counts[name])
            else:
                current = (name,)
            if key is None and current == table:
                return number
            continue
        if key is not None and current == table and _defines(line, key):
            return number
    if keys:  # e.g. a dotted key: the first line that names it
        for number, line in enumerate(lines, start=1):
            if _defines(line, keys[-1]) or re.search(rf"\b{re.escape(keys[-1])}\s*=", line):
                return number
    return None


def _line_holding(lines: Sequence[str], start: int, value: str) -> int:
    """The first line from `start` (1-based) that holds `value` as a quoted string."""
    quoted = (f'"{value}"', f"'{value}'")
    for number in range(start, len(lines) + 1):
        if any(text in lines[number - 1] for text in quoted):
            return number
    return start


def _defines(line: str, key: str) -> bool:
    name = re.escape(key)
    return re.match(rf"^\s*(\"{name}\"|'{name}'|{name})\s*=", line) is not None


def _shown_where(where: Where) -> str:
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += f".{part}" if text else part
    return text or "the file"

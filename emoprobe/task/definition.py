"""The classification task: labels, their definitions, the instruction, the prompt.

The paper's task (Wang, Yang & Chen: five academic emotions) is the built-in default
and this module is the only place its prompt text lives. Other tasks come from TOML files
(`load_task`); `examples/tasks/` ships three, one of them the paper's task again.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError, printable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

UNPARSED = "unparsed"

CONTEXT_HEADER = "The definitions of each category are as follows:"


@dataclass(frozen=True)
class Task:
    """A closed-set image classification task put to a VLM as one system prompt."""

    name: str
    instruction: str
    definitions: dict[str, str]
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    user_text: str = ""
    context_header: str = CONTEXT_HEADER  # "" leaves the header line out
    # dataset label -> task label (e.g. FER2013's "Happy" -> "happiness"), any case
    label_map: dict[str, str] = field(default_factory=dict)
    # dataset labels whose images are left out (e.g. AffectNet's "Contempt"), any case
    ignore_labels: tuple[str, ...] = ()
    list_definitions: bool = True  # False: the prompt is the instruction alone

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels in the order the definitions list them."""
        return tuple(self.definitions)

    @property
    def system_prompt(self) -> str:
        """Instruction, then the context header and one definition per label."""
        if not self.list_definitions:
            return self.instruction
        lines = [self.instruction, ""]
        if self.context_header:
            lines += [self.context_header, ""]
        lines += [f"- {label.capitalize()}: {text}" for label, text in self.definitions.items()]
        return "\n".join(lines)

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(self.system_prompt.encode("utf-8")).hexdigest()

    def canonical_label(self, name: str) -> str | None:
        """The task's label for a dataset label (itself, else through `label_map`), ignoring
        case and surrounding space; None when the task knows neither."""
        wanted = _key(name)
        for label in self.labels:
            if _key(label) == wanted:
                return label
        for source, target in self.label_map.items():
            if _key(source) == wanted:
                return next((lb for lb in self.labels if _key(lb) == _key(target)), None)
        return None

    def ignores(self, name: str) -> bool:
        """Whether images with this dataset label are to be left out (`ignore_labels`)."""
        wanted = _key(name)
        return any(_key(ignored) == wanted for ignored in self.ignore_labels)


def _key(text: str) -> str:
    return text.strip().casefold()


PAPER_TASK = Task(
    name="academic-emotion",
    instruction=(
        "The student in the attached image is watching a teaching video. Classify the "
        "student's expression into one of the following categories: confused, distracted, "
        "happy, tired, or neutral. Provide only the category as your answer, without any "
        "additional words."
    ),
    definitions={
        "confused": (
            "The student appears confused, such as frowning or showing signs of puzzlement."
        ),
        "distracted": (
            "The student is not focused on the screen, such as looking away, turning in "
            "another direction, or engaging in other activities."
        ),
        "happy": "The student is smiling, laughing, or showing signs of enjoyment.",
        "tired": "The student appears sleepy, yawning, or holding their face with their hand.",
        "neutral": "The student's expression does not fit into any of the above categories.",
    },
    # Words answers use for a label that the definitions describe; not in the prompt (the
    # paper's prompt is unchanged), only read by the parser. The report counts their use.
    synonyms={
        "confused": ("puzzled", "perplexed", "bewildered", "puzzlement"),
        "distracted": ("inattentive", "unfocused", "disengaged", "looking away"),
        "happy": ("smiling", "joyful", "cheerful", "laughing", "enjoyment", "amused"),
        "tired": ("fatigue", "fatigued", "sleepy", "drowsy", "yawning", "exhausted", "weary"),
        "neutral": ("expressionless", "impassive", "calm"),
    },
)


# ---------------------------------------------------------------------------------------
# Task files

_KEYS = (
    "name",
    "labels",
    "instruction",
    "context_header",
    "user_text",
    "definitions",
    "synonyms",
    "label_map",
    "ignore_labels",
)
_REQUIRED = ("name", "labels", "instruction", "definitions")


class _TaskFile:
    """Reads one task file's fields; `fail` makes the one-line ConfigError."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.shown = printable(os.fspath(path))
        self.doc = doc

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"task file {self.shown}: {message}")

    def string(
        self, key: str, value: Any, *, empty_ok: bool = False, one_line: bool = False
    ) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{key} must be a string (got {toml_type(value)})")
        value = value.strip()
        if not value and not empty_ok:
            raise self.fail(f"{key} is empty")
        if one_line and not value.isprintable():
            raise self.fail(f"{key} {value!r} must be one line of printable text")
        return str(value)

    def table(self, key: str) -> dict[str, Any]:
        value = self.doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"{key} must be a table ([{key}]), got {toml_type(value)}")
        return value

    def string_list(self, key: str, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(f"{key} must be a list of strings (got {toml_type(value)})")
        return [self.string(f"an entry of {key}", item, one_line=True) for item in value]


def toml_type(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def read_toml(path: str | os.PathLike[str], kind: str) -> tuple[str, dict[str, Any]]:
    """The text and the table of the TOML file `path`, a `kind` ("task file"); a file that
    cannot be read or parsed is a one-line `ConfigError` naming it."""
    file = Path(os.fspath(path))
    shown = printable(os.fspath(file))
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{kind} not found: {shown}", path=file) from None
    except IsADirectoryError:
        raise ConfigError(f"{kind} {shown} is a folder: pass a .toml file", path=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{kind} {shown} is not UTF-8 text (undecodable byte at offset {exc.start})",
            path=file,
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read {kind} {shown}: {reason}", path=file) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{kind} {shown} is not valid TOML: {reason}", path=file) from None


def load_task(path: str | os.PathLike[str]) -> Task:
    """The task a TOML file defines (the format: examples/tasks/ and the README); every
    mistake raises a one-line `ConfigError`."""
    return _task_from_doc(_TaskFile(Path(os.fspath(path)), read_toml(path, "task file")[1]))


def _task_from_doc(f: _TaskFile) -> Task:
    doc = f.doc
    unknown = [key for key in doc if key not in _KEYS]
    if unknown:
        raise f.fail(
            f"unknown key(s) {', '.join(map(repr, unknown))}: a task file has {', '.join(_KEYS)}"
        )
    missing = [key for key in _REQUIRED if key not in doc]
    if missing:
        raise f.fail(f"missing {', '.join(missing)} (required: {', '.join(_REQUIRED)})")

    name = f.string("name", doc["name"], one_line=True)
    labels = _labels(f, doc["labels"])
    by_key = {_key(label): label for label in labels}
    return Task(  # the fields are checked in this order: the first mistake is the one named
        name=name,
        instruction=f.string("instruction", doc["instruction"]),
        context_header=f.string(
            "context_header", doc.get("context_header", CONTEXT_HEADER), empty_ok=True
        ),
        user_text=f.string("user_text", doc.get("user_text", ""), empty_ok=True),
        definitions=_definitions(f, labels, by_key),
        synonyms=_synonyms(f, by_key),
        label_map=_label_map(f, by_key),
        ignore_labels=_ignore_labels(f, by_key),
    )


def _labels(f: _TaskFile, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise f.fail(f"labels must be a list of strings (got {toml_type(value)})")
    labels = [f.string("a label", item, one_line=True) for item in value]
    if len(labels) < 2:
        raise f.fail(f"labels must name at least two labels (got {len(labels)})")
    seen: dict[str, str] = {}
    for label in labels:
        if _key(label) == UNPARSED:
            raise f.fail(f"{label!r} cannot be a label: emoprobe uses it for unreadable answers")
        if "/" in label or "\\" in label:
            raise f.fail(f"label {label!r} must not hold a slash (labels name folders)")
        if _key(label) in seen:
            raise f.fail(
                f"duplicate label {label!r} (labels are matched ignoring case: "
                f"{seen[_key(label)]!r} is already one)"
            )
        seen[_key(label)] = label
    return labels


def _definitions(f: _TaskFile, labels: list[str], by_key: dict[str, str]) -> dict[str, str]:
    table = f.table("definitions")
    given: dict[str, str] = {}
    for key, text in table.items():
        label = by_key.get(_key(key))
        if label is None:
            raise f.fail(
                f"definition for unknown label {key!r}: the labels are {', '.join(labels)}"
            )
        if label in given:
            raise f.fail(f"two definitions for label {label!r}")
        given[label] = f.string(f"the definition of {label!r}", text)
    missing = [label for label in labels if label not in given]
    if missing:
        raise f.fail(
            f"no definition for label(s) {', '.join(map(repr, missing))}: add them under "
            "[definitions]"
        )
    return {label: given[label] for label in labels}


def _synonyms(f: _TaskFile, by_key: dict[str, str]) -> dict[str, tuple[str, ...]]:
    owner: dict[str, str] = {}  # synonym key -> label
    synonyms: dict[str, tuple[str, ...]] = {}
    for key, words in f.table("synonyms").items():
        label = by_key.get(_key(key))
        if label is None:
            raise f.fail(
                f"synonyms for unknown label {key!r}: the labels are {', '.join(by_key.values())}"
            )
        kept: list[str] = []
        for word in f.string_list(f"the synonyms of {label!r}", words):
            word_key = _key(word)
            if word_key == UNPARSED:
                raise f.fail(f"{word!r} cannot be a synonym: emoprobe uses it for unread answers")
            other = by_key.get(word_key)
            if other is not None and other != label:
                raise f.fail(f"synonym {word!r} of {label!r} is another label, {other!r}")
            if owner.get(word_key, label) != label:
                raise f.fail(
                    f"synonym {word!r} is given for both {owner[word_key]!r} and {label!r}"
                )
            if other is None and word_key not in owner:
                owner[word_key] = label
                kept.append(word)
        synonyms[label] = (*synonyms.get(label, ()), *kept)
    return {label: words for label, words in synonyms.items() if words}


def _label_map(f: _TaskFile, by_key: dict[str, str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for source, target in f.table("label_map").items():
        source_shown = source.strip()
        if not source_shown or not source_shown.isprintable():
            raise f.fail(f"label_map key {source!r} must be one line of printable text")
        target_text = f.string(f"label_map[{source_shown!r}]", target, one_line=True)
        label = by_key.get(_key(target_text))
        if label is None:
            raise f.fail(
                f"label_map maps {source_shown!r} onto unknown label {target_text!r}: the "
                f"labels are {', '.join(by_key.values())}"
            )
        itself = by_key.get(_key(source))
        if itself is not None and itself != label:
            raise f.fail(
                f"label_map maps label {itself!r} onto another label, {label!r}: a task's own "
                "labels always stand for themselves"
            )
        if _key(source) in seen:
            raise f.fail(
                f"label_map has {seen[_key(source)]!r} and {source_shown!r}: dataset labels are "
                "matched ignoring case"
            )
        seen[_key(source)] = source_shown
        if itself is None:
            mapping[source_shown] = label
    return mapping


def _ignore_labels(f: _TaskFile, by_key: Mapping[str, str]) -> tuple[str, ...]:
    mapped = {_key(source) for source in f.table("label_map")}
    ignored: list[str] = []
    for name in f.string_list("ignore_labels", f.doc.get("ignore_labels", [])):
        if _key(name) in by_key:
            raise f.fail(f"ignore_labels lists {name!r}, a label of the task")
        if _key(name) in mapped:
            raise f.fail(f"ignore_labels lists {name!r}, which label_map maps onto a label")
        if all(_key(name) != _key(other) for other in ignored):
            ignored.append(name)
    return tuple(ignored)

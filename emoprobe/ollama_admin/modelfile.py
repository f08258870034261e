"""The Modelfiles emoprobe writes: `FROM`, `SYSTEM` and `PARAMETER`s under a comment header.

Pure: text in, values out. emoprobe reads back only Modelfiles it rendered itself (perhaps
edited by hand), so the parser knows what `render` writes, with Ollama's rules for it
(`parser/parser.go`): one instruction per line, names case-insensitive; a line starting
with `#` is a comment; a value runs to the end of its line, trimmed, and a `"..."` or
`\"\"\"...\"\"\"` value may span lines; `PARAMETER stop` collects a list, other
parameters keep the last value, typed as Ollama's options are. Anything else is an
error naming its line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emoprobe.errors import ConfigError
from emoprobe.task.model_options import OPTION_TYPES

INSTRUCTIONS = ("from", "system", "parameter")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_NAME = re.compile(r"[A-Za-z0-9_]+")


class ModelfileError(ConfigError):
    """A Modelfile that cannot be parsed or written; the message names the line."""

    def __init__(self, message: str, line: int = 0, source: str = "Modelfile") -> None:
        self.line = line
        self.source = source
        self.reason = message
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {message}", path=source)


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile: what `POST /api/create` receives from it."""

    base: str
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def create_fields(self) -> dict[str, Any]:
        """The JSON fields of Ollama's CreateRequest: `from`, `system`, `parameters`."""
        fields: dict[str, Any] = {"from": self.base}
        if self.system is not None:
            fields["system"] = self.system
        if self.parameters:
            fields["parameters"] = dict(self.parameters)
        return fields


def unquote(text: str) -> tuple[str, bool]:
    """Ollama's unquote: strip `\"\"\"…\"\"\"` or `"…"`; False while a quote is still open."""
    for mark in ('"""', '"'):
        if text.startswith(mark):
            closed = len(text) >= 2 * len(mark) and text.endswith(mark)
            return (text[len(mark) : -len(mark)], True) if closed else ("", False)
    return text, True


def parse(text: str, *, source: str = "Modelfile") -> Modelfile:
    """Parse Modelfile text; `ModelfileError` (with a line number) when it is malformed."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found: dict[str, Any] = {"parameters": {}}
    index = 0
    while index < len(lines):
        start, line = index + 1, lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        word, rest = _first_word(line)
        command = word.lower()
        if command not in INSTRUCTIONS:
            expected = ", ".join(name.upper() for name in INSTRUCTIONS)
            raise ModelfileError(
                f"unknown instruction {word!r}: expected one of {expected}", start, source
            )
        key = ""
        if command == "parameter":
            key, rest = _first_word(rest)
            if not _NAME.fullmatch(key) or not rest.strip():
                raise ModelfileError(
                    "PARAMETER needs a name and a value, e.g. PARAMETER temperature 0",
                    start,
                    source,
                )
        raw = rest.strip()
        if not raw:
            raise ModelfileError(f"{word.upper()} needs a value", start, source)
        value, complete = unquote(raw)
        while not complete and index < len(lines):
            raw = f"{raw}\n{lines[index]}"
            index += 1
            value, complete = unquote(raw.strip())
        if not complete:
            quote = '"""' if raw.startswith('"""') else '"'
            raise ModelfileError(
                f"unterminated {quote} quote: the file ends before it closes", start, source
            )
        if command == "parameter":
            try:
                typed = parameter_value(key, value)
            except ValueError as error:
                raise ModelfileError(str(error), start, source) from None
            if key == "stop":
                found["parameters"].setdefault("stop", []).append(typed)
            else:
                found["parameters"][key] = typed
        else:
            found[command] = value
    if "from" not in found:
        raise ModelfileError("no FROM line: a Modelfile must name its base model", 0, source)
    return Modelfile(found["from"], found.get("system"), found["parameters"])


def _first_word(text: str) -> tuple[str, str]:
    word, *rest = re.split(r"[ \t]+", text.strip(" \t"), maxsplit=1)
    return word, rest[0] if rest else ""


def parameter_value(name: str, text: str) -> Any:
    """`text` typed as Ollama types parameter `name`; ValueError names what is wrong."""
    if name not in OPTION_TYPES:
        known = ", ".join(sorted(OPTION_TYPES))
        raise ValueError(f"unknown parameter {name!r}; known parameters: {known}")
    kind = OPTION_TYPES[name][0]
    if kind is str:
        return text
    if kind is bool:
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"parameter {name} must be true or false, not {text!r}")
    if kind is int:
        if _INT.fullmatch(text):
            return int(text)
        raise ValueError(f"parameter {name} must be an integer, not {text!r}")
    if _FLOAT.fullmatch(text) and math.isfinite(float(text)):
        return float(text)
    raise ValueError(f"parameter {name} must be a number, not {text!r}")


def format_parameter(value: Any) -> str:
    """A typed parameter value as a Modelfile writes it (`0`, `0.9`, `42`, `true`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelfileError(f"parameter value {value} is not a finite number")
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def render(
    base: str,
    *,
    system: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    comments: Sequence[str] = (),
) -> str:
    """A Modelfile: comment header, FROM, SYSTEM as a `\"\"\"` block, PARAMETERs.

    Checked on the way out: the text parses back to exactly these fields.
    """
    lines = [f"# {c}".rstrip() for c in comments]
    lines += [""] if lines else []
    lines.append(f"FROM {base}")
    if system is not None:
        lines += ["", f'SYSTEM """{system}"""']
    if parameters:
        lines.append("")
        for name, value in parameters.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {name} {format_parameter(item)}")
    text = "\n".join(lines) + "\n"
    try:
        parsed = parse(text)
    except ModelfileError as error:
        raise ModelfileError(f"cannot write this Modelfile: {error.reason}") from None
    if parsed != Modelfile(base, system, dict(parameters or {})):
        raise ModelfileError("cannot write this Modelfile so that it reads back unchanged")
    return text

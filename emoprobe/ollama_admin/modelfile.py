"""Ollama Modelfiles: parse them into the fields `POST /api/create` takes, and write them.

Pure: text in, values out. The grammar follows Ollama's own parser (`parser/parser.go`):

- one instruction per line, `NAME value`; names are case-insensitive (`FROM`, `from`);
  a line whose first non-blank character is `#` is a comment (there are no end-of-line
  comments: `FROM x # y` names the model `x # y`);
- a value runs to the end of its line and is trimmed; `"..."` keeps inner spaces and
  `\"\"\"...\"\"\"` blocks may span lines: a value ends at the first line break where
  the trimmed text read so far is complete (unquoted, or a closed quote);
- `PARAMETER name value` may repeat; `stop` collects a list, other names keep the last;
  values are typed as Ollama's `api.Options` types them (float, int, bool, list of str);
- `MESSAGE role text` with role system, user or assistant; at least one `FROM`.

Where Ollama is vaguer, this parser is stricter and says which line: an unknown
parameter, a value of the wrong type or an unterminated quote is an error with its line
number, not a failure at create time. Deprecated parameters are dropped with a warning,
as Ollama does. Line breaks may be LF, CRLF or CR; a UTF-8 or UTF-16 byte-order mark is
honoured by `decode`.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emoprobe.errors import ConfigError

INSTRUCTIONS = (
    "from",
    "parameter",
    "template",
    "system",
    "adapter",
    "draft",
    "license",
    "message",
    "renderer",
    "parser",
    "requires",
)
MESSAGE_ROLES = ("system", "user", "assistant")

#: Ollama's api.Options (and api.Runner) fields: name -> the type a value is parsed as.
PARAMETER_TYPES: dict[str, type] = {
    "num_ctx": int,
    "num_batch": int,
    "num_gpu": int,
    "main_gpu": int,
    "use_mmap": bool,
    "num_thread": int,
    "draft_num_predict": int,
    "num_keep": int,
    "seed": int,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "typical_p": float,
    "repeat_last_n": int,
    "temperature": float,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "stop": list,
}
#: Accepted by Ollama's parser, then dropped with a warning.
DEPRECATED_PARAMETERS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_SPACE = " \t"


class ModelfileError(ConfigError):
    """A Modelfile that cannot be parsed or written; the message names the line."""

    def __init__(self, message: str, line: int = 0, source: str = "Modelfile") -> None:
        self.line = line
        self.source = source
        self.reason = message
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Instruction:
    """One instruction as written: lower-case `command`, its `value`, and where it starts."""

    command: str
    value: str
    line: int
    key: str = ""  # the parameter's name, or the message's role


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile; the properties are what `POST /api/create` would receive."""

    instructions: tuple[Instruction, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def _last(self, command: str) -> str | None:
        values = [i.value for i in self.instructions if i.command == command]
        return values[-1] if values else None

    @property
    def base(self) -> str:
        """The model named by the last `FROM` (Ollama keeps the last one too)."""
        return self._last("from") or ""

    @property
    def system(self) -> str | None:
        return self._last("system")

    @property
    def template(self) -> str | None:
        return self._last("template")

    @property
    def licenses(self) -> list[str]:
        return [i.value for i in self.instructions if i.command == "license"]

    @property
    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": i.key, "content": i.value} for i in self.instructions if i.command == "message"
        ]

    def create_fields(self) -> dict[str, Any]:
        """The JSON fields of Ollama's CreateRequest (`from`, `system`, `parameters`, …).

        Only models named by tag can be sent this way: a `FROM` path, an `ADAPTER` or a
        `DRAFT` needs files uploaded as blobs first (`ollama create -f` does that).
        """
        for instruction in self.instructions:
            if instruction.command in ("adapter", "draft"):
                raise ModelfileError(
                    f"{instruction.command.upper()} needs local files uploaded as blobs, "
                    "which emoprobe does not do: use `ollama create -f`",
                    instruction.line,
                )
            if instruction.command == "from" and _looks_like_path(instruction.value):
                raise ModelfileError(
                    f"FROM {instruction.value} names a local file; emoprobe creates models "
                    "from library tags only: use `ollama create -f`",
                    instruction.line,
                )
        fields: dict[str, Any] = {"from": self.base}
        for name in ("template", "system", "renderer", "parser", "requires"):
            value = self._last(name)
            if value is not None:
                fields[name] = value
        if self.licenses:
            fields["license"] = self.licenses
        if self.parameters:
            fields["parameters"] = {
                k: list(v) if isinstance(v, list) else v for k, v in self.parameters.items()
            }
        if self.messages:
            fields["messages"] = self.messages
        return fields


# -- reading ---------------------------------------------------------------------------
def decode(data: bytes) -> str:
    """Bytes of a Modelfile as text: UTF-8, or UTF-16 when a byte-order mark says so."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def unquote(text: str) -> tuple[str, bool]:
    """Ollama's unquote: strip `\"\"\"…\"\"\"` or `"…"`; False while a quote is still open."""
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


def parse(text: str, *, source: str = "Modelfile") -> Modelfile:
    """Parse Modelfile text; `ModelfileError` (with a line number) when it is malformed."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    found: list[Instruction] = []
    state = "nil"
    buffer: list[str] = []
    line = start = 1
    command = key = ""

    def fail(message: str, at: int) -> ModelfileError:
        return ModelfileError(message, at, source)

    def finish_word(word: str) -> None:
        nonlocal state, command, key
        if state == "name":
            command = word.lower()
            if command not in INSTRUCTIONS:
                expected = ", ".join(name.upper() for name in INSTRUCTIONS)
                raise fail(f"unknown instruction {word!r}: expected one of {expected}", start)
            state = {"parameter": "parameter", "message": "role"}.get(command, "value")
        elif state == "parameter":
            key, state = word, "value"
        else:  # a message's role
            if word not in MESSAGE_ROLES:
                raise fail(f"MESSAGE role {word!r} must be system, user or assistant", start)
            key, state = word, "value"

    for char in text:
        if state == "nil":
            if char == "#":
                state = "comment"
            elif char not in _SPACE + "\n":
                state, start, command, key, buffer = "name", line, "", "", [char]
        elif state == "comment":
            if char == "\n":
                state = "nil"
        elif state in ("name", "parameter", "role"):
            allowed = char.isascii() and (
                char.isalpha() or (state == "parameter" and (char.isdigit() or char == "_"))
            )
            if allowed:
                buffer.append(char)
            elif char in _SPACE and (buffer or state == "name"):
                finish_word("".join(buffer))
                buffer = []
            elif char in _SPACE:
                pass  # spaces between PARAMETER/MESSAGE and the name or role
            elif char == "\n":
                raise fail(_missing_value(state, command, "".join(buffer)), start)
            else:
                what = {"name": "an instruction", "parameter": "a parameter name"}.get(
                    state, "a message role"
                )
                raise fail(f"unexpected {char!r} in {what}", line)
        else:  # value
            if char == "\n":
                value, complete = unquote("".join(buffer).strip())
                if complete:
                    found.append(Instruction(command, value, start, key))
                    state, buffer = "nil", []
                    line += 1
                    continue
                buffer.append(char)
            elif char in _SPACE or char.isprintable():
                buffer.append(char)
            # Ollama drops other unprintable characters; so does this parser.
        if char == "\n":
            line += 1

    if state == "value":
        raw = "".join(buffer).strip()
        value, complete = unquote(raw)
        if not complete:
            quote = '"""' if raw.startswith('"""') else '"'
            raise fail(f"unterminated {quote} quote: the file ends before it closes", start)
        found.append(Instruction(command, value, start, key))
    elif state in ("name", "parameter", "role"):
        raise fail(_missing_value(state, command, "".join(buffer)), start)

    if not any(i.command == "from" for i in found):
        raise ModelfileError("no FROM line: a Modelfile must name its base model", 0, source)
    for instruction in found:
        if instruction.command == "from" and not instruction.value.strip():
            raise fail("FROM needs a model name", instruction.line)
    parameters, warnings = _typed_parameters(found, source)
    return Modelfile(tuple(found), parameters, tuple(warnings))


def _missing_value(state: str, command: str, word: str) -> str:
    if state == "name" and word.lower() in ("parameter", "message"):
        state = "parameter" if word.lower() == "parameter" else "role"
    if state == "name":
        if word.lower() in INSTRUCTIONS:
            return f"{word.upper()} needs a value"
        return f"unknown instruction {word!r}"
    if state == "parameter":
        return "PARAMETER needs a name and a value, e.g. PARAMETER temperature 0"
    return "MESSAGE needs a role and a text, e.g. MESSAGE user Hello"


def _typed_parameters(
    found: Iterable[Instruction], source: str
) -> tuple[dict[str, Any], list[str]]:
    parameters: dict[str, Any] = {}
    warnings: list[str] = []
    for instruction in found:
        if instruction.command != "parameter":
            continue
        name = instruction.key
        if name in DEPRECATED_PARAMETERS:
            warnings.append(f"line {instruction.line}: parameter {name} is deprecated; ignored")
            continue
        try:
            value = parameter_value(name, instruction.value)
        except ValueError as error:
            raise ModelfileError(str(error), instruction.line, source) from None
        if name == "stop":
            parameters.setdefault("stop", []).append(value)
        else:
            parameters[name] = value
    return parameters, warnings


def parameter_value(name: str, text: str) -> Any:
    """`text` typed as Ollama types parameter `name`; ValueError names what is wrong."""
    kind = PARAMETER_TYPES.get(name)
    if kind is None:
        known = ", ".join(sorted(PARAMETER_TYPES))
        raise ValueError(f"unknown parameter {name!r}; known parameters: {known}")
    if kind is list:
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


def _looks_like_path(value: str) -> bool:
    lowered = value.lower()
    return (
        value.startswith(("/", "./", "../", "~", "\\", "."))
        or lowered.endswith((".gguf", ".bin", ".safetensors"))
        or bool(re.match(r"[a-zA-Z]:[\\/]", value))
    )


# -- writing ---------------------------------------------------------------------------
def quote(value: str, *, block: bool = False) -> str:
    """`value` written so that the parser reads it back unchanged (a `\"\"\"` block if asked).

    Raises ModelfileError when no quoting can carry it (e.g. it contains `\"\"\"` and
    must span lines, or holds characters the parser drops).
    """
    candidates = [f'"""{value}"""'] if block else [value, f'"{value}"', f'"""{value}"""']
    if not value:
        candidates = ['""'] if not block else candidates
    for candidate in candidates:
        if _reads_back(candidate) == value:
            return candidate
    raise ModelfileError(f"cannot write {value[:40]!r}… so that Ollama reads it back unchanged")


def _reads_back(written: str) -> str | None:
    try:
        parsed = parse(f"FROM x\nSYSTEM {written}\n")
    except ModelfileError:
        return None
    instructions = [i for i in parsed.instructions if i.command == "system"]
    return instructions[0].value if len(instructions) == 1 else None


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
    template: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    messages: Sequence[tuple[str, str]] = (),
    licenses: Sequence[str] = (),
    comments: Sequence[str] = (),
) -> str:
    """A Modelfile: comment header, FROM, SYSTEM and TEMPLATE as `\"\"\"` blocks, PARAMETERs.

    Checked on the way out: the text parses back to exactly these fields.
    """
    lines = [f"# {c}".rstrip() for c in comments]
    if lines:
        lines.append("")
    lines.append(f"FROM {quote(base)}")
    if system is not None:
        lines += ["", f"SYSTEM {quote(system, block=True)}"]
    if template is not None:
        lines += ["", f"TEMPLATE {quote(template, block=True)}"]
    if parameters:
        lines.append("")
        for name, value in parameters.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    parameter_value(name, item)  # an unknown name raises here
                    text = quote(item)
                else:
                    text = format_parameter(item)
                lines.append(f"PARAMETER {name} {text}")
    for licence in licenses:
        lines += ["", f"LICENSE {quote(licence, block=True)}"]
    if messages:
        lines.append("")
        lines += [f"MESSAGE {role} {quote(content)}" for role, content in messages]
    text = "\n".join(lines) + "\n"
    _check_round_trip(text, base, system, template, parameters or {}, messages, licenses)
    return text


def _check_round_trip(
    text: str,
    base: str,
    system: str | None,
    template: str | None,
    parameters: Mapping[str, Any],
    messages: Sequence[tuple[str, str]],
    licenses: Sequence[str],
) -> None:
    try:
        parsed = parse(text)
    except ModelfileError as error:
        raise ModelfileError(f"rendered Modelfile does not parse: {error.reason}") from None
    wanted_parameters = {
        name: [str(v) for v in value] if isinstance(value, list) else value
        for name, value in parameters.items()
    }
    checks = {
        "FROM": (parsed.base, base),
        "SYSTEM": (parsed.system, system),
        "TEMPLATE": (parsed.template, template),
        "PARAMETER": (parsed.parameters, wanted_parameters),
        "MESSAGE": (parsed.messages, [{"role": r, "content": c} for r, c in messages]),
        "LICENSE": (parsed.licenses, list(licenses)),
    }
    for what, (got, wanted) in checks.items():
        if got != wanted:
            raise ModelfileError(f"{what} would not read back unchanged; cannot write it")

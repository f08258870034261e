"""Sampling and runner options sent with every request, typed and validated.

Defaults make answers reproducible (temperature 0, a fixed seed) and cheap (a small
`num_predict`: a label is a few tokens). `--option KEY=VALUE` overrides them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from emoprobe.errors import ConfigError

DEFAULT_OPTIONS: dict[str, Any] = {"temperature": 0.0, "seed": 42, "num_predict": 32}
THINK_VALUES: tuple[bool | str, ...] = (True, False, "low", "medium", "high")


def _at_least(low: float) -> Callable[[float], bool]:
    return lambda value: value >= low


def _between(low: float, high: float) -> Callable[[float], bool]:
    return lambda value: low <= value <= high


# name: (type, check, what the check demands) — Ollama's documented request options.
OPTION_TYPES: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "temperature": (float, _at_least(0), ">= 0"),
    "seed": (int, _at_least(-(2**31)), "an integer"),
    "num_predict": (int, _at_least(-2), ">= -2 (-1 = unlimited)"),
    "num_ctx": (int, _at_least(1), ">= 1"),
    "num_batch": (int, _at_least(1), ">= 1"),
    "num_gpu": (int, _at_least(-1), ">= -1"),
    "num_thread": (int, _at_least(0), ">= 0"),
    "num_keep": (int, _at_least(-1), ">= -1"),
    "main_gpu": (int, _at_least(0), ">= 0"),
    "top_k": (int, _at_least(0), ">= 0"),
    "top_p": (float, _between(0, 1), "between 0 and 1"),
    "min_p": (float, _between(0, 1), "between 0 and 1"),
    "typical_p": (float, _between(0, 1), "between 0 and 1"),
    "repeat_last_n": (int, _at_least(-1), ">= -1"),
    "repeat_penalty": (float, _at_least(0), ">= 0"),
    "presence_penalty": (float, lambda v: True, "a number"),
    "frequency_penalty": (float, lambda v: True, "a number"),
    "use_mmap": (bool, lambda v: True, "true or false"),
    "stop": (str, lambda v: bool(v), "a non-empty string"),
    # Not a runner option: the request's `think` field (Ollama >= 0.9). Thinking models
    # get `think: false` unless this says otherwise (see `pipeline.probe.resolve_think`).
    "think": (str, lambda v: v in THINK_VALUES, "true, false, low, medium or high"),
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _convert(key: str, text: str) -> Any:
    kind, check, demand = OPTION_TYPES[key]
    value: Any
    try:
        if key == "think":
            lowered = text.lower()
            value = lowered in _TRUE if lowered in _TRUE | _FALSE else lowered
        elif kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            value = text.lower() in _TRUE
        elif kind is int:
            value = int(text)
        elif kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
        else:
            value = text
    except ValueError:
        raise ConfigError(
            f"option {key}={text!r}: {key} must be {kind.__name__} {demand}", setting="options"
        ) from None
    if not check(value):
        raise ConfigError(f"option {key}={text}: {key} must be {demand}", setting="options")
    return value


def parse_options(pairs: Iterable[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge `KEY=VALUE` strings over `base` (the defaults); `stop` may repeat."""
    options = dict(DEFAULT_OPTIONS if base is None else base)
    stops: list[str] = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"option {pair!r}: expected KEY=VALUE, e.g. temperature=0", setting="options"
            )
        if key not in OPTION_TYPES:
            known = ", ".join(sorted(OPTION_TYPES))
            raise ConfigError(
                f"option {key}: unknown option; known options: {known}", setting="options"
            )
        value = _convert(key, text if OPTION_TYPES[key][0] is str else text.strip())
        if key == "stop":
            stops.append(value)
        else:
            options[key] = value
    if stops:
        options["stop"] = stops
    return options


def typed_option(key: str, value: Any) -> Any:
    """A TOML-typed option value checked like `--option` (`stop`: a string or a list);
    ValueError saying what the option must be."""
    if key not in OPTION_TYPES:
        raise ValueError(f"unknown option; known options: {', '.join(sorted(OPTION_TYPES))}")
    kind, check, demand = OPTION_TYPES[key]
    values = value if key == "stop" and isinstance(value, list) else [value]
    for each in values:
        fits = (
            isinstance(each, bool)
            if kind is bool
            else isinstance(each, kind) or (kind is float and isinstance(each, int))
        )
        if not fits or (kind is not bool and isinstance(each, bool)):
            raise ValueError(f"must be {kind.__name__} {demand}")
        if kind is float and not math.isfinite(each):
            raise ValueError(f"must be a finite number {demand}")
        if not check(each):
            raise ValueError(f"must be {demand}")
    if key == "stop":
        return list(values)
    return float(value) if kind is float else value

"""Which weights a build's quantization changes, read from the tensors the server lists.

`/api/show` returns every tensor's name and type (since Ollama 0.6.1, 4bed73925). A
GGUF names vision-tower tensors `v.*` and projector tensors `mm.*` (llama.cpp's
convention, which Ollama's converters follow); the rest is the language model.

    summarize([...])  ->  WeightTypes(language="Q4_K (+Q6_K)", vision="F16")

An empty summary ("") means the server listed no tensors of that half: the report says
"unknown", never a guess from the tag.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VISION_PREFIXES = ("v.", "mm.")
_UNTELLING = frozenset({"F32"})  # norms, biases: never quantized
UNKNOWN = "unknown"


@dataclass(frozen=True)
class WeightTypes:
    """The tensor types of the language model and of the vision tower + projector."""

    language: str = ""
    vision: str = ""

    def changed_by_quantization(self) -> str:
        """One phrase: which half the quantization touched, from the types alone."""
        if not (self.language and self.vision):
            return UNKNOWN
        language, vision = _main(self.language), _main(self.vision)
        if _is_float(vision) and not _is_float(language):
            return f"the language model only ({language}); the vision tower stays {vision}"
        if language == vision:
            return f"language model and vision tower alike ({language})"
        return f"language model {language}, vision tower {vision}"


def summarize(tensors: Iterable[Mapping[str, Any]] | None) -> WeightTypes:
    """The types of `tensors` (name, type, ...), most weights first, per half."""
    counts: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    for tensor in tensors or ():
        name, kind = tensor.get("name"), tensor.get("type")
        if not (isinstance(name, str) and isinstance(kind, str) and kind):
            continue
        if kind.upper() not in _UNTELLING:
            counts[name.startswith(VISION_PREFIXES)][kind.upper()] += _elements(tensor.get("shape"))
    return WeightTypes(language=_describe(counts[False]), vision=_describe(counts[True]))


def _elements(shape: Any) -> int:
    dims = shape if isinstance(shape, list) else []
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        return 1
    return max(math.prod(dims), 1)


def _describe(counts: Counter[str]) -> str:
    if not counts:
        return ""
    kinds = [kind for kind, _ in counts.most_common()]
    return kinds[0] + (f" (+{', '.join(kinds[1:])})" if kinds[1:] else "")


def _main(text: str) -> str:
    return text.split(" ", 1)[0]


def _is_float(kind: str) -> bool:
    return kind in ("F16", "BF16", "F32")


def quantization_scope(language: str, vision: str) -> str:
    """`WeightTypes(language, vision).changed_by_quantization()`, "unknown (...)" if unsaid."""
    changed = WeightTypes(language, vision).changed_by_quantization()
    return "unknown (the server listed no tensor types)" if changed == UNKNOWN else changed

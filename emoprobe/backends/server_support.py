"""What each Ollama server version can serve: one table, read from the server's source.

Sources: github:ollama/ollama (tags named below; HEAD = fb3076099, 2026-08-21, which is
v0.33.0-rc2 plus commits) and the ollama/ollama issues named. "@tag" = first release
that has the fact.

The facts, each with its first release, commit and file, are the constants below.

Image tokens per family (prompt tokens one image costs, wrappers not counted):
  qwen2vl/qwen25vl: 28x28 pixels per token (patch 14, merge 2), smart resize;
    < 0.30 Ollama engine: 4..1,280 tokens (model/models/qwen25vl/process_image.go@v0.24.0);
    >= 0.30: 1,024..4,096 (floor: qwenVLServerArgs; ceiling: upstream llama.cpp's default,
    not in the Ollama tree, unverified).
  qwen3vl/qwen3vlmoe: 32x32 pixels per token (patch 16: the library GGUFs'
    qwen3vl.vision.patch_size, convert/convert_qwen3vl_test.go), NOT 28x28;
    < 0.30: 64..2,048 (model/models/qwen3vl/imageprocessor.go@v0.24.0, longest edge capped);
    >= 0.30: 1,024..16,384 (llama/compat/llama-ollama-compat.cpp: image_max_pixels 16777216).
  gemma3: 256 per image, fixed (mm_tokens_per_image, model/models/gemma3/model.go), plus 4
    wrapper tokens. mllama (< 0.30): 1 <|image|> token; the image enters by cross-attention.

Where the source differs from issue #14's notes:
  - There is no Ollama 0.25-0.29 release (only v0.25.0-rc0): mllama's way out is 0.24.0.
  - A bad `format` is a 500, not a 400: `invalid format: "\\"xml\\""; expected "json" or a
    valid JSON Schema object` is a plain error from the runner (llm/llama_server.go,
    llm/server.go@v0.13.0), which writeChatResponse answers with 500, after the model loaded.
  - Thinking by default is not new in 0.30 (0.12.4); #16184 sent `think: true` (gemma4:e4b).
  - A load with empty messages checks only the `completion` (and `thinking`) capability,
    not `vision`: a text-only model loads with 200 done_reason "load" (routes.go ChatHandler).
  - The two 404 texts: `model 'x' not found` (ChatHandler, model missing on disk) and
    `model "x" not found, try pulling it first` (handleScheduleError, blob gone at load).
  - Undecodable image bytes (>= 0.30): Ollama passes them to llama-server, whose 400 body is
    passed through raw as the error text (llm/llama_server.go statusErrorMessage):
    `{"error":{"code":400,"message":"Failed to load image or audio file",...}}`; the inner
    message is upstream llama.cpp's (seen in third-party reports, not in the Ollama tree).
  - /api/show lists `tensors` without `verbose` (which only keeps long model_info arrays).
  - Quantizing keeps vision towers at source precision from 0.32.7 (8713570d3).

A source build reports version 0.0.0 (version/version.go); it says nothing and parses as
unknown. Release candidates count as their release (v0.30.0-rc0 already had llama-server).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Version:
    """A server release, compared as (major, minor, patch)."""

    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


_V = Version

# -- the table: (first release, fact) -------------------------------------------------
SCHEMA_FORMAT_SINCE = _V(0, 5, 0)  # 630e7dc6f api/types.go, #7900
THINK_FIELD_SINCE = _V(0, 9, 0)  # 5f57b0ef4 api/types.go, #10584
THINK_LEVELS_SINCE = _V(0, 11, 0)  # fa7776fd2 api.ThinkValue
THINKS_BY_DEFAULT_SINCE = _V(0, 12, 4)  # 90d429f5a server/routes.go, #12533
LOGPROBS_SINCE = _V(0, 12, 11)  # 59241c5be api/types.go, #12899
LLAMA_SERVER_SINCE = _V(0, 30, 0)  # 9db4bdbad llm/llama_server.go, #16031
#: The last release that still loads mllama (v0.24.0; no 0.25-0.29 release exists).
LAST_MLLAMA_SERVER = _V(0, 24, 0)

#: Families the server cannot load at all, from which release (#16490, #16547, #18486).
_UNLOADABLE: tuple[tuple[Version, str], ...] = ((LLAMA_SERVER_SINCE, "mllama"),)

#: Families forced to one parallel request (server/sched.go, by the commit that added them).
_SINGLE_SLOT: tuple[tuple[Version, frozenset[str]], ...] = (
    (_V(0, 0, 0), frozenset({"mllama"})),  # checkMllamaModelFamily, sched.go@v0.6.8
    (_V(0, 12, 7), frozenset({"qwen3vl", "qwen3vlmoe"})),  # 7d25b9e19, #12665
    (_V(0, 15, 5), frozenset({"qwen3next", "lfm2", "lfm2moe"})),  # e36f389e8, #14103
    (_V(0, 17, 1), frozenset({"qwen35", "qwen35moe", "nemotron_h", "nemotron_h_moe"})),  # #14378
    (_V(0, 22, 0), frozenset({"nemotron_h_omni"})),  # 87288ced4, #15861
)

_QWEN_VL_FLOOR = 1024  # llm/llama_server.go qwenVLServerArgs, from 0.30.0


@dataclass(frozen=True)
class _PatchRule:
    """Smart resize to multiples of `pixels_per_token` px a side, within token bounds."""

    pixels_per_token: int
    min_tokens: int
    max_tokens: int


# (family) -> (rule before 0.30, rule from 0.30); an int is a fixed count per image.
_IMAGE_RULES: dict[str, tuple[_PatchRule | int | None, _PatchRule | int | None]] = {
    "qwen25vl": (_PatchRule(28, 4, 1280), _PatchRule(28, _QWEN_VL_FLOOR, 4096)),
    "qwen2vl": (_PatchRule(28, 4, 1280), _PatchRule(28, _QWEN_VL_FLOOR, 4096)),
    "qwen3vl": (_PatchRule(32, 64, 2048), _PatchRule(32, _QWEN_VL_FLOOR, 16384)),
    "qwen3vlmoe": (_PatchRule(32, 64, 2048), _PatchRule(32, _QWEN_VL_FLOOR, 16384)),
    "gemma3": (256, 256),
    "mllama": (1, None),
}


@dataclass(frozen=True)
class ServerSupport:
    """What one server version can serve (see the module docstring for sources)."""

    version: Version
    engine: str  # "ollama" (Go engine / llama.cpp runner) or "llama-server" (>= 0.30)
    schema_format: bool
    think_field: bool
    think_levels: bool
    thinks_by_default: bool
    logprobs: bool
    unloadable_families: frozenset[str]
    single_slot_families: frozenset[str]
    qwen_vl_min_image_tokens: int | None


_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]*)?")


def parse_server_version(text: object) -> Version | None:
    """'0.34.1', 'v0.30.0-rc3', '0.13' -> Version; anything else (and 0.0.0) -> None."""
    match = _VERSION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    version = Version(int(match[1]), int(match[2]), int(match[3] or 0))
    return None if version == Version(0, 0, 0) else version


def has_logprobs(backend: str, server_version: str) -> bool:
    """Whether a server returns token log-probabilities (Ollama only since 0.12.11)."""
    support = support_for_text(server_version)
    return backend != "ollama" or (support is not None and support.logprobs)


def support_for(version: Version) -> ServerSupport:
    """The table's row for `version`."""
    return ServerSupport(
        version=version,
        engine="llama-server" if version >= LLAMA_SERVER_SINCE else "ollama",
        schema_format=version >= SCHEMA_FORMAT_SINCE,
        think_field=version >= THINK_FIELD_SINCE,
        think_levels=version >= THINK_LEVELS_SINCE,
        thinks_by_default=version >= THINKS_BY_DEFAULT_SINCE,
        logprobs=version >= LOGPROBS_SINCE,
        unloadable_families=frozenset(f for since, f in _UNLOADABLE if version >= since),
        single_slot_families=frozenset().union(
            *(families for since, families in _SINGLE_SLOT if version >= since)
        ),
        qwen_vl_min_image_tokens=_QWEN_VL_FLOOR if version >= LLAMA_SERVER_SINCE else None,
    )


def can_serve(support: ServerSupport, family: str | None) -> str | None:
    """None when the server can load `family`; else one line: why, and the ways out."""
    if not family or family.lower() not in support.unloadable_families:
        return None
    return (
        f"Ollama {support.version} cannot run {family} models (from 0.30 Ollama runs them "
        f"through llama-server, which has no {family}); {WAYS_OUT}"
    )


#: The two ways out for a model a current Ollama cannot load (no 0.25-0.29 release exists).
WAYS_OUT = (
    f"run it on an Ollama {LAST_MLLAMA_SERVER.major}.{LAST_MLLAMA_SERVER.minor}.x server "
    "(the last before 0.30), or serve it with vLLM and use the openai backend"
)


_UNSERVABLE_RE = re.compile(
    r"unknown model architecture|error loading model architecture"
    r"|is no longer compatible with your version of ollama",
    re.IGNORECASE,
)


def is_unservable_load_error(message: object) -> bool:
    """Whether a server error says "this server cannot run this model" (never retry it), not
    that a runner merely crashed: "unknown model architecture", "no longer compatible"."""
    return isinstance(message, str) and _UNSERVABLE_RE.search(message) is not None


def parallel_slots(support: ServerSupport, family: str | None, requested: int) -> tuple[int, str]:
    """How many requests the server runs at once for `family`, and why (one phrase)."""
    wanted = max(int(requested), 1)
    if family and family.lower() in support.single_slot_families:
        return 1, (
            f"Ollama {support.version} runs {family} one request at a time "
            "whatever OLLAMA_NUM_PARALLEL says"
        )
    return wanted, (
        f"{wanted} as asked: Ollama {support.version} runs {family or 'this family'} in "
        "parallel, as many at once as its OLLAMA_NUM_PARALLEL allows (the rest wait in its "
        "queue)"
    )


def image_rule(family: str | None, support: ServerSupport) -> str:
    """The table's image-token rule for `family` on this server, in words ("" if none)."""
    rules = _IMAGE_RULES.get((family or "").lower())
    rule = None if rules is None else rules[support.engine == "llama-server"]
    if rule is None:
        return ""
    if isinstance(rule, int):
        return f"{rule} per image, whatever its size"
    side = rule.pixels_per_token
    return (
        f"one per {side}×{side} pixels after resizing, {rule.min_tokens:,} to "
        f"{rule.max_tokens:,} per image"
    )


def support_for_text(version: str | None) -> ServerSupport | None:
    """The table's row for a version string, or None when it is unparsable (or 0.0.0)."""
    parsed = parse_server_version(version)
    return None if parsed is None else support_for(parsed)


class UnknownImageRule(ValueError):
    """The table has no image-token rule for this family on this server."""


def image_tokens(family: str | None, width: int, height: int, support: ServerSupport) -> int:
    """Prompt tokens one width x height image costs `family` on this server;
    UnknownImageRule for a family the table has no rule for (or the server cannot load)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    rules = _IMAGE_RULES.get((family or "").lower())
    rule = None if rules is None else rules[support.engine == "llama-server"]
    if rule is None:
        raise UnknownImageRule(
            f"no image-token rule for family {family or '(none)'} on Ollama {support.version}"
        )
    if isinstance(rule, int):
        return rule
    return _smart_resize_tokens(width, height, rule)


def _smart_resize_tokens(width: int, height: int, rule: _PatchRule) -> int:
    """Qwen-VL's smart resize (process_image.go SmartResize), counted in merged tokens."""
    factor = rule.pixels_per_token
    min_pixels, max_pixels = rule.min_tokens * factor**2, rule.max_tokens * factor**2
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return (h_bar // factor) * (w_bar // factor)


def think_value(
    support: ServerSupport, capabilities: list[str] | None, wanted: bool = False
) -> bool | None:
    """The `think` to send: None (the server has no such field), else whether thinking is
    wanted (`false` harms no model); ValueError where the capabilities lack thinking."""
    if not support.think_field:
        return None
    if not wanted:
        return False
    if capabilities is not None and "thinking" not in capabilities:
        raise ValueError("this model cannot think (its capabilities lack thinking)")
    return True

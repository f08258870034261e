"""A test double of the Ollama HTTP server, behaving as a chosen server version.

It is a real HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length on whole replies,
chunked ``application/x-ndjson`` on streamed ones) so the official ``ollama`` client and
raw ``httpx`` talk to it exactly as to ``ollama serve``.  Status codes, ``{"error": ...}``
bodies and field names follow ``server/routes.go`` and ``api/types.go`` of ollama.

``OllamaDouble(version=...)`` picks the behaviour (default "0.13.0", what the existing
tests were written against).  Whatever the version: thinking-capable models think unless
``think: false`` (since 0.12.4), a string ``format`` other than "json" is refused (500
``invalid format: ...``), per-family forced single slots (server/sched.go), the
capability checks before a load, and both 404 texts.  From "0.30" (e.g. "0.34.1"), as the
llama-server engine: a schema ``format`` is enforced on the answer, undecodable image bytes
are refused (400, llama-server's body passed through), and mllama models fail to load
(500 ``unknown model architecture: 'mllama'``).  The double keeps its own facts (it is the
oracle the client's table in ``emoprobe.backends.server_support`` is tested against).

Typical use::

    with OllamaDouble(latency=0.01, answer=answer_by_image({sha: "happy"})) as double:
        client = ollama.Client(host=double.url, timeout=5)
        double.inject("http500", times=1)      # the next chat request fails with a 500
        ...
        assert double.faults_served == 1

Faults only touch ``POST /api/chat`` requests that carry messages and name an installed
model; everything else (list, show, pull, load, ...) always behaves.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import io
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BUSY_MESSAGE",
    "CURRENT_MODELS",
    "DEFAULT_LIBRARY",
    "DEFAULT_MODELS",
    "FAULT_KINDS",
    "ChatDoubleBase",
    "FaultRule",
    "ModelSpec",
    "NotOllamaServer",
    "OllamaDouble",
    "RequestRecord",
    "answer_by_image",
    "image_sha256s",
    "normalize_model_name",
]

# Exact messages of the real server (v0.13.0).
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_CRASH_MESSAGE = "llama runner process has terminated: exit status 2"
MIDSTREAM_MESSAGE = "an error was encountered while running the model: unexpected EOF"
PULL_MISSING_MESSAGE = "pull model manifest: file does not exist"
INVALID_NAME_MESSAGE = "invalid model name"
# From 0.30 (llama-server): #16490, #16547, #18486.
MLLAMA_LOAD_MESSAGE = (
    "llama-server process has terminated: exit status 1: error loading model: unknown "
    "model architecture: 'mllama'\nerror loading model: unknown model architecture: 'mllama'"
)
# llama-server's 400 body, passed through raw by llm/llama_server.go statusErrorMessage.
IMAGE_REJECTED_MESSAGE = (
    '{"error":{"code":400,"message":"Failed to load image or audio file",'
    '"type":"invalid_request_error"}}'
)

JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"
TEXT_TYPE = "text/plain"

FAULT_KINDS = frozenset(
    {
        "http500",  # 500 {"error": "llama runner process has terminated: exit status 2"}
        "busy503",  # 503 {"error": BUSY_MESSAGE}, answered at once without taking a slot
        "drop",  # the connection closes without any reply
        "error_midstream",  # streamed: 200, one content line, then {"error": ...}; else 500
        "malformed",  # 200 with a body that is not JSON
        "truncated",  # the connection closes part-way through the body
        "hang",  # never answers until clear_faults()/release_hung()/stop()
        "slow",  # answers normally after an extra delay (slow_seconds)
        "no_done",  # streamed: content lines, then a clean end without a done line
    }
)

_DEFAULT_KEEP_ALIVE_S = 300.0
_FOREVER = timedelta(days=106751)  # Go's time.Duration(math.MaxInt64), as `ollama ps` shows
_ALTERNATIVES = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted")

# Families server/sched.go forces to one parallel request, by the release that added them.
_SINGLE_SLOT_FAMILIES: tuple[tuple[tuple[int, int, int], frozenset[str]], ...] = (
    ((0, 0, 0), frozenset({"mllama"})),
    ((0, 12, 7), frozenset({"qwen3vl", "qwen3vlmoe"})),
    ((0, 15, 5), frozenset({"qwen3next", "lfm2", "lfm2moe"})),
    ((0, 17, 1), frozenset({"qwen35", "qwen35moe", "nemotron_h", "nemotron_h_moe"})),
    ((0, 22, 0), frozenset({"nemotron_h_omni"})),
)
_LLAMA_SERVER_SINCE = (0, 30, 0)  # 9db4bdbad: GGUF models run in upstream llama-server
_THINKS_BY_DEFAULT_SINCE = (0, 12, 4)  # 90d429f5a
_THINK_MAX_SINCE = (0, 30, 0)  # "max" is accepted at HEAD, not in 0.13


def _version_tuple(version: str) -> tuple[int, int, int]:
    """ "0.34.1" / "v0.30.0-rc2" / "0.13" -> (0, 34, 1); unparsable -> (0, 0, 0)."""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if not match:
        return (0, 0, 0)
    return (int(match[1]), int(match[2]), int(match[3] or 0))


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------
def normalize_model_name(name: str) -> str:
    """``llama3.2`` -> ``llama3.2:latest``; drops the default registry and namespace."""
    name = name.strip()
    for prefix in ("https://", "http://"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name.startswith("registry.ollama.ai/"):
        name = name[len("registry.ollama.ai/") :]
    if name.startswith("library/"):
        name = name[len("library/") :]
    if not name:
        return ""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _key(name: str) -> str:
    return normalize_model_name(name).lower()


def _fake_digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _parameter_count(parameter_size: str) -> int:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", parameter_size or "", re.IGNORECASE)
    if not match:
        return 0
    scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


@dataclass
class ModelSpec:
    """One model as the server knows it (installed, or fetchable from the library)."""

    name: str
    digest: str = ""  # 64 hex, no "sha256:" prefix (as /api/tags shows); derived if empty
    family: str = "llama"
    parameter_size: str = "8.0B"
    quantization_level: str = "Q4_K_M"
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    size: int = 4_920_000_000
    system: str = ""
    parameters: str = ""  # Modelfile style: "temperature 0\nseed 42"
    template: str = "{{ .Prompt }}"
    families: list[str] | None = None  # defaults to [family]
    parent_model: str = ""
    license: str = ""
    context_length: int = 4096  # what /api/ps reports for a loaded runner
    modified_at: float | None = None  # epoch seconds; "now" when None
    model_info: dict[str, Any] | None = None  # extra/overriding /api/show model_info keys
    tensors: list[dict[str, Any]] | None = None  # /api/show "tensors" (name, type, shape)
    blob_missing: bool = False  # listed, but its blob is gone: a load answers 404

    def __post_init__(self) -> None:
        self.name = normalize_model_name(self.name)
        if not self.digest:
            self.digest = _fake_digest("model", self.name)
        if self.families is None:
            self.families = [self.family]
        if self.modified_at is None:
            self.modified_at = time.time()
        self.capabilities = list(self.capabilities)

    @property
    def details(self) -> dict[str, Any]:
        return {
            "parent_model": self.parent_model,
            "format": "gguf",
            "family": self.family,
            "families": list(self.families or []),
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def renamed(self, name: str) -> ModelSpec:
        clone = copy.deepcopy(self)
        clone.name = normalize_model_name(name)
        clone.modified_at = time.time()
        return clone


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="qwen2.5vl:7b",
        family="qwen25vl",
        parameter_size="8.3B",
        quantization_level="Q4_K_M",
        capabilities=["completion", "vision"],
        size=5_969_245_856,
        parameters="temperature 0.0001",
        template="{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n",
        context_length=4096,
    ),
    ModelSpec(
        name="llama3.2-vision:11b",
        family="mllama",
        parameter_size="10.7B",
        quantization_level="Q4_K_M",
        capabilities=["completion", "vision"],
        size=7_816_589_186,
        parameters="temperature 0.6\ntop_p 0.9",
        template="{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    ModelSpec(
        name="llama3.2:3b",
        family="llama",
        parameter_size="3.2B",
        quantization_level="Q4_K_M",
        capabilities=["completion", "tools"],
        size=2_019_393_189,
        parameters='stop "<|start_header_id|>"\nstop "<|end_header_id|>"\nstop "<|eot_id|>"',
    ),
)

#: What /api/pull can fetch by default: the default models plus a few more vision models.
DEFAULT_LIBRARY: tuple[ModelSpec, ...] = (
    *DEFAULT_MODELS,
    ModelSpec(
        name="llava:7b",
        family="llama",
        families=["llama", "clip"],
        parameter_size="7B",
        quantization_level="Q4_0",
        capabilities=["completion", "vision"],
        size=4_733_363_377,
    ),
)


def _tensors(
    language: str,
    vision: str,
    *,
    embedding: int,
    vocab: int,
    ffn: int,
    kv: int,
    vision_embedding: int,
    patch: int,
) -> list[dict[str, Any]]:
    """A few representative /api/show tensors: language blocks quantized, vision tower not.

    llama.cpp's K-quants keep norms at F32 and put token_embd/output at Q6_K/Q4_K; Ollama
    keeps the vision tower (``v.*``) at source precision (commit 8713570d3, from 0.32.7).
    """
    output = "Q6_K" if language.startswith("Q4_K") else language
    tower = vision_embedding
    block = "Q4_K" if language.startswith("Q4_K") else language
    return [
        {"name": "token_embd.weight", "type": block, "shape": [embedding, vocab]},
        {"name": "blk.0.attn_norm.weight", "type": "F32", "shape": [embedding]},
        {"name": "blk.0.attn_q.weight", "type": block, "shape": [embedding, embedding]},
        {"name": "blk.0.attn_k.weight", "type": block, "shape": [embedding, kv]},
        {"name": "blk.0.attn_v.weight", "type": output, "shape": [embedding, kv]},
        {"name": "blk.0.ffn_down.weight", "type": output, "shape": [ffn, embedding]},
        {"name": "blk.0.ffn_up.weight", "type": block, "shape": [embedding, ffn]},
        {"name": "output_norm.weight", "type": "F32", "shape": [embedding]},
        {"name": "v.patch_embd.weight", "type": vision, "shape": [patch, patch, 3, tower]},
        {"name": "v.blk.0.attn_q.weight", "type": vision, "shape": [tower, tower]},
        {"name": "v.blk.0.ln1.weight", "type": "F32", "shape": [tower]},
    ]


# ollama.com/library/qwen3-vl blobs: general.architecture qwen3vl, patch 16, merge 2.
_QWEN3VL_INFO: dict[str, Any] = {
    "qwen3vl.attention.head_count": 32,
    "qwen3vl.attention.head_count_kv": 8,
    "qwen3vl.attention.key_length": 128,
    "qwen3vl.attention.value_length": 128,
    "qwen3vl.block_count": 36,
    "qwen3vl.context_length": 262144,
    "qwen3vl.embedding_length": 4096,
    "qwen3vl.feed_forward_length": 12288,
    "qwen3vl.rope.freq_base": 5000000,
    "qwen3vl.vision.attention.head_count": 16,
    "qwen3vl.vision.block_count": 27,
    "qwen3vl.vision.deepstack_visual_indexes": [8, 16, 24],
    "qwen3vl.vision.embedding_length": 1152,
    "qwen3vl.vision.image_mean": [0.5, 0.5, 0.5],
    "qwen3vl.vision.image_std": [0.5, 0.5, 0.5],
    "qwen3vl.vision.longest_edge": 16777216,
    "qwen3vl.vision.num_channels": 3,
    "qwen3vl.vision.patch_size": 16,
    "qwen3vl.vision.shortest_edge": 65536,
    "qwen3vl.vision.spatial_merge_size": 2,
    "qwen3vl.vision.temporal_patch_size": 2,
}


def _gemma3_info(
    blocks: int, embedding: int, ffn: int, heads: int, kv_heads: int
) -> dict[str, Any]:
    """gemma3.* keys as convert/convert_gemma3.go writes them (896 px, 256 tokens/image)."""
    return {
        "gemma3.attention.head_count": heads,
        "gemma3.attention.head_count_kv": kv_heads,
        "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256,
        "gemma3.attention.sliding_window": 1024,
        "gemma3.block_count": blocks,
        "gemma3.context_length": 131072,
        "gemma3.embedding_length": embedding,
        "gemma3.feed_forward_length": ffn,
        "gemma3.mm.tokens_per_image": 256,
        "gemma3.vision.attention.head_count": 16,
        "gemma3.vision.block_count": 27,
        "gemma3.vision.embedding_length": 1152,
        "gemma3.vision.feed_forward_length": 4304,
        "gemma3.vision.image_size": 896,
        "gemma3.vision.num_channels": 3,
        "gemma3.vision.patch_size": 14,
    }


_FILE_TYPES = {"Q4_K_M": 15, "Q8_0": 7, "F16": 1}  # ggml file types (fs/ggml)


def _qwen3vl(name: str, quant: str, size: int, thinking: bool) -> ModelSpec:
    capabilities = ["completion", "vision", "tools"] + (["thinking"] if thinking else [])
    return ModelSpec(
        name=name,
        family="qwen3vl",
        parameter_size="8.8B",
        quantization_level=quant,
        capabilities=capabilities,
        size=size,
        parameters="temperature 1\ntop_k 20\ntop_p 0.95",
        template="{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n",
        context_length=4096,
        model_info={"general.file_type": _FILE_TYPES[quant], **_QWEN3VL_INFO},
        tensors=_tensors(
            {"Q4_K_M": "Q4_K", "Q8_0": "Q8_0", "F16": "F16"}[quant],
            "F16",
            embedding=4096,
            vocab=151936,
            ffn=12288,
            kv=1024,
            vision_embedding=1152,
            patch=16,
        ),
    )


def _gemma3(name: str, quant: str, size: int, twelve: bool) -> ModelSpec:
    shape = (48, 3840, 15360, 16, 8) if twelve else (34, 2560, 10240, 8, 4)
    return ModelSpec(
        name=name,
        family="gemma3",
        parameter_size="12.2B" if twelve else "4.3B",
        quantization_level=quant,
        capabilities=["completion", "vision"],
        size=size,
        parameters='stop "<end_of_turn>"\ntemperature 1\ntop_k 64\ntop_p 0.95',
        template="{{- range .Messages }}<start_of_turn>{{ .Role }}\n{{ .Content }}<end_of_turn>\n"
        "{{ end }}<start_of_turn>model\n",
        context_length=4096,
        model_info={"general.file_type": _FILE_TYPES[quant], **_gemma3_info(*shape)},
        tensors=_tensors(
            {"Q4_K_M": "Q4_K", "Q8_0": "Q8_0", "F16": "F16"}[quant],
            "F16",
            embedding=shape[1],
            vocab=262208,
            ffn=shape[2],
            kv=shape[4] * 256,
            vision_embedding=1152,
            patch=14,
        ),
    )


#: Newer vision families beside the paper's two (Ollama library tags; qwen3-vl:8b thinks).
CURRENT_MODELS: tuple[ModelSpec, ...] = (
    _qwen3vl("qwen3-vl:8b", "Q4_K_M", 6_140_000_000, thinking=True),
    _qwen3vl("qwen3-vl:8b-instruct-q4_K_M", "Q4_K_M", 6_140_000_000, thinking=False),
    _qwen3vl("qwen3-vl:8b-instruct-q8_0", "Q8_0", 9_800_000_000, thinking=False),
    _qwen3vl("qwen3-vl:8b-instruct-bf16", "F16", 18_000_000_000, thinking=False),
    _gemma3("gemma3:4b", "Q4_K_M", 3_338_801_804, twelve=False),
    _gemma3("gemma3:4b-it-q4_K_M", "Q4_K_M", 3_338_801_804, twelve=False),
    _gemma3("gemma3:4b-it-q8_0", "Q8_0", 4_958_000_000, twelve=False),
    _gemma3("gemma3:4b-it-fp16", "F16", 8_600_000_000, twelve=False),
    _gemma3("gemma3:12b", "Q4_K_M", 8_149_190_253, twelve=True),
)

DEFAULT_LIBRARY = (*DEFAULT_LIBRARY, *CURRENT_MODELS)


# --------------------------------------------------------------------------------------
# answers
# --------------------------------------------------------------------------------------
def _decode_image(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return None


def image_sha256s(request_json: dict[str, Any]) -> list[str]:
    """sha256 hex of every image (base64-decoded) in the request's messages, in order."""
    digests: list[str] = []
    for message in request_json.get("messages") or []:
        if not isinstance(message, dict):
            continue
        for image in message.get("images") or []:
            data = _decode_image(image)
            if data is not None:
                digests.append(hashlib.sha256(data).hexdigest())
    return digests


def _request_content(request_json: dict[str, Any]) -> str:
    """What makes two chat requests the same question: a digest of their messages."""
    messages = json.dumps(request_json.get("messages"), sort_keys=True, default=str)
    return hashlib.sha256(messages.encode()).hexdigest()


def _last_image_sha(request_json: dict[str, Any]) -> str | None:
    for message in reversed(request_json.get("messages") or []):
        if isinstance(message, dict) and message.get("images"):
            data = _decode_image(message["images"][0])
            return None if data is None else hashlib.sha256(data).hexdigest()
    return None


def answer_by_image(
    mapping: dict[str, str],
    default: str = "neutral",
    *,
    image_sha: Callable[[dict[str, Any]], str | None] = _last_image_sha,
) -> Callable[[dict[str, Any]], str]:
    """An ``answer`` callable: sha256 hex of the last message's first image -> text.

    ``image_sha`` finds that image in a request body (Ollama's ``images`` by default;
    the OpenAI double passes its own finder for ``image_url`` content parts).
    """
    table = dict(mapping)

    def answer(request_json: dict[str, Any]) -> str:
        sha = image_sha(request_json)
        return table.get(sha, default) if sha else default

    return answer


def _default_answer(request_json: dict[str, Any]) -> str:
    return "neutral"


def _pseudo_tokens(text: str) -> list[str]:
    """Split text the way a BPE tokenizer roughly would: words keep their leading space."""
    tokens: list[str] = []
    for piece in re.findall(r"\s*\S+|\s+", text):
        while len(piece) > 5:
            tokens.append(piece[:4])
            piece = piece[4:]
        tokens.append(piece)
    return tokens


def _token_logprob(token: str, index: int) -> float:
    spread = int(hashlib.sha1(f"{index}:{token}".encode()).hexdigest()[:4], 16) % 400
    return -round(0.001 + spread / 1000, 6)


def _byte_ints(token: str) -> list[int] | None:
    return list(token.encode()) or None


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"token": token, "logprob": logprob}
    raw = _byte_ints(token)
    if raw:
        entry["bytes"] = raw
    return entry


def _logprobs(tokens: list[str], top: int) -> list[dict[str, Any]]:
    """api.Logprob entries: token, logprob, bytes, top_logprobs (only when top > 0)."""
    result = []
    for index, token in enumerate(tokens):
        chosen = _token_logprob(token, index)
        entry = _token_entry(token, chosen)
        if top > 0:
            alternatives = [_token_entry(token, chosen)]
            others = [word for word in _ALTERNATIVES if word != token.strip()]
            for rank, word in enumerate(others[: top - 1], start=1):
                alt = (" " + word) if token.startswith(" ") else word
                alternatives.append(_token_entry(alt, round(chosen - 1.25 * rank - 0.5, 6)))
            entry["top_logprobs"] = alternatives
        result.append(entry)
    return result


# --------------------------------------------------------------------------------------
# JSON and time as Go writes them
# --------------------------------------------------------------------------------------
def _go_json(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    # A lone surrogate (only a hostile answer holds one; Go would send U+FFFD) goes out
    # as the JSON escape it came as: valid JSON that no UTF-8 can hold.
    text = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode()


def _go_time(when: float | datetime | None = None) -> str:
    """RFC 3339 with nanoseconds and trailing zeros trimmed, like Go's time.Time JSON."""
    if when is None:
        nanos = time.time_ns()
        seconds, frac = divmod(nanos, 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    elif isinstance(when, datetime):
        moment = when.astimezone(timezone.utc)
        frac = moment.microsecond * 1000
        moment = moment.replace(microsecond=0)
    else:
        nanos = int(when * 1_000_000_000)
        seconds, frac = divmod(nanos, 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _go_json_error(raw: bytes, type_name: str) -> str | None:
    """None when raw is a JSON object; else the message gin's ShouldBindJSON would give."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return "invalid character looking for beginning of value"
    except json.JSONDecodeError as error:
        text = raw.decode("utf-8", "replace")
        if error.pos >= len(text.rstrip()):
            return "unexpected EOF"
        return f"invalid character {text[error.pos]!r} looking for beginning of value"
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(
            type(value), "number"
        )
        if kind == "null":
            return None
        return f"json: cannot unmarshal {kind} into Go value of type api.{type_name}"
    return None


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _keep_alive_seconds(value: Any) -> float | None:
    """api.Duration: a number is seconds, a string a Go duration; negative = forever."""
    if value is None:
        return _DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise ValueError(f"Unsupported type: '{type(value).__name__}'")
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    text = str(value).strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    parts = re.findall(r"([-+]?[\d.]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text.lstrip("+"):
        raise ValueError(f'time: missing unit in duration "{text}"')
    total = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    return None if total < 0 else total


def _format_parameters(parameters: str) -> str:
    """`show` prints parameters as Go's fmt "%-30s %#v": padded key, quoted strings."""
    lines = []
    for line in parameters.splitlines():
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?|true|false", value) or value.startswith('"'):
            shown = value
        else:
            shown = json.dumps(value)
        lines.append(f"{key:<30} {shown}")
    return "\n".join(lines)


def _parameters_text(parameters: Any) -> str:
    """CreateRequest.parameters (a JSON object) -> Modelfile-style lines."""
    if not isinstance(parameters, dict):
        return ""
    lines = []
    for key, value in parameters.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                lines.append(f"{key} {'true' if item else 'false'}")
            elif isinstance(item, (int, float)):
                number = int(item) if float(item).is_integer() else item
                lines.append(f"{key} {number}")
            else:
                lines.append(f"{key} {json.dumps(str(item))}")
    return "\n".join(lines)


def _merge_parameters(base: str, override: str) -> str:
    overridden = {line.split(" ", 1)[0] for line in override.splitlines() if line.strip()}
    kept = [line for line in base.splitlines() if line.split(" ", 1)[0] not in overridden]
    return "\n".join(line for line in [*kept, *override.splitlines()] if line.strip())


# --------------------------------------------------------------------------------------
# bookkeeping types
# --------------------------------------------------------------------------------------
@dataclass
class RequestRecord:
    """One HTTP request as the double saw it (times are time.monotonic())."""

    method: str
    path: str
    json: Any = None  # the parsed JSON body, or None
    arrived: float = 0.0
    finished: float | None = None
    status: int | None = None  # None: no reply was sent (drop, hang released by stop, ...)
    chat_index: int | None = None  # position in OllamaDouble.chat_requests
    fault: str | None = None
    peer: tuple[str, int] | None = None  # the client's (host, port): one per connection
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased


@dataclass
class FaultRule:
    """An injected fault; see OllamaDouble.inject()."""

    kind: str
    every: int | None = None
    times: int | None = None
    first: int | None = None
    on: frozenset[int] | None = None
    model: str | None = None
    message: str | None = None
    seconds: float | None = None
    per_request: int | None = None
    seen: int = 0  # matching chat requests this rule has looked at
    served: int = 0  # faults this rule has produced
    served_for: Counter[str] = field(default_factory=Counter)  # faults per request content

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.served >= self.times

    def _consider(
        self, index: int, model_key: str, content: str, key: Callable[[str], str] = _key
    ) -> bool:
        if self.model is not None and key(self.model) != model_key:
            return False
        self.seen += 1
        if self.exhausted:
            return False
        if self.every is not None and self.seen % self.every != 0:
            return False
        if self.first is not None and index >= self.first:
            return False
        if self.per_request is not None and self.served_for[content] >= self.per_request:
            return False
        return self.on is None or index in self.on


@dataclass
class _Loaded:
    spec: ModelSpec
    expires_at: datetime


class _Run:
    """State of one start()..stop() period of a server."""

    def __init__(self) -> None:
        self.stop = threading.Event()


class _Dropped(Exception):
    """Close the connection without (further) reply."""


# --------------------------------------------------------------------------------------
# the HTTP server plumbing shared by both servers
# --------------------------------------------------------------------------------------
class _TrackingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, owner: Any, run: _Run) -> None:
        self.owner = owner
        self.run = run
        self.connections: set[socket.socket] = set()
        self.handler_threads: set[threading.Thread] = set()
        self.track_lock = threading.Lock()
        self.loop_started = threading.Event()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def service_actions(self) -> None:
        self.loop_started.set()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{type(self.owner).__name__}-conn",
            daemon=True,
        )
        with self.track_lock:
            self.connections.add(request)
            self.handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.track_lock:
                self.connections.discard(request)
                self.handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (OSError, _Dropped)):
            return  # the peer went away, or stop() shut the connection
        self.owner._internal_error(traceback.format_exc())


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TrackingServer

    def setup(self) -> None:
        super().setup()
        # Go's net package sets TCP_NODELAY; without it Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Like Go's net/http: a Date header, no Server header.
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    raise _Dropped
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _complete(self) -> None:
        """Bookkeeping that must be done before the client can see the reply's end."""

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, *, length: int | None = None
    ) -> None:
        self._complete()
        self.send_response(status)
        if data or content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def _drop(self) -> None:
        """Close the connection now, whatever was (or was not) sent."""
        self._complete()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _ServerBase:
    """start()/stop()/url/port and the context-manager protocol."""

    _handler: type[_BaseHandler]

    def __init__(self) -> None:
        self.port = 0
        self._server: _TrackingServer | None = None
        self._run: _Run | None = None
        self._serve_thread: threading.Thread | None = None
        self._life_lock = threading.RLock()
        self.errors: list[str] = []  # tracebacks of bugs in the double itself

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._run is not None

    def start(self) -> _ServerBase:
        """Bind (the same port again after a stop()) and serve in a daemon thread."""
        with self._life_lock:
            if self._run is not None:
                return self
            run = _Run()
            server = _TrackingServer(("127.0.0.1", self.port), self._handler, self, run)
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"{type(self).__name__}-serve",
                daemon=True,
            )
            self._server, self._run, self._serve_thread = server, run, thread
            thread.start()
            server.loop_started.wait(5)
            return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving: release hung handlers, close the socket and every connection."""
        with self._life_lock:
            run, server, thread = self._run, self._server, self._serve_thread
            if run is None or server is None:
                return
            run.stop.set()
            self._on_stop()
            server.shutdown()
            server.server_close()
            self._run = self._server = self._serve_thread = None
            with server.track_lock:
                connections = list(server.connections)
                threads = list(server.handler_threads)
            for connection in connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            deadline = time.monotonic() + timeout
            for handler_thread in threads:
                if handler_thread is not threading.current_thread():
                    handler_thread.join(max(0.0, deadline - time.monotonic()))
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _on_stop(self) -> None:
        pass

    def _internal_error(self, text: str) -> None:
        self.errors.append(text)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# not Ollama
# --------------------------------------------------------------------------------------
class _HelloHandler(_BaseHandler):
    def _hello(self) -> None:
        self.server.owner.requests.append((self.command, self.path))
        try:
            self._read_body()
        except _Dropped:
            self.close_connection = True
            return
        self._send_bytes(200, b"<html>hello</html>", "text/html; charset=utf-8")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _hello


class NotOllamaServer(_ServerBase):
    """Some other web app on the port: 200 text/html "<html>hello</html>" everywhere."""

    _handler = _HelloHandler

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []


# --------------------------------------------------------------------------------------
# the chat doubles' shared handler: routes, request records, replies
# --------------------------------------------------------------------------------------
class _RecordingHandler(_BaseHandler):
    """Routes a request to a method by path and verb and records it on the double.

    Subclasses give ``_routes()`` ({path: {verb: method name}}), ``_encode`` (JSON as
    their server writes it) and the replies for an unknown path, a wrong verb and a bug
    in the double itself.
    """

    server: _TrackingServer
    json_type = JSON_TYPE

    @property
    def double(self) -> Any:
        return self.server.owner

    @property
    def run(self) -> _Run:
        return self.server.run

    def _routes(self) -> dict[str, dict[str, str]]:
        raise NotImplementedError

    def _encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _not_found(self) -> None:
        raise NotImplementedError

    def _not_allowed(self) -> None:
        raise NotImplementedError

    def _internal_failure(self) -> None:
        raise NotImplementedError

    def _dispatch(self) -> None:
        double = self.double
        path = urlsplit(self.path).path
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = double._begin(self.command, path, tuple(self.client_address[:2]), headers)
        self.record = record
        self.replied = False
        self._completed = False
        self._on_complete: list[Callable[[], None]] = []
        try:
            self.raw_body = self._read_body()
            route = self._routes().get(path)
            if route is None:
                self._not_found()
            elif self.command not in route:
                self._not_allowed()
            else:
                getattr(self, route[self.command])()
        except _Dropped:
            self._drop()
        except OSError:
            self.close_connection = True
        except Exception:
            double._internal_error(traceback.format_exc())
            if not self.replied:
                with contextlib.suppress(OSError):
                    self._internal_failure()
            else:
                self._drop()
        finally:
            self._complete()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch

    # -- replies -----------------------------------------------------------------------
    def _complete(self) -> None:
        # Runs before the last byte of a reply goes out, so that a client that has just
        # got its answer already sees the slot free and the stats up to date.
        if self._completed:
            return
        self._completed = True
        for callback in reversed(self._on_complete):
            callback()
        self.double._finish(self.record)

    def _json(self, status: int, value: Any) -> None:
        self.record.status = status
        self.replied = True
        self._send_bytes(status, self._encode(value), self.json_type)

    def _text(self, status: int, text: str) -> None:
        self.record.status = status
        self.replied = True
        self._send_bytes(status, text.encode(), TEXT_TYPE)

    def _empty(self, status: int = 200) -> None:
        self.record.status = status
        self.replied = True
        self._send_bytes(status, b"", "")


# --------------------------------------------------------------------------------------
# the Ollama double
# --------------------------------------------------------------------------------------
class _OllamaHandler(_RecordingHandler):
    @property
    def double(self) -> OllamaDouble:
        return self.server.owner

    def _routes(self) -> dict[str, dict[str, str]]:
        return _ROUTES

    def _encode(self, value: Any) -> bytes:
        return _go_json(value)

    def _not_found(self) -> None:
        self._text(404, "404 page not found")

    def _not_allowed(self) -> None:
        self._text(405, "405 method not allowed")

    def _internal_failure(self) -> None:
        self._json(500, {"error": "ollama double: internal error (see .errors)"})

    # -- replies -----------------------------------------------------------------------
    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _stream_start(self, status: int = 200) -> None:
        self.record.status = status
        self.replied = True
        self.send_response(status)
        self.send_header("Content-Type", NDJSON_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _line(self, value: Any, *, last: bool = False) -> None:
        if last:
            self._complete()
        self._chunk(_go_json(value) + b"\n")

    def _stream_end(self) -> None:
        self._complete()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _body(self, type_name: str) -> dict[str, Any] | None:
        """The JSON object body, or None after a 400 like gin's ShouldBindJSON gives."""
        if not self.raw_body.strip():
            self._error(400, "missing request body")
            return None
        problem = _go_json_error(self.raw_body, type_name)
        if problem:
            self._error(400, problem)
            return None
        body = json.loads(self.raw_body) or {}
        self.record.json = body
        return body

    # -- simple endpoints ----------------------------------------------------------------
    def _root(self) -> None:
        self.record.status = 200
        self.replied = True
        self._send_bytes(200, b"Ollama is running", "text/plain; charset=utf-8")

    def _version(self) -> None:
        self._json(200, {"version": self.double.version})

    def _tags(self) -> None:
        models = sorted(self.double._installed_specs(), key=lambda s: -(s.modified_at or 0))
        self._json(
            200,
            {
                "models": [
                    {
                        "name": spec.name,
                        "model": spec.name,
                        "modified_at": _go_time(spec.modified_at),
                        "size": spec.size,
                        "digest": spec.digest,
                        "details": spec.details,
                    }
                    for spec in models
                ]
            },
        )

    def _show(self) -> None:
        body = self._body("ShowRequest")
        if body is None:
            return
        requested = body.get("model") or body.get("name") or ""
        if not requested:
            self._error(400, "model is required")
            return
        spec = self.double._find(requested)
        if spec is None:
            self._error(404, f"model '{requested}' not found")
            return
        model_info: dict[str, Any] = {
            "general.architecture": spec.family,
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(spec.parameter_size),
            "general.quantization_version": 2,
            f"{spec.family}.context_length": 128000,
            f"{spec.family}.embedding_length": 4096,
        }
        if "vision" in spec.capabilities:
            model_info[f"{spec.family}.vision.block_count"] = 32
        model_info.update(copy.deepcopy(spec.model_info or {}))
        if body.get("verbose") is not True:
            # getModelData: without verbose, arrays longer than 5 come back empty.
            for key, value in model_info.items():
                if isinstance(value, list) and len(value) > 5:
                    model_info[key] = []
        response: dict[str, Any] = {
            "license": spec.license,
            "modelfile": self._modelfile(spec),
            "parameters": _format_parameters(spec.parameters),
            "template": spec.template,
        }
        if spec.system:
            response["system"] = spec.system
        response.update(
            {
                "details": spec.details,
                "model_info": model_info,
                # GetModelInfo fills tensors for every GGUF model since 0.6.1 (4bed73925).
                "tensors": copy.deepcopy(spec.tensors) if spec.tensors else None,
                "capabilities": list(spec.capabilities),
                "modified_at": _go_time(spec.modified_at),
            }
        )
        self._json(200, {k: v for k, v in response.items() if v not in ("", None, [])})

    @staticmethod
    def _modelfile(spec: ModelSpec) -> str:
        lines = [
            '# Modelfile generated by "ollama show"',
            "# To build a new Modelfile based on this, replace FROM with:",
            f"# FROM {spec.name}",
            "",
            f"FROM /root/.ollama/models/blobs/sha256-{_fake_digest('blob', spec.name)}",
            f'TEMPLATE """{spec.template}"""',
        ]
        if spec.system:
            lines.append(f'SYSTEM """{spec.system}"""')
        for line in spec.parameters.splitlines():
            if line.strip():
                lines.append(f"PARAMETER {line.strip()}")
        if spec.license:
            lines.append(f'LICENSE """{spec.license}"""')
        return "\n".join(lines) + "\n"

    def _ps(self) -> None:
        self._json(200, {"models": self.double._ps_entries()})

    def _delete(self) -> None:
        body = self._body("DeleteRequest")
        if body is None:
            return
        requested = body.get("model") or body.get("name") or ""
        if not requested:
            self._error(400, f"name {json.dumps(requested)} is invalid")
            return
        if not self.double._remove(requested):
            self._error(404, f"model '{requested}' not found")
            return
        self._empty(200)

    def _copy(self) -> None:
        body = self._body("CopyRequest")
        if body is None:
            return
        source, destination = body.get("source") or "", body.get("destination") or ""
        if not normalize_model_name(source):
            self._error(400, f"source {json.dumps(source)} is invalid")
            return
        if not normalize_model_name(destination):
            self._error(400, f"destination {json.dumps(destination)} is invalid")
            return
        spec = self.double._find(source)
        if spec is None:
            self._error(404, f"model {json.dumps(source)} not found")
            return
        self.double._install(spec.renamed(destination))
        self._empty(200)

    # -- pull and create ---------------------------------------------------------------
    def _progress(self, body: dict[str, Any], produce: Callable[[Callable], Any]) -> None:
        """Stream (or, with stream false, collect) ProgressResponses as the real server."""
        streamed = body.get("stream", True) is not False
        lines: list[dict[str, Any]] = []
        started = False

        def emit(status: dict[str, Any]) -> None:
            nonlocal started
            if streamed:
                if not started:
                    self._stream_start(200)
                    started = True
                self._line(status)
            else:
                lines.append(status)

        failure = produce(emit)
        if failure is not None:
            message, status = failure if isinstance(failure, tuple) else (failure, 500)
            if streamed and started:
                self._line({"error": message}, last=True)
                self._stream_end()
            else:
                self._error(status, message)
            return
        if streamed:
            if not started:
                self._stream_start(200)
            self._stream_end()
        else:
            self._json(200, lines[-1] if lines else {"status": "success"})

    def _pull_steps(self, name: str, emit: Callable[[dict[str, Any]], None]) -> str | None:
        emit({"status": "pulling manifest"})
        spec = self.double._library_find(name)
        if spec is None:
            return PULL_MISSING_MESSAGE
        for digest, size in _layers(spec):
            for fraction in (0.0, 0.34, 0.67, 1.0):
                if self.run.stop.is_set():
                    raise _Dropped
                progress: dict[str, Any] = {
                    "status": f"pulling {digest[:12]}",
                    "digest": f"sha256:{digest}",
                    "total": size,
                }
                completed = int(size * fraction)
                if completed:
                    progress["completed"] = completed
                emit(progress)
        emit({"status": "verifying sha256 digest"})
        emit({"status": "writing manifest"})
        self.double._install(spec.renamed(name))
        emit({"status": "success"})
        return None

    def _pull(self) -> None:
        body = self._body("PullRequest")
        if body is None:
            return
        name = normalize_model_name(str(body.get("model") or body.get("name") or ""))
        if not name:
            self._error(400, INVALID_NAME_MESSAGE)
            return
        self._progress(body, lambda emit: self._pull_steps(name, emit))

    def _create(self) -> None:
        body = self._body("CreateRequest")
        if body is None:
            return
        name = normalize_model_name(str(body.get("model") or body.get("name") or ""))
        if not name:
            self._error(400, INVALID_NAME_MESSAGE)
            return

        def steps(emit: Callable[[dict[str, Any]], None]) -> str | tuple[str, int] | None:
            source = body.get("from") or ""
            if not source:
                if body.get("files"):
                    return ("the ollama double cannot create models from files", 400)
                return ("neither 'from' or 'files' was specified", 400)
            base = self.double._find(source)
            if base is None:
                failure = self._pull_steps(normalize_model_name(source), emit)
                if failure is not None:
                    return failure
                base = self.double._find(source)
                assert base is not None
            created = base.renamed(name)
            created.parent_model = base.name
            for digest, _size in _layers(base):
                emit({"status": f"using existing layer sha256:{digest}"})
            if body.get("template"):
                created.template = str(body["template"])
            if body.get("system"):
                created.system = str(body["system"])
            if body.get("license"):
                licence = body["license"]
                created.license = "\n".join(licence) if isinstance(licence, list) else licence
            if body.get("parameters"):
                created.parameters = _merge_parameters(
                    base.parameters, _parameters_text(body["parameters"])
                )
            for part in ("template", "system", "license", "parameters"):
                if body.get(part):
                    layer = _fake_digest(part, name, json.dumps(body[part], sort_keys=True))
                    emit({"status": f"creating new layer sha256:{layer}"})
            created.digest = _fake_digest(
                "created", name, base.digest, created.system, created.parameters, created.template
            )
            emit({"status": "writing manifest"})
            self.double._install(created)
            emit({"status": "success"})
            return None

        self._progress(body, steps)

    # -- chat ----------------------------------------------------------------------------
    def _chat(self) -> None:
        double = self.double
        body = self._body("ChatRequest")
        if body is None:
            return
        think_problem = double._think_problem(body.get("think", None), "think" in body)
        if think_problem:  # api.ThinkValue.UnmarshalJSON fails inside ShouldBindJSON
            self._error(400, think_problem)
            return
        messages = body.get("messages") or []
        chat_index = double._register_chat(body, self.record) if messages else None

        top = body.get("top_logprobs") or 0
        if not isinstance(top, int) or top < 0 or top > 20:
            self._error(400, "top_logprobs must be between 0 and 20")
            return
        requested = body.get("model")
        if not isinstance(requested, str) or not normalize_model_name(requested):
            self._error(400, "model is required")
            return
        spec = double._find(requested)
        if spec is None:
            self._error(404, f"model '{requested}' not found")
            return
        try:
            keep_alive = _keep_alive_seconds(body.get("keep_alive"))
        except ValueError as error:
            self._error(400, str(error))
            return
        if not messages and keep_alive == 0:
            double._unload(spec)
            self._load_reply(requested, "unload")
            return

        # ChatHandler checks capabilities before scheduling a runner, messages or not:
        # thinking first, then completion (scheduleRunner); vision is never checked.
        think = body.get("think")
        if think not in (None, False) and "thinking" not in spec.capabilities:
            self._error(400, f"{json.dumps(requested)} does not support thinking")
            return
        if spec.capabilities and "completion" not in spec.capabilities:
            # (a server too old to list capabilities, spec.capabilities == [], checks none)
            self._error(400, f"{json.dumps(requested)} does not support chat")
            return
        if spec.blob_missing:  # the scheduler meets os.ErrNotExist: handleScheduleError
            self._error(404, f"model {json.dumps(requested)} not found, try pulling it first")
            return
        if double.llama_server and "mllama" in (spec.families or [spec.family]):
            if not double._is_loaded(spec) and double.load_latency > 0:
                self.run.stop.wait(double.load_latency)
            self._error(500, MLLAMA_LOAD_MESSAGE)
            return

        if not messages:
            if not double._is_loaded(spec) and double.load_latency > 0:
                self.run.stop.wait(double.load_latency)
            double._load(spec, keep_alive)
            self._load_reply(requested, "load")
            return

        assert chat_index is not None
        double._chat_started()
        self._on_complete.append(lambda: double._chat_finished(self.record))
        self._chat_with_messages(body, spec, requested, keep_alive, chat_index)

    def _load_reply(self, requested: str, reason: str) -> None:
        self._json(
            200,
            {
                "model": requested,
                "created_at": _go_time(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": reason,
            },
        )

    def _chat_with_messages(
        self,
        body: dict[str, Any],
        spec: ModelSpec,
        requested: str,
        keep_alive: float | None,
        chat_index: int,
    ) -> None:
        double, run = self.double, self.run
        arrived = time.monotonic()
        rule = double._pick_fault(chat_index, spec.name, body)
        kind = rule.kind if rule else None
        self.record.fault = kind
        streamed = body.get("stream", True) is not False

        if kind == "busy503":
            self._error(503, BUSY_MESSAGE)
            return
        if kind == "hang" and not double._hang(run):
            raise _Dropped

        slot = double._acquire_slot(run, double.slots_for(spec))
        if slot is None:  # the queue is full
            self._error(503, BUSY_MESSAGE)
            return
        if slot is False:  # stopping
            raise _Dropped
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                double._release_slot()
                if keep_alive == 0:
                    double._unload(spec)

        self._on_complete.append(release)
        try:
            was_loaded = double._is_loaded(spec)
            if not was_loaded and double.load_latency > 0 and run.stop.wait(double.load_latency):
                raise _Dropped
            double._load(spec, keep_alive)
            loaded_at = time.monotonic()
            delay = double.latency
            if kind == "slow":
                delay += rule.seconds if rule and rule.seconds is not None else double.slow_seconds
            if delay > 0 and run.stop.wait(delay):
                raise _Dropped
            if self._fail_before_answer(kind, rule, requested, streamed):
                return
            self._answer(body, spec, requested, streamed, kind, rule, arrived, loaded_at)
        finally:
            release()

    def _fail_before_answer(
        self, kind: str | None, rule: FaultRule | None, requested: str, streamed: bool
    ) -> bool:
        message = rule.message if rule else None
        if kind == "http500":
            self._error(500, message or RUNNER_CRASH_MESSAGE)
            return True
        if kind == "drop":
            raise _Dropped
        if kind == "malformed":
            garbage = (message or "upstream proxy error: <html>502 Bad Gateway</html>").encode()
            if streamed:
                self._stream_start(200)
                self._chunk(garbage + b"\n")
                self._stream_end()
            else:
                self.record.status = 200
                self.replied = True
                self._send_bytes(200, garbage, JSON_TYPE)
            return True
        if kind == "error_midstream" and not streamed:
            # writeChatResponse turns an error during generation into a 500 when not streaming.
            self._error(500, message or MIDSTREAM_MESSAGE)
            return True
        return False

    def _answer(
        self,
        body: dict[str, Any],
        spec: ModelSpec,
        requested: str,
        streamed: bool,
        kind: str | None,
        rule: FaultRule | None,
        arrived: float,
        loaded_at: float,
    ) -> None:
        double = self.double
        if spec.family == "mllama" and any(
            len(m.get("images") or []) > 1 for m in body["messages"] if isinstance(m, dict)
        ):
            self._error(
                500, "this model only supports one image while more than one image requested"
            )
            return
        fmt = body.get("format")
        format_problem = _format_problem(fmt)
        if format_problem:  # the runner's Completion refuses it; writeChatResponse: 500
            self._error(500, format_problem)
            return
        if double.llama_server and not all(
            _decodable_image(_decode_image(image))
            for m in body["messages"]
            if isinstance(m, dict)
            for image in m.get("images") or []
        ):
            self._error(400, IMAGE_REJECTED_MESSAGE)
            return
        try:
            text = double.answer(body)
        except Exception as error:
            double._internal_error(traceback.format_exc())
            self._error(500, f"ollama double: answer callable failed: {error!r}")
            return
        text = "" if text is None else str(text)
        if double.llama_server and isinstance(fmt, dict):
            text = _go_json(_conform(fmt, text)).decode()  # the grammar constrains the output
        done_reason = "stop"
        options = body.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        thinking = _thinking_text(text) if double._thinks(spec, body.get("think")) else ""
        thought = thinking.split()
        if isinstance(limit, int) and 0 < limit <= len(thought):
            # #16184: every token went to thinking; content stays empty.
            thinking, text, done_reason = " ".join(thought[:limit]), "", "length"
        else:
            if isinstance(limit, int) and limit > 0:
                limit -= len(thought)
            words = text.split()
            if isinstance(limit, int) and 0 < limit < len(words):
                text = " ".join(words[:limit])
                done_reason = "length"
        tokens = _pseudo_tokens(text)
        thinking_tokens = _pseudo_tokens(thinking)
        top = body.get("top_logprobs") or 0
        logprobs = _logprobs(tokens, top) if body.get("logprobs") else None

        prompt_chars = sum(
            len(str(m.get("content") or "")) for m in body["messages"] if isinstance(m, dict)
        )
        prompt_eval_count = (
            12
            + prompt_chars // 4
            + sum(
                double.image_token_count(spec, _decode_image(image))
                for m in body["messages"]
                if isinstance(m, dict)
                for image in m.get("images") or []
            )
        )
        eval_count = max(len(tokens) + len(thinking_tokens), 1)
        if double.latency > 0:
            prompt_eval_duration = int(double.latency * 0.3e9)
            eval_duration = int(double.latency * 0.7e9)
        else:
            prompt_eval_duration = prompt_eval_count * 150_000
            eval_duration = eval_count * 12_000_000

        def metrics() -> dict[str, int]:
            load_duration = int((loaded_at - arrived) * 1e9) + 1_000_000
            total = int((time.monotonic() - arrived) * 1e9)
            floor = load_duration + prompt_eval_duration + eval_duration
            return {
                "total_duration": max(total, floor),
                "load_duration": load_duration,
                "prompt_eval_count": prompt_eval_count,
                "prompt_eval_duration": prompt_eval_duration,
                "eval_count": eval_count,
                "eval_duration": eval_duration,
            }

        message = rule.message if rule else None
        if not streamed:
            reply: dict[str, Any] = {
                "model": requested,
                "created_at": _go_time(),
                "message": {"role": "assistant", "content": text},
            }
            if thinking:
                reply["message"]["thinking"] = thinking
            if kind == "no_done":
                reply["done"] = False
                self._json(200, reply)
                return
            reply["done"] = True
            reply["done_reason"] = done_reason
            if logprobs:
                reply["logprobs"] = logprobs
            reply.update(metrics())
            if kind == "truncated":
                data = _go_json(reply)
                self.record.status = 200
                self.replied = True
                self.send_response(200)
                self.send_header("Content-Type", JSON_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                raise _Dropped
            self._json(200, reply)
            return

        self._stream_start(200)
        for index, token in enumerate(thinking_tokens):
            if index and double.token_delay > 0 and self.run.stop.wait(double.token_delay):
                raise _Dropped
            self._line(
                {
                    "model": requested,
                    "created_at": _go_time(),
                    "message": {"role": "assistant", "content": "", "thinking": token},
                    "done": False,
                }
            )
        if kind in ("truncated", "error_midstream"):
            # At least one content line, never the whole answer.
            send = tokens[: max(1, len(tokens) // 2)] if kind == "truncated" else tokens[:1]
            send = send or ["…"]
        else:
            send = tokens
        for index, token in enumerate(send):
            if index and double.token_delay > 0 and self.run.stop.wait(double.token_delay):
                raise _Dropped
            chunk: dict[str, Any] = {
                "model": requested,
                "created_at": _go_time(),
                "message": {"role": "assistant", "content": token},
                "done": False,
            }
            if logprobs and index < len(logprobs):
                chunk["logprobs"] = [logprobs[index]]
            self._line(chunk)
        if kind == "truncated":
            raise _Dropped
        if kind == "error_midstream":
            self._line({"error": message or MIDSTREAM_MESSAGE}, last=True)
            self._stream_end()
            return
        if kind == "no_done":
            self._stream_end()
            return
        final: dict[str, Any] = {
            "model": requested,
            "created_at": _go_time(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": done_reason,
        }
        final.update(metrics())
        self._line(final, last=True)
        self._stream_end()


def _format_problem(fmt: Any) -> str | None:
    """The runner's refusal of a `format` that is neither "json" nor a JSON object."""
    if fmt is None or fmt in ("", "json") or isinstance(fmt, dict):
        return None
    raw = _go_json(fmt).decode()
    return f'invalid format: {json.dumps(raw)}; expected "json" or a valid JSON Schema object'


def _decodable_image(data: bytes | None) -> bool:
    """Whether llama-server's image loader would read these bytes."""
    if not data:
        return False
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception:
        return False
    return True


def _image_size(data: bytes | None) -> tuple[int, int] | None:
    if not data:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


def _conform(schema: Any, text: str) -> Any:
    """A value that follows `schema`, made from the answer `text` where it fits."""
    if not isinstance(schema, dict):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        choices = schema["enum"]
        for candidate in (parsed, text.strip(), text.strip().lower()):
            if candidate in choices:
                return candidate
        return choices[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        source = parsed if isinstance(parsed, dict) else {}
        result: dict[str, Any] = {}
        for index, (name, sub) in enumerate(properties.items()):
            value = source.get(name)
            if value is not None:
                shown = value if isinstance(value, str) else json.dumps(value)
                result[name] = _conform(sub, shown)
            else:
                result[name] = _conform(sub, text if index == 0 else "")
        return result
    if kind == "array":
        item = schema.get("items") or {}
        values = parsed if isinstance(parsed, list) else [text]
        return [_conform(item, v if isinstance(v, str) else json.dumps(v)) for v in values]
    if kind in ("number", "integer"):
        number = parsed if isinstance(parsed, (int, float)) and not isinstance(parsed, bool) else 0
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return parsed if isinstance(parsed, bool) else False
    return parsed if isinstance(parsed, str) else text.strip()


def _thinking_text(answer: str) -> str:
    """What a thinking model writes before answering (long enough to eat num_predict=32)."""
    label = answer.strip()[:40] or "the answer"
    return (
        "Let me look at the face in the image carefully. The eyebrows, the eyes and the "
        "mouth each tell me something about the expression. The corners of the mouth and "
        "the tension around the eyes matter most here. Comparing this with the labels I "
        "was given, the closest one seems to be "
        f"{label}. I should answer with that label only."
    )


def _layers(spec: ModelSpec) -> list[tuple[str, int]]:
    """(digest hex, size) of the blobs a pull of spec downloads."""
    small = [("template", 1_429), ("license", 6_016), ("params", 120), ("config", 567)]
    if "vision" in spec.capabilities:
        small.insert(0, ("projector", max(spec.size // 10, 1)))
    rest = max(spec.size - sum(size for _name, size in small), 1)
    parts = [("model", rest), *small]
    return [(_fake_digest("layer", spec.name, part), size) for part, size in parts]


_ROUTES: dict[str, dict[str, str]] = {
    "/": {"GET": "_root", "HEAD": "_root"},
    "/api/version": {"GET": "_version", "HEAD": "_version"},
    "/api/tags": {"GET": "_tags", "HEAD": "_tags"},
    "/api/show": {"POST": "_show"},
    "/api/chat": {"POST": "_chat"},
    "/api/pull": {"POST": "_pull"},
    "/api/create": {"POST": "_create"},
    "/api/delete": {"DELETE": "_delete"},
    "/api/copy": {"POST": "_copy"},
    "/api/ps": {"GET": "_ps"},
}


class ChatDoubleBase(_ServerBase):
    """What every chat-server double shares: chat faults, parallel slots and a queue,
    request records and counters. Subclasses provide the handler (a `_RecordingHandler`)
    and the routes; their handlers call `_register_chat`, `_pick_fault`, `_hang`,
    `_acquire_slot`/`_release_slot` and `_chat_started`/`_chat_finished`.
    """

    fault_kinds: frozenset[str] = FAULT_KINDS

    def __init__(
        self,
        *,
        latency: float = 0.0,
        parallel: int = 1,
        max_queue: int = 512,
        answer: Callable[[dict[str, Any]], str] | None = None,
        slow_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.latency = latency  # seconds of service time per chat, while holding a slot
        self.max_queue = max_queue
        self.answer: Callable[[dict[str, Any]], str] = answer or _default_answer
        self.slow_seconds = slow_seconds  # extra delay of a "slow" fault
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._parallel = parallel
        self._active = 0
        self._waiting: deque[_Ticket] = deque()
        self._rules: list[FaultRule] = []
        self._hung: set[threading.Event] = set()
        self._reset_counters()

    @staticmethod
    def _model_key(name: str) -> str:
        """How a fault rule's ``model=`` is compared with a request's model."""
        return name

    def _reset_counters(self) -> None:
        self._requests: list[RequestRecord] = []
        self._chat_requests: list[dict[str, Any]] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.max_running = 0  # most requests holding a slot at once (in_flight counts queued)
        self.max_queued = 0
        self.first_arrival: float | None = None
        self.last_reply: float | None = None
        self.faults_served = 0
        self.faults_by_kind: Counter[str] = Counter()

    # -- configuration -------------------------------------------------------------------
    @property
    def parallel(self) -> int:
        return self._parallel

    @parallel.setter
    def parallel(self, value: int) -> None:
        with self._changed:
            self._parallel = value
            self._grant()

    # -- instrumentation -----------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._chat_requests)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._waiting)

    @property
    def hung(self) -> int:
        with self._lock:
            return len(self._hung)

    def reset_stats(self) -> None:
        """Forget requests and counters (chat indices restart at 0); faults stay."""
        with self._lock:
            in_flight = self._in_flight
            self._reset_counters()
            self._in_flight = in_flight

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until condition() holds (re-checked on every request event)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    # -- faults --------------------------------------------------------------------------
    def inject(
        self,
        kind: str,
        *,
        every: int | None = None,
        times: int | None = None,
        first: int | None = None,
        on: Iterable[int] | None = None,
        model: str | None = None,
        message: str | None = None,
        seconds: float | None = None,
        per_request: int | None = None,
    ) -> FaultRule:
        """Make chat requests (with messages, for an installed model) fail.

        Selectors (all given ones must hold; none = every such request):
        ``every=N``  every N-th chat request this rule sees (counted from injection);
        ``first=N``  chat requests whose index (position in chat_requests) is < N;
        ``on={i,}``  chat requests with those indices;
        ``model=``   only requests for that model;
        ``times=N``  stop after producing N faults;
        ``per_request=N``  at most N faults for requests with the same messages (one image's
                     retries), so that a client that retries always gets through.
        The first non-exhausted rule (in injection order) that matches wins.
        """
        if kind not in self.fault_kinds:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {sorted(self.fault_kinds)}")
        if every is not None and every < 1:
            raise ValueError("every must be >= 1")
        rule = FaultRule(
            kind=kind,
            every=every,
            times=times,
            first=first,
            on=None if on is None else frozenset(on),
            model=model,
            message=message,
            seconds=seconds,
            per_request=per_request,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every rule and let hung requests go on (they then answer normally)."""
        with self._lock:
            self._rules.clear()
        self.release_hung()

    def release_hung(self) -> None:
        with self._lock:
            hung = list(self._hung)
        for event in hung:
            event.set()

    @property
    def faults(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def _pick_fault(self, index: int, model: str, body: dict[str, Any]) -> FaultRule | None:
        key = self._model_key
        # The messages' digest only where a rule counts faults per request.
        counted = any(rule.per_request is not None for rule in self.faults)
        content = _request_content(body) if counted else ""
        with self._lock:
            chosen = None
            for rule in self._rules:
                if rule._consider(index, key(model), content, key) and chosen is None:
                    chosen = rule
            if chosen is not None:
                chosen.served += 1
                chosen.served_for[content] += 1
                self.faults_served += 1
                self.faults_by_kind[chosen.kind] += 1
            return chosen

    def _hang(self, run: _Run) -> bool:
        """Wait until released; False when released because the server stops."""
        event = threading.Event()
        with self._changed:
            self._hung.add(event)
            self._changed.notify_all()
        try:
            if not run.stop.is_set():
                event.wait()
        finally:
            with self._changed:
                self._hung.discard(event)
                self._changed.notify_all()
        return not run.stop.is_set()

    # -- slots ---------------------------------------------------------------------------
    def _acquire_slot(self, run: _Run, limit: int | None = None) -> bool | None:
        """True: got a slot; None: queue full (503); False: the server is stopping.

        ``limit`` caps the slots for this request (a family the server runs one at a time).
        A freed slot is handed to the first in the queue at once, as Go's
        ``semaphore.Weighted`` (the runner's ``seqsSem``) does: a request that arrives
        meanwhile queues behind it.
        """
        ticket = _Ticket(math.inf if limit is None else limit)
        with self._changed:
            if not self._waiting and self._active < min(self._parallel, ticket.cap):
                self._active += 1
                self.max_running = max(self.max_running, self._active)
                return True
            if len(self._waiting) >= self.max_queue:
                return None
            self._waiting.append(ticket)
            self.max_queued = max(self.max_queued, len(self._waiting))
            self._changed.notify_all()
            while not run.stop.is_set() and not ticket.granted:
                self._changed.wait()
            if ticket.granted:
                return True
            self._waiting.remove(ticket)
            self._changed.notify_all()
            return False

    def _release_slot(self) -> None:
        with self._changed:
            self._active -= 1
            self._grant()

    def _grant(self) -> None:
        """Hand free slots to the queue's head, in order (the caller holds the lock)."""
        while self._waiting and self._active < min(self._parallel, self._waiting[0].cap):
            self._waiting.popleft().granted = True
            self._active += 1
            self.max_running = max(self.max_running, self._active)
        self._changed.notify_all()

    # -- request bookkeeping ------------------------------------------------------------
    def _begin(
        self, method: str, path: str, peer: Any = None, headers: dict[str, str] | None = None
    ) -> RequestRecord:
        record = RequestRecord(
            method=method, path=path, arrived=time.monotonic(), peer=peer, headers=headers or {}
        )
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def _finish(self, record: RequestRecord) -> None:
        with self._changed:
            record.finished = time.monotonic()
            self._changed.notify_all()

    def _register_chat(self, body: dict[str, Any], record: RequestRecord) -> int:
        with self._changed:
            index = len(self._chat_requests)
            self._chat_requests.append(body)
            record.chat_index = index
            if self.first_arrival is None:
                self.first_arrival = record.arrived
            self._changed.notify_all()
            return index

    def _chat_started(self) -> None:
        with self._changed:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._changed.notify_all()

    def _chat_finished(self, record: RequestRecord) -> None:
        with self._changed:
            self._in_flight -= 1
            if record.status is not None:
                self.last_reply = time.monotonic()
            self._changed.notify_all()

    def _on_stop(self) -> None:
        self.release_hung()
        with self._changed:
            self._changed.notify_all()


@dataclass
class _Ticket:
    """A request waiting for a slot; `cap`: the most slots its model may use."""

    cap: float
    granted: bool = False


class OllamaDouble(ChatDoubleBase):
    """A fake ``ollama serve`` on 127.0.0.1:<free port>; see the module docstring."""

    _handler = _OllamaHandler
    _model_key = staticmethod(_key)

    def __init__(
        self,
        *,
        models: Iterable[ModelSpec] | None = None,
        library: Iterable[ModelSpec] | None = None,
        version: str = "0.13.0",
        latency: float = 0.0,
        parallel: int = 1,
        max_queue: int = 512,
        answer: Callable[[dict[str, Any]], str] | None = None,
        slow_seconds: float = 2.0,
        load_latency: float = 0.0,
        token_delay: float = 0.0,
        gpu_memory: int | None = None,
    ) -> None:
        super().__init__(
            latency=latency,
            parallel=parallel,
            max_queue=max_queue,
            answer=answer,
            slow_seconds=slow_seconds,
        )
        self.version = version
        self.load_latency = load_latency  # extra delay when a cold model is loaded
        self.token_delay = token_delay  # pause between streamed content lines
        # Bytes of VRAM per loaded model (None: unlimited). A model larger than this is
        # split as the real scheduler splits it: /api/ps then shows size_vram < size.
        self.gpu_memory = gpu_memory
        self._models: dict[str, ModelSpec] = {}
        for spec in DEFAULT_MODELS if models is None else models:
            self._install(copy.deepcopy(spec))
        self._library: dict[str, ModelSpec] = {
            _key(spec.name): copy.deepcopy(spec)
            for spec in (DEFAULT_LIBRARY if library is None else library)
        }
        self._loaded: dict[str, _Loaded] = {}

    def _on_stop(self) -> None:
        super()._on_stop()
        with self._changed:
            self._loaded.clear()  # the process died: nothing stays loaded
            self._changed.notify_all()

    # -- version behaviour ---------------------------------------------------------------
    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return _version_tuple(self.version)

    @property
    def llama_server(self) -> bool:
        """Whether this version runs GGUF models in upstream llama-server (0.30 and later)."""
        return self.version_tuple >= _LLAMA_SERVER_SINCE

    @property
    def single_slot_families(self) -> frozenset[str]:
        version = self.version_tuple
        return frozenset().union(*(f for since, f in _SINGLE_SLOT_FAMILIES if version >= since))

    def slots_for(self, spec: ModelSpec) -> int | None:
        """1 for a family server/sched.go runs one request at a time, else None (parallel)."""
        families = {spec.family, *(spec.families or [])}
        return 1 if families & self.single_slot_families else None

    def image_token_count(self, spec: ModelSpec, data: bytes | None) -> int:
        """Prompt tokens one image costs this family on this version (576 if unknown).

        Qwen-VL: merged 28 px (Qwen2/2.5) or 32 px (Qwen3) patches after smart resize, at
        least 1,024 from 0.30 (llm/llama_server.go --image-min-tokens); gemma3: 256;
        mllama: 1 (cross-attention).
        """
        family = spec.family
        if family == "gemma3":
            return 256
        if family == "mllama":
            return 1
        factor = {"qwen25vl": 28, "qwen2vl": 28, "qwen3vl": 32, "qwen3vlmoe": 32}.get(family)
        size = _image_size(data)
        if factor is None or size is None:
            return 576
        if self.llama_server:
            low, high = 1024, 4096 if factor == 28 else 16384
        else:
            low, high = (4, 1280) if factor == 28 else (64, 2048)
        width, height = size
        w = max(factor, round(width / factor) * factor)
        h = max(factor, round(height / factor) * factor)
        if w * h > high * factor * factor:
            beta = (width * height / (high * factor * factor)) ** 0.5
            w = max(factor, math.floor(width / beta / factor) * factor)
            h = max(factor, math.floor(height / beta / factor) * factor)
        elif w * h < low * factor * factor:
            beta = (low * factor * factor / (width * height)) ** 0.5
            w = math.ceil(width * beta / factor) * factor
            h = math.ceil(height * beta / factor) * factor
        return (w // factor) * (h // factor)

    def _thinks(self, spec: ModelSpec, think: Any) -> bool:
        if "thinking" not in spec.capabilities:
            return False
        if think is None:  # routes.go: unset `think` means true for thinking models
            return self.version_tuple >= _THINKS_BY_DEFAULT_SINCE
        return think is not False

    def _think_problem(self, think: Any, present: bool) -> str | None:
        """api.ThinkValue.UnmarshalJSON's error for a bad `think`, or None."""
        if not present or think is None or isinstance(think, bool):
            return None
        levels = ["high", "medium", "low"]
        if self.version_tuple >= _THINK_MAX_SINCE:
            levels.append("max")
        allowed = ", ".join(f'"{level}"' for level in levels) + ", true, or false"
        if isinstance(think, str):
            if think in levels:
                return None
            return f"invalid think value: {json.dumps(think)} (must be {allowed})"
        return f"think must be a boolean or string ({allowed})"

    # -- configuration -------------------------------------------------------------------
    @property
    def models(self) -> dict[str, ModelSpec]:
        """Installed models by display name (a new dict of the live specs)."""
        with self._lock:
            return {spec.name: spec for spec in self._models.values()}

    def add_model(self, spec: ModelSpec) -> None:
        self._install(copy.deepcopy(spec))

    def remove_model(self, name: str) -> bool:
        return self._remove(name)

    def add_to_library(self, spec: ModelSpec) -> None:
        with self._lock:
            self._library[_key(spec.name)] = copy.deepcopy(spec)

    @property
    def loaded(self) -> list[str]:
        """Names of the models /api/ps lists now."""
        return [entry["name"] for entry in self._ps_entries()]

    # -- the model store -----------------------------------------------------------------
    def _install(self, spec: ModelSpec) -> None:
        with self._lock:
            self._models[_key(spec.name)] = spec

    def _remove(self, name: str) -> bool:
        with self._lock:
            self._loaded.pop(_key(name), None)
            return self._models.pop(_key(name), None) is not None

    def _find(self, name: str) -> ModelSpec | None:
        with self._lock:
            return self._models.get(_key(name))

    def _library_find(self, name: str) -> ModelSpec | None:
        with self._lock:
            return self._library.get(_key(name))

    def _installed_specs(self) -> list[ModelSpec]:
        with self._lock:
            return list(self._models.values())

    def _is_loaded(self, spec: ModelSpec) -> bool:
        with self._lock:
            self._expire()
            return _key(spec.name) in self._loaded

    def _load(self, spec: ModelSpec, keep_alive: float | None) -> None:
        now = datetime.now(timezone.utc)
        expires = now + (_FOREVER if keep_alive is None else timedelta(seconds=keep_alive))
        with self._lock:
            self._loaded[_key(spec.name)] = _Loaded(spec=spec, expires_at=expires)

    def _unload(self, spec: ModelSpec) -> None:
        with self._lock:
            self._loaded.pop(_key(spec.name), None)

    def _expire(self) -> None:
        now = datetime.now(timezone.utc)
        for key in [k for k, v in self._loaded.items() if v.expires_at <= now]:
            del self._loaded[key]

    def _ps_entries(self) -> list[dict[str, Any]]:
        with self._lock:
            self._expire()
            loaded = sorted(self._loaded.values(), key=lambda e: e.expires_at, reverse=True)
        entries = []
        for entry in loaded:
            spec = entry.spec
            memory = int(spec.size * 1.15)
            on_gpu = memory if self.gpu_memory is None else max(0, min(memory, self.gpu_memory))
            entries.append(
                {
                    "name": spec.name,
                    "model": spec.name,
                    "size": memory,
                    "digest": spec.digest,
                    "details": spec.details,
                    "expires_at": _go_time(entry.expires_at),
                    "size_vram": on_gpu,
                    "context_length": spec.context_length,
                }
            )
        return entries

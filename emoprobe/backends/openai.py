"""OpenAI-compatible chat completions: vLLM, llama.cpp's llama-server, LM Studio, Ollama's /v1.

Spoken over `httpx` (no `openai` package), one whole JSON reply per image
(`POST {base}/chat/completions`, `stream: false`); the base URL is `--host`, with `/v1`
appended unless its path ends in it. Only `FORWARDED_OPTIONS` have an OpenAI field
(`num_predict` becomes `max_tokens`); `ignored_options` names the ones a run loses.

This module is where `httpx` exceptions and HTTP statuses become emoprobe's errors. The
API key (from `$api_key_env`) is never logged, shown or digested, and no image data
reaches a message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import httpx

from emoprobe.backends.base import (
    RETRYABLE_STATUS,
    Answer,
    ChatRequest,
    ModelInfo,
    not_the_server,
    translated,
)
from emoprobe.backends.bounded import client_options
from emoprobe.errors import (
    BackendError,
    ConfigError,
    ModelNotFound,
    ModelUnsuitable,
    RequestRejected,
    TransientError,
)

API_KEY_ENV = "OPENAI_API_KEY"
VERSION_TIMEOUT = 5.0
LISTED_MODELS_SHOWN = 5
MESSAGE_CHARS = 300
# vLLM and llama.cpp stamp each `/models` entry's `created` with the time of the request;
# a `created` this close to now is a clock reading, not the model's identity.
CREATED_IS_NOW_S = 300.0
# llama.cpp's per-model `meta` fields that describe the weights (not the server's flags).
META_IDENTITY = ("vocab_type", "n_vocab", "n_ctx_train", "n_embd", "n_params", "size", "ftype")
VISION_HINT = "serve a vision model (e.g. Qwen2.5-VL; llama-server needs its --mmproj file)"

# option name → OpenAI field; `num_predict` is handled apart (→ max_tokens).
_SAME_NAME = ("temperature", "seed", "top_p", "stop", "presence_penalty", "frequency_penalty")
FORWARDED_OPTIONS = frozenset({*_SAME_NAME, "num_predict"})
SENDABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})

# What servers say when the model cannot take images (llama.cpp, vLLM, LM Studio, OpenAI).
_NO_VISION = re.compile(
    r"image input is not supported"
    r"|does not support (?:image|vision|multi-?modal)"
    r"|(?:images?|vision|multi-?modal(?: inputs?)?) (?:is|are) not supported"
    r"|not a multi-?modal model"
    r"|at most 0 image"
    r"|image_url is only supported by certain models",
    re.IGNORECASE,
)


# A server may quote the request in its error (vLLM: "Invalid image URL: data:…"); faces
# must never reach a message, so data URLs and long base64 runs are cut out.
_DATA_URL = re.compile(r"data:[^\s,]*,\S*")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")


def base_url(host: str) -> str:
    """The API's base URL: `host` without a trailing `/`, with `/v1` appended unless there."""
    url = host.strip().rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def public_url(url: str) -> str:
    """`url` without any `user:password@` part: what messages and digests may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def data_url(request: ChatRequest) -> str:
    """A `data:` URL for the request's image; RequestRejected for a type no server takes."""
    if request.image_mime not in SENDABLE_TYPES:
        raise RequestRejected("the image is not JPEG, PNG, WebP or GIF: cannot send it")
    return f"data:{request.image_mime};base64,{base64.b64encode(request.image).decode('ascii')}"


def build_request(request: ChatRequest) -> dict[str, Any]:
    """The JSON body of `POST /chat/completions` for one request (see the module doc)."""
    user: list[dict[str, Any]] = [{"type": "text", "text": request.user_text}]
    user = user if request.user_text else []
    user.append({"type": "image_url", "image_url": {"url": data_url(request)}})
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": user},
        ],
        "stream": False,
    }
    options, format, top_logprobs = request.options, request.format, request.top_logprobs
    for name in _SAME_NAME:
        if options.get(name) is not None:
            value = options[name]
            body[name] = [value] if name == "stop" and isinstance(value, str) else value
    limit = options.get("num_predict")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        body["max_tokens"] = limit
    if format:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(format)},
        }
    if top_logprobs > 0:
        body |= {"logprobs": True, "top_logprobs": top_logprobs}
    return body


class OpenAIBackend:
    """Talks to one OpenAI-compatible server; thread-safe; `$api_key_env` is a bearer token."""

    name = "openai"

    def __init__(self, host: str, *, timeout: float, api_key_env: str = API_KEY_ENV) -> None:
        url = base_url(host)
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            self.base_url = public_url(url)
        except ValueError:  # e.g. a port that is not a number
            valid = False
        if not valid:
            raise ConfigError(f"malformed host {host!r}: expected e.g. http://127.0.0.1:8000/v1")
        self.root_url = self.base_url[: -len("/v1")]
        self.host = self.base_url
        self.timeout = timeout
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env, "").strip()
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = httpx.Client(headers=headers, **client_options(timeout))

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, timeout={self.timeout:g})"

    def describe(self, model: str) -> ModelInfo:
        """Check that the server lists `model` (`GET /v1/models`); an image tells if it sees."""
        requested = time.time()
        entries = self._list_models()
        entry = _find_model(entries, model)
        if entry is None:
            raise ModelNotFound(
                f"model {model!r} is not served at {self.base_url}; {_served_models(entries)}"
            )
        meta = _object(entry.get("meta"))
        return ModelInfo(
            name=model,
            digest=self.model_digest(entry, requested),
            server_version=self.server_version(),
            parameter_size=_parameter_size(meta.get("n_params")),
            size_bytes=_int(meta.get("size")),
            capabilities=(),
            backend=self.name,
        )

    def model_digest(self, entry: dict[str, Any], requested: float | None = None) -> str:
        """sha256 of what identifies the served model (URL, id, weights): cache keys follow it."""
        identity: dict[str, Any] = {
            "api": "openai",
            "url": self.base_url,
            "model": str(entry.get("id", "")),
        }
        for name in ("owned_by", "root", "parent"):
            if entry.get(name) not in (None, ""):
                identity[name] = entry[name]
        meta = entry.get("meta")
        if isinstance(meta, dict):
            identity["meta"] = {name: meta[name] for name in META_IDENTITY if name in meta}
        created = entry.get("created")
        now = time.time() if requested is None else requested
        if _is_number(created) and created < now - CREATED_IS_NOW_S:
            identity["created"] = created
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def server_version(self) -> str:
        """`GET /version` at the server's root (vLLM's), or "unknown"; never raises."""
        try:
            response = self._http.get(
                f"{self.root_url}/version", timeout=min(self.timeout, VERSION_TIMEOUT)
            )
            version = response.json()["version"] if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return "unknown"
        return str(version) if isinstance(version, (str, int, float)) and version else "unknown"

    def ignored_options(self, options: Mapping[str, Any]) -> list[str]:
        """The options this backend cannot send (no OpenAI field), sorted: warn about them."""
        return sorted(name for name in options if name not in FORWARDED_OPTIONS)

    def load(self, model: str, options: Mapping[str, Any] | None = None) -> float:
        """Nothing to do: the server loaded its models when it started."""
        return 0.0

    def unload(self, model: str) -> None:
        """Nothing to do: the OpenAI API cannot unload a model (stop the server for that)."""

    def context_length(self, model: str) -> int | None:
        """The OpenAI API does not say (vLLM's --max-model-len is set where it starts)."""
        return None

    def encode(self, request: ChatRequest) -> bytes:
        """The JSON body of `build_request`, as bytes (RequestRejected as it says)."""
        return json.dumps(build_request(request), separators=(",", ":")).encode()

    def chat(self, request: ChatRequest, body: bytes | None = None) -> Answer:
        """Send one request (`body`: its `encode`, built ahead); the whole answer."""
        content = self.encode(request) if body is None else body
        started = time.monotonic()
        with self.translating("POST /v1/chat/completions", request.model):
            response = self._http.post(
                f"{self.base_url}/chat/completions",
                content=content,
                headers={"Content-Type": "application/json"},
            )
            self._check(response, request.model)
            reply = response.json()
        return _answer(reply, time.monotonic() - started)

    def close(self) -> None:
        self._http.close()

    def _list_models(self) -> list[dict[str, Any]]:
        what = "GET /v1/models"
        with self.translating(what):
            response = self._http.get(f"{self.base_url}/models")
        status = response.status_code
        if status in (401, 403):
            raise self._auth_error(status)
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientError(f"{what}: HTTP {status}: {self._message(response)}")
        try:
            entries = response.json()["data"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            entries = None
        if not isinstance(entries, list):
            server = "an OpenAI-compatible server"
            raise not_the_server(self.host, server, response, what, " (it should end in /v1)")
        return [entry for entry in entries if isinstance(entry, dict)]

    def _check(self, response: httpx.Response, model: str) -> None:
        """Raise the right BackendError for a non-2xx reply to a chat."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise self._auth_error(status)
        message = self._message(response)
        if status in (400, 422, 500) and _NO_VISION.search(message):
            raise ModelUnsuitable(
                f"model {model!r} at {self.base_url} cannot read images "
                f"(HTTP {status}: {message}); {VISION_HINT}"
            )
        if status == 404:
            raise ModelNotFound(
                f"model {model!r} is not served at {self.base_url} (HTTP 404: {message})"
            )
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientError(f"HTTP {status}: {message}", host=self.host, status=status)
        raise RequestRejected(f"HTTP {status}: {message}")

    def _auth_error(self, status: int) -> BackendError:
        """401/403: a plain BackendError (fatal), as no retry or other image can succeed."""
        what = "wants an API key" if status == 401 else "refuses access"
        env = self.api_key_env
        fix = f"check the key in ${env}" if self._api_key else f"set ${env} to the server's key"
        return BackendError(f"the server at {self.base_url} {what} (HTTP {status}): {fix}")

    def _message(self, response: httpx.Response) -> str:
        """The server's error message on one line: OpenAI's `{"error": {"message"}}`, vLLM's
        older top-level `message`, `{"error": "..."}`, FastAPI's `detail`, else the text."""
        try:
            body = response.json()
        except ValueError:
            body = None
        text: Any = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                text = error.get("message")
            elif isinstance(error, str):
                text = error
            text = text or body.get("message") or body.get("detail")
        if not text:
            text = response.text or response.reason_phrase or "no message"
        return self._one_line(text if isinstance(text, str) else json.dumps(text))

    def _one_line(self, text: str) -> str:
        """One line, at most MESSAGE_CHARS, with no API key and no image data in it."""
        line = " ".join(text.split())
        if self._api_key:
            line = line.replace(self._api_key, "***")
        line = _BASE64_RUN.sub("…", _DATA_URL.sub("data:…", line))
        return line[:MESSAGE_CHARS]

    @contextmanager
    def translating(self, what: str, model: str = "") -> Iterator[None]:
        unreachable = (
            f"cannot reach an OpenAI-compatible server at {self.base_url}: start it "
            "(vLLM, llama-server, LM Studio, `ollama serve`) or point the host at a running one"
        )
        with translated(what, self.timeout, unreachable, otherwise=True):
            yield


def _answer(reply: Any, latency: float) -> Answer:
    """An Answer from a chat completion; TransientError when it has no usable choice."""
    if not isinstance(reply, dict):
        raise TransientError("malformed reply: the chat completion is not a JSON object")
    choices = reply.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        error = reply.get("error")
        text = error.get("message") if isinstance(error, dict) else error
        detail = f": {' '.join(text.split())[:MESSAGE_CHARS]}" if isinstance(text, str) else ""
        raise TransientError(f"malformed reply: no choices in the chat completion{detail}")
    content = message.get("content")
    if isinstance(content, list):  # some servers answer in content parts
        content = "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    usage, server = _object(reply.get("usage")), _object(reply.get("timings"))
    prompt_ms, output_ms = _ms(server.get("prompt_ms")), _ms(server.get("predicted_ms"))
    return Answer(
        raw=content if isinstance(content, str) else "",
        latency_s=latency,
        done_reason=reason if isinstance(reason, str) else "",
        prompt_tokens=_int(usage.get("prompt_tokens")),
        prompt_ms=prompt_ms,
        output_tokens=_int(usage.get("completion_tokens")),
        output_ms=output_ms,
        total_ms=prompt_ms + output_ms,  # llama.cpp's `timings`; others say nothing
        logprobs=_logprobs(choice),
        thinking_chars=_thinking_chars(message),
    )


def _thinking_chars(message: dict[str, Any]) -> int:
    """Length of the reasoning beside the answer (`reasoning_content`, `reasoning`), else 0."""
    text = message.get("reasoning_content") or message.get("reasoning")
    return len(text) if isinstance(text, str) else 0


def _logprobs(choice: Any) -> tuple[dict[str, Any], ...]:
    """`choice.logprobs.content`: one `{token, logprob, bytes, top_logprobs}` per token."""
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return ()
    return tuple(entry for entry in content if isinstance(entry, dict))


def _find_model(entries: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """The entry whose id is `model`; Ollama's `/v1` lists `llava` as `llava:latest`."""
    by_id = {str(entry.get("id")): entry for entry in entries}
    if model in by_id:
        return by_id[model]
    if ":" not in model.rsplit("/", 1)[-1]:
        return by_id.get(f"{model}:latest")
    return None


def _served_models(entries: list[dict[str, Any]]) -> str:
    names = [" ".join(str(entry.get("id", "")).split()) for entry in entries]
    names = [name for name in names if name]
    if not names:
        return "it serves no models"
    shown = ", ".join(names[:LISTED_MODELS_SHOWN])
    more = len(names) - LISTED_MODELS_SHOWN
    return f"it serves: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _parameter_size(count: Any) -> str:
    if not _is_number(count) or count <= 0:
        return ""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(int(count))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> int:
    return int(value) if _is_number(value) and value >= 0 else 0


def _ms(milliseconds: Any) -> float:
    return float(milliseconds) if _is_number(milliseconds) and milliseconds > 0 else 0.0

"""Ollama's native API through the official `ollama` client.

This module is the one boundary where `ollama` and `httpx` exceptions become
emoprobe's own (`emoprobe.errors`); nothing above it sees a library error.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from emoprobe.backends.base import (
    MAX_ANSWER_CHARS,
    RETRYABLE_STATUS,
    TRUNCATED,
    Answer,
    ChatRequest,
    ModelInfo,
    close_names,
    not_the_server,
    translated,
)
from emoprobe.backends.bounded import client_options
from emoprobe.backends.ollama_client import ollama
from emoprobe.backends.server_support import (
    WAYS_OUT,
    can_serve,
    is_unservable_load_error,
    support_for_text,
)
from emoprobe.backends.weights import summarize
from emoprobe.errors import (
    BackendError,
    ConfigError,
    ModelNotFound,
    ModelUnservable,
    ModelUnsuitable,
    RequestRejected,
    ServerRedirected,
    TransientError,
)

NS_PER_MS = 1_000_000
MAX_TOKEN_CHARS = 256  # longer than any token of a vision model's vocabulary
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/x-ndjson"}
_PER_REQUEST = frozenset({"content-length", "transfer-encoding"})  # httpx.Request sets them
IMAGE_SLOT = "\x00image\x00"  # where `encode` puts the base64, written in as bytes
SLOT_JSON = json.dumps(IMAGE_SLOT).encode()
VISION_HINT = "pick a vision model such as qwen2.5vl:7b, qwen3-vl:8b or gemma3:4b"
#: The server's refusals of a `think` value (api.ThinkValue, routes.go ChatHandler).
_THINK_REFUSED = re.compile(
    r"does not support thinking|invalid think value|think must be", re.IGNORECASE
)
CLIENT_FLOOR = "0.6.1"  # ChatResponse.logprobs; pyproject.toml states the same floor


def check_client() -> None:
    """ConfigError when the installed `ollama` client is older than emoprobe needs."""
    if "logprobs" not in getattr(ollama.ChatResponse, "model_fields", {}):
        raise ConfigError(
            f"the installed ollama Python client is older than {CLIENT_FLOOR} (its "
            f"ChatResponse has no logprobs): pip install 'ollama>={CLIENT_FLOOR}'"
        )


def full_model_name(name: str) -> str:
    """`qwen2.5vl` → `qwen2.5vl:latest`, as the server names it."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class OllamaBackend:
    """Talks to one Ollama server; safe to share between threads."""

    name = "ollama"

    def __init__(self, host: str, *, timeout: float, keep_alive: str | float = "30m") -> None:
        check_client()
        self.host = host
        self.timeout = timeout
        self.keep_alive = keep_alive
        self._client = ollama.Client(host=host, **client_options(timeout))
        options = client_options(timeout)
        self._transport: httpx.BaseTransport = options["transport"]
        self._http = httpx.Client(base_url=host, **options)
        # A chat goes straight to the transport: the client's URL merging, cookies, auth
        # and redirect handling (none of which apply to it) cost a third of its CPU.
        template = self._http.build_request("POST", "/api/chat", headers=JSON_HEADERS)
        self._chat_url = template.url
        self._chat_headers = httpx.Headers(
            {k: v for k, v in template.headers.items() if k.lower() not in _PER_REQUEST}
        )
        self._chat_extensions = template.extensions

    @property
    def client(self) -> ollama.Client:
        """The `ollama.Client` for this server (call it inside `translating`)."""
        return self._client

    def ignored_options(self, options: Mapping[str, Any]) -> list[str]:
        """Ollama takes every option emoprobe knows."""
        return []

    def server_version(self) -> str:
        """`GET /api/version`; proves an Ollama server answers at the host."""
        with self.translating("GET /api/version"):
            response = self._http.get("/api/version")
            self._refuse_redirect(response)
        try:
            version = response.json()["version"]
        except (ValueError, KeyError, TypeError):
            raise not_the_server(
                self.host, "an Ollama server", response, "GET /api/version"
            ) from None
        return str(version)

    def describe(self, model: str) -> ModelInfo:
        """The model as the server shows it; ModelUnservable for a family it cannot load at all."""
        version = self.server_version()
        try:
            shown = self._get_json("POST", "/api/show", model, {"model": model})
        except ModelNotFound as error:
            raise self._near_misses(error, model) from None
        listed = shown.get("capabilities")
        capabilities = (
            tuple(c for c in listed if isinstance(c, str)) if isinstance(listed, list) else ()
        )
        model_info = shown.get("model_info")
        if not can_see(capabilities, model_info if isinstance(model_info, dict) else None):
            names = ", ".join(capabilities) or "none listed"
            raise ModelUnsuitable(
                f"model {model!r} cannot read images (capabilities: {names}); {VISION_HINT}",
                host=self.host,
                model=model,
            )
        details = shown.get("details")
        details = details if isinstance(details, dict) else {}
        family = _text(details.get("family"))
        if (support := support_for_text(version)) and (problem := can_serve(support, family)):
            raise ModelUnservable(problem, host=self.host, model=model, setting="backend")
        listed_model = self._listed(model)
        tensors = shown.get("tensors")
        weights = summarize(
            [t for t in tensors if isinstance(t, dict)] if isinstance(tensors, list) else None
        )
        return ModelInfo(
            name=model,
            digest=listed_model.digest if listed_model else "",
            server_version=version,
            family=family,
            parameter_size=_text(details.get("parameter_size")),
            quantization=_text(details.get("quantization_level")),
            size_bytes=int(listed_model.size or 0) if listed_model else 0,
            capabilities=capabilities,
            language_weights=weights.language,
            vision_weights=weights.vision,
        )

    def _near_misses(self, error: ModelNotFound, model: str) -> ModelNotFound:
        """`error`, or a ModelNotFound naming the server's models close to `model` (a typo)."""
        if model.startswith("emoprobe-"):
            return error  # a build of emoprobe's: the fix is to build it
        try:
            names = [entry.model or "" for entry in self._models(model)]
        except BackendError:
            return error
        close = close_names(full_model_name(model), names) or close_names(model, names)
        if not close:
            return error
        return ModelNotFound(
            f"model {model!r} is not on the Ollama server at {self.host}; did you mean "
            f"{' or '.join(close)} (the server has {'them' if len(close) > 1 else 'it'})? "
            f"If {model!r} is a tag you want, `emoprobe models pull {model}`",
            host=self.host,
            model=model,
        )

    def context_length(self, model: str) -> int | None:
        """`GET /api/ps`: the context the loaded runner was given (its real num_ctx)."""
        wanted = full_model_name(model)
        running = self._get_json("GET", "/api/ps", model).get("models")
        for entry in running if isinstance(running, list) else ():
            if not isinstance(entry, dict):
                continue
            if full_model_name(_text(entry.get("model") or entry.get("name"))) == wanted:
                length = entry.get("context_length")
                return length if isinstance(length, int) and length > 0 else None
        return None

    def _get_json(
        self, method: str, path: str, model: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One small request; its JSON object (errors translated, never a redirect)."""
        with self.translating(f"{method} {path}", model):
            value = self._checked(self._http.request(method, path, json=body)).json()
        if not isinstance(value, dict):
            raise TransientError(f"malformed reply to {method} {path} (not a JSON object)")
        return value

    def _models(self, model: str) -> list[Any]:
        """The server's models (`GET /api/tags`, through the client)."""
        with self.translating("request", model):
            return list(self._client.list().models)

    def _listed(self, model: str) -> Any:
        wanted = full_model_name(model)
        return next(
            (e for e in self._models(model) if full_model_name(e.model or "") == wanted), None
        )

    def load(self, model: str, options: Mapping[str, Any] | None = None) -> float:
        """An empty chat loads the model for the run (`keep_alive`) with its options and `think`."""
        started = time.monotonic()
        sent = dict(options or {})
        think = sent.pop("think", None)
        extra: dict[str, Any] = {"options": sent} if sent else {}
        if think is not None:
            extra["think"] = think
        self._empty_chat("loading the model", model, self.keep_alive, extra)
        return time.monotonic() - started

    def unload(self, model: str) -> None:
        """An empty chat with `keep_alive: 0` unloads the model and frees its memory."""
        self._empty_chat("unloading the model", model, 0)

    def _empty_chat(
        self, what: str, model: str, keep_alive: str | float, extra: dict[str, Any] | None = None
    ) -> None:
        body: dict[str, Any] = {
            "model": model,
            "messages": [],
            "keep_alive": keep_alive,
            "stream": False,
        }
        with self.translating(what, model):
            self._checked(self._http.post("/api/chat", json=body | (extra or {})))

    def encode(self, request: ChatRequest) -> bytes:
        """The `POST /api/chat` body, image in base64, built once; `options["think"]` as `think`."""
        options = dict(request.options)
        think = options.pop("think", None)  # the request's own field, not an option
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user_text, "images": [IMAGE_SLOT]},
            ],
            "tools": [],
            "stream": streams(request),
            "options": options,
            "keep_alive": self.keep_alive,
        }
        if think is not None:
            body["think"] = think
        if request.format:
            body["format"] = dict(request.format)
        if request.top_logprobs > 0:
            body |= {"logprobs": True, "top_logprobs": request.top_logprobs}
        image = base64.b64encode(request.image)
        parts = json.dumps(body, separators=(",", ":")).encode().split(SLOT_JSON)
        if len(parts) != 2:  # the prompt itself holds the slot's text: the slow way
            body["messages"][1]["images"] = [image.decode()]
            return json.dumps(body, separators=(",", ":")).encode()
        return b"".join((parts[0], b'"', image, b'"', parts[1]))

    def chat(self, request: ChatRequest, body: bytes | None = None) -> Answer:
        """Read one answer (`body`: `encode(request)`, built ahead) to the stream's end, so
        the connection is kept; past MAX_ANSWER_CHARS it is cut off (TRUNCATED), unread."""
        body = self.encode(request) if body is None else body
        started = time.monotonic()
        pieces: list[str] = []
        length = thinking = 0
        logprobs: list[dict[str, Any]] = []
        final: dict[str, Any] | None = None
        with (
            self.translating("POST /api/chat", request.model),
            self._post_chat(body) as reply,
        ):
            if reply.status_code >= 300:
                reply.read()
                self._refuse_redirect(reply)
                raise ollama.ResponseError(reply.text, reply.status_code)
            for line in reply_lines(reply):
                if not line:
                    continue
                if final is not None:
                    break  # lines after the last: not Ollama; leave them unread
                chunk = json.loads(line)
                if not isinstance(chunk, dict):
                    raise TypeError("a reply line that is no object")
                if error := chunk.get("error"):
                    raise ollama.ResponseError(str(error))
                piece = _piece(chunk)
                pieces.append(piece)
                length += len(piece)
                thinking += _thinking_chars(chunk)
                logprobs += [_logprob(entry) for entry in chunk.get("logprobs") or ()]
                if chunk.get("done"):
                    final = chunk
                elif length > MAX_ANSWER_CHARS:
                    return Answer(
                        raw="".join(pieces)[:MAX_ANSWER_CHARS],
                        latency_s=time.monotonic() - started,
                        done_reason=TRUNCATED,
                        logprobs=tuple(logprobs),
                    )
        if final is None:
            raise TransientError("truncated reply: the stream ended before the answer was done")
        return Answer(
            raw="".join(pieces),
            latency_s=time.monotonic() - started,
            done_reason=str(final.get("done_reason") or ""),
            prompt_tokens=_count(final, "prompt_eval_count"),
            prompt_ms=_count(final, "prompt_eval_duration") / NS_PER_MS,
            output_tokens=_count(final, "eval_count"),
            output_ms=_count(final, "eval_duration") / NS_PER_MS,
            load_ms=_count(final, "load_duration") / NS_PER_MS,
            total_ms=_count(final, "total_duration") / NS_PER_MS,
            logprobs=tuple(logprobs),
            thinking_chars=thinking,
        )

    @contextmanager
    def _post_chat(self, body: bytes) -> Iterator[httpx.Response]:
        """`POST /api/chat` with `body`, the reply's body left to read, closed after."""
        chat = httpx.Request(
            "POST",
            self._chat_url,
            headers=self._chat_headers,
            content=body,
            extensions=self._chat_extensions,
        )
        reply = self._transport.handle_request(chat)
        try:
            yield reply
        finally:
            reply.close()

    def close(self) -> None:
        self._client._client.close()
        self._http.close()

    @contextmanager
    def translating(self, what: str, model: str = "") -> Iterator[None]:
        """Turn the client's and httpx's exceptions inside into emoprobe's own."""
        unreachable = (
            f"cannot reach Ollama at {self.host}: start it with `ollama serve` "
            "or point the host at a running server"
        )
        try:
            with translated(what, self.timeout, unreachable):
                yield
        except ollama.ResponseError as error:
            raise self._from_status(error.status_code, error.error, model) from None

    def _refuse_redirect(self, response: httpx.Response) -> None:
        if response.is_redirect:
            raise self._from_status(
                response.status_code, response.headers.get("location", ""), "", location=True
            )

    def _checked(self, response: httpx.Response) -> httpx.Response:
        """`response`, unless it is a redirect or an error (raised as the client would)."""
        self._refuse_redirect(response)
        if response.status_code >= 400:
            raise ollama.ResponseError(_error_text(response), response.status_code)
        return response

    def _from_status(
        self, status: int, message: str, model: str, *, location: bool = False
    ) -> BackendError:
        text = " ".join(str(message).split())[:300]
        fields: dict[str, Any] = {"host": self.host, "model": model or None, "status": status}
        if 300 <= status < 400:
            where = (text if location else "") or "another address"
            return ServerRedirected(
                f"the server at {self.host} answered HTTP {status}, a redirect to {where}: "
                "emoprobe never follows redirects (the images are faces); point the host "
                "at the server itself",
                **fields,
            )
        if is_unservable_load_error(text):
            return ModelUnservable(
                f"the Ollama server at {self.host} cannot run {model or 'this model'} "
                f"(HTTP {status}: {text}); {WAYS_OUT}",
                setting="backend",
                **fields,
            )
        if status == 400 and _THINK_REFUSED.search(text):
            return ModelUnsuitable(
                f"the server refused the think setting for {model}: {text}", **fields
            )
        if status == 404 and model:
            fix = (
                f"`emoprobe models build {model}`"
                if model.startswith("emoprobe-")
                else f"`emoprobe models pull {model}` or `ollama pull {model}`"
            )
            return ModelNotFound(
                f"model {model!r} is not on the Ollama server at {self.host}: run {fix}"
            )
        if status == -1 or status >= 500 or status in RETRYABLE_STATUS:
            label = "server error" if status == -1 else f"HTTP {status}"
            return TransientError(f"{label}: {text}", host=self.host, status=status)
        return RequestRejected(f"HTTP {status}: {text}", host=self.host, status=status)


def reply_lines(reply: httpx.Response) -> Iterator[bytes]:
    """The reply body's lines as bytes, as they come (a line split across chunks joined;
    no text decoding: `json.loads` takes bytes). A whole reply is one line; a server
    that streams anyway is read line by line all the same."""
    pending: list[bytes] = []
    for data in reply.iter_raw():
        pending.append(data)
        if b"\n" not in data:
            continue
        *lines, rest = b"".join(pending).split(b"\n")
        pending = [rest]
        for line in lines:
            yield line.rstrip(b"\r")
    if tail := b"".join(pending):
        yield tail.rstrip(b"\r")


def streams(request: ChatRequest) -> bool:
    """Whether to stream: for log-probabilities and answers that may pass MAX_ANSWER_CHARS."""
    limit = request.options.get("num_predict")
    if request.top_logprobs > 0 or isinstance(limit, bool) or not isinstance(limit, int):
        return True
    return not 0 < limit <= MAX_ANSWER_CHARS // MAX_TOKEN_CHARS


def _piece(chunk: dict[str, Any]) -> str:
    """A reply line's piece of the answer (TypeError for a malformed one)."""
    message = chunk.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise TypeError("message.content is no string")
    if not isinstance(message, dict):
        raise TypeError("message is no object")
    return content or ""


def _thinking_chars(chunk: dict[str, Any]) -> int:
    """How much a reply line thought aloud (`message.thinking`)."""
    message = chunk.get("message")
    thought = message.get("thinking") if isinstance(message, dict) else None
    return len(thought) if isinstance(thought, str) else 0


def _logprob(entry: Any) -> dict[str, Any]:
    """One token's log-probability as the `ollama` client's `Logprob` dumps it."""
    top = entry.get("top_logprobs")
    return {
        "token": str(entry["token"]),
        "logprob": float(entry["logprob"]),
        "top_logprobs": None
        if top is None
        else [{"token": str(t["token"]), "logprob": float(t["logprob"])} for t in top],
    }


def _count(chunk: dict[str, Any], name: str) -> int:
    """A token count or duration of the final line, 0 where the server gives none."""
    value = chunk.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} is no number")
    return int(value)


def can_see(capabilities: tuple[str, ...], *infos: Any) -> bool:
    """`vision` in the capabilities; servers too old to list them are judged by their keys."""
    if capabilities:
        return "vision" in capabilities
    keys = " ".join(" ".join(info) for info in infos if info)
    return "vision" in keys or "clip" in keys


def _error_text(response: httpx.Response) -> str:
    """The `error` of an `{"error": ...}` body, else the body as text."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return error if isinstance(error, str) else response.text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""

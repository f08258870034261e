"""Ollama's native API through the official `ollama` client.

This module is the one boundary where `ollama` and `httpx` exceptions become
emoprobe's own (`emoprobe.errors`); nothing above it sees a library error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from emoprobe.backends.base import (
    MAX_ANSWER_CHARS,
    RETRYABLE_STATUS,
    TRUNCATED,
    Answer,
    ChatRequest,
    ModelInfo,
    close_names,
    transport_failure,
)
from emoprobe.backends.bounded import bounded_transport
from emoprobe.backends.ollama_client import ollama
from emoprobe.errors import (
    BackendError,
    ModelNotFound,
    ModelUnsuitable,
    RequestRejected,
    ServerUnreachable,
    TransientError,
)

T = TypeVar("T")

NS_PER_MS = 1_000_000
VISION_HINT = "pick a vision model such as qwen2.5vl:7b or llama3.2-vision:11b"


def full_model_name(name: str) -> str:
    """`qwen2.5vl` → `qwen2.5vl:latest`, as the server names it."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class OllamaBackend:
    """Talks to one Ollama server; safe to share between threads."""

    name = "ollama"

    def __init__(self, host: str, *, timeout: float, keep_alive: str | float = "30m") -> None:
        self.host = host
        self.timeout = timeout
        self.keep_alive = keep_alive
        limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        # trust_env=False: a proxy variable must never route students' faces elsewhere.
        # The bounded transport makes `timeout` a deadline for each request as a whole
        # and caps each reply's size (a hostile server cannot hold or flood the run).
        self._client = ollama.Client(
            host=host, timeout=limits, trust_env=False, transport=bounded_transport()
        )
        self._http = httpx.Client(
            base_url=host, timeout=limits, trust_env=False, transport=bounded_transport()
        )

    @property
    def client(self) -> ollama.Client:
        """The `ollama.Client` for this server (call it inside `translating`)."""
        return self._client

    def ignored_options(self, options: Mapping[str, Any]) -> list[str]:
        """Ollama takes every option emoprobe knows."""
        return []

    # -- before the first image -------------------------------------------------
    def server_version(self) -> str:
        """`GET /api/version`; proves an Ollama server answers at the host."""
        with self.translating("GET /api/version"):
            response = self._http.get("/api/version")
        try:
            version = response.json()["version"]
        except (ValueError, KeyError, TypeError):
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise ServerUnreachable(
                f"{self.host} answers, but not as an Ollama server "
                f"(GET /api/version gave HTTP {response.status_code}, {kind}): check --host"
            ) from None
        return str(version)

    def describe(self, model: str) -> ModelInfo:
        version = self.server_version()
        try:
            shown = self._call(lambda: self._client.show(model), model)
        except ModelNotFound as error:
            raise self._near_misses(error, model) from None
        capabilities = tuple(shown.capabilities or ())
        if not can_see(capabilities, shown.modelinfo):
            listed = ", ".join(capabilities) or "none listed"
            raise ModelUnsuitable(
                f"model {model!r} cannot read images (capabilities: {listed}); {VISION_HINT}"
            )
        listed_model = self._listed(model)
        details = shown.details
        return ModelInfo(
            name=model,
            digest=listed_model.digest if listed_model else "",
            server_version=version,
            family=(details.family if details else "") or "",
            parameter_size=(details.parameter_size if details else "") or "",
            quantization=(details.quantization_level if details else "") or "",
            size_bytes=int(listed_model.size or 0) if listed_model else 0,
            capabilities=capabilities,
        )

    def _near_misses(self, error: ModelNotFound, model: str) -> ModelNotFound:
        """`error`, or a ModelNotFound naming the server's models close to `model` (a typo
        such as qwen2.5-vl:7b for qwen2.5vl:7b is no tag to pull)."""
        if model.startswith("emoprobe-"):
            return error  # a build of emoprobe's: the fix is to build it
        try:
            listing = self._call(self._client.list, model)
        except BackendError:
            return error
        names = [entry.model or "" for entry in listing.models]
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

    def _listed(self, model: str) -> Any:
        wanted = full_model_name(model)
        listing = self._call(self._client.list, model)
        for entry in listing.models:
            if full_model_name(entry.model or "") == wanted:
                return entry
        return None

    def load(self, model: str) -> float:
        """An empty chat loads the model and keeps it for the run (`keep_alive`);
        `timeout` bounds the load as it bounds every request."""
        started = time.monotonic()
        body: dict[str, Any] = {
            "model": model,
            "messages": [],
            "keep_alive": self.keep_alive,
            "stream": False,
        }
        with self.translating("loading the model", model):
            response = self._http.post("/api/chat", json=body)
            if response.status_code >= 400:
                raise ollama.ResponseError(response.text, response.status_code)
        return time.monotonic() - started

    def unload(self, model: str) -> None:
        """An empty chat with `keep_alive: 0` unloads the model and frees its memory."""
        body = {"model": model, "messages": [], "keep_alive": 0, "stream": False}
        with self.translating("unloading the model", model):
            response = self._http.post("/api/chat", json=body)
            if response.status_code >= 400:
                raise ollama.ResponseError(response.text, response.status_code)

    # -- one image ----------------------------------------------------------------
    def chat(self, request: ChatRequest) -> Answer:
        """Stream one answer; a reply that never completes is an error, not an answer.

        The stream is read to its end, so the connection is kept for the next request;
        an answer past MAX_ANSWER_CHARS is cut off there (TRUNCATED) and the rest unread.
        """
        started = time.monotonic()
        pieces: list[str] = []
        length = 0
        thinking = 0
        logprobs: list[dict[str, Any]] = []
        final = None
        asks_logprobs = request.top_logprobs > 0
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user_text, "images": [request.image]},
        ]
        with self.translating("POST /api/chat", request.model):
            stream = self._client.chat(
                model=request.model,
                messages=messages,
                options=dict(request.options),
                keep_alive=self.keep_alive,
                stream=True,
                format=dict(request.format) if request.format else None,
                logprobs=True if asks_logprobs else None,
                top_logprobs=request.top_logprobs if asks_logprobs else None,
            )
            try:
                for chunk in stream:
                    if final is not None:
                        break  # lines after the last: not Ollama; leave them unread
                    piece = chunk.message.content or ""
                    pieces.append(piece)
                    length += len(piece)
                    thinking += len(chunk.message.thinking or "")
                    logprobs += [entry.model_dump() for entry in chunk.logprobs or ()]
                    if chunk.done:
                        final = chunk
                    elif length > MAX_ANSWER_CHARS:
                        return Answer(
                            raw="".join(pieces)[:MAX_ANSWER_CHARS],
                            latency_s=time.monotonic() - started,
                            done_reason=TRUNCATED,
                            logprobs=tuple(logprobs),
                        )
            finally:
                if isinstance(stream, Generator):
                    stream.close()  # ends the HTTP stream at once
        if final is None:
            raise TransientError("truncated reply: the stream ended before the answer was done")
        return Answer(
            raw="".join(pieces),
            latency_s=time.monotonic() - started,
            done_reason=final.done_reason or "",
            prompt_tokens=final.prompt_eval_count or 0,
            prompt_ms=(final.prompt_eval_duration or 0) / NS_PER_MS,
            output_tokens=final.eval_count or 0,
            output_ms=(final.eval_duration or 0) / NS_PER_MS,
            load_ms=(final.load_duration or 0) / NS_PER_MS,
            total_ms=(final.total_duration or 0) / NS_PER_MS,
            logprobs=tuple(logprobs),
            thinking_chars=thinking,
        )

    def close(self) -> None:
        self._client._client.close()
        self._http.close()

    # -- error translation ----------------------------------------------------------
    def _call(self, function: Callable[[], T], model: str) -> T:
        with self.translating("request", model):
            return function()

    @contextmanager
    def translating(self, what: str, model: str = "") -> Iterator[None]:
        """Turn the client's and httpx's exceptions inside into emoprobe's own."""
        try:
            yield
        except BackendError:
            raise
        except ollama.ResponseError as error:
            raise self._from_status(error.status_code, error.error, model) from None
        except (ConnectionError, httpx.ConnectError):
            raise ServerUnreachable(
                f"cannot reach Ollama at {self.host}: start it with `ollama serve` "
                "or point --host at a running server"
            ) from None
        except (httpx.HTTPError, ValueError, TypeError, KeyError) as error:
            failure = transport_failure(error, what, self.timeout)
            if failure is None:
                raise
            raise failure from None

    def _from_status(self, status: int, message: str, model: str) -> BackendError:
        text = " ".join(str(message).split())[:300]
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


def can_see(capabilities: tuple[str, ...], *infos: Any) -> bool:
    """`vision` in the capabilities; servers too old to list them are judged by their keys."""
    if capabilities:
        return "vision" in capabilities
    keys = " ".join(" ".join(info) for info in infos if info)
    return "vision" in keys or "clip" in keys

"""A test double of an OpenAI-compatible server's ``/v1`` API, shaped like vLLM's.

A real HTTP/1.1 server on 127.0.0.1 (keep-alive, ``Content-Length`` on every reply) built
on the Ollama double's plumbing (`ollama_double.ChatDoubleBase`: start/stop on the same
port, request records, parallel slots and a queue, injectable faults), so ``httpx``
talks to it as to ``vllm serve``. Routes:

    GET  /v1/models            {"object": "list", "data": [{"id", "created", "owned_by", ...}]}
    POST /v1/chat/completions  non-streaming chat completions (``stream: true`` → 400);
                               ``logprobs``/``top_logprobs`` answered as OpenAI does
    GET  /version              {"version": ...} at the root, as vLLM has it (404 when
                               ``version=None``, as llama.cpp, LM Studio and Ollama)
    GET  /health               200, empty

Anything else (every Ollama-native ``/api/*`` path included) is FastAPI's
``404 {"detail": "Not Found"}``. Errors are OpenAI-shaped:
``{"error": {"message", "type", "param", "code"}}``. With ``api_key`` set, every ``/v1``
route wants ``Authorization: Bearer <api_key>`` and answers 401 otherwise (``/version``
and ``/health`` stay open, as in vLLM).

Like vLLM (and llama.cpp), a model's ``created`` is the time of the request unless the
`ServedModel` fixes it (Ollama's /v1 gives the model's modification time).

Typical use::

    with OpenAIDouble(answer=answer_by_image({sha: "happy"})) as double:
        backend = OpenAIBackend(f"{double.url}/v1", timeout=5)
        double.inject("rate429", times=1)      # the next chat request gets a 429
        ...
        assert double.faults_served == 1

Faults touch only chat requests that pass validation (JSON, messages, a served model):
those are the ones in ``chat_requests``, indexed for ``inject(on=...)``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ollama_double import (
    ChatDoubleBase,
    FaultRule,
    RequestRecord,
    _Dropped,
    _logprobs,
    _pseudo_tokens,
    _RecordingHandler,
)
from ollama_double import answer_by_image as _answer_by_image

__all__ = [
    "DEFAULT_SERVED",
    "NO_VISION_MESSAGE",
    "OPENAI_FAULT_KINDS",
    "FaultRule",
    "OpenAIDouble",
    "RequestRecord",
    "ServedModel",
    "answer_by_image",
    "image_sha256s",
    "last_image_sha",
]

OPENAI_FAULT_KINDS = frozenset(
    {
        "http500",  # 500 {"error": {"message": "...", "type": "InternalServerError"}}
        "http400",  # 400 {"error": {"message": <message or a bad-request text>}}
        "busy503",  # 503 at once, without taking a slot
        "rate429",  # 429 at once, without taking a slot
        "drop",  # the connection closes without any reply
        "malformed",  # 200 with a body that is not JSON
        "truncated",  # the connection closes half-way through the JSON body
        "no_choices",  # 200 with a chat completion whose "choices" is []
        "hang",  # never answers until clear_faults()/release_hung()/stop()
        "slow",  # answers normally after an extra delay (slow_seconds)
    }
)

# llama.cpp's reply (HTTP 500) when the model has no vision projector (--mmproj).
NO_VISION_MESSAGE = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
SERVER_ERROR_MESSAGE = "EngineCore encountered an issue. See stack trace for the root cause."
BAD_REQUEST_MESSAGE = "This model's maximum context length is 4096 tokens."


@dataclass
class ServedModel:
    """One model the server serves, as its ``/v1/models`` entry shows it."""

    id: str
    owned_by: str = "vllm"
    created: int | None = None  # None: the time of each request, as vLLM and llama.cpp
    root: str | None = None  # vLLM: the weights' path or repository; defaults to id
    max_model_len: int | None = 32768
    vision: bool = True  # False: a request with an image gets llama.cpp's 500
    meta: dict[str, Any] | None = None  # llama.cpp's weights metadata

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = self.id

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "created": int(time.time()) if self.created is None else self.created,
            "owned_by": self.owned_by,
            "root": self.root,
            "parent": None,
            "max_model_len": self.max_model_len,
        }
        if self.meta is not None:
            entry["meta"] = dict(self.meta)
        return entry


DEFAULT_SERVED: tuple[ServedModel, ...] = (ServedModel("Qwen/Qwen2.5-VL-7B-Instruct"),)


# --------------------------------------------------------------------------------------
# images in OpenAI requests
# --------------------------------------------------------------------------------------
def _data_url_bytes(url: Any) -> bytes | None:
    """The bytes of a ``data:<type>;base64,<data>`` URL, or None."""
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def _image_urls(message: Any) -> list[Any]:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return []
    urls = []
    for part in message["content"]:
        if isinstance(part, dict) and part.get("type") == "image_url":
            image_url = part.get("image_url")
            urls.append(image_url.get("url") if isinstance(image_url, dict) else image_url)
    return urls


def image_sha256s(request_json: dict[str, Any]) -> list[str]:
    """sha256 hex of every data-URL image in the request's messages, in order."""
    digests = []
    for message in request_json.get("messages") or []:
        for url in _image_urls(message):
            data = _data_url_bytes(url)
            if data is not None:
                digests.append(hashlib.sha256(data).hexdigest())
    return digests


def last_image_sha(request_json: dict[str, Any]) -> str | None:
    """sha256 hex of the first image of the last message that has one."""
    for message in reversed(request_json.get("messages") or []):
        urls = _image_urls(message)
        if urls:
            data = _data_url_bytes(urls[0])
            return None if data is None else hashlib.sha256(data).hexdigest()
    return None


def answer_by_image(
    mapping: dict[str, str], default: str = "neutral"
) -> Callable[[dict[str, Any]], str]:
    """An ``answer`` callable: sha256 hex of the last message's first image -> text."""
    return _answer_by_image(mapping, default, image_sha=last_image_sha)


# --------------------------------------------------------------------------------------
# the handler
# --------------------------------------------------------------------------------------
class _OpenAIHandler(_RecordingHandler):
    json_type = "application/json"

    @property
    def double(self) -> OpenAIDouble:
        return self.server.owner

    def _routes(self) -> dict[str, dict[str, str]]:
        routes = dict(_ROUTES)
        if self.double.version is None:
            del routes["/version"]
        return routes

    def _not_found(self) -> None:
        self._json(404, {"detail": "Not Found"})

    def _not_allowed(self) -> None:
        self._json(405, {"detail": "Method Not Allowed"})

    def _internal_failure(self) -> None:
        self._error(500, "openai double: internal error (see .errors)", "InternalServerError")

    def _error(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        self._json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
        )

    def _authorized(self) -> bool:
        key = self.double.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Incorrect API key provided.", "authentication_error")
        return False

    # -- simple endpoints ----------------------------------------------------------------
    def _health(self) -> None:
        self._empty(200)

    def _version(self) -> None:
        self._json(200, {"version": self.double.version})

    def _models(self) -> None:
        if not self._authorized():
            return
        entries = [model.entry() for model in self.double._served()]
        self._json(200, {"object": "list", "data": entries})

    # -- chat ----------------------------------------------------------------------------
    def _body(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.raw_body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._error(400, "JSON decode error")
            return None
        if not isinstance(body, dict):
            self._error(400, "Input should be a valid dictionary")
            return None
        self.record.json = body
        return body

    def _chat(self) -> None:
        if not self._authorized():
            return
        body = self._body()
        if body is None:
            return
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            self._error(400, "model: Field required")
            return
        if not isinstance(messages, list) or not messages:
            self._error(400, "messages: Field required")
            return
        if body.get("stream"):
            self._error(400, "the openai double does not stream")
            return
        served = self.double._find(model)
        if served is None:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        images = [url for message in messages for url in _image_urls(message)]
        if any(_data_url_bytes(url) is None for url in images):
            self._error(400, "Invalid image URL: only base64 data URLs are accepted")
            return
        if images and not served.vision:
            self._error(500, NO_VISION_MESSAGE, "server_error")
            return
        double = self.double
        chat_index = double._register_chat(body, self.record)
        double._chat_started()
        self._on_complete.append(lambda: double._chat_finished(self.record))
        self._serve_chat(body, model, len(images), chat_index)

    def _serve_chat(self, body: dict[str, Any], model: str, images: int, index: int) -> None:
        double, run = self.double, self.run
        rule = double._pick_fault(index, model, body)
        kind = rule.kind if rule else None
        self.record.fault = kind
        message = rule.message if rule else None
        if kind == "busy503":
            self._error(503, message or "Service Unavailable", "ServiceUnavailableError")
            return
        if kind == "rate429":
            self._error(429, message or "Rate limit reached; retry later", "RateLimitError")
            return
        if kind == "hang" and not double._hang(run):
            raise _Dropped
        slot = double._acquire_slot(run)
        if slot is None:
            self._error(503, "Service Unavailable: too many requests queued", "ServiceUnavailable")
            return
        if slot is False:
            raise _Dropped
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                double._release_slot()

        self._on_complete.append(release)
        try:
            delay = double.latency
            if kind == "slow":
                delay += rule.seconds if rule and rule.seconds is not None else double.slow_seconds
            if delay > 0 and run.stop.wait(delay):
                raise _Dropped
            self._reply(body, model, images, kind, message)
        finally:
            release()

    def _reply(
        self, body: dict[str, Any], model: str, images: int, kind: str | None, message: str | None
    ) -> None:
        if kind == "http500":
            self._error(500, message or SERVER_ERROR_MESSAGE, "InternalServerError")
            return
        if kind == "http400":
            self._error(400, message or BAD_REQUEST_MESSAGE)
            return
        if kind == "drop":
            raise _Dropped
        if kind == "malformed":
            garbage = (message or "upstream proxy error: <html>502 Bad Gateway</html>").encode()
            self.record.status = 200
            self.replied = True
            self._send_bytes(200, garbage, self.json_type)
            return
        try:
            text = self.double.answer(body)
        except Exception as error:
            self.double._internal_error(traceback.format_exc())
            self._error(500, f"openai double: answer callable failed: {error!r}")
            return
        reply = self._completion(body, model, images, "" if text is None else str(text))
        if kind == "no_choices":
            reply["choices"] = []
        if kind == "truncated":
            data = self._encode(reply)
            self.record.status = 200
            self.replied = True
            self.send_response(200)
            self.send_header("Content-Type", self.json_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            raise _Dropped
        self._json(200, reply)

    @staticmethod
    def _completion(body: dict[str, Any], model: str, images: int, text: str) -> dict[str, Any]:
        finish = "stop"
        limit = body.get("max_tokens")
        words = text.split()
        if isinstance(limit, int) and 0 < limit < len(words):
            text, finish = " ".join(words[:limit]), "length"
        tokens = _pseudo_tokens(text)
        logprobs = None
        if body.get("logprobs"):
            top = body.get("top_logprobs") or 0
            logprobs = {"content": _logprobs(tokens, top if isinstance(top, int) else 0)}
        prompt_chars = 0
        for message in body["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                prompt_chars += len(content)
            elif isinstance(content, list):
                prompt_chars += sum(
                    len(str(part.get("text") or ""))
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
        prompt_tokens = 12 + prompt_chars // 4 + 576 * images
        completion_tokens = max(len(tokens), 1)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": []},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens,
            },
        }


_ROUTES: dict[str, dict[str, str]] = {
    "/v1/models": {"GET": "_models"},
    "/v1/chat/completions": {"POST": "_chat"},
    "/version": {"GET": "_version"},
    "/health": {"GET": "_health"},
}


# --------------------------------------------------------------------------------------
# the double
# --------------------------------------------------------------------------------------
class OpenAIDouble(ChatDoubleBase):
    """A fake ``vllm serve`` on 127.0.0.1:<free port>; see the module docstring.

    ``url`` is the server's root; the OpenAI base URL is ``base_url`` (``url + "/v1"``).
    """

    _handler = _OpenAIHandler
    fault_kinds = OPENAI_FAULT_KINDS

    def __init__(
        self,
        *,
        models: Iterable[ServedModel | str] | None = None,
        version: str | None = "0.11.0",
        api_key: str | None = None,
        latency: float = 0.0,
        parallel: int = 1,
        max_queue: int = 512,
        answer: Callable[[dict[str, Any]], str] | None = None,
        slow_seconds: float = 2.0,
    ) -> None:
        super().__init__(
            latency=latency,
            parallel=parallel,
            max_queue=max_queue,
            answer=answer,
            slow_seconds=slow_seconds,
        )
        self.version = version
        self.api_key = api_key
        self._models: dict[str, ServedModel] = {}
        for model in DEFAULT_SERVED if models is None else models:
            self.add_model(model)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def models(self) -> dict[str, ServedModel]:
        with self._lock:
            return dict(self._models)

    def add_model(self, model: ServedModel | str) -> None:
        served = ServedModel(model) if isinstance(model, str) else copy.deepcopy(model)
        with self._lock:
            self._models[served.id] = served

    def remove_model(self, model_id: str) -> bool:
        with self._lock:
            return self._models.pop(model_id, None) is not None

    def _served(self) -> list[ServedModel]:
        with self._lock:
            return list(self._models.values())

    def _find(self, model_id: str) -> ServedModel | None:
        with self._lock:
            return self._models.get(model_id)

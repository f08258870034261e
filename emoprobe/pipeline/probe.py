"""One image → one answer: the cache first, then the model, with retries.

Shared by `emoprobe run` (many images, pipelined) and `emoprobe classify` (a few).
A failed request is never cached; only the first successful answer is.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emoprobe.backends.base import Answer, Backend, ModelInfo
from emoprobe.data.images import PREPARE_VERSION, prepare_image
from emoprobe.errors import (
    BackendError,
    ConfigError,
    RequestRejected,
    ServerUnreachable,
    TransientError,
)
from emoprobe.files import os_error_text
from emoprobe.pipeline.cache import ResponseCache, response_key
from emoprobe.settings import default_cache_dir
from emoprobe.task.answers import TOP_LOGPROBS, cache_mode, json_label, json_schema, label_scores
from emoprobe.task.definition import UNPARSED, Task
from emoprobe.task.parse import parse_answer

ANSWER_MODE = "text"
KEEP_ALIVE = "30m"
MAX_BACKOFF_S = 30.0
NOT_IN_CACHE = "not in cache"
STOPPED = "stopped"


@dataclass
class Outcome:
    """What became of one image; `error` is final (a bad image), `failure` is not."""

    path: Path
    sha256: str = ""
    key: str = ""
    payload: bytes | None = None
    answer: Answer | None = None
    cached: bool = False
    error: str = ""  # the image can't be used: a final `error` row
    failure: str = ""  # the request failed after retries: no row, retried next run
    seq: int = 0
    item: Any = None
    attempts: int = 0  # failed requests so far

    @property
    def needs_request(self) -> bool:
        return self.answer is None and not self.error and not self.failure


RetryHook = Callable[[Outcome, str, int, float], None]


class Classifier:
    """Answers images for one model and task through a cache and a backend."""

    def __init__(
        self,
        *,
        task: Task,
        model: str,
        options: dict[str, Any],
        backend: Backend | None,
        cache: ResponseCache,
        info: ModelInfo,
        max_side: int | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        on_retry: RetryHook | None = None,
        on_warning: Callable[[str], None] | None = None,
        answer_mode: str = ANSWER_MODE,
    ) -> None:
        self.task = task
        self.answer_mode = answer_mode
        self._format = json_schema(task.labels) if answer_mode == "json" else None
        self._top_logprobs = TOP_LOGPROBS if answer_mode == "logprobs" else 0
        self.model = model
        self.options = options
        self.backend = backend  # None: offline, answers come only from the cache
        self.cache = cache
        self.info = info
        self.max_side = max_side
        self.retries = retries
        self.backoff = backoff
        self.on_retry = on_retry or (lambda *args: None)
        self.on_warning = on_warning or (lambda message: None)
        self.stop = threading.Event()
        self.fatal: BackendError | None = None
        self._key_messages = [("system", task.system_prompt), ("user", task.user_text + "<image>")]
        self._preparation = f"{PREPARE_VERSION}:max_side={max_side}"
        self._backend_name = info.backend
        self._load_lock = threading.Lock()
        self._loaded: set[int] = set()
        self._stats_lock = threading.Lock()
        self.stats: dict[str, Any] = {
            "requests": 0,
            "retries": 0,
            "load_s": None,
            "eval_count": 0,
            "eval_duration_ns": 0,
            "prompt_eval_count": 0,
            "prompt_eval_duration_ns": 0,
            "request_seconds": 0.0,
            "pixels_source": 0,  # of the images sent, before and after --max-side
            "pixels_sent": 0,
            "json_invalid": 0,  # json-mode answers that did not validate against the schema
        }

    # -- before any request ---------------------------------------------------------------
    def prepare(self, outcome: Outcome) -> Outcome:
        """Hash (remembered by path, size and mtime), look up the cache, else read the image."""
        path = outcome.path
        try:
            stat = os.stat(path)
        except OSError as error:
            outcome.error = os_error_text(error)
            return outcome
        known = self.cache.file_hash(path, stat)
        if known and self._lookup(outcome, known):
            return outcome
        prepared = prepare_image(path, max_side=self.max_side)
        outcome.sha256 = prepared.sha256 or ""
        if prepared.error:
            outcome.error = prepared.error
            return outcome
        self.cache.remember_file_hash(path, stat, prepared.sha256)
        if self._lookup(outcome, prepared.sha256):
            return outcome
        if self.backend is None:
            outcome.error = NOT_IN_CACHE
        else:
            outcome.payload = prepared.payload
            with self._stats_lock:
                self.stats["pixels_source"] += prepared.source_pixels
                self.stats["pixels_sent"] += (prepared.width or 0) * (prepared.height or 0)
        return outcome

    def _lookup(self, outcome: Outcome, sha256: str) -> bool:
        outcome.sha256 = sha256
        outcome.key = response_key(
            backend=self._backend_name,
            model_digest=self.info.digest,
            messages_text=self._key_messages,
            options=self.options,
            answer_mode=cache_mode(self.answer_mode),
            image_sha256=sha256,
            image_preparation=self._preparation,
        )
        value = self.cache.get(outcome.key)
        if value is None:
            return False
        outcome.answer = Answer.from_cache(value)
        outcome.cached = True
        return True

    # -- the request ----------------------------------------------------------------------
    def request(self, outcome: Outcome, backend: Backend) -> Outcome:
        """One attempt on `backend`: on success the answer is cached and filled in.

        Raises the backend's errors; the caller decides what to retry and where.
        """
        self._ensure_loaded(backend)
        answer = backend.chat(
            self.model,
            self.task.messages(outcome.payload or b""),
            self.options,
            format=self._format,
            top_logprobs=self._top_logprobs,
        )
        if self._top_logprobs:
            scores = label_scores(answer.logprobs, self.task.labels, self.task.synonyms)
            answer = replace(answer, scores=scores, logprobs=())
        record = {**answer.to_cache(), "model": self.model, "digest": self.info.digest}
        self.cache.set(outcome.key, record)
        outcome.answer = answer
        outcome.payload = None
        self._record(answer)
        return outcome

    def ask(self, outcome: Outcome) -> Outcome:
        """Ask this classifier's backend, retrying what is worth retrying with backoff."""
        assert self.backend is not None, "offline classifiers never ask"
        attempt = 0
        while not self.stop.is_set():
            try:
                return self.request(outcome, self.backend)
            except (TransientError, ServerUnreachable) as error:
                if attempt >= self.retries:
                    outcome.failure = str(error)
                    break
                delay = self.backoff_delay(attempt)
                self.on_retry(outcome, str(error), attempt + 1, delay)
                self.count("retries")
                attempt += 1
                self.stop.wait(delay)
            except RequestRejected as error:
                outcome.failure = str(error)
                break
            except BackendError as error:
                self.give_up(error)
                outcome.failure = str(error)
                break
        outcome.failure = outcome.failure or STOPPED
        outcome.payload = None
        return outcome

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, capped."""
        return min(MAX_BACKOFF_S, self.backoff * 2**attempt) * random.uniform(0.5, 1)

    def give_up(self, error: BackendError) -> None:
        """A failure nothing else can get past (the model vanished): stop everything."""
        self.fatal = self.fatal or error
        self.stop.set()

    def prediction(self, outcome: Outcome) -> str:
        """The label the answer names, or `unparsed`.

        A json-mode answer that does not validate is counted and read by the parser.
        """
        if outcome.answer is None:
            return ""
        raw = outcome.answer.raw
        if self._format is not None:
            label = json_label(raw, self.task.labels)
            if label is not None:
                return label
            self.count("json_invalid")
        return parse_answer(raw, self.task.labels, self.task.synonyms)

    def _ensure_loaded(self, backend: Backend) -> None:
        """Load the model once per server before its first image (keep_alive holds it)."""
        with self._load_lock:
            if id(backend) in self._loaded:
                return
            try:
                self.stats["load_s"] = backend.load(self.model)
            except TransientError as error:
                self.on_warning(f"could not preload {self.model} ({error}); going on")
            self._loaded.add(id(backend))

    def _record(self, answer: Answer) -> None:
        timings = answer.timings
        with self._stats_lock:
            stats = self.stats
            stats["requests"] += 1
            stats["request_seconds"] += answer.latency_s
            stats["eval_count"] += timings.get("eval_count", 0)
            stats["eval_duration_ns"] += timings.get("eval_duration", 0)
            stats["prompt_eval_count"] += timings.get("prompt_eval_count", 0)
            stats["prompt_eval_duration_ns"] += timings.get("prompt_eval_duration", 0)

    def count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1


BACKENDS = ("ollama", "openai")


def make_backend(kind: str, host: str, *, timeout: float, keep_alive: str = KEEP_ALIVE) -> Backend:
    """The backend for one server: Ollama's native API, or an OpenAI-compatible one."""
    if kind == "openai":
        from emoprobe.backends.openai import OpenAIBackend

        return OpenAIBackend(host, timeout=timeout)
    if kind != "ollama":
        raise ConfigError(f"--backend {kind}: choose one of {', '.join(BACKENDS)}")
    from emoprobe.backends.ollama import OllamaBackend

    return OllamaBackend(host, timeout=timeout, keep_alive=keep_alive)


@contextmanager
def open_backends_and_cache(
    hosts: Sequence[str],
    *,
    kind: str = "ollama",
    timeout: float,
    cache_dir: Path | None,
    offline: bool,
    keep_alive: str = KEEP_ALIVE,
) -> Iterator[tuple[list[Backend], ResponseCache]]:
    """The cache and, unless offline, one backend per host; all closed afterwards."""
    cache = ResponseCache(cache_dir or default_cache_dir())
    backends: list[Backend] = []
    try:
        if not offline:
            for host in hosts:
                backends.append(make_backend(kind, host, timeout=timeout, keep_alive=keep_alive))
        yield backends, cache
    finally:
        cache.close()
        for backend in backends:
            backend.close()


def describe_model(
    model: str, backends: Sequence[Backend], cache: ResponseCache, kind: str = "ollama"
) -> ModelInfo:
    """Ask every server about the model (they must serve the same build), or offline,
    what the cache recorded of it."""
    recorded_as = model if kind == "ollama" else f"{kind}:{model}"
    if backends:
        infos = [backend.describe(model) for backend in backends]
        if len({info.digest for info in infos}) > 1:
            served = ", ".join(
                f"{getattr(b, 'host', '?')}: {i.digest[:12]}"
                for b, i in zip(backends, infos, strict=True)
            )
            raise ConfigError(
                f"the hosts serve different builds of {model} ({served}); "
                "pull the same one everywhere"
            )
        cache.remember_model(recorded_as, infos[0].to_dict())
        return infos[0]
    record = cache.recall_model(recorded_as)
    if record is None:
        raise ConfigError(
            f"--offline: the cache at {cache.directory} has no answers from {model}; "
            "import a bundle (emoprobe cache import FILE) or run once online"
        )
    return ModelInfo.from_dict(record)



__all__ = ["NOT_IN_CACHE", "UNPARSED", "Classifier", "Outcome"]

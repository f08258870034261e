"""One image → one answer: the cache first, then the model, then the parser.

    with Probe.open(model="qwen2.5vl:7b") as probe:
        print(probe.classify("face.jpg").label)

`emoprobe run` uses the same steps apart (`prepare`, `send`, `result`) to pipeline many
images over many hosts. A failed request is never cached; only the first answer is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from emoprobe.backends.base import TRUNCATED, Answer, Backend, ChatRequest, ModelInfo, capped
from emoprobe.backends.registry import open_backend
from emoprobe.backends.server_support import (
    ServerSupport,
    UnknownImageRule,
    image_tokens,
    support_for_text,
    think_value,
)
from emoprobe.data.images import prepare_image
from emoprobe.errors import BackendError, ConfigError, TransientError
from emoprobe.files import os_error_text
from emoprobe.hosts import checked_host
from emoprobe.pipeline.cache import HASH_BATCH, KeyMaker, ResponseCache
from emoprobe.pipeline.config import ANSWER_MODE, check_model_name, check_request_settings
from emoprobe.pipeline.retry import RetryPolicy, Stop, Verdict
from emoprobe.pipeline.stats import RunStats
from emoprobe.results import predictions
from emoprobe.settings import (
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    default_cache_dir,
    default_host,
)
from emoprobe.task.answers import (
    TOP_LOGPROBS,
    json_label,
    json_schema,
    label_positions,
    scores_for,
    unsupported,
)
from emoprobe.task.definition import PAPER_TASK, UNPARSED, Task
from emoprobe.task.model_options import DEFAULT_OPTIONS
from emoprobe.task.parse import is_refusal, parse_answer

NOT_IN_CACHE = predictions.NOT_IN_CACHE_TEXT
TEMPLATE_TOKENS = 32  # chat-template wrappers around the system and user text, roughly
CHARS_PER_TOKEN = 4
STOPPED = "stopped"
PARSED_MEMO = 10_000  # distinct answers whose label `Probe.result` remembers
TRUNCATED_REASONS = frozenset({"length", TRUNCATED})  # the server's limit, emoprobe's cap


@dataclass(frozen=True)
class Job:
    """A prepared image waiting for its request; the image never shows in the repr."""

    seq: int
    path: Path
    sha256: str
    key: str
    image: bytes = field(repr=False)
    mime: str
    failures: int = 0  # failed requests so far
    failed_on: tuple[str, ...] = ()  # the hosts whose request for it failed
    image_tokens: int = 0  # what the server's rule says the image costs (0: no rule)
    body: bytes = field(default=b"", repr=False)  # the request's HTTP body, built ahead


@dataclass(frozen=True)
class Outcome:
    """What became of one image: an answer, an `error` (the image cannot be used: final)
    or a `failure` (the request failed after retries: no row, tried again next run)."""

    seq: int
    path: Path
    sha256: str = ""
    answer: Answer | None = None
    cached: bool = False
    error: str = ""
    failure: str = ""

    @classmethod
    def failed(cls, job: Job, reason: str) -> Outcome:
        return cls(job.seq, job.path, job.sha256, failure=reason)


@dataclass(frozen=True)
class ProbeResult:
    """One image's label, the answer it came from and where the answer came from."""

    path: Path
    label: str  # a task label, `unparsed`, or "" without an answer
    raw: str | None  # the model's answer; None without one
    status: str  # one of `predictions.STATUSES`
    cached: bool = False
    latency_s: float | None = None
    scores: Mapping[str, float] | None = None  # per label, in logprobs mode (`ok` only)
    error: str = ""
    sha256: str = ""
    answer: Answer | None = field(default=None, repr=False)  # timings, for this run's rows


class Probe:
    """Classifies images for one model and task through a cache and a backend (None:
    offline, answers from the cache only); thread-safe, `stats` counts what it cost."""

    def __init__(
        self,
        *,
        task: Task,
        model: str,
        info: ModelInfo,
        cache: ResponseCache,
        backend: Backend | None = None,
        options: Mapping[str, Any] | None = None,
        answer_mode: str = ANSWER_MODE,
        max_side: int | None = None,
        retry: RetryPolicy | None = None,
        stop: Stop | None = None,
        on_warning: Callable[[str], None] | None = None,
        stats: RunStats | None = None,
    ) -> None:
        self.task = task
        self.model = model
        self.info = info
        self.cache = cache
        self.backend = backend
        self.support = support_for_text(info.server_version) if info.backend == "ollama" else None
        self.options = resolve_think(
            info, self.support, DEFAULT_OPTIONS if options is None else options
        )
        self.answer_mode = answer_mode
        self.max_side = max_side
        self.retry = retry or RetryPolicy()
        self.stop = stop or Stop()
        self.stats = stats or RunStats()
        self.keys = KeyMaker(
            info.backend, info.digest, task, self.options, answer_mode, max_side, model
        )
        self._warn = on_warning or (lambda message: None)
        self._format = json_schema(task.labels) if answer_mode == "json" else None
        self._top_logprobs = TOP_LOGPROBS if answer_mode == "logprobs" else 0
        self._labels_read: dict[str, str] = {}
        self._load_lock = threading.Lock()
        self._loaded: set[int] = set()
        self._no_rule_warned = False
        self._owned = ExitStack()

    @classmethod
    def open(
        cls,
        model: str = DEFAULT_MODEL,
        host: str | None = None,
        *,
        task: Task | None = None,
        answer_mode: str = ANSWER_MODE,
        backend: str = DEFAULT_BACKEND,
        options: Mapping[str, Any] | None = None,
        cache_dir: Path | None = None,
        offline: bool = False,
        allow_remote: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        max_side: int | None = None,
    ) -> Probe:
        """A probe with its own cache and server connection; close it (or use `with`). `host`:
        `$OLLAMA_HOST` by default; one not this machine needs `allow_remote` (faces)."""
        check_model_name(model)
        check_request_settings(timeout, retries)
        url = checked_host(host or default_host(backend), allow_remote=allow_remote)
        with ExitStack() as owned:
            cache = owned.enter_context(ResponseCache(cache_dir or default_cache_dir()))
            server = None
            if not offline:
                server = owned.enter_context(
                    closing(open_backend(backend, host=url, timeout=timeout))
                )
            info = describe_model(model, [server] if server else [], cache, backend)
            check_answer_mode(answer_mode, info)
            probe = cls(
                task=task or PAPER_TASK,
                model=model,
                info=info,
                cache=cache,
                backend=server,
                options=options,
                answer_mode=answer_mode,
                max_side=max_side,
                retry=RetryPolicy(retries=retries),
            )
            probe._owned = owned.pop_all()
        return probe

    def close(self) -> None:
        """Close what `open` opened (a probe built directly closes nothing)."""
        self._owned.close()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def classify(self, path: Path | str) -> ProbeResult:
        """Cache, else the backend (with retries), then the parser; fatal errors raise."""
        prepared = self.prepare(0, Path(path))
        outcome = prepared if isinstance(prepared, Outcome) else self.ask(prepared)
        if self.stop.fatal is not None:
            raise self.stop.fatal
        return self.result(outcome)

    def prepare(self, seq: int, path: Path) -> Outcome | Job:
        """Hash (remembered by path, size and mtime) and look up the cache, else read the
        image: an Outcome when the image needs no request, else the Job for one."""
        return next(self.prepare_many([(seq, path)]))

    def prepare_many(self, images: Iterable[tuple[int, Path]]) -> Iterator[Outcome | Job]:
        """`prepare` each (seq, path) in turn, lazily, reading the file hashes of `HASH_BATCH`
        images at once (one cache lookup per image); a Job carries its request body."""
        pending = iter(images)
        while batch := list(islice(pending, HASH_BATCH)):
            stats: list[os.stat_result | OSError] = []
            for _, path in batch:
                try:
                    stats.append(os.stat(path))
                except OSError as error:
                    stats.append(error)
            found = zip((path for _, path in batch), stats, strict=True)
            files = [(path, st) for path, st in found if isinstance(st, os.stat_result)]
            known = iter(self.cache.file_hashes(files))
            for (seq, path), st in zip(batch, stats, strict=True):
                if isinstance(st, OSError):
                    yield Outcome(seq, path, error=os_error_text(st))
                else:
                    yield self._prepare_one(seq, path, st, next(known))

    def _prepare_one(
        self, seq: int, path: Path, stat: os.stat_result, known: str | None
    ) -> Outcome | Job:
        if known and (hit := self._cached(seq, path, known)):
            return hit
        prepared = prepare_image(path, max_side=self.max_side)
        if prepared.error or prepared.payload is None:
            return Outcome(seq, path, prepared.sha256, error=prepared.error or "unreadable")
        if prepared.sha256 != known:  # else its answer was just looked up
            self.cache.remember_file_hash(path, stat, prepared.sha256)
            if hit := self._cached(seq, path, prepared.sha256):
                return hit
        if self.backend is None:
            return Outcome(seq, path, prepared.sha256, error=NOT_IN_CACHE)
        width, height = prepared.width or 0, prepared.height or 0
        tokens = self._image_tokens(width, height, prepared.source_pixels)
        self.stats.sending(prepared.source_pixels, width * height, *tokens)
        key = self.keys.key(prepared.sha256)
        job = Job(
            seq, path, prepared.sha256, key, prepared.payload, prepared.mime, image_tokens=tokens[0]
        )
        try:  # the body is built here, off the request thread
            return replace(job, body=self.backend.encode(self._request(job)))
        except BackendError:  # an image no server takes: `send` says so
            return job

    def _image_tokens(self, width: int, height: int, source_pixels: int) -> tuple[int, int]:
        """(tokens as sent, as stored: sides scaled back) by the server's rule, else (0, 0)."""
        if self.support is None or width <= 0 or height <= 0:
            return 0, 0
        scale = (source_pixels / (width * height)) ** 0.5 if source_pixels else 1.0
        try:
            sent = image_tokens(self.info.family, width, height, self.support)
            stored = image_tokens(
                self.info.family,
                max(1, round(width * scale)),
                max(1, round(height * scale)),
                self.support,
            )
        except UnknownImageRule as error:
            if not self._no_rule_warned:
                self._no_rule_warned = True
                self._warn(f"{error}: image-token figures come from the server's counts only")
            return 0, 0
        return sent, stored

    def _cached(self, seq: int, path: Path, sha256: str) -> Outcome | None:
        key, legacy = self.keys.key(sha256), self.keys.legacy_key(sha256)
        answer = self.cache.first_answer(key, legacy, model=self.model)
        return None if answer is None else Outcome(seq, path, sha256, answer, cached=True)

    def _request(self, job: Job) -> ChatRequest:
        return ChatRequest(
            model=self.model,
            system=self.task.system_prompt,
            user_text=self.task.user_text,
            image=job.image,
            image_mime=job.mime,
            options=self.options,
            format=self._format,
            top_logprobs=self._top_logprobs,
        )

    def send(self, job: Job, backend: Backend, *, store: bool = True) -> Outcome:
        """One attempt on `backend` (its errors raised); the answer cached unless `store=False`."""
        self._ensure_loaded(backend, job)
        answer = capped(backend.chat(self._request(job), job.body or None))
        if self._top_logprobs:
            positions = label_positions(answer.logprobs, self.task.labels, self.task.synonyms)
            answer = replace(answer, label_positions=positions, logprobs=())
        self.stats.answered(answer)
        outcome = Outcome(job.seq, job.path, job.sha256, answer)
        if store:
            self.store(outcome)
        return outcome

    def store(self, outcome: Outcome) -> None:
        """Cache the answer a request just gave (cached and failed outcomes: nothing)."""
        if outcome.answer is not None and not outcome.cached:
            key = self.keys.key(outcome.sha256)
            self.cache.store_answer(key, outcome.answer, model=self.model, digest=self.info.digest)

    def ask(self, job: Job) -> Outcome:
        """`send` on this probe's backend, retried as the retry policy says."""
        if self.backend is None:
            return Outcome(job.seq, job.path, job.sha256, error=NOT_IN_CACHE)
        while not self.stop.is_set():
            try:
                return self.send(job, self.backend)
            except BackendError as error:
                verdict = self.retry.verdict(error)
                if verdict is Verdict.FATAL:
                    self.stop.halt(error)
                job = replace(job, failures=job.failures + 1)
                if verdict is not Verdict.RETRY or not self.retry.may_retry(job.failures):
                    return Outcome.failed(job, str(error))
                self.stats.retried(str(error))
                self.stop.wait(self.retry.delay(job.failures - 1))
        return Outcome.failed(job, STOPPED)

    def result(self, outcome: Outcome) -> ProbeResult:
        """The outcome read: the label its answer names (an invalid json answer is counted and
        parsed), or why there is none; scores only for an `ok` answer in logprobs mode."""
        answer = capped(outcome.answer) if outcome.answer else None
        if answer is None:
            status = predictions.UNREADABLE if outcome.error else predictions.FAILED
            if outcome.error == NOT_IN_CACHE:
                status = predictions.NOT_IN_CACHE
            problem = outcome.error or outcome.failure
            return ProbeResult(outcome.path, "", None, status, error=problem, sha256=outcome.sha256)
        label = UNPARSED  # cut off past the cap: no label is read from a part
        if answer.done_reason != TRUNCATED:
            valid = json_label(answer.raw, self.task.labels) if self._format else None
            if self._format and valid is None:
                self.stats.json_rejected()
            label = valid or self._parsed(answer.raw)
        scores = None
        if label != UNPARSED and self._top_logprobs:
            scores = scores_for(answer.label_positions, label)
        return ProbeResult(
            path=outcome.path,
            label=label,
            raw=answer.raw,
            status=answer_status(answer, label),
            cached=outcome.cached,
            latency_s=None if outcome.cached else answer.latency_s,
            scores=scores,
            sha256=outcome.sha256,
            answer=answer,
        )

    def _parsed(self, raw: str) -> str:
        """`parse_answer` of `raw`, remembered: a run's answers repeat (pure, so safe)."""
        if (label := self._labels_read.get(raw)) is None:
            if len(self._labels_read) >= PARSED_MEMO:
                self._labels_read.clear()
            label = self._labels_read[raw] = parse_answer(raw, self.task.labels, self.task.synonyms)
        return label

    def _ensure_loaded(self, backend: Backend, job: Job | None = None) -> None:
        """Load the model once per server, then check that prompt, image and answer fit."""
        with self._load_lock:
            if id(backend) in self._loaded:
                return
            try:
                self.stats.loaded(backend.load(self.model, self.options))
            except TransientError as error:
                self._warn(f"could not preload {self.model} ({error}); going on")
            else:
                if job is not None and job.image_tokens:
                    self._check_context(backend, job.image_tokens)
            self._loaded.add(id(backend))

    def prompt_tokens(self) -> int:
        """A rough count of the text tokens a request spends (system + user + template)."""
        chars = len(self.task.system_prompt) + len(self.task.user_text)
        return TEMPLATE_TOKENS + -(-chars // CHARS_PER_TOKEN)

    def _check_context(self, backend: Backend, image_tokens: int) -> None:
        """Warn once if prompt, image and answer pass the context (`num_ctx`, else the runner's)."""
        asked = self.options.get("num_ctx")
        context = asked if isinstance(asked, int) and not isinstance(asked, bool) else None
        if context is None:
            try:
                context = backend.context_length(self.model)
            except BackendError:
                context = None
        if not context:
            return
        answer = self.options.get("num_predict")
        answer = answer if isinstance(answer, int) and answer > 0 else 0
        needed = self.prompt_tokens() + image_tokens + answer
        if needed > context:
            suggested = -(-needed // 1024) * 1024
            self._warn(
                f"the prompt (~{self.prompt_tokens():,} tokens), the first image "
                f"({image_tokens:,} image tokens) and the answer ({answer}) need "
                f"~{needed:,} tokens, more than {self.model}'s context of {context:,} at "
                f"{backend.host}: the server will cut the prompt; set "
                f"--option num_ctx={suggested}"
            )


def resolve_think(
    info: ModelInfo, support: ServerSupport | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """`options` with the `think` to send: false for a thinking model unless asked for;
    ConfigError for a think the model or the server cannot honour."""
    resolved = dict(options)
    if info.backend != "ollama":
        return resolved
    capabilities = list(info.capabilities) or None
    wanted = resolved.get("think")
    if wanted is None and (capabilities is None or "thinking" not in capabilities):
        return resolved  # nothing to switch off: leave the request (and cache key) as it was

    def refused(why: str) -> ConfigError:
        return ConfigError(f"options: think={wanted}{why}", model=info.name, setting="options")

    if support is not None and not support.think_field and wanted not in (None, False):
        raise refused(f" needs Ollama 0.9.0 or newer, the server is {support.version}")
    try:
        if support is not None:
            think_value(support, capabilities, wanted not in (None, False))
    except ValueError:
        abilities = ", ".join(info.capabilities)
        raise refused(f": {info.name} cannot think (its capabilities: {abilities})") from None
    if isinstance(wanted, str) and support is not None and not support.think_levels:
        raise refused(f": levels need Ollama 0.11.0 or newer, the server is {support.version}")
    resolved["think"] = False if wanted is None else wanted
    return resolved


def answer_status(answer: Answer, label: str) -> str:
    """`ok` for a label; else why none: thinking only, a refusal, cut off, or no label named."""
    if label != UNPARSED:
        return predictions.OK
    if answer.done_reason == TRUNCATED:  # past emoprobe's cap: nothing else is read
        return predictions.TRUNCATED_STATUS
    if not answer.raw.strip() and answer.thinking_chars:
        return predictions.EMPTY_AFTER_THINKING
    if is_refusal(answer.raw):
        return predictions.REFUSED
    if answer.done_reason in TRUNCATED_REASONS:
        return predictions.TRUNCATED_STATUS
    return predictions.UNPARSED_STATUS


def describe_model(
    model: str, backends: Sequence[Backend], cache: ResponseCache, kind: str = DEFAULT_BACKEND
) -> ModelInfo:
    """Ask every server about the model (one build on all), or offline, what the cache holds."""
    return describe_models(model, backends, cache, kind)[0]


def describe_models(
    model: str, backends: Sequence[Backend], cache: ResponseCache, kind: str = DEFAULT_BACKEND
) -> list[ModelInfo]:
    """`describe_model`, one ModelInfo per server (their versions may differ)."""
    recorded_as = model if kind == "ollama" else f"{kind}:{model}"
    if backends:
        infos = [backend.describe(model) for backend in backends]
        if len({info.digest for info in infos}) > 1:
            served = ", ".join(
                f"{b.host}: {i.digest[:12]}" for b, i in zip(backends, infos, strict=True)
            )
            raise ConfigError(
                f"the hosts serve different builds of {model} ({served}); "
                "pull the same one everywhere",
                model=model,
                setting="hosts",
            )
        cache.remember_model(recorded_as, infos[0].to_dict())
        return infos
    record = cache.recall_model(recorded_as)
    if record is None:
        raise ConfigError(
            f"offline: the cache at {cache.directory} has no answers from {model}; "
            "import a bundle (emoprobe cache import FILE) or run once online",
            model=model,
            setting="offline",
        )
    return [ModelInfo.from_dict(record)]


def check_answer_mode(mode: str, info: ModelInfo) -> None:
    """ConfigError unless the model's server can answer in `mode`."""
    if problem := unsupported(mode, info.backend, info.server_version):
        raise ConfigError(problem, setting="answer_mode")

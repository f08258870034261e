"""`emoprobe run`: a dataset through a model into predictions, metrics and a report.

The pipeline, in threads:

    preparer ── stat, hash (memoised), cache lookup, read + check image ──┐ hits and
        │ misses, at most `concurrency` waiting                          │ bad images
        ▼                                                                ▼
    `concurrency` workers ── request, retry with backoff, cache ──▶ results ──▶ main thread:
                                                                   rows in sample order,
                                                                   appended and flushed

Only the main thread writes files; a failed request is never written or cached.
"""

from __future__ import annotations

import errno
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .backends.base import Answer, Backend, ModelInfo
from .cache import ResponseCache, default_cache_dir, response_key
from .datasets import Item, load_dataset, stratified_sample
from .errors import (
    BackendError,
    ConfigError,
    RequestRejected,
    ServerUnreachable,
    TransientError,
)
from .hosts import DEFAULT_HOST
from .images import PREPARE_VERSION, prepare_image
from .options import DEFAULT_OPTIONS
from .parse import parse_answer
from .predictions import (
    ERROR,
    FINAL_STATUSES,
    OK,
    UNPARSED_STATUS,
    PredictionWriter,
    Row,
    recover,
)
from .rundir import RunDir, default_out_dir, fingerprint_mismatch
from .tasks import PAPER_TASK, UNPARSED, Task

DEFAULT_MODEL = "qwen2.5vl:7b"
DEFAULT_TIMEOUT_S = 180.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
KEEP_ALIVE = "30m"
ANSWER_MODE = "text"
POLL_S = 0.1
STOPPED = "stopped"


@dataclass
class RunConfig:
    """Everything a run depends on; the CLI fills it from options."""

    dataset: Path
    model: str = DEFAULT_MODEL
    host: str = DEFAULT_HOST
    out: Path | None = None
    cache_dir: Path | None = None
    task: Task = PAPER_TASK
    per_class: int | None = None
    seed: int = 0
    concurrency: int = 2
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF_S
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))
    keep_alive: str = KEEP_ALIVE
    max_side: int | None = None
    command_line: str = ""
    max_consecutive_failures: int = 10

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.per_class is not None and self.per_class < 1:
            raise ConfigError("--per-class must be at least 1")
        if self.retries < 0:
            raise ConfigError("--retries must be 0 or more")
        if self.timeout <= 0:
            raise ConfigError("--timeout must be more than 0 seconds")
        if self.max_side is not None and self.max_side < 28:
            raise ConfigError("--max-side must be at least 28 pixels")


class RunEvents:
    """What a run reports as it goes; the CLI draws a progress bar from these."""

    def warning(self, message: str) -> None: ...
    def started(self, total: int, already_done: int, out: Path) -> None: ...
    def row_written(self, row: Row) -> None: ...
    def request_failed(self, path: str, error: str) -> None: ...
    def retrying(self, path: str, error: str, attempt: int, delay: float) -> None: ...


@dataclass
class RunResult:
    out: Path
    total: int
    finished: int
    failed: int
    metrics: dict[str, Any]
    session: dict[str, Any]
    abort_reason: str = ""

    @property
    def complete(self) -> bool:
        return self.finished == self.total


# -- the work items that flow through the pipeline -----------------------------------
@dataclass
class _Job:
    seq: int
    item: Item
    sha256: str = ""
    key: str = ""
    payload: bytes | None = None
    answer: Answer | None = None
    cached: bool = False
    error: str = ""  # an unusable image: a final `error` row
    failure: str = ""  # a request that failed after retries: no row


@dataclass
class _Done:
    submitted: int


def run(
    config: RunConfig,
    events: RunEvents | None = None,
    backend_factory: Callable[[RunConfig], Backend] | None = None,
) -> RunResult:
    """Run (or resume) one model over one dataset sample; write everything into `out`."""
    events = events or RunEvents()
    task = config.task
    dataset = load_dataset(config.dataset, task)
    sample, sample_warnings = stratified_sample(dataset.items, config.per_class, config.seed)
    for warning in [*dataset.warnings, *sample_warnings]:
        events.warning(warning)
    fingerprint = _fingerprint(config, dataset.root)
    out = config.out or default_out_dir(Path("reports"), dataset.root, config, fingerprint)
    rundir = RunDir(out)
    with rundir.locked():
        manifest = rundir.read_manifest()
        if manifest and (difference := fingerprint_mismatch(manifest, fingerprint)):
            raise ConfigError(
                f"{out} holds a run with other settings ({difference}); "
                "pass another --out to start a new run"
            )
        done = {
            row.path: row for row in recover(rundir.predictions) if row.status in FINAL_STATUSES
        }
        todo = [item for item in sample if item.relpath not in done]
        session: dict[str, Any] = {"started_at": _now(), "rows_written": 0}
        abort_reason = ""
        failed = 0
        if todo:
            backend = (backend_factory or _ollama_backend)(config)
            cache = ResponseCache(config.cache_dir or default_cache_dir())
            try:
                info = backend.describe(config.model)
                if manifest and manifest["model"].get("digest") != info.digest:
                    raise ConfigError(
                        f"model {config.model} changed on the server since {out} was started "
                        f"(digest {manifest['model'].get('digest', '')[:12]} → "
                        f"{info.digest[:12]}); pass another --out"
                    )
                cache.remember_model(config.model, info.to_dict())
                manifest = manifest or _new_manifest(config, dataset, fingerprint, info)
                rundir.write_manifest(manifest)
                events.started(len(sample), len(sample) - len(todo), out)
                pipeline = _Pipeline(config, backend, cache, info, events)
                with PredictionWriter(rundir.predictions) as writer:
                    failed, abort_reason = pipeline.run(todo, writer, done)
                session.update(pipeline.stats())
            finally:
                cache.close()
                backend.close()
        rows = _rows_in_sample_order(sample, recover(rundir.predictions))
        session["finished_at"] = _now()
        result_metrics = rundir.finish(manifest, rows, session, task.labels)
        return RunResult(
            out=out,
            total=len(sample),
            finished=len(rows),
            failed=failed,
            metrics=result_metrics,
            session=session,
            abort_reason=abort_reason,
        )


def _ollama_backend(config: RunConfig) -> Backend:
    from .backends.ollama import OllamaBackend

    return OllamaBackend(config.host, timeout=config.timeout, keep_alive=config.keep_alive)


class _Pipeline:
    """Moves jobs through the preparer, the workers and the writer; see the module doc."""

    def __init__(
        self,
        config: RunConfig,
        backend: Backend,
        cache: ResponseCache,
        info: ModelInfo,
        events: RunEvents,
    ) -> None:
        self.config = config
        self.backend = backend
        self.cache = cache
        self.info = info
        self.events = events
        self.stop = threading.Event()
        self.fatal: BackendError | None = None
        self._requests: queue.Queue[_Job] = queue.Queue(maxsize=config.concurrency)
        self._results: queue.Queue[_Job | _Done | BaseException] = queue.Queue()
        self._prepared_all = threading.Event()
        self._load_lock = threading.Lock()
        self._loaded = False
        self._stats_lock = threading.Lock()
        self._stats: dict[str, Any] = {
            "requests": 0,
            "retries": 0,
            "cache_hits": 0,
            "failed": 0,
            "load_s": None,
            "eval_count": 0,
            "eval_duration_ns": 0,
            "prompt_eval_count": 0,
            "prompt_eval_duration_ns": 0,
            "request_seconds": 0.0,
        }
        self._started = time.monotonic()
        system = config.task.system_prompt
        self._key_messages = [("system", system), ("user", config.task.user_text + "<image>")]
        self._preparation = f"{PREPARE_VERSION}:max_side={config.max_side}"

    def run(
        self, todo: list[Item], writer: PredictionWriter, done: dict[str, Row]
    ) -> tuple[int, str]:
        """Process `todo`; returns (failed images, reason the run stopped early or "")."""
        threads = [threading.Thread(target=self._prepare_all, args=(todo,), daemon=True)]
        threads += [
            threading.Thread(target=self._work, daemon=True) for _ in range(self.config.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            failed, reason = self._write_in_order(writer, done)
        finally:
            self.stop.set()
        self._stats["wall_s"] = time.monotonic() - self._started
        return failed, reason

    # -- preparer thread --------------------------------------------------------------
    def _prepare_all(self, todo: list[Item]) -> None:
        submitted = 0
        try:
            for seq, item in enumerate(todo):
                if self.stop.is_set():
                    break
                job = self._prepare(_Job(seq, item))
                submitted += 1
                if job.answer is not None or job.error:
                    self._results.put(job)
                else:
                    self._put_request(job)
        except BaseException as error:  # surfaced in the main thread
            self._results.put(error)
        finally:
            self._prepared_all.set()
            self._results.put(_Done(submitted))

    def _put_request(self, job: _Job) -> None:
        """Wait for room among the requests; give the job up as stopped if the run stops."""
        while not self.stop.is_set():
            try:
                self._requests.put(job, timeout=POLL_S)
                return
            except queue.Full:
                continue
        job.failure, job.payload = STOPPED, None
        self._results.put(job)

    def _prepare(self, job: _Job) -> _Job:
        path = job.item.path
        try:
            stat = os.stat(path)
        except OSError as error:
            job.error = _os_error_text(error)
            return job
        known = self.cache.file_hash(path, stat)
        if known and self._lookup(job, known):
            return job
        prepared = prepare_image(path, max_side=self.config.max_side)
        job.sha256 = prepared.sha256 or ""
        if prepared.error:
            job.error = prepared.error
            return job
        self.cache.remember_file_hash(path, stat, prepared.sha256)
        if not self._lookup(job, prepared.sha256):
            job.payload = prepared.payload
        return job

    def _lookup(self, job: _Job, sha256: str) -> bool:
        job.sha256 = sha256
        job.key = response_key(
            backend=self.backend.name,
            model_digest=self.info.digest,
            messages_text=self._key_messages,
            options=self.config.options,
            answer_mode=ANSWER_MODE,
            image_sha256=sha256,
            image_preparation=self._preparation,
        )
        value = self.cache.get(job.key)
        if value is None:
            return False
        job.answer = Answer.from_cache(value)
        job.cached = True
        return True

    # -- worker threads ---------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                job = self._requests.get(timeout=POLL_S)
            except queue.Empty:
                if not (self._prepared_all.is_set() or self.stop.is_set()):
                    continue
                try:  # the preparer may have queued a last job just before it finished
                    job = self._requests.get_nowait()
                except queue.Empty:
                    return
            try:
                self._results.put(self._ask(job))
            except BaseException as error:
                self._results.put(error)

    def _ask(self, job: _Job) -> _Job:
        attempt = 0
        while not self.stop.is_set():
            try:
                self._ensure_loaded()
                answer = self.backend.chat(
                    self.config.model,
                    self.config.task.messages(job.payload or b""),
                    self.config.options,
                )
            except (TransientError, ServerUnreachable) as error:
                if attempt >= self.config.retries:
                    job.failure = str(error)
                    break
                delay = self._backoff(attempt)
                self.events.retrying(job.item.relpath, str(error), attempt + 1, delay)
                self._count("retries")
                attempt += 1
                self.stop.wait(delay)
                continue
            except RequestRejected as error:
                job.failure = str(error)
                break
            except BackendError as error:  # the model vanished: nothing else can succeed
                self.fatal = self.fatal or error
                self.stop.set()
                job.failure = str(error)
                break
            self.cache.set(job.key, answer.to_cache())
            job.answer = answer
            job.payload = None
            self._record(answer)
            return job
        job.failure = job.failure or STOPPED
        job.payload = None
        return job

    def _backoff(self, attempt: int) -> float:
        ceiling = min(MAX_BACKOFF_S, self.config.backoff * 2**attempt)
        return ceiling * random.uniform(0.5, 1.0)

    def _ensure_loaded(self) -> None:
        with self._load_lock:
            if self._loaded:
                return
            try:
                self._stats["load_s"] = self.backend.load(self.config.model)
            except TransientError as error:
                self.events.warning(f"could not preload {self.config.model} ({error}); going on")
            self._loaded = True

    def _record(self, answer: Answer) -> None:
        timings = answer.timings
        with self._stats_lock:
            stats = self._stats
            stats["requests"] += 1
            stats["request_seconds"] += answer.latency_s
            stats["eval_count"] += timings.get("eval_count", 0)
            stats["eval_duration_ns"] += timings.get("eval_duration", 0)
            stats["prompt_eval_count"] += timings.get("prompt_eval_count", 0)
            stats["prompt_eval_duration_ns"] += timings.get("prompt_eval_duration", 0)

    def _count(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:
            self._stats[name] += amount

    # -- main thread ------------------------------------------------------------------
    def _write_in_order(self, writer: PredictionWriter, done: dict[str, Row]) -> tuple[int, str]:
        pending: dict[int, _Job] = {}
        next_seq = 0
        expected: int | None = None
        failed = 0
        consecutive = 0
        labels_by_sha = {row.sha256: row.label for row in done.values() if row.sha256}
        reason = ""
        while expected is None or next_seq < expected:
            message = self._results.get()
            if isinstance(message, BaseException):
                raise message
            if isinstance(message, _Done):
                expected = message.submitted
                continue
            pending[message.seq] = message
            while next_seq in pending:
                job = pending.pop(next_seq)
                next_seq += 1
                if job.failure:
                    if job.failure != STOPPED:
                        failed += 1
                        consecutive += 1
                        self._count("failed")
                        self.events.request_failed(job.item.relpath, job.failure)
                    if consecutive >= self.config.max_consecutive_failures and not reason:
                        reason = (
                            f"stopped after {consecutive} images in a row failed "
                            f"(last error: {job.failure})"
                        )
                        self.stop.set()
                    continue
                consecutive = 0
                self._warn_duplicate(job, labels_by_sha)
                row = self._row(job)
                writer.write(row)
                if job.cached:
                    self._count("cache_hits")
                self.events.row_written(row)
        if self.fatal is not None:
            raise self.fatal
        return failed, reason

    def _warn_duplicate(self, job: _Job, labels_by_sha: dict[str, str]) -> None:
        if not job.sha256:
            return
        seen = labels_by_sha.setdefault(job.sha256, job.item.label)
        if seen != job.item.label:
            self.events.warning(
                f"{job.item.relpath}: the same image also appears labelled {seen!r}"
            )

    def _row(self, job: _Job) -> Row:
        item = job.item
        if job.error or job.answer is None:
            return Row(item.relpath, job.sha256, item.label, "", "", ERROR, job.error, "", "false")
        task = self.config.task
        prediction = parse_answer(job.answer.raw, task.labels, task.synonyms)
        status = UNPARSED_STATUS if prediction == UNPARSED else OK
        return Row(
            path=item.relpath,
            sha256=job.sha256,
            label=item.label,
            prediction=prediction,
            raw=job.answer.raw,
            status=status,
            error="",
            latency_s=f"{job.answer.latency_s:.4f}",
            cached="true" if job.cached else "false",
        )

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            return dict(self._stats)


def _rows_in_sample_order(sample: list[Item], rows: list[Row]) -> list[Row]:
    by_path = {row.path: row for row in rows if row.status in FINAL_STATUSES}
    return [by_path[item.relpath] for item in sample if item.relpath in by_path]


def _fingerprint(config: RunConfig, root: Path) -> dict[str, Any]:
    return {
        "task": config.task.name,
        "prompt_sha256": config.task.prompt_sha256,
        "model": config.model,
        "options": config.options,
        "answer_mode": ANSWER_MODE,
        "max_side": config.max_side,
        "dataset_root": str(root),
        "per_class": config.per_class,
        "seed": config.seed,
    }


def _new_manifest(config: RunConfig, dataset: Any, fingerprint: dict, info: ModelInfo) -> dict:
    task = config.task
    return {
        "emoprobe_version": __version__,
        "created_at": _now(),
        "command": config.command_line,
        "fingerprint": fingerprint,
        "backend": "ollama",
        "server": {"host": config.host, "version": info.server_version},
        "model": info.to_dict(),
        "task": {
            "name": task.name,
            "labels": list(task.labels),
            "prompt": task.system_prompt,
            "prompt_sha256": task.prompt_sha256,
            "user_text": task.user_text,
        },
        "options": config.options,
        "keep_alive": config.keep_alive,
        "answer_mode": ANSWER_MODE,
        "max_side": config.max_side,
        "request": {
            "concurrency": config.concurrency,
            "timeout_s": config.timeout,
            "retries": config.retries,
        },
        "dataset": {
            "root": str(dataset.root),
            "format": dataset.format,
            "n_items": len(dataset.items),
            "per_class": config.per_class,
            "seed": config.seed,
        },
        "sessions": [],
    }


def _os_error_text(error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return "file not found"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symlink loop or unreadable path"
    return f"unreadable: {error.strerror or type(error).__name__}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


__all__ = ["DEFAULT_MODEL", "RunConfig", "RunEvents", "RunResult", "run"]

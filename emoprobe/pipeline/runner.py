"""`emoprobe run`: a dataset through a model into predictions, metrics and a report.

The pipeline, in threads:

    preparer ── stat, hash (memoised), cache lookup, read + check image ──┐ cache hits
        │ misses, at most `concurrency` per host waiting                 │ and bad images
        ▼                                                                ▼
    per host, `concurrency` workers (`scheduler.py`) ── request, cache ──▶ results
        ▲ a failure cools the host down and puts the image back          │
        └────────────────────────────────────────────────────────────────┘
                                       main thread: rows in sample order, appended and flushed

Only the main thread writes files; a failed request is never written or cached.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprobe._version import __version__
from emoprobe.backends.base import Backend, ModelInfo
from emoprobe.data.dataset import load_dataset
from emoprobe.data.records import Item
from emoprobe.data.sampling import stratified_sample
from emoprobe.errors import ConfigError
from emoprobe.hosts import DEFAULT_HOST
from emoprobe.pipeline.probe import (
    ANSWER_MODE,
    KEEP_ALIVE,
    NOT_IN_CACHE,
    STOPPED,
    Classifier,
    Outcome,
    describe_model,
    open_backends_and_cache,
)
from emoprobe.pipeline.scheduler import Host, Scheduler
from emoprobe.results.predictions import (
    ERROR,
    FINAL_STATUSES,
    OK,
    UNPARSED_STATUS,
    PredictionWriter,
    Row,
    keep_only,
    recover,
)
from emoprobe.results.rundir import RunDir, default_out_dir, fingerprint_mismatch
from emoprobe.settings import (
    DEFAULT_BACKOFF_S,
    DEFAULT_MODEL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
)
from emoprobe.task.answers import unsupported
from emoprobe.task.definition import PAPER_TASK, UNPARSED, Task
from emoprobe.task.model_options import DEFAULT_OPTIONS

POLL_S = 0.1


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
    offline: bool = False
    dataset_format: str | None = None
    answer_mode: str = ANSWER_MODE
    hosts: tuple[str, ...] = ()  # several servers share the work; else `host` alone
    backend: str = "ollama"

    @property
    def all_hosts(self) -> tuple[str, ...]:
        return self.hosts or (self.host,)

    @property
    def score_labels(self) -> tuple[str, ...]:
        """The labels predictions.csv holds a score column for (logprobs mode only)."""
        return self.task.labels if self.answer_mode == "logprobs" else ()

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
    not_cached: int = 0

    @property
    def complete(self) -> bool:
        return self.finished == self.total


@dataclass
class _Done:
    """The preparer's last word: how many images it handed on."""

    submitted: int


def run(config: RunConfig, events: RunEvents | None = None) -> RunResult:
    """Run (or resume) one model over one dataset sample; write everything into `out`."""
    events = events or RunEvents()
    task = config.task
    dataset = load_dataset(
        config.dataset, task, format=config.dataset_format, cache_dir=config.cache_dir
    )
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
        recovered = recover(rundir.predictions)
        done = {row.path: row for row in recovered if is_final(row)}
        if len(done) < len(recovered):
            keep_only(rundir.predictions, list(done.values()), config.score_labels)
        todo = [item for item in sample if item.relpath not in done]
        session: dict[str, Any] = {"started_at": _now(), "rows_written": 0}
        abort_reason = ""
        failed = 0
        if todo:
            with open_backends_and_cache(
                config.all_hosts,
                kind=config.backend,
                timeout=config.timeout,
                cache_dir=config.cache_dir,
                offline=config.offline,
                keep_alive=config.keep_alive,
            ) as (backends, cache):
                info = describe_model(config.model, backends, cache, config.backend)
                if problem := unsupported(config.answer_mode, info.backend, info.server_version):
                    raise ConfigError(problem)
                if config.backend == "openai" and backends:
                    from emoprobe.backends.openai import dropped_options

                    if dropped := dropped_options(config.options):
                        events.warning(
                            f"an OpenAI-compatible server takes no {', '.join(dropped)}: "
                            "set them where the server starts"
                        )
                if manifest and manifest["model"].get("digest") != info.digest:
                    raise ConfigError(
                        f"model {config.model} changed on the server since {out} was started "
                        f"(digest {manifest['model'].get('digest', '')[:12]} → "
                        f"{info.digest[:12]}); pass another --out"
                    )
                manifest = manifest or _new_manifest(config, dataset, fingerprint, info)
                rundir.write_manifest(manifest)
                events.started(len(sample), len(sample) - len(todo), out)
                classifier = Classifier(
                    task=task,
                    model=config.model,
                    options=config.options,
                    backend=backends[0] if backends else None,
                    cache=cache,
                    info=info,
                    max_side=config.max_side,
                    retries=config.retries,
                    backoff=config.backoff,
                    on_warning=events.warning,
                    answer_mode=config.answer_mode,
                )
                pipeline = _Pipeline(config, classifier, backends, events)
                with PredictionWriter(rundir.predictions, config.score_labels) as writer:
                    failed, abort_reason = pipeline.run(todo, writer, done)
                session.update(pipeline.stats())
        rows = _rows_in_sample_order(sample, recover(rundir.predictions))
        total = len(sample)
        del sample, dataset, done, todo  # the report's libraries are large: make room first
        session["finished_at"] = _now()
        result_metrics = rundir.finish(manifest, rows, session, task.labels)
        finished = sum(is_final(row) for row in rows)
        return RunResult(
            out=out,
            total=total,
            finished=finished,
            failed=failed,
            metrics=result_metrics,
            session=session,
            abort_reason=abort_reason,
            not_cached=sum(row.error == NOT_IN_CACHE for row in rows),
        )


def is_final(row: Row) -> bool:
    """Whether a row settles its image; "not in cache" from an offline replay does not."""
    return row.status in FINAL_STATUSES and row.error != NOT_IN_CACHE


class _Pipeline:
    """Moves images through the preparer, the hosts' workers and the writer."""

    def __init__(
        self,
        config: RunConfig,
        classifier: Classifier,
        backends: list[Backend],
        events: RunEvents,
    ) -> None:
        self.config = config
        self.classifier = classifier
        self.events = events
        self.stop = classifier.stop
        self._results: queue.Queue[Outcome | _Done | BaseException] = queue.Queue()
        self.hosts = [
            Host(getattr(backend, "host", str(index)), backend)
            for index, backend in enumerate(backends)
        ]
        self.scheduler = Scheduler(
            classifier,
            self.hosts,
            window=config.concurrency,
            retries=config.retries,
            deliver=self._results.put,
            on_retry=lambda o, error, attempt, delay: events.retrying(
                o.item.relpath, error, attempt, delay
            ),
        )
        self._counts: dict[str, Any] = {"cache_hits": 0, "failed": 0, "rows_written": 0}
        self._started = time.monotonic()

    def run(
        self, todo: list[Item], writer: PredictionWriter, done: dict[str, Row]
    ) -> tuple[int, str]:
        """Process `todo`; returns (failed images, reason the run stopped early or "")."""
        self.scheduler.start()
        preparer = threading.Thread(target=self._prepare_all, args=(todo,), daemon=True)
        preparer.start()
        try:
            return self._write_in_order(writer, done, preparer)
        finally:
            self.stop.set()
            wall = time.monotonic() - self._started
            self._counts["wall_s"] = wall
            self._counts["hosts"] = [host.stats(wall) for host in self.hosts]

    def stats(self) -> dict[str, Any]:
        return {**self.classifier.stats, **self._counts}

    # -- preparer thread --------------------------------------------------------------
    def _prepare_all(self, todo: list[Item]) -> None:
        submitted = 0
        try:
            for seq, item in enumerate(todo):
                if self.stop.is_set():
                    break
                outcome = self.classifier.prepare(Outcome(item.path, seq=seq, item=item))
                submitted += 1
                if outcome.needs_request:
                    self.scheduler.submit(outcome)
                else:
                    self._results.put(outcome)
        except BaseException as error:  # surfaced in the main thread
            self._results.put(error)
        finally:
            self.scheduler.close()
            self._results.put(_Done(submitted))

    # -- main thread ------------------------------------------------------------------
    def _write_in_order(
        self, writer: PredictionWriter, done: dict[str, Row], preparer: threading.Thread
    ) -> tuple[int, str]:
        pending: dict[int, Outcome] = {}
        next_seq = 0
        expected: int | None = None
        failed = consecutive = 0
        labels_by_sha = {row.sha256: row.label for row in done.values() if row.sha256}
        reason = ""
        while expected is None or next_seq < expected:
            try:
                message = self._results.get(timeout=POLL_S)
            except queue.Empty:
                if self.stop.is_set() and self.scheduler.idle() and not preparer.is_alive():
                    self.scheduler.drain()  # images the stopped workers never took
                continue
            if isinstance(message, BaseException):
                raise message
            if isinstance(message, _Done):
                expected = message.submitted
                continue
            pending[message.seq] = message
            while next_seq in pending:
                outcome = pending.pop(next_seq)
                next_seq += 1
                if outcome.failure:
                    if outcome.failure == STOPPED:
                        continue
                    failed += 1
                    consecutive += 1
                    self._counts["failed"] += 1
                    self.events.request_failed(outcome.item.relpath, outcome.failure)
                    if consecutive >= self.config.max_consecutive_failures and not reason:
                        reason = (
                            f"stopped after {consecutive} images in a row failed "
                            f"(last error: {outcome.failure})"
                        )
                        self.stop.set()
                    continue
                consecutive = 0
                self._warn_duplicate(outcome, labels_by_sha)
                row = self._row(outcome)
                writer.write(row)
                self._counts["rows_written"] += 1
                self._counts["cache_hits"] += outcome.cached
                self.events.row_written(row)
        if self.classifier.fatal is not None:
            raise self.classifier.fatal
        return failed, reason

    def _warn_duplicate(self, outcome: Outcome, labels_by_sha: dict[str, str]) -> None:
        if not outcome.sha256:
            return
        seen = labels_by_sha.setdefault(outcome.sha256, outcome.item.label)
        if seen != outcome.item.label:
            self.events.warning(
                f"{outcome.item.relpath}: the same image also appears labelled {seen!r}"
            )

    def _row(self, outcome: Outcome) -> Row:
        item = outcome.item
        labels = self.config.score_labels
        if outcome.error or outcome.answer is None:
            return Row(
                item.relpath,
                outcome.sha256,
                item.label,
                "",
                "",
                ERROR,
                outcome.error,
                "",
                "false",
                ("",) * len(labels),
            )
        prediction = self.classifier.prediction(outcome)
        found = outcome.answer.scores or {}
        scores = tuple(f"{found[label]:.6f}" if label in found else "" for label in labels)
        return Row(
            path=item.relpath,
            sha256=outcome.sha256,
            label=item.label,
            prediction=prediction,
            raw=outcome.answer.raw,
            status=UNPARSED_STATUS if prediction == UNPARSED else OK,
            error="",
            latency_s=f"{outcome.answer.latency_s:.4f}",
            cached="true" if outcome.cached else "false",
            scores=scores,
        )


def _rows_in_sample_order(sample: list[Item], rows: list[Row]) -> list[Row]:
    by_path = {row.path: row for row in rows if row.status in FINAL_STATUSES}
    return [by_path[item.relpath] for item in sample if item.relpath in by_path]


def _fingerprint(config: RunConfig, root: Path) -> dict[str, Any]:
    return {
        "task": config.task.name,
        "prompt_sha256": config.task.prompt_sha256,
        "model": config.model,
        "options": config.options,
        "answer_mode": config.answer_mode,
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
        "backend": config.backend,
        "server": {"host": config.all_hosts[0], "hosts": list(config.all_hosts),
                   "version": info.server_version},
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
        "answer_mode": config.answer_mode,
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


__all__ = ["DEFAULT_MODEL", "RunConfig", "RunEvents", "RunResult", "run"]

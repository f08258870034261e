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
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from emoprobe._version import __version__
from emoprobe.backends.base import Backend, ModelInfo
from emoprobe.backends.registry import SERVER_NAMES, open_backend
from emoprobe.backends.server_support import parallel_slots, support_for_text
from emoprobe.data.dataset import load_dataset
from emoprobe.data.records import Item
from emoprobe.data.sampling import stratified_sample
from emoprobe.errors import ConfigError
from emoprobe.pipeline.cache import ResponseCache
from emoprobe.pipeline.config import RunConfig
from emoprobe.pipeline.probe import STOPPED, Job, Outcome, Probe, check_answer_mode, describe_models
from emoprobe.pipeline.retry import RetryPolicy, Stop
from emoprobe.pipeline.scheduler import Host, Scheduler
from emoprobe.pipeline.stats import RunStats
from emoprobe.results.manifest import (
    DatasetRecord,
    Fingerprint,
    Manifest,
    ModelRecord,
    RequestSettings,
    Server,
    Session,
    TaskRecord,
)
from emoprobe.results.metrics import Metrics
from emoprobe.results.predictions import (
    FINAL_STATUSES,
    NOT_IN_CACHE,
    STATUSES,
    PredictionWriter,
    Row,
    Status,
    keep_only,
    recover,
    to_frame,
)
from emoprobe.results.rundir import RunDir, default_out_dir
from emoprobe.settings import DEFAULT_REPORTS_DIR, default_cache_dir
from emoprobe.task.answers import SCORING_VERSION

POLL_S = 0.1


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
    metrics: Metrics
    session: Session
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
    fingerprint = Fingerprint(
        task.name,
        task.prompt_sha256,
        config.model,
        config.options,
        config.answer_mode,
        config.max_side,
        str(dataset.root),
        config.per_class,
        config.seed,
    )
    out = config.out or default_out_dir(DEFAULT_REPORTS_DIR, dataset.root, config, fingerprint)
    rundir = RunDir(out)
    with rundir.locked():
        manifest = rundir.read_manifest()
        if manifest and (difference := fingerprint.mismatch(manifest.fingerprint)):
            raise ConfigError(
                f"{out} holds a run with other settings ({difference}); "
                "choose another output folder to start a new run",
                path=out,
                setting="out",
            )
        recovered = recover(rundir.predictions)
        done = {row.path: row for row in recovered if is_final(row)}
        if len(done) < len(recovered):
            keep_only(rundir.predictions, list(done.values()), config.score_labels)
        todo = [item for item in sample if item.relpath not in done]
        stats = RunStats(started_at=_now())
        abort_reason = ""
        failed = 0
        if todo:
            with ExitStack() as resources:
                cache = resources.enter_context(
                    ResponseCache(config.cache_dir or default_cache_dir())
                )
                hosts = () if config.offline else config.hosts
                backends = [_opened(config, host, resources) for host in hosts]
                infos = describe_models(config.model, backends, cache, config.backend)
                info = infos[0]
                check_answer_mode(config.answer_mode, info)
                windows = in_flight_windows(config, infos) if backends else []
                for warning in server_warnings(infos) if backends else []:
                    events.warning(warning)
                if backends and (ignored := backends[0].ignored_options(config.options)):
                    events.warning(
                        f"{SERVER_NAMES.get(config.backend, 'the server')} takes no "
                        f"{', '.join(ignored)}: set them where the server starts"
                    )
                if manifest and manifest.model.digest != info.digest:
                    raise ConfigError(
                        f"model {config.model} changed on the server since {out} was started "
                        f"(digest {manifest.model.digest[:12]} → "
                        f"{info.digest[:12]}); choose another output folder",
                        model=config.model,
                        path=out,
                        setting="out",
                    )
                manifest = manifest or _new_manifest(config, dataset, fingerprint, info)
                if manifest.dataset.drawn is None:
                    manifest.dataset.drawn = _per_class(sample)
                if windows:
                    manifest.request.in_flight = min(window for window, _ in windows)
                    manifest.request.in_flight_reason = "; ".join(
                        dict.fromkeys(reason for _, reason in windows)
                    )
                rundir.write_manifest(manifest)
                events.started(len(sample), len(sample) - len(todo), out)
                probe = Probe(
                    task=task,
                    model=config.model,
                    info=info,
                    cache=cache,
                    backend=backends[0] if backends else None,
                    options=config.options,
                    answer_mode=config.answer_mode,
                    max_side=config.max_side,
                    retry=RetryPolicy(config.retries, config.backoff),
                    stop=Stop(),
                    on_warning=events.warning,
                    stats=stats,
                )
                pipeline = _Pipeline(config, probe, backends, events, todo, windows)
                with PredictionWriter(rundir.predictions, config.score_labels) as writer:
                    failed, abort_reason = pipeline.run(writer, done)
                if warning := cache.unreadable_warning():
                    events.warning(warning)
        by_path = {row.path: row for row in recover(rundir.predictions) if row.status in STATUSES}
        rows = [by_path[item.relpath] for item in sample if item.relpath in by_path]
        total = len(sample)
        if manifest is not None and manifest.dataset.drawn is None:
            manifest.dataset.drawn = _per_class(sample)  # older manifests lack it
        del sample, dataset, done, todo  # the report's libraries are large: make room first
        stats.finished_at = _now()
        session = stats.snapshot()
        result_metrics = rundir.finish(manifest, rows, session, task.labels)
        if manifest is not None:
            from emoprobe.reporting.markdown import write_report

            write_report(out, result_metrics, manifest, to_frame(rows, task.labels))
        return RunResult(
            out=out,
            total=total,
            finished=sum(is_final(row) for row in rows),
            failed=failed,
            metrics=result_metrics,
            session=session,
            abort_reason=abort_reason,
            not_cached=sum(row.status == NOT_IN_CACHE for row in rows),
        )


def in_flight_windows(config: RunConfig, infos: list[ModelInfo]) -> list[tuple[int, str]]:
    """Per host: how many requests to keep in flight, and why (the server's table)."""
    windows = []
    for info in infos:
        support = support_for_text(info.server_version) if info.backend == "ollama" else None
        if support is None:
            windows.append((config.concurrency, f"{config.concurrency} as asked (concurrency)"))
        else:
            windows.append(parallel_slots(support, info.family, config.concurrency))
    return windows


def server_warnings(infos: list[ModelInfo]) -> list[str]:
    """One line per thing the server left unsaid that the run's figures depend on."""
    warnings = []
    for info in infos:
        if info.backend != "ollama":
            continue
        if support_for_text(info.server_version) is None:
            warnings.append(
                f"cannot parse the server version {info.server_version!r}: emoprobe cannot "
                "tell its features (thinking, parallel slots, image tokens); going on as asked"
            )
        if not info.capabilities:
            warnings.append(
                f"the server lists no capabilities for {info.name}: vision was judged from "
                "its model info, and thinking cannot be switched off"
            )
    return list(dict.fromkeys(warnings))


def _opened(config: RunConfig, host: str, resources: ExitStack) -> Backend:
    backend = open_backend(
        config.backend, host=host, timeout=config.timeout, keep_alive=config.keep_alive
    )
    resources.callback(backend.close)
    return backend


def is_final(row: Row) -> bool:
    """Whether a row settles its image; "not in cache" from an offline replay does not."""
    return row.status in FINAL_STATUSES


class _Pipeline:
    """Moves images through the preparer, the hosts' workers and the writer."""

    def __init__(
        self,
        config: RunConfig,
        probe: Probe,
        backends: list[Backend],
        events: RunEvents,
        todo: list[Item],
        windows: list[tuple[int, str]] | None = None,
    ) -> None:
        self.config = config
        self.probe = probe
        self.events = events
        self.todo = todo
        self.stop = probe.stop
        self._results: queue.Queue[Outcome | _Done | BaseException] = queue.Queue()
        self._in_hand: Outcome | _Done | BaseException | None = None  # taken, not yet stored
        self.hosts = [Host(backend.host, backend) for backend in backends]
        for host, (window, _reason) in zip(self.hosts, windows or [], strict=False):
            host.window = window
        self.scheduler = Scheduler(
            probe,
            self.hosts,
            window=config.concurrency,
            deliver=self._results.put,
            on_retry=self._retrying,
            give_up_s=probe.retry.patience_s() + config.timeout,
        )
        self.stats = probe.stats
        self._started = time.monotonic()

    def run(self, writer: PredictionWriter, done: dict[str, Row]) -> tuple[int, str]:
        """Process the images; returns (failed images, reason the run stopped early or "")."""
        self.scheduler.start()
        preparer = threading.Thread(target=self._prepare_all, daemon=True)
        preparer.start()
        try:
            return self._write_in_order(writer, done, preparer)
        finally:
            self.stop.set()
            self._keep_answers()
            wall = time.monotonic() - self._started
            self.stats.wall_s = wall
            self.stats.hosts = [host.record(wall) for host in self.hosts]

    def _keep_answers(self) -> None:
        """Cache the answers still queued when the run ends early: the next run asks none again."""
        message = self._in_hand
        while True:
            if isinstance(message, Outcome):
                try:
                    self.probe.store(message)
                except Exception:  # a store the interrupt cut short left the cache shut
                    return  # for writes: those answers are asked again next time
            try:
                message = self._results.get_nowait()
            except queue.Empty:
                return

    def _retrying(self, job: Job, error: str, delay: float) -> None:
        self.events.retrying(self.todo[job.seq].relpath, error, job.failures, delay)

    # -- preparer thread --------------------------------------------------------------
    def _prepare_all(self) -> None:
        submitted = 0
        try:
            images = ((seq, item.path) for seq, item in enumerate(self.todo))
            for prepared in self.probe.prepare_many(images):
                if self.stop.is_set():
                    break
                submitted += 1
                if isinstance(prepared, Job):
                    self.scheduler.submit(prepared)
                else:
                    self._results.put(prepared)
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
            try:  # held until stored: an interrupt may come mid-store (one statement: no gap)
                self._in_hand = message = self._results.get(timeout=POLL_S)
            except queue.Empty:
                if self.stop.is_set() and self.scheduler.idle() and not preparer.is_alive():
                    self.scheduler.drain()  # images the stopped workers never took
                continue
            if isinstance(message, BaseException):
                raise message
            if isinstance(message, _Done):
                expected = message.submitted
                continue
            self.probe.store(message)  # here, so that the workers send the next at once
            self._in_hand = None
            pending[message.seq] = message
            while next_seq in pending:
                outcome = pending.pop(next_seq)
                item = self.todo[next_seq]
                next_seq += 1
                if outcome.failure:
                    if outcome.failure == STOPPED:
                        continue
                    failed += 1
                    consecutive += 1
                    self.stats.failed_image(outcome.failure)
                    self.events.request_failed(item.relpath, outcome.failure)
                    if consecutive >= self.config.max_consecutive_failures and not reason:
                        reason = (
                            f"stopped after {consecutive} images in a row failed "
                            f"(last error: {outcome.failure})"
                        )
                        self.stop.set()
                    continue
                consecutive = 0
                self._warn_duplicate(outcome, item, labels_by_sha)
                row = self._row(outcome, item)
                writer.write(row)
                self.stats.rows_written += 1
                self.stats.cache_hits += outcome.cached
                self.events.row_written(row)
        if self.stop.fatal is not None:
            raise self.stop.fatal
        return failed, reason or self.stop.reason

    def _warn_duplicate(self, outcome: Outcome, item: Item, labels_by_sha: dict[str, str]) -> None:
        if not outcome.sha256:
            return
        seen = labels_by_sha.setdefault(outcome.sha256, item.label)
        if seen != item.label:
            self.events.warning(f"{item.relpath}: the same image also appears labelled {seen!r}")

    def _row(self, outcome: Outcome, item: Item) -> Row:
        result = self.probe.result(outcome)
        labels = self.config.score_labels
        found = result.scores or {}
        scores = {label: found[label] for label in labels if label in found}
        answer = None if result.cached else result.answer  # timings this run measured
        return Row(
            path=item.relpath,
            sha256=result.sha256,
            label=item.label,
            prediction=result.label,
            raw=result.raw or "",
            status=cast(Status, result.status),
            error=result.error,
            latency_s=result.latency_s,
            cached=result.cached,
            prompt_tokens=answer.prompt_tokens if answer and answer.prompt_tokens else None,
            output_tokens=answer.output_tokens if answer and answer.output_tokens else None,
            prefill_ms=answer.prompt_ms if answer and answer.prompt_ms else None,
            decode_ms=answer.output_ms if answer and answer.output_ms else None,
            scores=scores if labels else None,
        )


def _per_class(items: list[Item]) -> dict[str, int]:
    return dict(sorted(Counter(item.label for item in items).items()))


def _new_manifest(
    config: RunConfig, dataset: Any, fingerprint: Fingerprint, info: ModelInfo
) -> Manifest:
    task = config.task
    return Manifest(
        emoprobe_version=__version__,
        created_at=_now(),
        command=config.command_line,
        fingerprint=fingerprint,
        backend=config.backend,
        server=Server(config.hosts[0], list(config.hosts), info.server_version),
        model=ModelRecord(**info.to_dict()),
        task=TaskRecord(
            task.name,
            list(task.labels),
            task.system_prompt,
            task.prompt_sha256,
            task.user_text,
            {label: list(words) for label, words in task.synonyms.items()},
        ),
        options=config.options,
        keep_alive=config.keep_alive,
        answer_mode=config.answer_mode,
        scoring_version=SCORING_VERSION if config.answer_mode == "logprobs" else None,
        max_side=config.max_side,
        request=RequestSettings(config.concurrency, config.timeout, config.retries),
        dataset=DatasetRecord(
            str(dataset.root),
            dataset.format,
            len(dataset.items),
            config.per_class,
            config.seed,
            available=_per_class(list(dataset.items)),
        ),
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


__all__ = ["RunConfig", "RunEvents", "RunResult", "run"]

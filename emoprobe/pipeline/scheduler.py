"""Spread requests over one or more model servers, each with its own in-flight window.

Every host runs `window` worker threads that take the next prepared image, so a fast
host simply takes more. A failed request puts its host on a cooldown that doubles with
each failure in a row (then a light request probes it before it gets images again) and
puts the image back for a host that has not failed it (any host, once none of those
answers), until the image has failed `retries + 1` times. A busy reply (HTTP 503/429)
halves the host's window instead, and answers grow it back (AIMD). The same failure
repeated by a server while no other answers fails each image at its first try
(`RetryPolicy.persists`); no answer from any server for `give_up_s` stops the run,
resumable like any other early stop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from emoprobe.backends.base import BUSY_STATUS, Backend
from emoprobe.errors import BackendError, ServerUnreachable
from emoprobe.pipeline.probe import STOPPED, Job, Outcome, Probe
from emoprobe.pipeline.retry import Verdict
from emoprobe.results.manifest import HostRecord

POLL_S = 0.05


@dataclass
class Host:
    """One model server and what it has done in this run."""

    url: str
    backend: Backend
    done: HostRecord = field(init=False)  # images, errors, busy seconds: the session's record
    failures_in_a_row: int = 0
    ready_at: float = 0.0
    limit: float = 1.0  # requests it may have in flight now (the scheduler sets it)
    in_flight: int = 0
    last_failure: str = ""
    repeats: int = 0  # how often last_failure came in a row
    window: int | None = None  # most requests in flight here; None: the scheduler's
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.done = HostRecord(self.url)

    def take_slot(self) -> bool:
        """Whether one more request may go now (it then counts as in flight)."""
        with self.lock:
            if self.in_flight + 1 > self.limit:
                return False
            self.in_flight += 1
            return True

    def give_slot(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def busy(self) -> None:
        """A busy reply: halve what is in flight (at least one)."""
        with self.lock:
            self.done.errors += 1
            self.limit = max(1.0, min(self.limit, self.in_flight) / 2)

    def answered(self, latency_s: float, window: int) -> None:
        with self.lock:
            self.failures_in_a_row = 0
            self.last_failure, self.repeats = "", 0
            self.done.images += 1
            self.done.busy_s += latency_s
            self.limit = min(float(window), self.limit + 1 / self.limit)

    def repeated(self, failure: str) -> int:
        """Count `failure`; how many times in a row it has come now."""
        with self.lock:
            if failure == self.last_failure:
                self.repeats += 1
            else:
                self.last_failure, self.repeats = failure, 1
            return self.repeats

    def record(self, wall_s: float) -> HostRecord:
        """What this host did, for the session record."""
        per_s = self.done.images / wall_s if wall_s > 0 else None
        return replace(self.done, images_per_s=per_s, busy_s=round(self.done.busy_s, 3))


class Scheduler:
    """Hands images to the hosts' workers; see the module doc."""

    def __init__(
        self,
        probe: Probe,
        hosts: list[Host],
        window: int,
        deliver: Callable[[Outcome | BaseException], None],
        on_retry: Callable[[Job, str, float], None],
        give_up_s: float = float("inf"),
    ) -> None:
        self.probe = probe
        self.retry = probe.retry
        self.hosts = hosts
        self.window = window
        self.deliver = deliver
        self.on_retry = on_retry
        self.stop = probe.stop
        self.give_up_s = give_up_s
        for host in hosts:
            host.limit = float(self.window_of(host))
        self._last_answer = time.time()  # wall clock, for the message
        self._failing_since: float | None = None
        self._waiting: queue.Queue[Job] = queue.Queue(
            maxsize=max(1, sum(self.window_of(host) for host in hosts))
        )
        self._again: deque[Job] = deque()
        self._lock = threading.Lock()
        self._taken = 0  # jobs a worker holds right now
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def window_of(self, host: Host) -> int:
        """Most requests in flight on `host`: the server's slots where set, else the run's."""
        return host.window or self.window

    def start(self) -> None:
        for host in self.hosts:
            for _ in range(self.window_of(host)):
                thread = threading.Thread(target=self._work, args=(host,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def submit(self, job: Job) -> None:
        """Queue an image for the hosts; waits while every window is full."""
        while not self.stop.is_set():
            try:
                self._waiting.put(job, timeout=POLL_S)
                return
            except queue.Full:
                continue
        self.deliver(Outcome.failed(job, STOPPED))

    def close(self) -> None:
        """No more images will be submitted."""
        self._closed.set()

    def idle(self) -> bool:
        """Every worker has ended."""
        return not any(thread.is_alive() for thread in self._threads)

    def drain(self) -> None:
        """Give up every image still waiting (the run stopped and the workers ended)."""
        with self._lock:
            taken, self._again = list(self._again), deque()
        while True:
            try:
                taken.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        for job in taken:
            self.deliver(Outcome.failed(job, STOPPED))

    # -- workers ----------------------------------------------------------------------
    def _work(self, host: Host) -> None:
        try:
            while not self.stop.is_set():
                wait = host.ready_at - time.monotonic()
                if wait > 0:
                    self.stop.wait(min(wait, POLL_S * 4))
                    continue
                if not host.take_slot():  # the window is full (it shrinks on busy replies)
                    if self._finished():
                        return
                    self.stop.wait(POLL_S)
                    continue
                try:
                    if host.failures_in_a_row and not self._answers(host):
                        self._cool_down(host)
                        self._no_answer()
                        continue
                    job = self._next(host)
                    if job is None:
                        if self._finished():
                            return
                        continue
                    self._ask(host, job)
                finally:
                    host.give_slot()
        except BaseException as error:  # surfaced in the main thread
            self.deliver(error)

    def _ask(self, host: Host, job: Job) -> None:
        try:
            outcome = self.probe.send(job, host.backend, store=False)  # the runner stores it
        except BackendError as error:
            verdict = self.retry.verdict(error)
            busy = error.status in BUSY_STATUS
            if verdict is Verdict.RETRY and not busy and not isinstance(error, ServerUnreachable):
                kind = f"{type(error).__name__} {error.status}" if error.status else str(error)
                everyone_fails = all(other.failures_in_a_row for other in self.hosts)
                if self.retry.persists(host.repeated(kind)) and everyone_fails:
                    verdict = Verdict.REJECT  # the same failure again and again: it stays
            if verdict is Verdict.FATAL:
                self.stop.halt(error)
            elif verdict is Verdict.RETRY:
                if busy:  # alive and full: fewer in flight is the wait (no cooldown, no probe)
                    host.busy()
                else:
                    self._cool_down(host)
                job = replace(job, failures=job.failures + 1, failed_on=(*job.failed_on, host.url))
                if self.retry.may_retry(job.failures):
                    delay = max(0.0, host.ready_at - time.monotonic())
                    self.on_retry(job, f"{host.url}: {error}", delay)
                    self.probe.stats.retried(str(error))
                    self._requeue(job)
                    self._no_answer()
                    return
            self._hand_back(Outcome.failed(job, str(error)))
            self._no_answer()
        else:
            host.answered(outcome.answer.latency_s if outcome.answer else 0.0, self.window_of(host))
            with self._lock:
                self._failing_since = None
                self._last_answer = time.time()
            self._hand_back(outcome)

    def _no_answer(self) -> None:
        """A request or probe failed: give up once no server has answered for give_up_s."""
        now = time.monotonic()
        with self._lock:
            if self._failing_since is None:
                self._failing_since = now
            if now - self._failing_since < self.give_up_s:
                return
            since = time.strftime("%H:%M", time.localtime(self._last_answer))
        self.stop.abort(f"no server has answered since {since}; stopping")

    def _cool_down(self, host: Host) -> None:
        with host.lock:
            host.done.errors += 1
            host.failures_in_a_row += 1
            delay = self.retry.delay(host.failures_in_a_row - 1)
            host.ready_at = max(host.ready_at, time.monotonic() + delay)

    def _answers(self, host: Host) -> bool:
        """A light request (the server's version) before a failed host gets images again."""
        try:
            host.backend.server_version()
        except BackendError:
            return False
        return True

    # -- the queue of images ------------------------------------------------------------
    def _next(self, host: Host) -> Job | None:
        """The next image for `host`: one to try again first, unless it failed here and
        another host may still answer it; else a new one."""
        with self._lock:
            for index, job in enumerate(self._again):
                if host.url not in job.failed_on or self._nowhere_else(host, job):
                    del self._again[index]
                    self._taken += 1
                    return job
        try:
            job = self._waiting.get(timeout=POLL_S)
        except queue.Empty:
            return None
        with self._lock:
            self._taken += 1
        return job

    def _nowhere_else(self, host: Host, job: Job) -> bool:
        """Every other host has failed `job` or is failing now."""
        return all(
            other.url in job.failed_on or other.failures_in_a_row
            for other in self.hosts
            if other is not host
        )

    def _requeue(self, job: Job) -> None:
        with self._lock:
            self._again.append(job)
            self._taken -= 1

    def _hand_back(self, outcome: Outcome) -> None:
        with self._lock:
            self._taken -= 1
        self.deliver(outcome)

    def _finished(self) -> bool:
        with self._lock:
            return (
                self._closed.is_set()
                and self._waiting.empty()
                and not self._again
                and self._taken == 0
            )

"""The one retry policy: which errors are retried, which fail one image, which stop all.

Backoff doubles per attempt from `backoff_s` up to `max_backoff_s`, jittered down to half
so that many waiting workers do not return at once. A transient failure is presumed to
pass; one server failing the same way more times in a row than one image may be tried,
with no answer between, shows it does not (a model that cannot load, a runner that
crashes on every image): from then on each image fails at its first try (`persists`).
A busy reply (HTTP 503/429) is not such a failure: the scheduler sends that server fewer.
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass

from emoprobe.errors import BackendError, RequestRejected, ServerUnreachable, TransientError
from emoprobe.settings import DEFAULT_BACKOFF_S, DEFAULT_RETRIES

MAX_BACKOFF_S = 30.0


class Verdict(enum.Enum):
    RETRY = "retry"  # TransientError, ServerUnreachable: after a backoff, `retries` times
    REJECT = "reject"  # RequestRejected: this image fails; the next may succeed
    FATAL = "fatal"  # any other BackendError: nothing else can succeed, stop the run


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again."""

    retries: int = DEFAULT_RETRIES
    backoff_s: float = DEFAULT_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S

    @staticmethod
    def verdict(error: BackendError) -> Verdict:
        if isinstance(error, (TransientError, ServerUnreachable)):
            return Verdict.RETRY
        if isinstance(error, RequestRejected):
            return Verdict.REJECT
        return Verdict.FATAL

    def may_retry(self, failures: int) -> bool:
        """Whether a request that has failed `failures` times gets another try."""
        return failures <= self.retries

    def persists(self, repeats: int) -> bool:
        """Whether a failure one server gave `repeats` times in a row is there to stay."""
        return repeats > self.retries + 1

    def patience_s(self) -> float:
        """The most one image's retries wait in all, before jitter."""
        return sum(
            min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
            for attempt in range(self.retries + 1)
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failure in a row (0-based), jittered."""
        return min(self.max_backoff_s, self.backoff_s * 2.0**attempt) * random.uniform(0.5, 1)


class Stop(threading.Event):
    """Set when a run must end: `fatal` is the error that ended it, `reason` why it gave up."""

    def __init__(self) -> None:
        super().__init__()
        self.fatal: BackendError | None = None
        self.reason = ""

    def abort(self, reason: str) -> None:
        """Nothing is wrong with the run, but it cannot get on now: stop, resumable."""
        self.reason = self.reason or reason
        self.set()

    def halt(self, error: BackendError) -> None:
        """A failure nothing can get past (the model vanished): stop everything."""
        self.fatal = self.fatal or error
        self.set()

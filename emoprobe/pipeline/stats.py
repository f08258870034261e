"""What a run's requests cost, counted safely from many threads."""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import fields
from typing import ClassVar

from emoprobe.backends.base import Answer
from emoprobe.results.manifest import Session

NS_PER_MS = 1_000_000


class RunStats(Session):
    """The session record of one run, counted as it goes; update it through its methods."""

    _lock: ClassVar[threading.Lock] = threading.Lock()  # brief, rare updates: one will do

    def answered(self, answer: Answer) -> None:
        with self._lock:
            self.requests += 1
            self.request_seconds += answer.latency_s
            self.eval_count += answer.output_tokens
            self.eval_duration_ns += round(answer.output_ms * NS_PER_MS)
            self.prompt_eval_count += answer.prompt_tokens
            self.prompt_eval_duration_ns += round(answer.prompt_ms * NS_PER_MS)

    def retried(self, error: str = "") -> None:
        with self._lock:
            self.retries += 1
            _count(self.retry_kinds, failure_kind(error))

    def failed_image(self, error: str) -> None:
        with self._lock:
            self.failed += 1
            _count(self.failure_kinds, failure_kind(error))

    def json_rejected(self) -> None:
        with self._lock:
            self.json_invalid += 1

    def loaded(self, seconds: float) -> None:
        with self._lock:
            self.load_s = seconds

    def sending(
        self, source_pixels: int, sent_pixels: int, tokens_sent: int = 0, tokens_source: int = 0
    ) -> None:
        with self._lock:
            self.pixels_source += source_pixels
            self.pixels_sent += sent_pixels
            if tokens_sent:
                self.images_costed += 1
                self.image_tokens_sent += tokens_sent
                self.image_tokens_source += tokens_source

    def snapshot(self) -> Session:
        """A plain copy, for the manifest."""
        with self._lock:
            return Session(**{f.name: copy.copy(getattr(self, f.name)) for f in fields(Session)})


def _count(counts: dict[str, int], kind: str) -> None:
    counts[kind] = counts.get(kind, 0) + 1


_KINDS = (
    (re.compile(r"\bHTTP (\d{3})\b"), ""),
    (re.compile(r"timed out|no complete answer within"), "timeout"),
    (re.compile(r"connection dropped"), "connection dropped"),
    (re.compile(r"malformed reply"), "malformed reply"),
    (re.compile(r"truncated reply"), "truncated reply"),
    (re.compile(r"server error"), "server error"),
    (re.compile(r"cannot reach"), "server unreachable"),
)


def failure_kind(error: str) -> str:
    """A failed request's kind, for counting: `HTTP 503`, `timeout`, … or `other`."""
    for pattern, kind in _KINDS:
        if match := pattern.search(error):
            return kind or f"HTTP {match.group(1)}"
    return "other"

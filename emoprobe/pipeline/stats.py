"""What a run's requests cost, counted safely from many threads."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from emoprobe.backends.base import Answer

NS_PER_MS = 1_000_000


@dataclass
class RunStats:
    """Requests, retries, tokens and time of one run; update it through its methods."""

    requests: int = 0
    retries: int = 0
    load_s: float | None = None
    output_tokens: int = 0
    output_ms: float = 0.0
    prompt_tokens: int = 0
    prompt_ms: float = 0.0
    request_seconds: float = 0.0
    pixels_source: int = 0  # of the images sent, before and after max_side
    pixels_sent: int = 0
    image_tokens_sent: int = 0  # by the server's rule (server_support), images that have one
    image_tokens_source: int = 0  # the same images as stored, before max_side
    images_costed: int = 0
    json_invalid: int = 0  # json-mode answers that did not validate against the schema
    retry_kinds: dict[str, int] = field(default_factory=dict)  # `failure_kind` → retries
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def answered(self, answer: Answer) -> None:
        with self._lock:
            self.requests += 1
            self.request_seconds += answer.latency_s
            self.output_tokens += answer.output_tokens
            self.output_ms += answer.output_ms
            self.prompt_tokens += answer.prompt_tokens
            self.prompt_ms += answer.prompt_ms

    def retried(self, error: str = "") -> None:
        with self._lock:
            self.retries += 1
            kind = failure_kind(error)
            self.retry_kinds[kind] = self.retry_kinds.get(kind, 0) + 1

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

    def to_dict(self) -> dict[str, Any]:
        """The session record's fields (the names earlier run folders use)."""
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "load_s": self.load_s,
                "eval_count": self.output_tokens,
                "eval_duration_ns": round(self.output_ms * NS_PER_MS),
                "prompt_eval_count": self.prompt_tokens,
                "prompt_eval_duration_ns": round(self.prompt_ms * NS_PER_MS),
                "request_seconds": self.request_seconds,
                "pixels_source": self.pixels_source,
                "pixels_sent": self.pixels_sent,
                "image_tokens_sent": self.image_tokens_sent,
                "image_tokens_source": self.image_tokens_source,
                "images_costed": self.images_costed,
                "json_invalid": self.json_invalid,
                "retry_kinds": dict(self.retry_kinds),
            }


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
    """A failed request's kind, for counting: `HTTP 503`, `timeout`, `connection
    dropped`, `malformed reply`, `truncated reply`, `server error`, … or `other`."""
    for pattern, kind in _KINDS:
        if match := pattern.search(error):
            return kind or f"HTTP {match.group(1)}"
    return "other"

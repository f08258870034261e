"""A run's speed from the server's timings in every session (cached answers excluded).

Only what this run measured: answers from the cache bring no latency and no timings;
per-request figures are medians over the rows of this run's own requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emoprobe.results.manifest import Manifest, Session

if TYPE_CHECKING:
    import pandas as pd

UNRECORDED = "kind not recorded"  # retries or failures of sessions before kinds were kept


@dataclass(frozen=True)
class RequestCosts:
    """Medians over the rows this run requested itself (None where no row says)."""

    measured: int  # rows with a request of this run (not from the cache)
    prompt_tokens: float | None
    output_tokens: float | None
    prefill_ms: float | None
    decode_ms: float | None


def request_costs(frame: pd.DataFrame) -> RequestCosts:
    """Per image: prompt and generated tokens, prefill and decode ms (server timings)."""
    own = frame[~frame["cached"] & frame["latency_s"].notna()]

    def median(column: str) -> float | None:
        if column not in own:
            return None
        values = own[column].dropna()
        return float(values.astype("float64").median()) if len(values) else None

    return RequestCosts(
        len(own),
        median("prompt_tokens"),
        median("output_tokens"),
        median("prefill_ms"),
        median("decode_ms"),
    )


@dataclass(frozen=True)
class Speed:
    requests: int
    cache_hits: int
    images_per_s: float | None
    latency_median_s: float | None
    latency_p95_s: float | None
    generated_tokens_per_s: float | None
    prompt_tokens_per_s: float | None
    prompt_tokens_per_request: float | None
    load_s: float | None
    retries: int = 0
    retry_kinds: dict[str, int] = field(default_factory=dict)
    failures: int = 0  # images whose request failed after its retries, all sessions
    failure_kinds: dict[str, int] = field(default_factory=dict)


def speed_summary(
    manifest: Manifest, latency_median_s: float | None, latency_p95_s: float | None
) -> Speed:
    """Requests, images/s while requesting, tokens/s and the last model load, over all
    sessions; the latencies come from the predictions (`metrics.latency_stats`)."""
    sessions = manifest.sessions
    requests = sum(s.requests for s in sessions)
    eval_count = sum(s.eval_count for s in sessions)
    eval_ns = sum(s.eval_duration_ns for s in sessions)
    prompt_count = sum(s.prompt_eval_count for s in sessions)
    prompt_ns = sum(s.prompt_eval_duration_ns for s in sessions)
    loads = [s.load_s for s in sessions if s.load_s is not None]
    return Speed(
        requests=requests,
        cache_hits=sum(s.cache_hits for s in sessions),
        images_per_s=images_per_second(sessions),
        latency_median_s=latency_median_s,
        latency_p95_s=latency_p95_s,
        generated_tokens_per_s=eval_count / eval_ns * 1e9 if eval_ns else None,
        prompt_tokens_per_s=prompt_count / prompt_ns * 1e9 if prompt_ns else None,
        prompt_tokens_per_request=prompt_count / requests if requests else None,
        load_s=loads[-1] if loads else None,
        retries=sum(s.retries for s in sessions),
        retry_kinds=_kinds([(s.retries, s.retry_kinds) for s in sessions]),
        failures=sum(s.failed for s in sessions),
        failure_kinds=_kinds([(s.failed, s.failure_kinds) for s in sessions]),
    )


def images_per_second(sessions: Sequence[Session]) -> float | None:
    """Requests per second of wall time over the sessions that sent any (cache hits aside)."""
    requests = sum(session.requests for session in sessions)
    wall = sum(session.wall_s for session in sessions if session.requests)
    return requests / wall if wall else None


def _kinds(sessions: list[tuple[int, dict[str, int]]]) -> dict[str, int]:
    """Counts by kind over sessions, most frequent first; counts of no kind are `UNRECORDED`."""
    total: dict[str, int] = {}
    for count, kinds in sessions:
        for kind, n in kinds.items():
            total[kind] = total.get(kind, 0) + n
        if (rest := count - sum(kinds.values())) > 0:
            total[UNRECORDED] = total.get(UNRECORDED, 0) + rest
    return dict(sorted(total.items(), key=lambda item: (-item[1], item[0])))

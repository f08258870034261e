"""A run's speed from the server's timings in every session (cached answers excluded)."""

from __future__ import annotations

from dataclasses import dataclass

from emoprobe.results.manifest import Manifest


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


def speed_summary(
    manifest: Manifest, latency_median_s: float | None, latency_p95_s: float | None
) -> Speed:
    """Requests, images/s while requesting, tokens/s and the last model load, over all
    sessions; the latencies come from the predictions (`metrics.latency_stats`)."""
    sessions = manifest.sessions
    requests = sum(s.requests for s in sessions)
    wall = sum(s.wall_s for s in sessions if s.requests)
    eval_ns = sum(s.eval_duration_ns for s in sessions)
    prompt_count = sum(s.prompt_eval_count for s in sessions)
    prompt_ns = sum(s.prompt_eval_duration_ns for s in sessions)
    loads = [s.load_s for s in sessions if s.load_s is not None]
    return Speed(
        requests=requests,
        cache_hits=sum(s.cache_hits for s in sessions),
        images_per_s=requests / wall if wall else None,
        latency_median_s=latency_median_s,
        latency_p95_s=latency_p95_s,
        generated_tokens_per_s=sum(s.eval_count for s in sessions) / eval_ns * 1e9
        if eval_ns
        else None,
        prompt_tokens_per_s=prompt_count / prompt_ns * 1e9 if prompt_ns else None,
        prompt_tokens_per_request=prompt_count / requests if requests else None,
        load_s=loads[-1] if loads else None,
    )

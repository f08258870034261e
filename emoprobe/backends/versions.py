"""Server versions: read them once, and what a version can do."""

from __future__ import annotations

import re

LOGPROBS_SINCE = (0, 12, 11)  # the first Ollama release with logprobs on /api/chat


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`0.12.11` (or `v0.13.0-rc1`) as a tuple; None for other strings and dev builds."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if not match:
        return None
    version = (int(match[1]), int(match[2]), int(match[3]))
    return None if version == (0, 0, 0) else version


def has_logprobs(backend: str, server_version: str) -> bool:
    """Whether a server returns token log-probabilities (Ollama only since 0.12.11)."""
    if backend != "ollama":
        return True
    parsed = parse_version(server_version or "")
    return parsed is not None and parsed >= LOGPROBS_SINCE


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))

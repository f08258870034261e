"""Defaults and locations, defined once: the model, the servers, the cache, the reports.

Environment variables override them: `$OLLAMA_HOST` (the Ollama server, as Ollama reads
it), `$EMOPROBE_CACHE_DIR` (the answer cache) and `$EMOPROBE_DATA_DIR` (user state such as
the build lock). Nothing here opens a connection or touches the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "qwen2.5vl:7b"
DEFAULT_BACKEND = "ollama"
BACKENDS = ("ollama", "openai")
OLLAMA_PORT = 11434
DEFAULT_OLLAMA_HOST = f"http://127.0.0.1:{OLLAMA_PORT}"
DEFAULT_OPENAI_HOST = "http://127.0.0.1:8000/v1"  # vLLM's default port
DEFAULT_REPORTS_DIR = Path("reports")
DEFAULT_TIMEOUT_S = 180.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
DEFAULT_CONCURRENCY = 2
KEEP_ALIVE = "30m"
MAX_FAILURES_IN_A_ROW = 10  # failed requests in a row that stop a run (the server is gone)


def default_host(backend: str = DEFAULT_BACKEND) -> str:
    """`$OLLAMA_HOST` when set, else Ollama's own default address (vLLM's for openai)."""
    if backend == "openai":
        return DEFAULT_OPENAI_HOST
    return os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_OLLAMA_HOST


def default_cache_dir() -> Path:
    """`$EMOPROBE_CACHE_DIR`, else the platform's user cache directory."""
    configured = os.environ.get("EMOPROBE_CACHE_DIR", "").strip()
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("emoprobe"))


def default_data_dir() -> Path:
    """`$EMOPROBE_DATA_DIR`, else the platform's user data directory (user state)."""
    configured = os.environ.get("EMOPROBE_DATA_DIR", "").strip()
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_data_dir("emoprobe"))

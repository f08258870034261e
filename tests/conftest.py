"""Shared fixtures.

pytest's default "prepend" import mode puts this directory (tests/ has no __init__.py)
on sys.path, so test modules can ``from ollama_double import OllamaDouble``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ollama_double import DEFAULT_MODELS, OllamaDouble

_ISOLATED_VARIABLES = (
    "OLLAMA_HOST",
    "OLLAMA_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache directory, no OLLAMA_HOST and no proxies for every test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMOPROBE_CACHE_DIR", str(cache))
    for name in _ISOLATED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture
def ollama_double() -> Iterator[OllamaDouble]:
    """A running OllamaDouble with DEFAULT_MODELS installed; stopped afterwards."""
    double = OllamaDouble(models=DEFAULT_MODELS)
    double.start()
    try:
        yield double
    finally:
        double.stop()

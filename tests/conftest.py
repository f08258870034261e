"""Shared fixtures.

pytest's default "prepend" import mode puts this directory (tests/ has no __init__.py)
on sys.path, so test modules can ``from ollama_double import OllamaDouble``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ollama_double import DEFAULT_MODELS, OllamaDouble

#: `cli(*args, input=None, env=None)`: the fixture that runs `emoprobe ARGS…` in-process.
Cli = Callable[..., Result]

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
    """A private cache and data directory, no OLLAMA_HOST and no proxies for every test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMOPROBE_CACHE_DIR", str(cache))
    monkeypatch.setenv("EMOPROBE_DATA_DIR", str(tmp_path / "data"))
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


def _invoke(
    *args: object, input: str | None = None, env: Mapping[str, str] | None = None
) -> Result:
    from emoprobe.cli.main import cli

    result = CliRunner().invoke(cli, [str(arg) for arg in args], input=input, env=env)
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="session")
def cli() -> Cli:
    """Run `emoprobe ARGS…` in-process: `cli("run", root, "--quiet").exit_code`.

    Arguments are turned into strings; stdout and stderr are apart (`result.stdout`,
    `result.stderr`); the output never holds a traceback.
    """
    return _invoke

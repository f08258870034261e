"""Open the backend for one server by its kind: Ollama's native API or an OpenAI-compatible one."""

from __future__ import annotations

from emoprobe.backends.base import Backend
from emoprobe.errors import ConfigError
from emoprobe.settings import BACKENDS, DEFAULT_BACKEND, KEEP_ALIVE

SERVER_NAMES = {"ollama": "an Ollama server", "openai": "an OpenAI-compatible server"}


def open_backend(
    kind: str = DEFAULT_BACKEND, *, host: str, timeout: float, keep_alive: str = KEEP_ALIVE
) -> Backend:
    """The backend of `kind` for the server at `host` (a normalised URL); close it after."""
    if kind == "openai":
        from emoprobe.backends.openai import OpenAIBackend

        return OpenAIBackend(host, timeout=timeout)
    if kind == "ollama":
        from emoprobe.backends.ollama import OllamaBackend

        return OllamaBackend(host, timeout=timeout, keep_alive=keep_alive)
    raise ConfigError(f"backend {kind}: choose one of {', '.join(BACKENDS)}", setting="backend")

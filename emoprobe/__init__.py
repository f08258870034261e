"""emoprobe: probe vision-language models on facial-expression tasks through Ollama."""

from emoprobe._version import __version__

__all__ = ["__version__"]

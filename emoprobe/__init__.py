"""emoprobe: probe vision-language models on facial-expression tasks through Ollama."""

__version__ = "0.1.0"

"""Model servers behind one small interface: describe a model, answer one request."""

from emoprobe.backends.base import Answer, Backend, ChatRequest, ModelInfo
from emoprobe.backends.registry import open_backend

__all__ = ["Answer", "Backend", "ChatRequest", "ModelInfo", "open_backend"]

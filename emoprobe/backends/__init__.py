"""Model servers behind one small interface: describe a model, answer one request."""

from emoprobe.backends.base import Answer, Backend, ModelInfo

__all__ = ["Answer", "Backend", "ModelInfo"]

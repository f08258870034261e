"""The on-disk response cache (`diskcache`), and a memo of file hashes.

A response key names everything an answer depends on — backend, model digest, the
full prompt text, options, answer mode, how the image was prepared and the image's
sha256 — and never holds image bytes. A value is the raw answer and its timings.
Only successful answers are stored; failures never are.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

from .errors import CacheError

RESPONSES = "responses"
FILE_HASHES = "file-hashes"
MODELS_PREFIX = "model:"
KEY_VERSION = 1


def default_cache_dir() -> Path:
    """`$EMOPROBE_CACHE_DIR`, else the platform's user cache directory."""
    configured = os.environ.get("EMOPROBE_CACHE_DIR", "").strip()
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("emoprobe"))


def response_key(
    *,
    backend: str,
    model_digest: str,
    messages_text: list[tuple[str, str]],
    options: dict[str, Any],
    answer_mode: str,
    image_sha256: str,
    image_preparation: str,
) -> str:
    """A stable hex key for one request; it contains no image data."""
    material = {
        "v": KEY_VERSION,
        "backend": backend,
        "digest": model_digest,
        "messages": messages_text,
        "options": options,
        "answer": answer_mode,
        "image": image_sha256,
        "prepare": image_preparation,
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@contextmanager
def _translated(directory: Path) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        raise CacheError(
            f"cache at {directory} is unusable ({error}): delete it or pass another --cache-dir"
        ) from None


class ResponseCache:
    """Answers by request key, model digests by name, and file hashes by (path, size, mtime)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        with _translated(self.directory):
            if self.directory.exists() and not self.directory.is_dir():
                raise NotADirectoryError(f"{self.directory} is not a folder")
            self._responses = diskcache.Cache(
                str(self.directory / RESPONSES), eviction_policy="none", size_limit=2**40
            )
            self._hashes = diskcache.Cache(
                str(self.directory / FILE_HASHES), eviction_policy="none", size_limit=2**40
            )
            self._responses.get("probe")  # fail here, not mid-run, on a corrupt database

    def get(self, key: str) -> dict[str, Any] | None:
        with _translated(self.directory):
            return self._responses.get(key)

    def set(self, key: str, value: dict[str, Any]) -> None:
        with _translated(self.directory):
            self._responses.set(key, value)

    def remember_model(self, name: str, record: dict[str, Any]) -> None:
        """What a server said a model name meant (digest, details), for offline replay."""
        with _translated(self.directory):
            self._responses.set(MODELS_PREFIX + name, record)

    def recall_model(self, name: str) -> dict[str, Any] | None:
        with _translated(self.directory):
            return self._responses.get(MODELS_PREFIX + name)

    def file_hash(self, path: Path, stat: os.stat_result) -> str | None:
        with _translated(self.directory):
            return self._hashes.get(_file_key(path, stat))

    def remember_file_hash(self, path: Path, stat: os.stat_result, sha256: str) -> None:
        with _translated(self.directory):
            self._hashes.set(_file_key(path, stat), sha256)

    def close(self) -> None:
        self._responses.close()
        self._hashes.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _file_key(path: Path, stat: os.stat_result) -> bytes:
    return b"%s|%d|%d" % (os.fsencode(path), stat.st_size, stat.st_mtime_ns)

"""The on-disk response cache (`diskcache`), and a memo of file hashes.

A response key names everything an answer depends on — backend, model digest, the
full prompt text, options, answer mode, how the image was prepared and the image's
sha256 — and never holds image bytes. A value is the raw answer and its timings.
Only successful answers are stored; failures never are.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diskcache

from emoprobe.backends.base import Answer, close_names
from emoprobe.data.images import PREPARE_VERSION
from emoprobe.errors import CacheError
from emoprobe.task.answers import cache_mode
from emoprobe.task.definition import Task

_UNREADABLE = object()
RESPONSES = "responses"
FILE_HASHES = "file-hashes"
MODELS_PREFIX = "model:"
KEY_VERSION = 1  # emoprobe 0.1: no model name in the key
MODEL_KEY_VERSION = 2
HASH_BATCH = 500  # file-hash memo entries read per query (SQLite allows 999 parameters)
MEMO_WRITES = 64  # file hashes written to the memo in one transaction (lost: re-hashed)


def key_text(
    *,
    backend: str,
    model_digest: str,
    messages_text: list[tuple[str, str]],
    options: Mapping[str, Any],
    answer_mode: str,
    image_sha256: str,
    image_preparation: str,
    model: str | None = None,
) -> str:
    """The canonical text a response key hashes: no image data, only its sha256; without
    `model` (the name asked for), emoprobe 0.1's, read only for answers naming the model."""
    material = {
        "v": KEY_VERSION if model is None else MODEL_KEY_VERSION,
        "backend": backend,
        "digest": model_digest,
        "messages": messages_text,
        "options": options,
        "answer": answer_mode,
        "image": image_sha256,
        "prepare": image_preparation,
    }
    if model is not None:
        material["model"] = model
    return json.dumps(material, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def response_key(**fields: Any) -> str:
    """A stable hex key for one request: the sha256 of `key_text(**fields)`."""
    return hashlib.sha256(key_text(**fields).encode()).hexdigest()


_HEX = re.compile(r"[0-9a-f]{64}")
_SHA_SLOT = "0" * 63 + "x"  # no sha256 looks so; a prompt holding it: `_parts` has 3


@dataclass(frozen=True)
class KeyMaker:
    """The response keys of one model, task, option set, answer mode and image size."""

    backend: str
    model_digest: str
    task: Task
    options: Mapping[str, Any]
    answer_mode: str
    max_side: int | None
    model: str = ""
    _parts_memo: dict[str | None, list[bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # the key text split around the image's hash, per model name (`_parts`)

    def key(self, image_sha256: str) -> str:
        """The key an answer is stored under: the model's name and digest both in it."""
        return self._key(image_sha256, self.model)

    def legacy_key(self, image_sha256: str) -> str | None:
        """emoprobe 0.1's key (no model name); None for an empty digest (only the name tells)."""
        return self._key(image_sha256, None) if self.model_digest else None

    def _key(self, image_sha256: str, model: str | None) -> str:
        """`response_key` of this image; its canonical text put together from the parts
        around the image's hash, built once (the same text, hence the same key)."""
        parts = self._parts(model)
        if len(parts) == 2 and _HEX.fullmatch(image_sha256):
            text = b"".join((parts[0], image_sha256.encode(), parts[1]))
        else:
            text = self._text(image_sha256, model).encode()
        return hashlib.sha256(text).hexdigest()

    def _parts(self, model: str | None) -> list[bytes]:
        """The key text split around the image's hash (memo per model name)."""
        memo = self._parts_memo
        if model not in memo:
            memo[model] = self._text(_SHA_SLOT, model).encode().split(_SHA_SLOT.encode())
        return memo[model]

    def _text(self, image_sha256: str, model: str | None) -> str:
        task = self.task
        return key_text(
            backend=self.backend,
            model_digest=self.model_digest,
            messages_text=[("system", task.system_prompt), ("user", task.user_text + "<image>")],
            options=self.options,
            answer_mode=cache_mode(self.answer_mode),
            image_sha256=image_sha256,
            image_preparation=f"{PREPARE_VERSION}:max_side={self.max_side}",
            model=model,
        )


# Answer fields → the names earlier versions stored Ollama's timings under (nanoseconds).
_LEGACY_TIMINGS = {
    "prompt_tokens": ("prompt_eval_count", 1),
    "prompt_ms": ("prompt_eval_duration", 1e-6),
    "output_tokens": ("eval_count", 1),
    "output_ms": ("eval_duration", 1e-6),
    "load_ms": ("load_duration", 1e-6),
    "total_ms": ("total_duration", 1e-6),
}


def answer_value(answer: Answer, model: str, digest: str) -> dict[str, Any]:
    """What the cache stores of an answer: its text, timings and scores, no log-probs."""
    value: dict[str, Any] = {
        "raw": answer.raw,
        "latency_s": answer.latency_s,
        "done_reason": answer.done_reason,
        "timings": {name: getattr(answer, name) for name in _LEGACY_TIMINGS},
        "model": model,
        "digest": digest,
    }
    if answer.label_positions:
        value["label_positions"] = [[list(named), dict(p)] for named, p in answer.label_positions]
    if answer.thinking_chars:
        value["thinking_chars"] = answer.thinking_chars
    return value


def answer_from_value(value: Any) -> Answer:
    """The Answer a cache value holds, whichever version of emoprobe wrote it; ValueError
    for a value no emoprobe wrote (no dict, no text answer, a timing that is no number)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("raw"), str):
        raise ValueError("no text answer")
    timings = value.get("timings") or {}
    scores = value.get("scores")  # scoring version 1 kept scores here (no longer read)
    if not isinstance(timings, Mapping) or not (scores is None or isinstance(scores, Mapping)):
        raise ValueError("timings or scores that are no table")
    for score in (scores or {}).values():
        _number(score)
    found: dict[str, Any] = {}
    for name, (legacy, scale) in _LEGACY_TIMINGS.items():
        if name in timings:
            found[name] = _number(timings[name])
        elif legacy in timings:
            found[name] = _number(timings[legacy]) * scale
    for name in ("prompt_tokens", "output_tokens"):
        found[name] = int(found.get(name, 0))
    done_reason = value.get("done_reason", "")
    return Answer(
        raw=value["raw"],
        latency_s=_number(value.get("latency_s") or 0.0),
        done_reason=done_reason if isinstance(done_reason, str) else "",
        label_positions=_positions(value.get("label_positions")),
        thinking_chars=int(_number(value.get("thinking_chars") or 0)),
        **found,
    )


def _positions(value: Any) -> tuple[tuple[tuple[str, ...], dict[str, float]], ...]:
    """The label positions of a cached answer (`answers.label_positions`), checked."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("label positions that are no list")
    positions = []
    for entry in value:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise ValueError("a label position that is no pair")
        named, scores = entry
        if not isinstance(named, list) or not isinstance(scores, Mapping):
            raise ValueError("a label position of the wrong types")
        positions.append((tuple(map(str, named)), {str(k): _number(v) for k, v in scores.items()}))
    return tuple(positions)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is no number")
    return float(value)


@contextmanager
def _translated(directory: Path) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        if getattr(error, "errno", None) == errno.ENOSPC or "full" in str(error).lower():
            raise CacheError(
                f"cache at {directory} cannot grow: the disk is full; free some space (the "
                "cached answers are kept), then run the same command again",
                path=directory,
                setting="cache_dir",
            ) from None
        raise CacheError(
            f"cache at {directory} is unusable ({error}): delete it or choose another cache folder",
            path=directory,
            setting="cache_dir",
        ) from None


class ResponseCache:
    """Answers by request key, model digests by name, and file hashes by (path, size, mtime)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._unreadable: set[str] = set()  # keys of values no emoprobe wrote: misses
        self._new_hashes: dict[bytes, str] = {}  # file hashes not yet written to the memo
        self._new_hashes_lock = threading.Lock()
        with _translated(self.directory):
            if self.directory.exists() and not self.directory.is_dir():
                raise NotADirectoryError(f"{self.directory} is not a folder")
            settings: dict[str, Any] = {"eviction_policy": "none", "size_limit": 2**40}
            self._responses = diskcache.Cache(str(self.directory / RESPONSES), **settings)
            self._hashes = diskcache.Cache(str(self.directory / FILE_HASHES), **settings)
            self._responses.get("probe")  # fail here, not mid-run, on a corrupt database

    def get(self, key: str) -> dict[str, Any] | None:
        """The value under `key`; None (counted in `unreadable`) for one that is no dict."""
        with _translated(self.directory):
            value = self._read_many(self._responses, [key]).get(key)
        if value is None or isinstance(value, dict):
            return value
        self._unreadable.add(key)
        return None

    @property
    def unreadable(self) -> int:
        """How many keys read so far held a value no emoprobe wrote (each a miss)."""
        return len(self._unreadable)

    def unreadable_warning(self) -> str:
        """The one warning about unreadable values read so far; "" if there were none."""
        if not self._unreadable:
            return ""
        return (
            f"{self.unreadable} cached value(s) in {self.directory} were no answer emoprobe "
            "wrote: read as cache misses (asked again online)"
        )

    def set(self, key: str, value: dict[str, Any]) -> None:
        with _translated(self.directory):
            self._responses.set(key, value)

    def answer(self, key: str, *, model: str | None = None) -> Answer | None:
        """The answer under `key` (with `model`: only that model's); None for a miss or junk."""
        return self._answer_of(key, self.get(key), model)

    def first_answer(self, key: str, legacy: str | None = None, *, model: str) -> Answer | None:
        """`answer(key)`, else `answer(legacy, model=model)`: both keys read in one query."""
        keys = [key] if legacy is None else [key, legacy]
        with _translated(self.directory):
            values = self._read_many(self._responses, keys)
        for name, wanted in ((key, None), (legacy, model)):
            if name is not None and (found := self._answer_of(name, values.get(name), wanted)):
                return found
        return None

    def _answer_of(self, key: str, value: Any, model: str | None) -> Answer | None:
        if value is not None and not isinstance(value, dict):
            self._unreadable.add(key)
            return None
        if value is None or (model is not None and value.get("model") != model):
            return None
        try:
            return answer_from_value(value)
        except (ValueError, TypeError, OverflowError):
            self._unreadable.add(key)
            return None

    def store_answer(self, key: str, answer: Answer, *, model: str, digest: str) -> None:
        self.set(key, answer_value(answer, model, digest))

    def remember_model(self, name: str, record: dict[str, Any]) -> None:
        """What a server said a model name meant (digest, details), for offline replay."""
        self.set(MODELS_PREFIX + name, record)

    def recall_model(self, name: str) -> dict[str, Any] | None:
        return self.get(MODELS_PREFIX + name)

    def file_hash(self, path: Path, stat: os.stat_result) -> str | None:
        key = _file_key(path, stat)
        if known := self._new_hashes.get(key):
            return known
        with _translated(self.directory):
            value = self._hashes.get(key)
        return value if isinstance(value, str) else None

    def file_hashes(self, files: Sequence[tuple[Path, os.stat_result]]) -> list[str | None]:
        """`file_hash` of many files, in one SQL query per `HASH_BATCH` of them."""
        keys = [_file_key(path, stat) for path, stat in files]
        found: dict[bytes, Any] = {}
        with _translated(self.directory):
            for start in range(0, len(keys), HASH_BATCH):
                found |= self._read_many(self._hashes, keys[start : start + HASH_BATCH])
        with self._new_hashes_lock:
            found |= self._new_hashes
        return [value if isinstance(value, str) else None for value in map(found.get, keys)]

    @staticmethod
    def _read_many(store: diskcache.Cache, keys: Sequence[bytes | str]) -> dict[Any, Any]:
        """Values of raw (bytes or str) keys in one query, read as `Cache.get` reads them (no
        expiry is ever set); a value that does not unpickle reads as `_UNREADABLE`."""
        marks = ",".join("?" * len(keys))
        rows = store._sql(
            f"SELECT key, mode, filename, value FROM Cache WHERE raw = 1 AND key IN ({marks})",
            [sqlite3.Binary(key) if isinstance(key, bytes) else key for key in keys],
        ).fetchall()
        values: dict[Any, Any] = {}
        for key, mode, filename, value in rows:
            name = bytes(key) if isinstance(key, (bytes, memoryview)) else key
            try:
                values[name] = store._disk.fetch(mode, filename, value, False)
            except (sqlite3.Error, OSError):  # removed meanwhile: not known
                continue
            except Exception:  # a bad pickle: anything unpickling can raise
                values[name] = _UNREADABLE
        return values

    def remember_file_hash(self, path: Path, stat: os.stat_result, sha256: str) -> None:
        """Memo a file's hash; written `MEMO_WRITES` at a time in one transaction (and at
        `close`): a memo entry lost to a crash only costs reading that file again."""
        with self._new_hashes_lock:
            self._new_hashes[_file_key(path, stat)] = sha256
            if len(self._new_hashes) >= MEMO_WRITES:
                self._write_hashes()

    def _write_hashes(self) -> None:
        """Write the memo entries not yet written (the caller holds the lock)."""
        if not self._new_hashes:
            return
        with _translated(self.directory), self._hashes.transact():
            for key, sha256 in self._new_hashes.items():
                self._hashes.set(key, sha256)
        self._new_hashes = {}

    def answers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every stored (key, value): answers and model records, never file hashes."""
        with _translated(self.directory):
            keys = list(self._responses.iterkeys())
        for key in keys:
            value = self.get(key)
            if value is not None:
                yield key, value

    def info(self) -> dict[str, Any]:
        """Counts and sizes for `emoprobe cache info`."""
        with self._new_hashes_lock:
            self._write_hashes()
        models: dict[str, dict[str, Any]] = {}
        answers = 0
        for key, value in self.answers():
            if key.startswith(MODELS_PREFIX):
                entry = models.setdefault(key[len(MODELS_PREFIX) :], {"answers": 0})
                entry["digest"] = value.get("digest", "")
            else:
                answers += 1
                name = value.get("model", "(unknown)")
                models.setdefault(name, {"answers": 0, "digest": value.get("digest", "")})
                models[name]["answers"] += 1
        with _translated(self.directory):
            return {
                "directory": str(self.directory),
                "answers": answers,
                "models": models,
                "file_hashes": len(self._hashes),
                "bytes": self._responses.volume() + self._hashes.volume(),
            }

    def clear(self) -> int:
        """Forget every answer and file hash; how many answers there were."""
        with _translated(self.directory):
            removed = sum(1 for key in self._responses if not key.startswith(MODELS_PREFIX))
            self._responses.clear()
            with self._new_hashes_lock:
                self._new_hashes = {}
            self._hashes.clear()
            return removed

    def close(self) -> None:
        try:
            with self._new_hashes_lock:
                self._write_hashes()
        finally:
            self._responses.close()
            self._hashes.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _file_key(path: Path, stat: os.stat_result) -> bytes:
    return b"%s|%d|%d" % (os.fsencode(path), stat.st_size, stat.st_mtime_ns)


BUNDLE_FORMAT = "emoprobe-cache-bundle"
BUNDLE_VERSION = 1
_KEY = re.compile(r"[0-9a-f]{64}")


def export_bundle(cache: ResponseCache, path: Path, model: str | None = None) -> int:
    """Write answers (and model records) into one gzip JSON-lines file; no image bytes."""
    entries = [
        (key, value)
        for key, value in cache.answers()
        if model is None or key == MODELS_PREFIX + model or value.get("model") == model
    ]
    if not any(not key.startswith(MODELS_PREFIX) for key, _ in entries):
        raise CacheError(_nothing_to_export(cache, model), model=model, path=cache.directory)
    header = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "entries": len(entries),
    }
    try:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(json.dumps(header) + "\n")
            for key, value in entries:
                handle.write(json.dumps({"key": key, "value": value}) + "\n")
    except OSError as error:
        raise CacheError(f"cannot write bundle {path}: {error.strerror or error}") from None
    return sum(not key.startswith(MODELS_PREFIX) for key, _ in entries)


def _nothing_to_export(cache: ResponseCache, model: str | None) -> str:
    if model is None:
        return f"the cache at {cache.directory} holds no answers: nothing to export"
    models = [name for name, entry in cache.info()["models"].items() if entry["answers"]]
    close = close_names(model, models)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    held = f" (it holds answers of {', '.join(sorted(models))})" if models else ""
    return f"the cache at {cache.directory} has no answers of model {model!r}{held}{hint}"


def import_bundle(cache: ResponseCache, path: Path) -> tuple[int, int]:
    """Add a bundle's entries to the cache: (answers added, answers already there)."""
    added = present = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            header = json.loads(handle.readline() or "{}")
            if header.get("format") != BUNDLE_FORMAT:
                raise CacheError(f"{path} is not an emoprobe cache bundle")
            if header.get("version") != BUNDLE_VERSION:
                raise CacheError(
                    f"{path} is a bundle of version {header.get('version')}; "
                    f"this emoprobe reads version {BUNDLE_VERSION}"
                )
            for number, line in enumerate(handle, start=2):
                key, value = _bundle_entry(line, path, number)
                if key.startswith(MODELS_PREFIX):
                    cache.remember_model(key[len(MODELS_PREFIX) :], value)
                elif cache.get(key) is not None:
                    present += 1
                else:
                    cache.set(key, value)
                    added += 1
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as error:
        raise CacheError(f"cannot read bundle {path}: {error}") from None
    return added, present


def _bundle_entry(line: str, path: Path, number: int) -> tuple[str, dict[str, Any]]:
    entry = json.loads(line)
    key = entry.get("key") if isinstance(entry, dict) else None
    value = entry.get("value") if isinstance(entry, dict) else None
    if isinstance(key, str) and isinstance(value, dict):
        if key.startswith(MODELS_PREFIX):
            return key, value
        if _KEY.fullmatch(key) and isinstance(value.get("raw"), str):
            return key, value
    raise CacheError(f"{path} line {number} is not a cache entry")

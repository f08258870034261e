"""manifest.json: what a run was asked to do, with what, and each session it took.

A tree of dataclasses, read (`Manifest.from_json`, `read_manifest`) and written
(`Manifest.to_json`) here only. Every field has a default, so an older manifest that
lacks a field still opens; a manifest without `schema_version` (emoprobe 0.1.0's) is
version 1. A field of the wrong type, or a newer schema, is a one-line `ConfigError`
naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from emoprobe.errors import ConfigError

SCHEMA_VERSION = 1
FILENAME = "manifest.json"
Scalar = str | int | float | bool | None


@dataclass
class Fingerprint:
    """The settings that decide the answers: a run resumes only with the same ones."""

    task: str | None = None
    prompt_sha256: str | None = None
    model: str | None = None
    options: dict[str, Any] | None = None
    answer_mode: str | None = None
    max_side: int | None = None
    dataset_root: str | None = None
    per_class: int | None = None
    seed: int | None = None

    def mismatch(self, other: Fingerprint | None) -> str:
        """'' when `other` (what a folder recorded) has these settings, else what differs."""
        recorded = asdict(other) if other else {}
        for key, value in asdict(self).items():
            if recorded.get(key) != value:
                return f"{key}: {recorded.get(key)!r} there, {value!r} now"
        return ""


@dataclass
class Server:
    host: str = ""
    hosts: list[str] = field(default_factory=list)
    version: str | None = None


@dataclass
class ModelRecord:
    """The model as the server described it before the first image."""

    name: str = ""
    digest: str = ""
    server_version: str | None = None
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    size_bytes: int = 0
    capabilities: list[str] = field(default_factory=list)
    backend: str = "ollama"
    language_weights: str = ""
    vision_weights: str = ""


@dataclass
class TaskRecord:
    name: str = "?"
    labels: list[str] = field(default_factory=list)
    prompt: str = ""
    prompt_sha256: str = ""
    user_text: str = ""
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # what the parser also read


@dataclass
class RequestSettings:
    concurrency: int | None = None
    timeout_s: float | None = None
    retries: int | None = None
    in_flight: int | None = None  # per host, as the server's table says for the family
    in_flight_reason: str = ""


@dataclass
class DatasetRecord:
    root: str = "dataset"
    format: str | None = None
    n_items: int | None = None
    per_class: int | None = None
    seed: int | None = None
    available: dict[str, int] | None = None  # images per class in the dataset
    drawn: dict[str, int] | None = None  # images per class in the sample (None: older runs)

    def sample_text(self) -> str:
        """How the images were asked for: `n per class, seed s` or `all N images`."""
        if self.per_class:
            return f"{self.per_class} per class, seed {self.seed}"
        return f"all {'?' if self.n_items is None else self.n_items} images"


@dataclass
class HostRecord:
    """One server's share of a session."""

    url: str = ""
    images: int = 0
    errors: int = 0
    images_per_s: float | None = None
    busy_s: float = 0.0


@dataclass
class Session:
    """One invocation of a run: its requests, the server's timings, its failures."""

    started_at: str | None = None
    rows_written: int = 0
    requests: int = 0
    retries: int = 0
    load_s: float | None = None
    eval_count: int = 0
    eval_duration_ns: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration_ns: int = 0
    request_seconds: float = 0.0
    pixels_source: int = 0
    pixels_sent: int = 0
    image_tokens_sent: int = 0  # images_costed images, by the server's rule per family
    image_tokens_source: int = 0
    images_costed: int = 0
    json_invalid: int = 0
    retry_kinds: dict[str, int] = field(default_factory=dict)  # retries by kind of failure
    cache_hits: int = 0
    failed: int = 0
    failure_kinds: dict[str, int] = field(default_factory=dict)  # images failed, by kind
    wall_s: float = 0.0
    hosts: list[HostRecord] = field(default_factory=list)
    finished_at: str | None = None


@dataclass(slots=True)  # 100,000s of them: no __dict__ each
class FileRecord:
    path: str = ""
    label: str = ""
    sha256: str = ""


@dataclass
class Manifest:
    schema_version: int = SCHEMA_VERSION
    emoprobe_version: str = ""
    created_at: str | None = None
    command: str = ""
    fingerprint: Fingerprint | None = None
    backend: str = "ollama"
    server: Server = field(default_factory=Server)
    model: ModelRecord = field(default_factory=ModelRecord)
    task: TaskRecord = field(default_factory=TaskRecord)
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: Scalar = None
    answer_mode: str = "text"
    scoring_version: int | None = None  # logprobs: how label scores were made (None: v1)
    max_side: int | None = None
    request: RequestSettings = field(default_factory=RequestSettings)
    dataset: DatasetRecord = field(default_factory=DatasetRecord)
    sessions: list[Session] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    updated_at: str | None = None

    def to_json(self) -> str:
        files, self.files = self.files, []
        try:
            data = asdict(self)
        finally:
            self.files = files
        data["files"] = [  # asdict's deep copy costs seconds on 100,000 files
            {"path": f.path, "label": f.label, "sha256": f.sha256} for f in files
        ]
        return json.dumps(data, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest") -> Manifest:
        """Parse and check a manifest; `source` names it in the one-line error."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"{source} is not JSON ({error})", path=source) from None
        version = data.get("schema_version", 1) if isinstance(data, dict) else 1
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ConfigError(
                f"{source} has manifest schema {version}; this emoprobe reads up to "
                f"{SCHEMA_VERSION}: upgrade emoprobe to open it",
                path=source,
            )
        return _parse_manifest(data, source)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """A manifest from JSON-like data, checked as `from_json` checks it."""
        return _parse_manifest(data, "manifest")


def _parse_manifest(data: Any, source: str) -> Manifest:
    """The manifest checked by pydantic, its long `files` list by a plain loop (the
    same check, a hundred times faster); any file entry in doubt goes to pydantic."""
    files = data.get("files") if isinstance(data, dict) else None
    records = _file_records(files) if isinstance(files, list) else None
    if records is None:
        checked: Manifest = _parse(Manifest, data, source)
        return checked
    manifest: Manifest = _parse(Manifest, {**data, "files": []}, source)
    manifest.files = records
    return manifest


def _file_records(entries: list[Any]) -> list[FileRecord] | None:
    """FileRecords of plain entries (a dict of three strings per file), else None; the
    checks run over all entries at once (C loops), each label then held once."""
    try:
        if set(map(len, entries)) - {3}:
            return None
        fields = list(map(_FILE_FIELDS, entries))
    except (TypeError, KeyError):  # not a dict, or a key FileRecord does not have
        return None
    if set(map(type, chain.from_iterable(fields))) - {str}:
        return None
    labels: dict[str, str] = {}
    return [FileRecord(path, labels.setdefault(label, label), sha) for path, label, sha in fields]


_FILE_FIELDS = itemgetter("path", "label", "sha256")


def read_manifest(path: Path) -> Manifest | None:
    """The manifest in `path`, None when there is none; one-line errors otherwise."""
    if not path.exists():
        return None
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path} is unreadable ({error.strerror})", path=path) from None
    return Manifest.from_json(text, str(path))


@cache
def _adapter(kind: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def _parse(kind: Any, data: Any, source: str) -> Any:
    """`data` as a `kind`, checked strictly as JSON (an int where a float goes is fine)."""
    from pydantic import ValidationError

    try:
        return _adapter(kind).validate_json(json.dumps(data), strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise ConfigError(f"{source}: {where}: {first['msg']}", path=source) from None

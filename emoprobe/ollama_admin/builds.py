"""The model builds (four families × q4_K_M, q8_0, 16-bit), their Modelfiles and lock file.

A build is an Ollama library tag (its *base*) plus the paper's prompt as `SYSTEM` and
emoprobe's run defaults as `PARAMETER`s, created on the server under a local name such as
`emoprobe-qwen2.5vl:7b-q4_K_M`. The builds ship with the package: their Modelfiles are
rendered from the table below and `PAPER_TASK` (`emoprobe models render` writes them out
for `ollama create -f`). The lock in the user's data folder records the digests seen when
each was pulled and built. Llama 3.2 Vision (mllama) cannot load on Ollama 0.30 and later
(`server_support`): `doctor` says so per build.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emoprobe.backends.server_support import can_serve, support_for_text
from emoprobe.errors import ConfigError
from emoprobe.files import write_atomic
from emoprobe.ollama_admin import modelfile
from emoprobe.settings import default_data_dir
from emoprobe.task.definition import PAPER_TASK, Task
from emoprobe.task.model_options import DEFAULT_OPTIONS

LIBRARY_URL = "https://ollama.com/library/"
LOCK_NAME = "models.lock.json"
LOCK_VERSION = 1
SUFFIX = ".Modelfile"
NOTE = (
    "Digests as the Ollama server reported them (/api/tags): base_digest when the base tag "
    "was pulled or built from (source: the tag's page in the Ollama library), digest when "
    "the build was created. `emoprobe models verify` compares the server with them."
)


@dataclass(frozen=True)
class Build:
    """One model family at one quantization level, and how emoprobe names it."""

    family: str  # Ollama's library name: qwen2.5vl, llama3.2-vision
    title: str  # for people: Qwen2.5-VL 7B
    size: str  # 7b, 11b
    quantization: str  # q4_K_M, q8_0, fp16
    base: str  # the library tag it is created from
    num_ctx: int
    context_note: str
    arch: str = ""  # Ollama's model family (general.architecture): qwen25vl, mllama, ...

    @property
    def source(self) -> str:
        """Where the base comes from: its page in the Ollama library."""
        name, _, tag = self.base.partition(":")
        return f"https://ollama.com/library/{name}:{tag}" if tag else LIBRARY_URL + name

    @property
    def name(self) -> str:
        """The local model name on the server: `emoprobe-qwen2.5vl:7b-q4_K_M`."""
        return f"emoprobe-{self.family}:{self.size}-{self.quantization}"

    @property
    def key(self) -> str:
        """The short name for the command line: `qwen2.5vl-q4`, `llama3.2-vision-fp16`."""
        short = self.quantization.split("_")[0].lower()
        return f"{self.family}-{short}"

    @property
    def filename(self) -> str:
        return f"{self.family}-{self.size}-{self.quantization}{SUFFIX}"

    @property
    def parameters(self) -> dict[str, Any]:
        """emoprobe's run defaults, and a context that fits one image."""
        return {**DEFAULT_OPTIONS, "num_ctx": self.num_ctx}

    def aliases(self) -> set[str]:
        """Every spelling `resolve` accepts for this build, case-folded."""
        names = (self.key, f"{self.family}-{self.quantization}", self.name, self.base)
        return {name.casefold() for name in names}


_QWEN_CONTEXT = (
    "num_ctx 4096 fits one image: Qwen2.5-VL spends about one token per 28×28 pixels, "
    "some 1,200 for a 1280×720 frame, plus the prompt and the answer."
)
_LLAMA_CONTEXT = (
    "num_ctx 4096 is ample: llama3.2-vision takes one image per request, encoded apart "
    "from the text context. It cannot load on Ollama 0.30 and later (llama-server has no "
    "mllama): build it on an Ollama 0.24.x server."
)
_QWEN3_CONTEXT = (
    "num_ctx 4096 fits one image: Qwen3-VL spends one token per 32×32 pixels, at least "
    "1,024 per image from Ollama 0.30 (some 1,024 for a 1280×720 frame), plus the prompt "
    "and the answer. The instruct tags do not think."
)
_GEMMA_CONTEXT = (
    "num_ctx 4096 is ample: Gemma 3 spends 256 tokens on every image, whatever its size "
    "(resized to 896×896)."
)
QUANTIZATIONS = ("q4_K_M", "q8_0", "fp16")  # smallest first

# Qwen3-VL ships its 16-bit weights as bf16 (ollama.com/library/qwen3-vl tags).
QWEN3_QUANTIZATIONS = ("q4_K_M", "q8_0", "bf16")


def _family(
    family: str, title: str, tag: str, arch: str, note: str, quants: Sequence[str] = QUANTIZATIONS
) -> tuple[Build, ...]:
    """A family's builds, one per quantization, from the library tags `family:tag-quant`
    (`tag` starts with the size: `11b-instruct`)."""
    size = tag.partition("-")[0]
    return tuple(
        Build(family, title, size, q, f"{family}:{tag}-{q}", 4096, note, arch) for q in quants
    )


BUILDS: tuple[Build, ...] = (
    *_family("qwen2.5vl", "Qwen2.5-VL 7B", "7b", "qwen25vl", _QWEN_CONTEXT),
    *_family("llama3.2-vision", "Llama 3.2 Vision 11B", "11b-instruct", "mllama", _LLAMA_CONTEXT),
    *_family(
        "qwen3-vl",
        "Qwen3-VL 8B Instruct",
        "8b-instruct",
        "qwen3vl",
        _QWEN3_CONTEXT,
        QWEN3_QUANTIZATIONS,
    ),
    *_family("gemma3", "Gemma 3 4B", "4b-it", "gemma3", _GEMMA_CONTEXT),
)


def resolve(name: str) -> Build | None:
    """The build a key, local name or base tag names (case-insensitive), or None."""
    wanted = name.strip().casefold()
    if wanted.endswith(":latest"):
        wanted = wanted[: -len(":latest")]
    for build in BUILDS:
        if wanted in build.aliases():
            return build
    return None


def unservable_notes(server_version: str, among: Sequence[Build] = BUILDS) -> list[str]:
    """One line per family of builds (`among`) this server version cannot run, with the
    ways out."""
    support = support_for_text(server_version)
    if support is None:
        return []
    notes = []
    for family in dict.fromkeys(b.family for b in among):
        members = [b for b in among if b.family == family]
        if problem := can_serve(support, members[0].arch):
            keys = ", ".join(b.key for b in members)
            notes.append(f"{keys}: {problem}")
    return notes


def smallest(family: str) -> Build | None:
    """The family's build at the smallest quantization (q4_K_M)."""
    return next((b for b in BUILDS if b.family == family), None)


def find(name: str) -> Build:
    """Like `resolve`, but an unknown name is a ConfigError listing the keys."""
    build = resolve(name)
    if build is None:
        keys = ", ".join(b.key for b in BUILDS)
        raise ConfigError(
            f"unknown build {name!r}: choose one of {keys} (see `emoprobe models list`)"
        )
    return build


# -- Modelfiles ------------------------------------------------------------------------
def render_text(build: Build, task: Task = PAPER_TASK) -> str:
    """The Modelfile of `build`, exactly as `emoprobe models render` writes it."""
    paper = task == PAPER_TASK
    prompt = "prompt of Wang, Yang & Chen" if paper else f"prompt of the task {task.name!r}"
    source = "emoprobe/tasks.py, PAPER_TASK" if paper else f"the task file of {task.name!r}"
    comments = [
        f"Modelfile of {build.name}: {build.title} at {build.quantization}, with the",
        f"{prompt} as SYSTEM and emoprobe's run defaults as PARAMETERs.",
        "",
        "GENERATED by `emoprobe models render` from the build table (emoprobe/builds.py),",
        f"the prompt ({source}) and the defaults (emoprobe/options.py).",
        "Do not edit by hand: change those and render again (a test fails on drift).",
        "",
        f"Build it: emoprobe models build {build.key}",
        f"      or: ollama create {build.name} -f {build.filename}",
        "",
        *textwrap.wrap(build.context_note, 86, break_on_hyphens=False),
    ]
    return modelfile.render(
        build.base, system=task.system_prompt, parameters=build.parameters, comments=comments
    )


def create_fields(build: Build, directory: Path | None = None) -> dict[str, Any]:
    """What `POST /api/create` gets for `build`: from the build table (shipped with the
    package), or from its Modelfile in `directory`, whose FROM must be the build's base."""
    if directory is None:
        return modelfile.parse(render_text(build)).create_fields()
    path = directory / build.filename
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{path} is missing: write it with `emoprobe models render`",
            path=path,
            setting="modelfiles",
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text ({error.reason})", path=path) from None
    parsed = modelfile.parse(text, source=str(path))
    if parsed.base.casefold() != build.base.casefold():
        raise ConfigError(
            f"{path} says FROM {parsed.base} but {build.key} is built from {build.base}: "
            "run `emoprobe models render` (a build is defined by its base tag)",
            path=path,
        )
    return parsed.create_fields()


def is_current(directory: Path, build: Build, task: Task = PAPER_TASK) -> bool:
    """Whether the Modelfile on disk is what `render_text` produces now."""
    path = directory / build.filename
    return path.is_file() and path.read_text(encoding="utf-8") == render_text(build, task)


def render_all(directory: Path, task: Task = PAPER_TASK) -> list[tuple[Path, bool]]:
    """Write every build's Modelfile into `directory`; (path, changed) per file."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for build in BUILDS:
        path, changed = directory / build.filename, not is_current(directory, build, task)
        if changed:
            write_atomic(path, render_text(build, task))
        written.append((path, changed))
    return written


def modelfiles_folder(explicit: Path) -> Path:
    """A folder of Modelfiles to build from; ConfigError when it is not a folder."""
    if not explicit.is_dir():
        raise ConfigError(
            f"{explicit} is not a folder: write the Modelfiles into it with "
            "`emoprobe models render`",
            path=explicit,
            setting="modelfiles",
        )
    return explicit


# -- the lock file ---------------------------------------------------------------------
@dataclass
class LockEntry:
    """What was seen of one build on the server: digests (64 hex) and UTC times."""

    base: str
    source: str | None = None  # where the base came from (its Ollama library page)
    base_digest: str | None = None
    pulled_at: str | None = None
    digest: str | None = None
    built_at: str | None = None


def lock_path() -> Path:
    """Where the lock lives: user state, in the user's data folder (`$EMOPROBE_DATA_DIR`)."""
    return default_data_dir() / LOCK_NAME


class Lock:
    """The lock file: one LockEntry per build, by local name; each record or forget saves it."""

    def __init__(self, path: Path, entries: dict[str, LockEntry]) -> None:
        self.path = path
        self.entries = {
            b.name: entries.get(b.name) or LockEntry(base=b.base, source=b.source) for b in BUILDS
        }
        for build in BUILDS:
            entry = self.entries[build.name]
            if entry.source is None and entry.base == build.base:
                entry.source = build.source
        self.entries.update({k: v for k, v in entries.items() if k not in self.entries})

    @classmethod
    def load(cls, path: Path | None = None) -> Lock:
        """The lock at `path` (default `lock_path()`); an empty one when there is none."""
        path = path or lock_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, {})
        except (ValueError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not valid JSON ({error}): fix or delete it") from None
        raw = data.get("builds") if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            raise ConfigError(f'{path} has no "builds" object: fix or delete it')
        known = {f.name for f in fields(LockEntry)}
        entries = {}
        for name, value in raw.items():
            if not isinstance(value, dict) or not isinstance(value.get("base"), str):
                raise ConfigError(f"{path}: the entry for {name!r} has no base tag")
            entries[name] = LockEntry(**{k: v for k, v in value.items() if k in known})
        return cls(path, entries)

    def entry(self, build: Build) -> LockEntry:
        return self.entries[build.name]

    def record_base(self, build: Build, digest: str, *, pulled: bool) -> None:
        entry = self.entry(build)
        entry.base, entry.base_digest, entry.source = build.base, digest, build.source
        if pulled:
            entry.pulled_at = now()
        self.save()

    def record_build(self, build: Build, digest: str) -> None:
        entry = self.entry(build)
        entry.digest, entry.built_at = digest, now()
        self.save()

    def forget(self, build: Build, *, base: bool) -> None:
        """Forget the digest recorded for the build's base tag, or (base=False) the build's."""
        entry = self.entry(build)
        if base:
            entry.base_digest = entry.pulled_at = None
        else:
            entry.digest = entry.built_at = None
        self.save()

    def save(self) -> None:
        document = {
            "note": NOTE,
            "version": LOCK_VERSION,
            "builds": {name: asdict(entry) for name, entry in self.entries.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def now() -> str:
    """The current UTC time, to the second, as ISO 8601 (`2025-01-31T12:00:00Z`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

"""The builds on an Ollama server: list, pull, build, verify, remove.

Talks to the server through the `ollama` client of `OllamaBackend`, with its error
translation (`translating`), so only `emoprobe.errors` exceptions leave this module.
Progress and messages go to callbacks: printing is the command line's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprobe.backends.ollama import OllamaBackend, can_see, full_model_name
from emoprobe.backends.ollama_client import ollama
from emoprobe.errors import BackendError, EmoprobeError, ModelNotFound
from emoprobe.ollama_admin import builds
from emoprobe.ollama_admin.builds import BUILDS, Build, Lock, lock_path

QUICK_TIMEOUT = 30.0
# A pull or create may say nothing for minutes (verifying a 16 GB blob): allow an hour.
TRANSFER_TIMEOUT = 3600.0
PULL_MISSING = "file does not exist"
# The fields of a Modelfile that `POST /api/create` takes through the ollama client.
CREATE_FIELDS = ("from", "system", "template", "license", "parameters", "messages")


class DigestMismatch(EmoprobeError):
    """The server's models differ from what the lock recorded."""


@dataclass(frozen=True)
class Progress:
    """One line of Ollama's streamed pull or create progress."""

    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0


@dataclass(frozen=True)
class Installed:
    """A model the server lists (/api/tags)."""

    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class Loaded:
    """A model loaded in memory now (/api/ps)."""

    name: str
    size: int
    size_vram: int

    @property
    def gpu_share(self) -> float:
        return min(self.size_vram / self.size, 1.0) if self.size > 0 else 0.0


def human_size(size: int | None) -> str:
    """Bytes as Ollama prints them (decimal units): `6.0 GB`, `22 GB`, `600 MB`, or `–`."""
    if not size:
        return "–"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{value:.1f} {unit}" if value < 10 and unit != "B" else f"{value:.0f} {unit}"


def short_digest(digest: str | None) -> str:
    """The first 12 hex digits, as `ollama list` shows them, or `–`."""
    return bare_digest(digest)[:12] or "–"


def bare_digest(digest: str | None) -> str:
    text = (digest or "").strip().lower()
    return text.split(":", 1)[1] if text.startswith("sha256:") else text


def model_key(name: str) -> str:
    """A model name as the server compares names: full (`:latest`) and case-folded."""
    return full_model_name(name.strip()).casefold()


class ModelServer:
    """One Ollama server, for model management. Raises only `emoprobe.errors` exceptions."""

    def __init__(self, host: str) -> None:
        self.host = host
        # Reuse the run's backend for its client settings and its error translation.
        self._quick = OllamaBackend(host, timeout=QUICK_TIMEOUT)
        self._slow: OllamaBackend | None = None

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._quick.close()
        if self._slow is not None:
            self._slow.close()

    def version(self) -> str:
        return self._quick.server_version()

    def installed(self) -> dict[str, Installed]:
        """Every model the server lists, by full name case-folded (`qwen2.5vl:7b`)."""
        with self._quick.translating("GET /api/tags"):
            listing = self._quick.client.list()
        installed = [
            Installed(entry.model or "", bare_digest(entry.digest), int(entry.size or 0))
            for entry in listing.models
        ]
        return {model_key(model.name): model for model in installed}

    def find(self, name: str) -> Installed | None:
        return self.installed().get(model_key(name))

    def vision_family(self, name: str) -> str | None:
        """The model's family when it reads images ("" if the server names none), else None."""
        with self._quick.translating("POST /api/show", name):
            shown = self._quick.client.show(name)
        if not can_see(tuple(shown.capabilities or ()), shown.modelinfo):
            return None
        return (shown.details.family if shown.details else "") or ""

    def loaded(self) -> list[Loaded]:
        with self._quick.translating("GET /api/ps"):
            running = self._quick.client.ps()
        return [
            Loaded(m.model or m.name or "", int(m.size or 0), int(m.size_vram or 0))
            for m in running.models
        ]

    def delete(self, name: str) -> None:
        with self._quick.translating("DELETE /api/delete", name):
            self._quick.client.delete(name)

    def pull(self, tag: str, on_progress: Callable[[Progress], None]) -> None:
        """Pull `tag` from the library, reporting each streamed progress line."""
        for part in self._stream("pull", tag, lambda c: c.pull(tag, stream=True)):
            on_progress(part)

    def create(
        self, name: str, request: Mapping[str, Any], on_progress: Callable[[Progress], None]
    ) -> None:
        """`POST /api/create` with a Modelfile's fields (`from`, `system`, `parameters`, …)."""
        unsupported = sorted(set(request) - set(CREATE_FIELDS))
        if unsupported:
            raise BackendError(
                f"cannot create {name}: the ollama client does not send {', '.join(unsupported)}"
            )
        given = {key: request.get(key) for key in CREATE_FIELDS[1:]}

        def start(client: ollama.Client) -> Iterator[Any]:
            return client.create(name, from_=request.get("from"), stream=True, **given)

        try:
            for part in self._stream("create", name, start):
                on_progress(part)
        except ModelNotFound:
            raise
        except BackendError as error:
            raise type(error)(f"creating {name} failed: {error}") from None

    def _stream(
        self, what: str, model: str, start: Callable[[ollama.Client], Iterator[Any]]
    ) -> Iterator[Progress]:
        if self._slow is None:
            self._slow = OllamaBackend(self.host, timeout=TRANSFER_TIMEOUT)
        backend = self._slow
        with backend.translating(f"POST /api/{what}", model):
            stream = start(backend.client)
        while True:
            with backend.translating(f"POST /api/{what}", model):
                try:
                    part = next(stream, None)
                except ollama.ResponseError as error:
                    if PULL_MISSING in str(error.error):
                        raise ModelNotFound(
                            f"{model} is not in the Ollama library ({error.error}): "
                            "check the name at https://ollama.com/library"
                        ) from None
                    raise
            if part is None:
                return
            total, completed = int(part.total or 0), int(part.completed or 0)
            yield Progress(part.status or "", part.digest or "", total, completed)


# -- list --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildStatus:
    """A build and what the server has of it."""

    build: Build
    base: Installed | None
    built: Installed | None

    @property
    def shown(self) -> Installed | None:
        """The built model if there is one, else its base tag."""
        return self.built or self.base


def statuses(server: ModelServer) -> list[BuildStatus]:
    installed = server.installed()
    return [
        BuildStatus(b, installed.get(model_key(b.base)), installed.get(model_key(b.name)))
        for b in BUILDS
    ]


# -- pull and build --------------------------------------------------------------------
ProgressFor = Callable[[str], Callable[[Progress], None]]


def pull_builds(
    server: ModelServer, targets: list[Build], progress_for: ProgressFor
) -> list[Installed]:
    """Pull each build's base tag and record its digest in the lock."""
    pulled = []
    for build in targets:
        installed = pull_tag(server, build.base, progress_for)
        Lock.load().record_base(build, installed.digest, pulled=True)
        pulled.append(installed)
    return pulled


def pull_tag(server: ModelServer, tag: str, progress_for: ProgressFor) -> Installed:
    """Pull any library tag (a build's base, or another): nothing is recorded."""
    server.pull(tag, progress_for(tag))
    installed = server.find(tag)
    if installed is None:
        raise BackendError(f"the server reported pulling {tag} but does not list it")
    return installed


def build_builds(
    server: ModelServer,
    targets: list[Build],
    directory: Path | None,
    progress_for: ProgressFor,
    say: Callable[[str], None],
) -> list[Installed]:
    """Pull missing bases, then create each build (from the build table, or from its
    Modelfile in `directory`); record both digests in the lock."""
    requests = []
    for build in targets:  # read every Modelfile before the first download
        request = builds.create_fields(build, directory)
        if directory is not None and not builds.is_current(directory, build):
            say(
                f"warning: {directory / build.filename} differs from what "
                "`emoprobe models render` writes; building it as it is"
            )
        requests.append((build, request))
    made = []
    for build, request in requests:
        base = server.find(build.base)
        pulled = base is None
        if base is None:
            base = pull_tag(server, build.base, progress_for)
        Lock.load().record_base(build, base.digest, pulled=pulled)
        server.create(build.name, request, progress_for(build.name))
        created = server.find(build.name)
        if created is None:
            raise BackendError(f"the server reported creating {build.name} but does not list it")
        Lock.load().record_build(build, created.digest)
        made.append(created)
    return made


# -- verify ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Verified:
    """One locked model (a base tag or a build) against the server."""

    model: str
    role: str  # "base" or "build"
    locked: str | None
    found: str | None

    @property
    def state(self) -> str:
        if not self.locked:
            return "not recorded"
        if not self.found:
            return "missing"
        return "ok" if bare_digest(self.locked) == bare_digest(self.found) else "DIFFERS"

    @property
    def failed(self) -> bool:
        return self.state in ("missing", "DIFFERS")


def verify(server: ModelServer) -> list[Verified]:
    """Every recorded digest (and every present build) against the server's."""
    lock = Lock.load()
    installed = server.installed()
    rows = []
    for build in BUILDS:
        entry = lock.entry(build)
        for model, role, locked in (
            (entry.base, "base", entry.base_digest),
            (build.name, "build", entry.digest),
        ):
            found = installed.get(model_key(model))
            if locked or found:
                rows.append(Verified(model, role, locked, found.digest if found else None))
    return rows


def check_verified(rows: list[Verified]) -> None:
    """DigestMismatch naming every model that differs from the lock or is missing."""
    failed = [row for row in rows if row.failed]
    if not failed:
        return
    named = ", ".join(f"{row.model} ({row.state.lower()})" for row in failed)
    raise DigestMismatch(
        f"{len(failed)} model(s) differ from {lock_path()}: {named}; "
        "pull or build them again to record what the server has now"
    )


# -- rm --------------------------------------------------------------------------------
def remove(server: ModelServer, names: list[tuple[str, Build | None]]) -> list[str]:
    """Delete the named models; forget their digests in the lock. Returns what was removed."""
    installed = server.installed()
    present = [(name, build) for name, build in names if model_key(name) in installed]
    if not present:
        listed = " and ".join(name for name, _ in names)
        raise ModelNotFound(f"{listed} not on the Ollama server at {server.host}: nothing removed")
    removed = []
    for name, build in present:
        server.delete(installed[model_key(name)].name)
        removed.append(installed[model_key(name)].name)
        if build is not None:
            Lock.load().forget(build, base=model_key(name) != model_key(build.name))
    return removed

"""`emoprobe models …` and `emoprobe doctor`: options in, tables and progress out.

The work is done in `emoprobe.models` (the server) and `emoprobe.builds` (the table,
Modelfiles, lock file); both are imported inside the commands so `emoprobe --help`
stays fast.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from emoprobe.ollama_admin.admin import Progress

NAME_HELP = (
    "NAME is a short key (qwen2.5vl-q4, qwen2.5vl-q8, qwen2.5vl-fp16, llama3.2-vision-q4, "
    "llama3.2-vision-q8, llama3.2-vision-fp16), a build's local name "
    "(emoprobe-qwen2.5vl:7b-q4_K_M) or its base tag (qwen2.5vl:7b-q4_K_M); "
    "`emoprobe models list` shows them all."
)
REDRAW_S = 0.1
BAR_WIDTH = 24
# Statuses of /api/create that say nothing a person needs.
_QUIET_STATUSES = (
    "using existing layer",
    "using already created layer",
    "creating new layer",
    "writing layer",
    "reading model metadata",
    "creating system layer",
)


def _server_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--modelfiles",
        type=click.Path(path_type=Path, file_okay=False),
        help="Folder of the Modelfiles and lock.json. "
        "[default: ./modelfiles, else the one beside the emoprobe package]",
    )(function)
    function = click.option(
        "--allow-remote", is_flag=True, help="Allow a host that is not this machine."
    )(function)
    return click.option(
        "--host",
        metavar="URL",
        help="Ollama server. [default: $OLLAMA_HOST, else http://127.0.0.1:11434]",
    )(function)


def _explain_names(command: click.Command, extra: str = "") -> None:
    """Append what NAME may be to the command's help."""
    command.help = f"{inspect.cleandoc(command.help or '')}\n\n{NAME_HELP} {extra}".rstrip()


def _host(host: str | None, allow_remote: bool) -> str:
    from emoprobe.hosts import checked_host
    from emoprobe.settings import default_host

    return checked_host(host or default_host(), allow_remote=allow_remote)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


class ProgressLines:
    """Ollama's streamed pull progress on stderr.

    On a terminal one bar is redrawn in place (all layers together) and each finished
    layer leaves a line; elsewhere only the plain lines are written: one per layer,
    and the server's other statuses (`pulling manifest`, `verifying sha256 digest`, …).
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.layers: dict[str, list[int]] = {}
        self.last_status = ""
        self.creating = False
        self.drawn = False
        self.last_draw = 0.0

    def start(self, model: str, *, creating: bool = False) -> Callable[[Progress], None]:
        """Begin a model's progress; returns the callback for its lines."""
        self.close()
        self.layers, self.last_status, self.creating = {}, "", creating
        self._say(f"{'creating' if creating else 'pulling'} {model}")
        return self.update

    def update(self, part: Progress) -> None:
        from emoprobe.ollama_admin.admin import human_size, short_digest

        if part.digest and part.total:
            layer = self.layers.setdefault(part.digest, [part.total, 0, 0])
            layer[0], layer[1] = part.total, max(layer[1], part.completed)
            if layer[1] >= layer[0] and not layer[2]:
                layer[2] = 1
                what = part.status or f"pulling {short_digest(part.digest)}"
                self._say(f"  {what}  {human_size(part.total)}")
            self._draw(force=bool(layer[2]))
            return
        status = part.status.strip()
        if not status or status == self.last_status:
            return
        self.last_status = status
        if not status.startswith(_QUIET_STATUSES):
            self._say(f"  {status}")

    def close(self) -> None:
        if self.live and self.drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.drawn = False

    def _say(self, text: str) -> None:
        prefix = "\r\x1b[2K" if self.live and self.drawn else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()
        self.drawn = False
        if self.live and self.layers:
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.live or not self.layers:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < REDRAW_S:
            return
        from emoprobe.ollama_admin.admin import human_size

        self.last_draw = now
        total = sum(layer[0] for layer in self.layers.values())
        done = sum(min(layer[1], layer[0]) for layer in self.layers.values())
        share = done / total if total else 1.0
        filled = int(share * BAR_WIDTH)
        finished = sum(layer[2] for layer in self.layers.values())
        self.stream.write(
            f"\r\x1b[2K  [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%}  "
            f"{human_size(done) if done else '0 B'}/{human_size(total)}  "
            f"{finished}/{len(self.layers)} layers"
        )
        self.stream.flush()
        self.drawn = True


def _targets(name: str | None, all_: bool) -> list[Any]:
    from emoprobe.ollama_admin import builds

    if all_ and name:
        raise click.UsageError("give a NAME or --all, not both")
    if not all_ and not name:
        raise click.UsageError("give a NAME (see `emoprobe models list`) or --all")
    return list(builds.BUILDS) if all_ else [builds.find(name or "")]


@click.group()
def models() -> None:
    """Build, pull and check the six builds of the study.

    Qwen2.5-VL 7B and Llama 3.2 Vision 11B, each at q4_K_M, q8_0 and fp16: a library
    tag plus the paper's prompt (SYSTEM) and emoprobe's defaults (PARAMETERs), created
    on your Ollama server as emoprobe-<family>:<size>-<quantization> from the
    Modelfiles in modelfiles/. modelfiles/lock.json records the digests seen.
    """


@models.command("list")
@_server_options
def list_builds(host: str | None, allow_remote: bool, modelfiles: Path | None) -> None:
    """Every build: family, quantization, size, digest, base pulled, built.

    SIZE and DIGEST are the built model's when it is built, else its base tag's.
    """
    from emoprobe.ollama_admin import builds
    from emoprobe.ollama_admin.admin import ModelServer, human_size, short_digest, statuses

    with ModelServer(_host(host, allow_remote)) as server:
        found = statuses(server)
    rows = [
        [
            s.build.key,
            s.build.name,
            s.build.title,
            s.build.quantization,
            human_size(s.shown.size if s.shown else None),
            short_digest(s.shown.digest if s.shown else None),
            "yes" if s.base else "no",
            "yes" if s.built else "no",
        ]
        for s in found
    ]
    headers = ["NAME", "MODEL", "FAMILY", "QUANT", "SIZE", "DIGEST", "PULLED", "BUILT"]
    click.echo(_table(headers, rows))
    directory = _lock_folder(modelfiles)
    for build in builds.BUILDS if directory else ():
        if not (directory / build.filename).is_file():
            click.echo(f"note: {directory / build.filename} is missing: emoprobe models render")
    if not any(s.built for s in found):
        click.echo(f"build one with: emoprobe models build {builds.BUILDS[0].key}")


@models.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Pull the base tags of all six builds.")
@_server_options
def pull(
    name: str | None, all_: bool, host: str | None, allow_remote: bool, modelfiles: Path | None
) -> None:
    """Pull the base tag of build NAME (or of all builds) and record its digest.

    NAME may also be any other Ollama library tag (e.g. llava:7b): it is pulled, and
    nothing is recorded. Progress goes to stderr.
    """
    from emoprobe.errors import ModelNotFound
    from emoprobe.ollama_admin import builds
    from emoprobe.ollama_admin.admin import (
        ModelServer,
        human_size,
        pull_builds,
        pull_tag,
        short_digest,
    )

    build = builds.resolve(name) if name and not all_ else None
    targets = _targets(name, all_) if all_ or build or not name else []
    directory = _lock_folder(modelfiles) if targets else None
    progress = ProgressLines()
    with ModelServer(_host(host, allow_remote)) as server:
        try:
            if targets:
                pulled = pull_builds(server, targets, directory, progress.start)
            else:
                pulled = [pull_tag(server, name or "", progress.start)]
        except ModelNotFound as error:
            if targets or ":" in (name or ""):
                raise
            keys = ", ".join(b.key for b in builds.BUILDS)
            raise ModelNotFound(f"{error}; the builds are {keys}") from None
        finally:
            progress.close()
    for installed in pulled:
        click.echo(
            f"pulled {installed.name}  {human_size(installed.size)}  "
            f"digest {short_digest(installed.digest)}"
        )
    if directory is not None:
        click.echo(f"recorded in {directory / builds.LOCK_NAME}")
    elif targets:
        click.echo("note: no modelfiles/ folder found, so no digest was recorded")


_explain_names(pull)


def _lock_folder(modelfiles: Path | None) -> Path | None:
    from emoprobe.errors import ConfigError
    from emoprobe.ollama_admin import builds

    try:
        return builds.locate(modelfiles)
    except ConfigError:
        if modelfiles is not None:
            raise
        return None


@models.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Build all six.")
@_server_options
def build(
    name: str | None, all_: bool, host: str | None, allow_remote: bool, modelfiles: Path | None
) -> None:
    """Create build NAME (or all builds) on the server from its Modelfile.

    Pulls the base tag first when the server lacks it, then sends the Modelfile's
    FROM, SYSTEM and PARAMETERs to /api/create, and records both digests in
    modelfiles/lock.json.
    """
    from emoprobe.ollama_admin import builds
    from emoprobe.ollama_admin.admin import ModelServer, build_builds, short_digest

    targets = _targets(name, all_)
    directory = builds.locate(modelfiles)
    progress = ProgressLines()

    def progress_for(model: str) -> Callable[[Progress], None]:
        return progress.start(model, creating=model.startswith("emoprobe-"))

    def say(text: str) -> None:
        progress.close()
        click.echo(text, err=True)

    with ModelServer(_host(host, allow_remote)) as server:
        try:
            made = build_builds(server, targets, directory, progress_for, say)
        finally:
            progress.close()
    for created in made:
        click.echo(f"built {created.name}  digest {short_digest(created.digest)}")
    click.echo(f"recorded in {directory / builds.LOCK_NAME}")
    click.echo(f"run it: emoprobe run DATASET --model {made[0].name}")


_explain_names(build)


@models.command()
@_server_options
def verify(host: str | None, allow_remote: bool, modelfiles: Path | None) -> None:
    """Compare the server's digests with modelfiles/lock.json; exit 1 naming what differs."""
    from emoprobe.ollama_admin import builds
    from emoprobe.ollama_admin.admin import ModelServer, check_verified, short_digest
    from emoprobe.ollama_admin.admin import verify as verify_digests

    directory = builds.locate(modelfiles)
    with ModelServer(_host(host, allow_remote)) as server:
        rows = verify_digests(server, directory)
    if not any(row.locked for row in rows):
        click.echo(
            f"nothing recorded in {directory / builds.LOCK_NAME} yet: "
            "`emoprobe models build NAME` records what it builds"
        )
    if rows:
        table = [
            [r.model, r.role, short_digest(r.locked), short_digest(r.found), r.state] for r in rows
        ]
        click.echo(_table(["MODEL", "ROLE", "LOCK", "SERVER", "STATE"], table))
    check_verified(rows, directory)
    if any(row.locked for row in rows):
        click.echo("every recorded digest matches the server")


@models.command()
@click.argument("name")
@click.option(
    "--with-base",
    is_flag=True,
    help="Also remove the base tag: the build shares its layers, so that frees the disk.",
)
@_server_options
def rm(
    name: str, with_base: bool, host: str | None, allow_remote: bool, modelfiles: Path | None
) -> None:
    """Remove build NAME from the server (and forget its digest in the lock)."""
    from emoprobe.backends.ollama import full_model_name
    from emoprobe.ollama_admin import builds
    from emoprobe.ollama_admin.admin import ModelServer, remove

    build = builds.find(name)
    if full_model_name(name).casefold() == full_model_name(build.base).casefold():
        names = [(build.base, build)]
    else:
        names = [(build.name, build)] + ([(build.base, build)] if with_base else [])
    directory = _lock_folder(modelfiles)
    with ModelServer(_host(host, allow_remote)) as server:
        removed = remove(server, names, directory)
    for model in removed:
        click.echo(f"removed {model}")


_explain_names(rm, "Naming the base tag removes the base tag only.")


@models.command()
@click.option(
    "--modelfiles",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write. [default: ./modelfiles, else the one beside the package]",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change.")
@click.option(
    "--task",
    "task_file",
    type=click.Path(path_type=Path),
    help="Bake another task's prompt into the SYSTEM lines (needs --modelfiles: the "
    "repository's folder keeps the paper's).",
)
def render(modelfiles: Path | None, check: bool, task_file: Path | None) -> None:
    """Write the six Modelfiles from the build table and the paper's (or a task's) prompt."""
    from emoprobe.errors import ConfigError
    from emoprobe.ollama_admin import builds
    from emoprobe.task.definition import load_task

    if task_file is not None:
        if modelfiles is None:
            raise ConfigError("--task needs --modelfiles DIR: modelfiles/ keeps the paper's task")
        task = load_task(task_file)
        for path, changed in builds.render_all(modelfiles, task):
            click.echo(f"{'wrote    ' if changed else 'unchanged'} {path}")
        return
    directory = builds.render_target(modelfiles)
    if check:
        stale = [b.filename for b in builds.BUILDS if not builds.is_current(directory, b)]
        if stale:
            raise ConfigError(
                f"{len(stale)} Modelfile(s) in {directory} differ from the build table: "
                f"{', '.join(stale)}; run `emoprobe models render`"
            )
        click.echo(f"all {len(builds.BUILDS)} Modelfiles in {directory} are current")
        return
    for path, changed in builds.render_all(directory):
        click.echo(f"{'wrote    ' if changed else 'unchanged'} {path}")


@click.command()
@click.option(
    "--host",
    metavar="URL",
    help="Ollama server. [default: $OLLAMA_HOST, else http://127.0.0.1:11434]",
)
@click.option("--allow-remote", is_flag=True, help="Allow a host that is not this machine.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Response cache folder. [default: $EMOPROBE_CACHE_DIR, else the user cache folder]",
)
def doctor(host: str | None, allow_remote: bool, cache_dir: Path | None) -> None:
    """Check that a run can start: server, version, builds, vision, GPU memory, disk.

    One line per check: ✓ fine, ! worth a look, ✗ a problem, each with the command that
    fixes it. Exits 0 when a run can start (server up, a vision model present), else 1.
    """
    from emoprobe.ollama_admin.admin import NotReady, diagnose
    from emoprobe.settings import default_cache_dir

    diagnosis = diagnose(
        _host(host, allow_remote), cache_dir or default_cache_dir(), dict(os.environ)
    )
    width = max(len(check.topic) for check in diagnosis.checks)
    for check in diagnosis.checks:
        fix = f"  → {check.fix}" if check.fix else ""
        click.echo(f"{check.mark} {check.topic.ljust(width)}  {check.text}{fix}")
    if not diagnosis.ready:
        raise NotReady(f"not ready to run: {diagnosis.reason}")
    click.echo(f"ready: emoprobe run DATASET --model {diagnosis.suggested_model}")

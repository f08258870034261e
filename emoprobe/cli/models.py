"""`emoprobe models …` and `emoprobe doctor`: options in, tables and progress out.

The work is done in `emoprobe.ollama_admin` (`admin`: the server; `builds`: the table,
Modelfiles and lock; `doctor`: the checks); what talks to a server is imported inside the
commands so that `emoprobe --help` stays fast.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from emoprobe.cli.params import allow_remote_option, cache_dir_option, host_option, server_host
from emoprobe.cli.runs import text_table
from emoprobe.ollama_admin import builds

MODELFILES_DIR = "modelfiles"
NAME_HELP = (
    f"NAME is a short key ({', '.join(b.key for b in builds.BUILDS)}), a build's local name "
    "(emoprobe-qwen2.5vl:7b-q4_K_M) or its base tag (qwen2.5vl:7b-q4_K_M); "
    "`emoprobe models list` shows them all."
)


def _server_options(function: Callable[..., Any]) -> Callable[..., Any]:
    return host_option(allow_remote_option(function))


def _explain_names(command: click.Command, extra: str = "") -> None:
    """Append what NAME may be to the command's help."""
    command.help = f"{inspect.cleandoc(command.help or '')}\n\n{NAME_HELP} {extra}".rstrip()


def _targets(name: str | None, all_: bool) -> list[builds.Build]:

    if all_ and name:
        raise click.UsageError("give a NAME or --all, not both")
    if not all_ and not name:
        raise click.UsageError("give a NAME (see `emoprobe models list`) or --all")
    return list(builds.BUILDS) if all_ else [builds.find(name or "")]


@click.group()
def models() -> None:
    """Build, pull and check the twelve builds of the study.

    The paper's Qwen2.5-VL 7B and Llama 3.2 Vision 11B, and Qwen3-VL 8B and Gemma 3 4B,
    each at q4_K_M, q8_0 and 16-bit (fp16; bf16 for Qwen3-VL): a library tag plus the
    paper's prompt (SYSTEM) and emoprobe's defaults (PARAMETERs), created on your Ollama
    server as emoprobe-<family>:<size>-<quantization>. A lock in your data folder
    ($EMOPROBE_DATA_DIR) records where each base came from and the digests seen.
    Llama 3.2 Vision cannot run on Ollama 0.30 and later (see `emoprobe doctor`).
    """


@models.command("list")
@_server_options
def list_builds(host: str | None, allow_remote: bool) -> None:
    """Every build: family, quantization, size, digest, base pulled, built.

    SIZE and DIGEST are the built model's when it is built, else its base tag's.
    """
    from emoprobe.ollama_admin import admin

    with admin.ModelServer(server_host(host, allow_remote)) as server:
        found = admin.statuses(server)
        version = server.version()
    rows = [
        [
            s.build.key,
            s.build.name,
            s.build.title,
            s.build.quantization,
            admin.human_size(s.shown.size if s.shown else None),
            admin.short_digest(s.shown.digest if s.shown else None),
            "yes" if s.base else "no",
            "yes" if s.built else "no",
        ]
        for s in found
    ]
    headers = ["NAME", "MODEL", "FAMILY", "QUANT", "SIZE", "DIGEST", "PULLED", "BUILT"]
    click.echo(text_table(headers, rows))
    for note in builds.unservable_notes(version):
        click.echo(f"note: {note}")
    if not any(s.built for s in found):
        click.echo(f"build one with: emoprobe models build {builds.BUILDS[0].key}")


@models.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Pull the base tags of all builds.")
@_server_options
def pull(name: str | None, all_: bool, host: str | None, allow_remote: bool) -> None:
    """Pull the base tag of build NAME (or of all builds) and record its digest.

    NAME may also be any other Ollama library tag (e.g. llava:7b): it is pulled, and
    nothing is recorded. Progress goes to stderr.
    """
    from emoprobe.cli.progress import PullProgress
    from emoprobe.errors import ModelNotFound
    from emoprobe.ollama_admin import admin

    build = builds.resolve(name) if name and not all_ else None
    targets = _targets(name, all_) if all_ or build or not name else []
    progress = PullProgress()
    with admin.ModelServer(server_host(host, allow_remote)) as server:
        try:
            if targets:
                pulled = admin.pull_builds(server, targets, progress.start)
            else:
                pulled = [admin.pull_tag(server, name or "", progress.start)]
        except ModelNotFound as error:
            if targets or ":" in (name or ""):
                raise
            keys = ", ".join(b.key for b in builds.BUILDS)
            raise ModelNotFound(f"{error}; the builds are {keys}") from None
        finally:
            progress.close()
    for installed in pulled:
        click.echo(
            f"pulled {installed.name}  {admin.human_size(installed.size)}  "
            f"digest {admin.short_digest(installed.digest)}"
        )
    if targets:
        click.echo(f"recorded in {builds.lock_path()}")


_explain_names(pull)


@models.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Build all of them.")
@click.option(
    "--modelfiles",
    type=click.Path(path_type=Path),
    help="Build from the Modelfiles in this folder (e.g. edited ones). "
    "[default: the build table shipped with emoprobe]",
)
@_server_options
def build(
    name: str | None, all_: bool, modelfiles: Path | None, host: str | None, allow_remote: bool
) -> None:
    """Create build NAME (or all builds) on the server.

    Pulls the base tag first when the server lacks it, then sends the build's FROM,
    SYSTEM and PARAMETERs to /api/create, and records both digests in the lock.
    """
    from emoprobe.cli.progress import PullProgress
    from emoprobe.ollama_admin import admin

    targets = _targets(name, all_)
    directory = builds.modelfiles_folder(modelfiles) if modelfiles is not None else None
    progress = PullProgress()

    def progress_for(model: str) -> Callable[[admin.Progress], None]:
        return progress.start(model, creating=model.startswith("emoprobe-"))

    def say(text: str) -> None:
        progress.close()
        click.echo(text, err=True)

    with admin.ModelServer(server_host(host, allow_remote)) as server:
        try:
            made = admin.build_builds(server, targets, directory, progress_for, say)
        finally:
            progress.close()
        notes = builds.unservable_notes(server.version(), targets)
    for created in made:
        click.echo(f"built {created.name}  digest {admin.short_digest(created.digest)}")
    click.echo(f"recorded in {builds.lock_path()}")
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"run it: emoprobe run DATASET --model {made[0].name}")


_explain_names(build)


@models.command()
@_server_options
def verify(host: str | None, allow_remote: bool) -> None:
    """Compare the server's digests with the lock; exit 1 naming what differs."""
    from emoprobe.ollama_admin import admin

    with admin.ModelServer(server_host(host, allow_remote)) as server:
        rows = admin.verify(server)
    if not any(row.locked for row in rows):
        click.echo(
            f"nothing recorded in {builds.lock_path()} yet: "
            "`emoprobe models build NAME` records what it builds"
        )
    if rows:
        table = [
            [r.model, r.role, admin.short_digest(r.locked), admin.short_digest(r.found), r.state]
            for r in rows
        ]
        click.echo(text_table(["MODEL", "ROLE", "LOCK", "SERVER", "STATE"], table))
    admin.check_verified(rows)
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
def rm(name: str, with_base: bool, host: str | None, allow_remote: bool) -> None:
    """Remove build NAME from the server (and forget its digest in the lock)."""
    from emoprobe.backends.ollama import full_model_name
    from emoprobe.ollama_admin import admin

    build = builds.find(name)
    names: list[tuple[str, builds.Build | None]]
    if full_model_name(name).casefold() == full_model_name(build.base).casefold():
        names = [(build.base, build)]
    else:
        names = [(build.name, build), *([(build.base, build)] if with_base else [])]
    with admin.ModelServer(server_host(host, allow_remote)) as server:
        removed = admin.remove(server, names)
    for model in removed:
        click.echo(f"removed {model}")


_explain_names(rm, "Naming the base tag removes the base tag only.")


@models.command()
@click.option(
    "--modelfiles",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write. [default: ./modelfiles]",
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
    """Write every build's Modelfile from the build table and the paper's (or a task's) prompt.

    `emoprobe models build` needs none of them (the builds ship with emoprobe); they are
    for reading, editing (`build --modelfiles DIR`) and `ollama create -f`.
    """
    from emoprobe.errors import ConfigError
    from emoprobe.task.definition import PAPER_TASK, load_task

    if task_file is not None and modelfiles is None:
        raise ConfigError("--task needs --modelfiles DIR: modelfiles/ keeps the paper's task")
    directory = modelfiles or Path(MODELFILES_DIR)
    if check and task_file is None:
        stale = [b.filename for b in builds.BUILDS if not builds.is_current(directory, b)]
        if stale:
            raise ConfigError(
                f"{len(stale)} Modelfile(s) in {directory} differ from the build table: "
                f"{', '.join(stale)}; run `emoprobe models render`"
            )
        click.echo(f"all {len(builds.BUILDS)} Modelfiles in {directory} are current")
        return
    task = load_task(task_file) if task_file else PAPER_TASK
    for path, changed in builds.render_all(directory, task):
        click.echo(f"{'wrote    ' if changed else 'unchanged'} {path}")


@click.command()
@_server_options
@cache_dir_option
def doctor(host: str | None, allow_remote: bool, cache_dir: Path | None) -> None:
    """Check that a run can start: server, version, builds, vision, GPU memory, disk.

    One line per check: ✓ fine, ! worth a look, ✗ a problem, each with the command that
    fixes it. Exits 0 when a run can start (server up, a vision model present), else 1.
    """
    from emoprobe.ollama_admin.doctor import NotReady, diagnose
    from emoprobe.settings import default_cache_dir

    diagnosis = diagnose(
        server_host(host, allow_remote), cache_dir or default_cache_dir(), dict(os.environ)
    )
    width = max(len(check.topic) for check in diagnosis.checks)
    for check in diagnosis.checks:
        fix = f"  → {check.fix}" if check.fix else ""
        click.echo(f"{check.mark} {check.topic.ljust(width)}  {check.text}{fix}")
    if not diagnosis.ready:
        raise NotReady(f"not ready to run: {diagnosis.reason}")
    click.echo(f"ready: emoprobe run DATASET --model {diagnosis.suggested_model}")

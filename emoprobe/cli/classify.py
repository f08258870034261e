"""`emoprobe classify IMAGE…` and `emoprobe cache info | clear | export | import`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from emoprobe.cli.params import cache_dir_option, request_options
from emoprobe.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from emoprobe.pipeline.probe import ProbeResult


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Ollama model name.")
@click.option(
    "--host",
    metavar="URL",
    help="Model server. [default: $OLLAMA_HOST, else http://127.0.0.1:11434]",
)
@request_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image per line.")
def classify(
    images: tuple[Path, ...],
    model: str,
    host: str | None,
    allow_remote: bool,
    cache_dir: Path | None,
    offline: bool,
    timeout: float,
    retries: int,
    option_pairs: tuple[str, ...],
    task_file: Path | None,
    answer_mode: str,
    backend_kind: str,
    as_json: bool,
) -> int:
    """Classify IMAGE… with the paper's prompt, parser and cache, and print each label.

    Faces are personal data: classify only photos whose owners agreed to it.
    """
    from emoprobe.pipeline.probe import Probe
    from emoprobe.task.definition import PAPER_TASK, load_task
    from emoprobe.task.model_options import parse_options

    failures = 0
    with Probe.open(
        model,
        host,
        task=load_task(task_file) if task_file else PAPER_TASK,
        answer_mode=answer_mode,
        backend=backend_kind,
        options=parse_options(option_pairs),
        cache_dir=cache_dir,
        offline=offline,
        allow_remote=allow_remote,
        timeout=timeout,
        retries=retries,
    ) as probe:
        for path in images:
            result = probe.classify(path)
            failures += result.raw is None
            _print_result(path, result, as_json)
    return 1 if failures else 0


def _print_result(path: Path, result: ProbeResult, as_json: bool) -> None:
    if as_json:
        record: dict[str, Any] = {
            "path": str(path),
            "prediction": result.label or None,
            "raw": result.raw,
            "latency_s": None if result.latency_s is None else round(result.latency_s, 4),
            "cached": result.cached,
        }
        if result.scores is not None:
            record["scores"] = {label: round(p, 6) for label, p in result.scores.items()}
        if result.error:
            record["error"] = result.error
        click.echo(json.dumps(record, ensure_ascii=False))
    elif result.raw is None:
        click.echo(f"{path}: error: {result.error}")
    else:
        raw = " ".join(result.raw.split())
        raw = raw if len(raw) <= 60 else raw[:59] + "…"
        source = "cached" if result.cached else f"{result.latency_s or 0:.2f} s"
        click.echo(f"{path}: {result.label}  (answer {raw!r}, {source})")


@click.group()
def cache() -> None:
    """Look into, clear, export or import the response cache."""


def _open(cache_dir: Path | None):
    from emoprobe.pipeline.cache import ResponseCache
    from emoprobe.settings import default_cache_dir

    return ResponseCache(cache_dir or default_cache_dir())


@cache.command("info")
@cache_dir_option
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is, how big, and which models' answers it holds."""
    with _open(cache_dir) as store:
        info = store.info()
    click.echo(f"cache: {info['directory']}")
    click.echo(
        f"answers: {info['answers']}  file hashes remembered: {info['file_hashes']}  "
        f"size: {info['bytes'] / 1e6:.1f} MB"
    )
    for name, entry in sorted(info["models"].items()):
        click.echo(
            f"  {name}  digest {entry.get('digest', '')[:12] or '–'}  answers {entry['answers']}"
        )


@cache.command("clear")
@cache_dir_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(cache_dir: Path | None, yes: bool) -> None:
    """Forget every cached answer and file hash."""
    with _open(cache_dir) as store:
        if not yes:
            click.confirm(f"Forget every answer cached in {store.directory}?", abort=True)
        removed = store.clear()
    click.echo(f"removed {removed} answers")


@cache.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@cache_dir_option
@click.option("--model", help="Only this model's answers.")
def cache_export(file: Path, cache_dir: Path | None, model: str | None) -> None:
    """Write cached answers into one bundle FILE (no image data) for another machine."""
    from emoprobe.pipeline.cache import export_bundle

    with _open(cache_dir) as store:
        count = export_bundle(store, file, model)
    click.echo(f"exported {count} answers to {file}")


@cache.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@cache_dir_option
def cache_import(file: Path, cache_dir: Path | None) -> None:
    """Add the answers of a bundle FILE to the cache (for `--offline` replay)."""
    from emoprobe.pipeline.cache import import_bundle

    with _open(cache_dir) as store:
        added, present = import_bundle(store, file)
    click.echo(f"imported {added} answers ({present} were already cached)")

"""`emoprobe cache info | clear | export | import`: the response cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from emoprobe.cli.params import cache_dir_option

if TYPE_CHECKING:
    from emoprobe.pipeline.cache import ResponseCache


@click.group()
def cache() -> None:
    """Look into, clear, export or import the response cache."""


def _open(cache_dir: Path | None, *, create: bool = False) -> ResponseCache:
    """The cache; one named by --cache-dir must exist unless `create` (a typo creates
    no folder)."""
    from emoprobe.errors import CacheError
    from emoprobe.pipeline.cache import ResponseCache
    from emoprobe.settings import default_cache_dir

    if cache_dir is not None and not create and not cache_dir.is_dir():
        raise CacheError(
            f"no cache at {cache_dir}: "
            + ("it is not a folder" if cache_dir.exists() else "the folder does not exist"),
            path=cache_dir,
            setting="cache_dir",
        )
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
    if not yes and not (sys.stdin and sys.stdin.isatty()):
        raise click.UsageError("cache clear asks first: pass --yes when not at a terminal")
    with _open(cache_dir) as store:
        if not yes and not click.confirm(f"Forget every answer cached in {store.directory}?"):
            raise click.ClickException("nothing removed")
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

    with _open(cache_dir, create=True) as store:
        added, present = import_bundle(store, file)
    click.echo(f"imported {added} answers ({present} were already cached)")

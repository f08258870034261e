"""`emoprobe study STUDY.toml`: every cell of a study file, then one combined report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from emoprobe.cli.params import (
    allow_remote_option,
    backend_option,
    cache_dir_option,
    number_option,
    offline_option,
    retries_option,
    timeout_option,
)


@click.command("study")
@click.argument("study_file", type=click.Path(path_type=Path))
@click.option(
    "--host",
    "host_urls",
    metavar="URL",
    multiple=True,
    help="Model server; repeat it to share the work. [default: $OLLAMA_HOST, else "
    "http://127.0.0.1:11434]",
)
@backend_option
@allow_remote_option
@cache_dir_option
@offline_option
@timeout_option
@retries_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Study folder: one run folder per cell, report.md, view.html. "
    "[default: reports/study-NAME]",
)
@number_option("--concurrency", int, 2, "Requests per host.")
@number_option("--backoff", float, 1.0, "First retry delay (s).")
@click.option(
    "--embed-thumbnails",
    is_flag=True,
    help="view.html embeds small thumbnails (no EXIF), so it holds faces; default: links.",
)
@click.option("--dry-run", is_flag=True, help="Check the file and every model; run nothing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def study(
    study_file: Path,
    host_urls: tuple[str, ...],
    backend_kind: str,
    allow_remote: bool,
    cache_dir: Path | None,
    offline: bool,
    timeout: float,
    retries: int,
    out: Path | None,
    concurrency: int,
    backoff: float,
    embed_thumbnails: bool,
    dry_run: bool,
    quiet: bool,
) -> int:
    """Run the matrix of models × answer modes × prompt variants STUDY_FILE describes.

    One model is loaded at a time; every model is checked on the server first. Each cell
    is an ordinary run into its own folder, so running the same command again resumes
    and asks nothing twice. Then report.md (every cell, McNemar tests with Holm's
    correction, Cohen's κ between models) and view.html. See examples/studies/.
    """
    from emoprobe.cli.run import _print_summary, _run_one, check_finished
    from emoprobe.data.demo import demo_dataset
    from emoprobe.pipeline.config import RunConfig
    from emoprobe.pipeline.study import check_study_models, default_study_dir, run_study
    from emoprobe.pipeline.study_file import load_study

    spec = load_study(study_file)
    config = RunConfig(
        dataset=spec.dataset or demo_dataset(cache_dir),
        hosts=host_urls,
        allow_remote=allow_remote,
        backend=backend_kind,
        cache_dir=cache_dir,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        offline=offline,
        command_line=shlex.join(["emoprobe", *sys.argv[1:]]),
    )
    cells = spec.cells
    if dry_run:
        for index, cell in enumerate(cells):
            click.echo(f"cell {index + 1}/{len(cells)}: {cell.name}  ->  {cell.folder}")
        checked = check_study_models(spec, config)
        click.echo(f"{len(cells)} cells; {checked}; nothing was run")
        return 0
    result = run_study(
        spec,
        config,
        lambda each: _run_one(each, quiet),
        out=out or default_study_dir(spec),
        on_start=lambda index, cell: click.echo(f"cell {index + 1}/{len(cells)}: {cell.name}"),
        on_done=lambda cell, run: _print_summary(run),
        warn=lambda message: click.echo(f"warning: {message}", err=True),
        embed_thumbnails=embed_thumbnails,
    )
    for note in result.notes:
        click.echo(f"not in the report: {note}", err=True)
    if result.report is not None:
        click.echo(f"study report: {result.report}")
    if result.view is not None:
        click.echo(f"view: {result.view}")
    cells_run = zip((cell.name for cell in result.cells), result.results, strict=True)
    return check_finished(cells_run, retries)

"""`emoprobe run`: one model (or several in turn) over a dataset, and the summary lines."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from emoprobe.cli.params import number_option, request_options
from emoprobe.errors import one_line
from emoprobe.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from collections.abc import Iterable

    from emoprobe.pipeline.config import RunConfig
    from emoprobe.pipeline.runner import RunResult

EXIT_INCOMPLETE = 3
BACKOFF_HELP = "First retry delay in seconds; it doubles per failure in a row (max 30)."


class Unfinished(click.ClickException):
    """Some images have no row yet: exit 3, and say how to finish them."""

    exit_code = EXIT_INCOMPLETE


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path), required=False)
@click.option(
    "--model",
    "models",
    multiple=True,
    default=[DEFAULT_MODEL],
    show_default=True,
    help="Ollama model name; repeat it to run several models in turn and compare them.",
)
@click.option(
    "--host",
    "host_urls",
    metavar="URL",
    multiple=True,
    help="Model server; repeat it to share the work between several servers. "
    "[default: $OLLAMA_HOST, else http://127.0.0.1:11434; openai: http://127.0.0.1:8000/v1]",
)
@request_options
@click.option("--out", type=click.Path(path_type=Path), help="Run folder. [default: reports/…]")
@click.option("--per-class", type=int, help="Sample N images per class (the paper: 1000).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@number_option(
    "--concurrency", int, 2, "Requests in flight per host (2 keeps one Ollama slot busy)."
)
@number_option("--backoff", float, 1.0, BACKOFF_HELP)
@click.option("--max-side", type=int, help="Downscale images so the longer side is ≤ PIXELS.")
@click.option(
    "--format",
    "dataset_format",
    metavar="NAME",
    help="Dataset layout: imagefolder, csv, fer2013, rafdb, affectnet or daisee. "
    "[default: detected]",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(
    dataset: Path | None,
    models: tuple[str, ...],
    host_urls: tuple[str, ...],
    backend_kind: str,
    allow_remote: bool,
    out: Path | None,
    cache_dir: Path | None,
    per_class: int | None,
    seed: int,
    concurrency: int,
    timeout: float,
    retries: int,
    backoff: float,
    option_pairs: tuple[str, ...],
    max_side: int | None,
    offline: bool,
    task_file: Path | None,
    dataset_format: str | None,
    answer_mode: str,
    quiet: bool,
) -> int:
    """Classify every image of DATASET and write predictions, metrics and a report.

    DATASET is a folder ROOT/<label>/<image> or a CSV with path,label columns; without
    it, the bundled demo set of 25 cartoon faces runs. Re-running the same command
    resumes where it stopped. With several --model, each model runs in turn (one loaded
    at a time) into its own folder, then a comparison.
    """
    from emoprobe.data.demo import demo_dataset
    from emoprobe.pipeline.config import RunConfig
    from emoprobe.task.definition import PAPER_TASK, load_task
    from emoprobe.task.model_options import parse_options

    models = tuple(dict.fromkeys(models))  # the same model twice is one run
    if dataset is None:
        dataset = demo_dataset(cache_dir)
        click.echo(f"no DATASET given: running the demo set of 25 cartoon faces ({dataset})")
    config = RunConfig(
        model=models[0],
        out=out,
        dataset=dataset,
        hosts=host_urls,
        allow_remote=allow_remote,
        backend=backend_kind,
        cache_dir=cache_dir,
        per_class=per_class,
        seed=seed,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        options=parse_options(option_pairs),
        max_side=max_side,
        offline=offline,
        task=load_task(task_file) if task_file else PAPER_TASK,
        dataset_format=dataset_format,
        answer_mode=answer_mode,
        command_line=shlex.join(["emoprobe", *sys.argv[1:]]),
    )
    if len(models) > 1:
        return _run_models(models, config, quiet)
    result = _run_one(config, quiet)
    _print_summary(result)
    if not result.complete:
        raise Unfinished(_unfinished(result, retries))
    return 0


def check_finished(runs: Iterable[tuple[str, RunResult]], retries: int) -> int:
    """0 when every named run is complete; else `Unfinished` naming each that is not."""
    unfinished = [(name, run) for name, run in runs if not run.complete]
    if unfinished:
        raise Unfinished(
            "; ".join(f"{name}: {_unfinished(run, retries)}" for name, run in unfinished)
        )
    return 0


def _run_one(config: RunConfig, quiet: bool) -> RunResult:
    from emoprobe.cli.progress import RunProgress
    from emoprobe.pipeline.runner import run as run_dataset

    progress = RunProgress(quiet=quiet)
    try:
        return run_dataset(config, progress)
    finally:
        progress.close()


def _unfinished(result: RunResult, retries: int) -> str:
    if result.not_cached:
        return (
            f"{result.not_cached} of {result.total} images are not in the cache; run the same "
            "command without --offline (or import a bundle that has them) to answer them"
        )
    missing = result.total - result.finished
    reason = f"{result.abort_reason}; " if result.abort_reason else ""
    return (
        f"{reason}{missing} of {result.total} images are unfinished "
        f"({result.failed} failed after {retries} retries); "
        "run the same command again to retry them — finished rows are kept"
    )


def _run_models(models: tuple[str, ...], config: RunConfig, quiet: bool) -> int:
    """Each model over the whole sample in turn, then comparison.md beside the runs."""
    from emoprobe.pipeline.study import run_models

    study = run_models(
        models,
        config,
        lambda each: _run_one(each, quiet),
        on_start=lambda index, model: click.echo(f"model {index + 1}/{len(models)}: {model}"),
        on_done=_print_summary,
        warn=lambda message: click.echo(f"warning: {one_line(message)}", err=True),
    )
    if study.comparison is not None:
        click.echo(study.summary)
        click.echo(f"comparison: {study.comparison}")
    return check_finished(zip(models, study.results, strict=True), config.retries)


def figure(value: float | None) -> str:
    """A figure as the summary lines show it: four decimals, or – when there is none."""
    return "–" if value is None else f"{value:.4f}"


def _print_summary(result: RunResult) -> None:
    from emoprobe.cli.progress import format_duration
    from emoprobe.reporting.markdown import status_counts

    metrics, session = result.metrics, result.session
    wall = session.wall_s
    fresh = session.requests + session.cache_hits

    click.echo(
        f"{result.finished}/{result.total} images  accuracy {figure(metrics.accuracy)}  "
        f"weighted F1 {figure(metrics.f1_weighted)}  {status_counts(metrics)}"
    )
    if fresh or session.failed:
        click.echo(
            f"requests {session.requests}  cache hits {session.cache_hits}  "
            f"wall {format_duration(wall)}  {(fresh / wall if wall else 0):.1f} images/s"
        )
    elif session.rows_written:
        line = f"no request sent: {session.rows_written} images recorded without an answer"
        if result.not_cached:
            line += f" ({result.not_cached} not in the cache: a run without --offline answers them)"
        click.echo(line)
    else:
        click.echo("nothing to do: every image already has a row (report rebuilt)")
    click.echo(f"report: {result.out / 'report.md'}")

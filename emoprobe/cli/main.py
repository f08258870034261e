"""The command line: parse options, call the library, print results.

Errors become one line on stderr and a non-zero exit in exactly one place,
`EmoprobeGroup.main`; commands just raise.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from emoprobe._version import __version__
from emoprobe.cli.params import request_options
from emoprobe.errors import EmoprobeError
from emoprobe.settings import DEFAULT_MODEL

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130


class EmoprobeGroup(click.Group):
    """A click group whose every failure is one line, never a traceback."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(args, *rest, **kwargs)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            _fail(f"{error.format_message()}{hint}", EXIT_USAGE)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except click.Abort:
            _fail("interrupted; run the same command again to resume", EXIT_INTERRUPTED)
        except EmoprobeError as error:
            _fail(_with_flag(error), EXIT_ERROR)
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            _fail(f"{error.strerror or error}{where}", EXIT_ERROR)
        except Exception as error:  # a bug: still one line, and how to see more
            if os.environ.get("EMOPROBE_TRACEBACK"):
                raise
            _fail(
                f"internal error ({type(error).__name__}: {error}); please report it — "
                "EMOPROBE_TRACEBACK=1 shows the traceback",
                EXIT_ERROR,
            )
        sys.exit(code if isinstance(code, int) else 0)


# RunConfig fields and settings → the flag that sets them, for errors that name a setting.
FLAGS = {
    "out": "--out",
    "cache_dir": "--cache-dir",
    "concurrency": "--concurrency",
    "per_class": "--per-class",
    "retries": "--retries",
    "timeout": "--timeout",
    "max_side": "--max-side",
    "backend": "--backend",
    "answer_mode": "--answer",
    "offline": "--offline",
    "hosts": "--host",
}


def _with_flag(error: EmoprobeError) -> str:
    """The message with the flag for its setting: in the setting's place, else after it."""
    text, setting = str(error), error.setting or ""
    flag = FLAGS.get(setting)
    if flag is None or flag in text:
        return text
    if text.startswith(setting) and not text[len(setting) : len(setting) + 1].isalnum():
        return flag + text[len(setting) :]
    return f"{text} ({flag})"


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


@click.group(cls=EmoprobeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emoprobe")
def cli() -> None:
    """Probe vision-language models on facial-expression tasks through a local Ollama.

    A research and teaching tool: see the README on the law and on consent.
    """


@cli.command()
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
@click.option(
    "--concurrency",
    type=int,
    default=2,
    show_default=True,
    help="Requests in flight per host (2 keeps one Ollama slot busy).",
)
@click.option(
    "--backoff",
    type=float,
    default=1.0,
    show_default=True,
    help="First retry delay in seconds; it doubles per failure in a row (max 30).",
)
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
    from emoprobe.pipeline.config import RunConfig
    from emoprobe.task.definition import PAPER_TASK, load_task
    from emoprobe.task.model_options import parse_options

    models = tuple(dict.fromkeys(models))  # the same model twice is one run
    if dataset is None:
        from emoprobe.data.demo import demo_dataset
        from emoprobe.settings import default_cache_dir

        dataset = demo_dataset(cache_dir or default_cache_dir())
        click.echo(f"no DATASET given: running the demo set of 25 cartoon faces ({dataset})")
    settings: dict[str, Any] = {
        "dataset": dataset,
        "hosts": host_urls,
        "allow_remote": allow_remote,
        "backend": backend_kind,
        "cache_dir": cache_dir,
        "per_class": per_class,
        "seed": seed,
        "concurrency": concurrency,
        "timeout": timeout,
        "retries": retries,
        "backoff": backoff,
        "options": parse_options(option_pairs),
        "max_side": max_side,
        "offline": offline,
        "task": load_task(task_file) if task_file else PAPER_TASK,
        "dataset_format": dataset_format,
        "answer_mode": answer_mode,
        "command_line": shlex.join(["emoprobe", *sys.argv[1:]]),
    }
    config = RunConfig(model=models[0], out=out, **settings)
    if len(models) > 1:
        return _run_models(models, config, quiet)
    result = _run_one(config, quiet)
    _print_summary(result)
    if result.complete:
        return 0
    _fail(_unfinished(result, retries), EXIT_INCOMPLETE)
    return EXIT_INCOMPLETE


def _run_one(config: Any, quiet: bool) -> Any:
    from emoprobe.cli.progress import ProgressBar
    from emoprobe.pipeline.runner import run as run_dataset

    progress = ProgressBar(quiet=quiet)
    try:
        return run_dataset(config, progress)
    finally:
        progress.close()


def _unfinished(result: Any, retries: int) -> str:
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


def _run_models(models: tuple[str, ...], config: Any, quiet: bool) -> int:
    """Each model over the whole sample in turn, then comparison.md beside the runs."""
    from emoprobe.pipeline.study import run_models

    study = run_models(
        models,
        config,
        lambda each: _run_one(each, quiet),
        on_start=lambda index, model: click.echo(f"model {index + 1}/{len(models)}: {model}"),
        on_done=_print_summary,
        warn=lambda message: click.echo(f"warning: {message}", err=True),
    )
    if study.comparison is not None:
        click.echo(study.summary)
        click.echo(f"comparison: {study.comparison}")
    unfinished = [
        (model, r) for model, r in zip(models, study.results, strict=True) if not r.complete
    ]
    if unfinished:
        _fail(
            "; ".join(f"{model}: {_unfinished(r, config.retries)}" for model, r in unfinished),
            EXIT_INCOMPLETE,
        )
    return 0


def _print_summary(result: Any) -> None:
    from emoprobe.cli.progress import format_duration

    metrics, session = result.metrics, result.session
    wall = session.get("wall_s") or 0.0
    fresh = session.get("requests", 0) + session.get("cache_hits", 0)

    def figure(key: str) -> str:
        value = metrics.get(key)
        return "–" if value is None else f"{value:.4f}"

    click.echo(
        f"{result.finished}/{result.total} images  accuracy {figure('accuracy')}  "
        f"weighted F1 {figure('f1_weighted')}  unparsed {metrics['n_unparsed']}  "
        f"unreadable {metrics['n_error']}"
    )
    if fresh or session.get("failed"):
        click.echo(
            f"requests {session.get('requests', 0)}  cache hits {session.get('cache_hits', 0)}  "
            f"wall {format_duration(wall)}  {(fresh / wall if wall else 0):.1f} images/s"
        )
    else:
        click.echo("nothing to do: every image already has a row (report rebuilt)")
    click.echo(f"report: {result.out / 'report.md'}")


def main() -> None:
    cli()


# -- command groups that live in their own modules (emoprobe/commands/) ------------------
from emoprobe.cli.report import compare, report  # noqa: E402

cli.add_command(report)
cli.add_command(compare)

from emoprobe.cli.models import doctor, models  # noqa: E402

cli.add_command(models)
cli.add_command(doctor)

from emoprobe.cli.classify import cache, classify  # noqa: E402

cli.add_command(classify)
cli.add_command(cache)

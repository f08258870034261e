"""`emoprobe classify IMAGE…`: the paper's prompt, parser and cache on single images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from emoprobe.cli.params import host_option, request_options
from emoprobe.errors import one_line
from emoprobe.results.predictions import FAILED
from emoprobe.settings import DEFAULT_MODEL, MAX_FAILURES_IN_A_ROW

if TYPE_CHECKING:
    from emoprobe.pipeline.probe import ProbeResult


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Ollama model name.")
@host_option
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

    failures = in_a_row = 0
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
        for done, path in enumerate(images, start=1):
            result = probe.classify(path)
            failures += result.raw is None
            _print_result(path, result, as_json)
            in_a_row = in_a_row + 1 if result.status == FAILED else 0
            if in_a_row >= MAX_FAILURES_IN_A_ROW and done < len(images):
                raise click.ClickException(
                    f"stopped after {in_a_row} images in a row failed, {len(images) - done} "
                    f"not tried (last error: {result.error})"
                )
        if warning := probe.cache.unreadable_warning():
            click.echo(f"warning: {one_line(warning)}", err=True)
    return 1 if failures else 0


def _print_result(path: Path, result: ProbeResult, as_json: bool) -> None:
    if as_json:
        record: dict[str, Any] = {
            "path": str(path),
            "prediction": result.label or None,
            "raw": result.raw,
            "status": result.status,
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

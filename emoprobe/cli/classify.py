"""`emoprobe classify IMAGE…` and `emoprobe cache info | clear | export | import`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from emoprobe.cli.params import cache_dir_option, request_options
from emoprobe.settings import DEFAULT_MODEL


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
    from emoprobe.errors import ConfigError
    from emoprobe.hosts import checked_host
    from emoprobe.pipeline.probe import Classifier, Outcome, describe_model, open_backends_and_cache
    from emoprobe.settings import default_host
    from emoprobe.task.answers import unsupported
    from emoprobe.task.definition import PAPER_TASK, load_task
    from emoprobe.task.model_options import parse_options

    url = checked_host(host or default_host(backend_kind), allow_remote=allow_remote)
    options = parse_options(option_pairs)
    task = load_task(task_file) if task_file else PAPER_TASK
    failures = 0
    with open_backends_and_cache(
        [url], kind=backend_kind, timeout=timeout, cache_dir=cache_dir, offline=offline
    ) as (backends, cache):
        info = describe_model(model, backends, cache, backend_kind)
        backend = backends[0] if backends else None
        if problem := unsupported(answer_mode, info.backend, info.server_version):
            raise ConfigError(problem)
        classifier = Classifier(
            task=task,
            model=model,
            options=options,
            backend=backend,
            cache=cache,
            info=info,
            retries=retries,
            answer_mode=answer_mode,
        )
        for path in images:
            outcome = classifier.prepare(Outcome(path))
            if outcome.needs_request:
                outcome = classifier.ask(outcome)
            if classifier.fatal is not None:
                raise classifier.fatal
            failures += outcome.answer is None
            _print_outcome(path, outcome, classifier.prediction(outcome), as_json)
    return 1 if failures else 0


def _print_outcome(path: Path, outcome, prediction: str, as_json: bool) -> None:
    answer = outcome.answer
    problem = outcome.error or outcome.failure
    if as_json:
        record = {
            "path": str(path),
            "prediction": prediction or None,
            "raw": answer.raw if answer else None,
            "latency_s": round(answer.latency_s, 4) if answer else None,
            "cached": outcome.cached,
        }
        if answer is not None and answer.scores is not None:
            record["scores"] = {label: round(p, 6) for label, p in answer.scores.items()}
        if problem:
            record["error"] = problem
        click.echo(json.dumps(record, ensure_ascii=False))
    elif answer is None:
        click.echo(f"{path}: error: {problem}")
    else:
        raw = " ".join(answer.raw.split())
        raw = raw if len(raw) <= 60 else raw[:59] + "…"
        source = "cached" if outcome.cached else f"{answer.latency_s:.2f} s"
        click.echo(f"{path}: {prediction}  (answer {raw!r}, {source})")


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

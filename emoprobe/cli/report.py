"""`emoprobe report` and `emoprobe compare`: thin commands over `results` and `reporting`.

Nothing heavy is imported until a command runs, so `emoprobe --help` stays quick.
"""

from __future__ import annotations

from pathlib import Path

import click

from emoprobe.cli.run import figure


@click.command()
@click.argument(
    "run_dirs", nargs=-1, required=True, metavar="RUN_DIR...", type=click.Path(path_type=Path)
)
@click.option(
    "--redraw",
    is_flag=True,
    help="Draw every plot again, even one whose stamp says it shows these figures.",
)
def report(run_dirs: tuple[Path, ...], redraw: bool) -> None:
    """Rebuild metrics.json, report.md and the plots of RUN_DIR from its files alone.

    Reads predictions.csv and manifest.json only: no server, no cache. Several run
    folders may be given. A plot already drawn from the same figures by this version
    is kept as it is (the bytes would be the same).
    """
    from emoprobe.reporting.markdown import rebuild_report, status_counts

    for run_dir in run_dirs:
        metrics = rebuild_report(run_dir, keep_plots=not redraw)
        click.echo(
            f"{metrics.n} images  accuracy {figure(metrics.accuracy)}  "
            f"weighted F1 {figure(metrics.f1_weighted)}  {status_counts(metrics)}"
        )
        click.echo(f"report: {run_dir / 'report.md'}")


@click.command()
@click.argument(
    "run_dirs", nargs=-1, required=True, metavar="RUN_DIR...", type=click.Path(path_type=Path)
)
@click.option(
    "--out",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Folder for comparison.md and its plot. [default: reports/comparison-<dataset>-<time>]",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--resamples",
    type=click.IntRange(min=1000),
    default=2000,
    show_default=True,
    help="Bootstrap resamples (at least 1000).",
)
def compare(run_dirs: tuple[Path, ...], out: Path | None, seed: int, resamples: int) -> None:
    """Compare runs on the same images: metrics, speed and paired statistics.

    The first RUN_DIR is the reference: every other run gets the difference in weighted
    F1 and accuracy with a paired bootstrap 95% interval, McNemar's test and Cohen's
    kappa against it. Images are matched by sha256 and path; only shared images count.
    """
    from emoprobe.reporting.comparison import (
        default_comparison_dir,
        summary_text,
        write_comparison,
    )
    from emoprobe.reporting.markdown import dataset_name
    from emoprobe.results.comparison import build_comparison
    from emoprobe.settings import DEFAULT_REPORTS_DIR

    if len(run_dirs) < 2:
        raise click.UsageError("give at least two run folders to compare")
    comparison = build_comparison(list(run_dirs), resamples=resamples, seed=seed)
    out = out or default_comparison_dir(
        DEFAULT_REPORTS_DIR, dataset_name(comparison.runs[0].manifest)
    )
    path = write_comparison(out, comparison)
    click.echo(summary_text(comparison))
    click.echo(f"comparison: {path}")

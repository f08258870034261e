"""`emoprobe view RUN_DIR…`: one static HTML page of every image's answers."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click


@click.command("view")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="The HTML file. [default: RUN_DIR/view.html; several runs: view.html beside them]",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the web browser.")
@click.option(
    "--embed-thumbnails",
    is_flag=True,
    help="Put small thumbnails (re-encoded, no EXIF) into the page, so that it shows the "
    "faces anywhere. Without it the page links the image files and holds no image.",
)
def view(
    run_dirs: tuple[Path, ...], out: Path | None, open_page: bool, embed_thumbnails: bool
) -> None:
    """Write one self-contained HTML page of the answers of RUN_DIR (several: side by side).

    It needs no server and no network: filter by confusion-matrix cell, status, class or
    answer text, sort by confidence, and with several runs on the same images see where
    they disagree, with McNemar's test and Cohen's kappa for every pair.
    """
    from emoprobe.reporting.view_page import write_view
    from emoprobe.results.index import read_run

    resolved = [path.resolve() for path in run_dirs]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise click.UsageError(f"{run_dirs[index]} is given twice")
    runs = [read_run(path) for path in run_dirs]
    out = out or (run_dirs[0] if len(runs) == 1 else run_dirs[0].parent) / "view.html"
    title = "emoprobe view: " + " vs ".join(path.name for path in resolved)
    shared = write_view(runs, out, embed_thumbnails=embed_thumbnails, title=title).shared
    if any(shared.left_out):
        left = max(shared.left_out)
        click.echo(
            f"{len(shared.keys)} images every run has are shown; up to {left} images of a "
            "run are left out (the page lists them per run)"
        )
    click.echo(str(out))
    if open_page:
        webbrowser.open(out.resolve().as_uri())

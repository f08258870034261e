"""`emoprobe runs [DIR]`: one table of every run folder under reports/ (or DIR)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import click

from emoprobe.results.index import RunSummary, runs_index

COLUMNS = (
    "run",
    "model",
    "quant",
    "answer",
    "task",
    "images",
    "accuracy",
    "F1 [95% CI]",
    "unparsed",
    "refused",
    "img/s",
    "date",
)
REFUSED_NOTE = (
    "unparsed, refused: shares of the images with a row; a refusal is its own status "
    "(folders of older versions: read from the answers)"
)


@click.command("runs")
@click.argument("folder", type=click.Path(path_type=Path), default="reports", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON list, a record per run.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line (for pandas).")
def runs(folder: Path, as_json: bool, as_csv: bool) -> None:
    """List every run folder under FOLDER [default: reports] with its figures.

    Folders that cannot be read are listed with the reason.
    """
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    summaries = runs_index(folder)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in summaries], indent=2, ensure_ascii=False))
    elif as_csv:
        click.echo(csv_text(summaries), nl=False)
    elif not summaries:
        click.echo(f"no run folders under {folder}")
    else:
        click.echo(table_text(summaries, folder))


def csv_text(summaries: Sequence[RunSummary]) -> str:
    """Every field of every summary, the interval as two columns."""
    buffer = io.StringIO()
    names = [name for name in RunSummary.__dataclass_fields__ if name not in ("f1_ci95", "notes")]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*names, "f1_ci95_low", "f1_ci95_high", "notes"])
    for record in (s.to_dict() for s in summaries):
        low, high = record["f1_ci95"] or ("", "")
        cells = ["" if record[name] is None else record[name] for name in names]
        writer.writerow([*cells, low, high, "; ".join(record["notes"])])
    return buffer.getvalue()


def table_text(summaries: Sequence[RunSummary], folder: Path) -> str:
    """An aligned text table; unreadable folders follow it, one line each with the reason."""
    readable = [s for s in summaries if not s.error]
    text = [text_table(COLUMNS, [_cells(s, folder) for s in readable])]
    text += [f"{_name(s, folder)}: cannot be read: {s.error}" for s in summaries if s.error]
    notes = sorted({f"{_name(s, folder)}: {note}" for s in readable for note in s.notes})
    if readable:
        text += ["", *notes, REFUSED_NOTE]
    return "\n".join(text)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with two spaces between them, the headers first."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


def _cells(s: RunSummary, folder: Path) -> list[str]:
    f1 = _figure(s.f1_weighted)
    if s.f1_ci95:
        f1 += f" [{s.f1_ci95[0]:.3f}, {s.f1_ci95[1]:.3f}]"
    return [
        _name(s, folder),
        s.model or "?",
        s.quantization or "–",
        s.answer_mode or "?",
        s.task or "?",
        f"{s.done}/{'?' if s.sampled is None else s.sampled}",
        _figure(s.accuracy),
        f1,
        _percent(s.unparsed_share),
        _percent(s.refused_share),
        "–" if s.images_per_s is None else f"{s.images_per_s:.1f}",
        (s.date or "–")[:16].replace("T", " "),
    ]


def _name(s: RunSummary, folder: Path) -> str:
    try:
        return Path(s.path).relative_to(folder).as_posix() or "."
    except ValueError:
        return s.path


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"

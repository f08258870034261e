"""`emoprobe report` keeps a plot whose stamp says it shows the same figures; anything
else (other predictions, no stamp, a damaged file, --redraw) is drawn again."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from factories import make_image_folder
from ollama_double import OllamaDouble
from PIL import Image

from emoprobe.reporting import plots
from emoprobe.reporting.png_stamp import KEYWORD, plot_stamp, stamp_of, stamped

PNGS = ("confusion_matrix.png", "per_class_f1.png")


@pytest.fixture
def run_folder(cli, tmp_path: Path) -> Path:
    root, out = tmp_path / "faces", tmp_path / "out"
    make_image_folder(root, per_label=2)
    with OllamaDouble() as double:
        result = cli("run", root, "--host", double.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def drawn_by(cli, monkeypatch, *args: object) -> list[object]:
    """The figures `emoprobe ARGS…` rendered to PNG."""
    figures: list[object] = []
    render = plots._png
    monkeypatch.setattr(plots, "_png", lambda figure: figures.append(figure) or render(figure))
    result = cli(*args)
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(plots, "_png", render)
    return figures


def test_an_unchanged_run_keeps_its_plots_and_redraw_gives_the_same_bytes(
    cli, run_folder, monkeypatch
):
    first = {name: (run_folder / name).read_bytes() for name in PNGS}
    assert drawn_by(cli, monkeypatch, "report", run_folder) == []
    assert {name: (run_folder / name).read_bytes() for name in PNGS} == first
    assert len(drawn_by(cli, monkeypatch, "report", run_folder, "--redraw")) == 2
    assert {name: (run_folder / name).read_bytes() for name in PNGS} == first  # same bytes


def test_other_predictions_are_drawn_again(cli, run_folder, monkeypatch):
    path = run_folder / "predictions.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0])
    rows[0]["prediction"] = "tired" if rows[0]["prediction"] != "tired" else "happy"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    before = stamp_of(run_folder / PNGS[0])
    assert len(drawn_by(cli, monkeypatch, "report", run_folder)) == 2
    assert stamp_of(run_folder / PNGS[0]) not in (None, before)


@pytest.mark.parametrize("damage", ["missing", "unstamped", "cut", "bad_crc"])
def test_a_plot_without_a_sound_stamp_is_drawn_again(cli, run_folder, monkeypatch, damage):
    target = run_folder / PNGS[1]
    data = target.read_bytes()
    if damage == "missing":
        target.unlink()
    elif damage == "unstamped":
        target.write_bytes(data.replace(KEYWORD, b"emoprobe-other"))
    elif damage == "cut":
        target.write_bytes(data[:40])
    else:
        at = data.index(KEYWORD) + len(KEYWORD) + 5
        target.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    assert len(drawn_by(cli, monkeypatch, "report", run_folder)) == 2
    assert target.read_bytes() == data


def test_a_stamped_png_is_a_png_with_the_stamp_as_text(run_folder):
    with Image.open(run_folder / PNGS[0]) as image:
        image.load()
        assert image.text[KEYWORD.decode()] == stamp_of(run_folder / PNGS[0])


def test_the_stamp_reads_back_and_depends_on_every_input(tmp_path):
    path = tmp_path / "a.png"
    with Image.new("RGB", (3, 2)) as image:
        image.save(path)
    stamp = plot_stamp("figures", "paper", "subject")
    assert stamp != plot_stamp("figures", "paper", "other subject")
    assert stamp != plot_stamp("figures", "papers", "subject")
    assert stamp_of(path) is None
    path.write_bytes(stamped(path.read_bytes(), stamp))
    assert stamp_of(path) == stamp
    with Image.open(path) as image:
        image.load()  # still a valid PNG

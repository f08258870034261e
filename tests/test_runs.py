"""`emoprobe runs`: every run folder under a directory as one table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from face_runs import emoprobe, make_face_runs

from emoprobe.results.index import find_run_folders, read_run_summary


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs on the real faces, one nested deeper, a broken and a half run folder."""
    base = tmp_path_factory.mktemp("reports")
    runs = make_face_runs(base / "faces")
    (base / "faces" / "cache").rename(base / "not-a-run-cache")
    (base / "broken").mkdir()
    (base / "broken" / "manifest.json").write_text("{ not json", encoding="utf-8")
    (base / "half").mkdir()
    (base / "half" / "predictions.csv").write_bytes((runs["qwen"] / "predictions.csv").read_bytes())
    return base


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_the_table_lists_every_run_and_every_unreadable_folder(reports):
    result = emoprobe("runs", reports)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:6] == ["run", "model", "quant", "answer", "task", "images"]
    qwen = next(line for line in lines if line.startswith("faces/qwen "))
    metrics = metrics_of(reports / "faces" / "qwen")
    low, high = metrics["ci95"]["f1_weighted"]
    assert "qwen2.5vl:7b" in qwen and "Q4_K_M" in qwen and "faces-happy-neutral" in qwen
    assert "20/20" in qwen and f"{metrics['accuracy']:.3f}" in qwen
    assert f"{metrics['f1_weighted']:.3f} [{low:.3f}, {high:.3f}]" in qwen
    assert "10.0%" in qwen  # two unparsed answers of 20
    assert any(line.startswith("faces/qwen-logprobs ") and " logprobs " in line for line in lines)
    assert any(line.startswith("faces/llama ") for line in lines)
    assert "broken: cannot be read: " in result.output
    assert "manifest.json is not JSON" in result.output
    assert "half: cannot be read: " in result.output and "no manifest.json" in result.output
    assert "unparsed, refused: shares of the images with a row" in result.output
    assert "cache" not in result.output  # a folder without run files is no run


def test_json_gives_every_figure_of_every_folder(reports):
    result = emoprobe("runs", reports, "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    records = {Path(r["path"]).relative_to(reports).as_posix(): r for r in listed}
    assert set(records) == {"broken", "half", "faces/llama", "faces/qwen", "faces/qwen-logprobs"}
    llama, metrics = records["faces/llama"], metrics_of(reports / "faces" / "llama")
    assert llama["accuracy"] == metrics["accuracy"]
    assert llama["f1_weighted"] == metrics["f1_weighted"]
    assert llama["f1_ci95"] == metrics["ci95"]["f1_weighted"]
    assert (llama["done"], llama["sampled"]) == (20, 20)
    assert llama["unparsed_share"] == metrics["statuses"]["unparsed"] / 20
    assert llama["refused_share"] == metrics["statuses"]["refused"] / 20
    assert llama["images_per_s"] > 0
    assert llama["model"] == "llama3.2-vision:11b" and llama["error"] == ""
    assert records["broken"]["error"] and records["broken"]["accuracy"] is None


def test_csv_reads_into_pandas(reports):
    result = emoprobe("runs", reports, "--csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.output))
    assert len(frame) == 5
    assert {"model", "accuracy", "f1_ci95_low", "f1_ci95_high", "error"} <= set(frame.columns)
    qwen = frame[frame["path"].str.endswith("/faces/qwen")].iloc[0]
    assert qwen["accuracy"] == pytest.approx(metrics_of(reports / "faces" / "qwen")["accuracy"])


def test_figures_come_from_the_predictions_with_or_without_metrics_json(reports, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("manifest.json", "predictions.csv"):
        (folder / name).write_bytes((reports / "faces" / "llama" / name).read_bytes())
    summary = read_run_summary(folder)
    original = metrics_of(reports / "faces" / "llama")
    assert summary.accuracy == original["accuracy"]
    assert summary.f1_weighted == original["f1_weighted"]
    assert summary.done == original["n"]


def test_run_folders_are_found_but_not_searched_inside(reports):
    found = [p.relative_to(reports).as_posix() for p in find_run_folders(reports)]
    assert found == ["broken", "faces/llama", "faces/qwen", "faces/qwen-logprobs", "half"]


def test_bad_folders_are_one_line(tmp_path):
    missing = emoprobe("runs", tmp_path / "nowhere")
    assert missing.exit_code == 1
    assert missing.output.strip() == f"error: {tmp_path / 'nowhere'} is not a folder of runs"
    empty = emoprobe("runs", tmp_path)
    assert empty.exit_code == 0 and empty.output.strip() == f"no run folders under {tmp_path}"
    both = emoprobe("runs", tmp_path, "--json", "--csv")
    assert both.exit_code == 2 and "not both" in both.output

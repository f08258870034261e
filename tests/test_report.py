"""report.md, its plots, and `emoprobe report` rebuilding them from a run folder alone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from factories import make_image_folder, scripted_answers
from ollama_double import ModelSpec, OllamaDouble, answer_by_image

from emoprobe.reporting.markdown import render_report
from emoprobe.results.manifest import Manifest
from emoprobe.results.metrics import compute_metrics
from emoprobe.results.predictions import Row, to_frame
from emoprobe.results.rundir import LOCK, RunDir
from emoprobe.task.definition import PAPER_TASK

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("confusion_matrix.png", "per_class_f1.png")
LABELS = ["confused", "distracted", "happy", "tired", "neutral"]


@pytest.fixture(scope="module")
def finished_run(cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished qwen run over 20 images (4 of them unparsed, 1 unreadable)."""
    base = tmp_path_factory.mktemp("report")
    root = base / "faces"
    truth = make_image_folder(root, per_label=4)
    (root / "happy" / "student-jane-doe.png").write_bytes(b"not an image")
    out = base / "run"
    with OllamaDouble(answer=answer_by_image(scripted_answers(truth))) as double:
        cache = base / "cache"
        result = cli("run", root, "--host", double.url, "--out", out, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    return out


def test_report_links_png_plots_beside_it(finished_run):
    report = (finished_run / "report.md").read_text()
    for name in PLOTS:
        data = (finished_run / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        assert re.search(rf"!\[[^\]]+\]\({re.escape(name)}\)", report)


def test_report_puts_the_run_beside_the_paper(finished_run):
    report = (finished_run / "report.md").read_text()
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert "| Qwen2.5-VL-7B-Instruct (paper) | 0.5197 | 0.5546 | 0.7613 | 0.5546 | 5000 |" in report
    assert f"| qwen2.5vl:7b (this run) | {metrics['f1_weighted']:.4f} |" in report
    difference = metrics["f1_weighted"] - 0.5197
    assert f"| difference (run − paper) | {difference:+.4f} |" in report
    # per-class: the paper's two-decimal F1 shown as such, distracted precision/recall
    confused = metrics["per_class"]["confused"]
    assert re.search(rf"\| confused \| {confused['precision']:.4f} \| .* \| 0\.65 \| [+-]", report)
    assert "For *distracted* it also gives precision 1.00 and recall 0.01" in report
    low, high = metrics["ci95"]["f1_weighted"]
    assert low <= metrics["f1_weighted"] <= high
    assert f"weighted F1 [{low:.4f}, {high:.4f}]" in report


def test_report_quotes_answers_counts_errors_and_says_how_unparsed_is_scored(finished_run):
    report = (finished_run / "report.md").read_text()
    assert "**Scoring.** An answer that names no label" in report
    assert "counts as a wrong prediction" in report
    assert "| `I'm sorry, I can't determine emotions from this image.` | 4 |" in report
    # the four "I'm sorry" answers are refusals: their own status, scored as wrong
    assert "Answers without a label: 4 of 20 scored answers (0.2000)" in report
    assert "unparsed 0 (0.0000), refused 4 (0.2000)" in report
    assert "- ⚠ 20% of the answers are `refused` (alarm above 10%)." in report
    assert re.search(r"\| [^|]*(image|decode|not)[^|]* \| 1 \|", report)  # the unreadable one
    for heading in ("## Speed", "## Model and setup", "## Confusion matrix", "## Per class"):
        assert heading in report
    assert "| quantization | Q4_K_M |" in report
    assert "| **predicted** |" in report  # column totals of the confusion counts
    assert "jane" not in report and "000.png" not in report and "faces/" not in report


def test_report_rebuilds_a_copied_run_without_a_server(cli, finished_run, tmp_path):
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(finished_run, copy)
    for name in ("metrics.json", "report.md", *PLOTS):
        (copy / name).unlink()
    predictions = (copy / "predictions.csv").read_bytes()
    manifest = (copy / "manifest.json").read_bytes()

    result = cli("report", copy)  # no server anywhere, no cache given
    assert result.exit_code == 0, result.output
    assert f"report: {copy / 'report.md'}" in result.stdout
    assert (copy / "metrics.json").read_bytes() == (finished_run / "metrics.json").read_bytes()
    assert (copy / "report.md").read_text() == (finished_run / "report.md").read_text()
    for name in PLOTS:
        assert (copy / name).read_bytes().startswith(PNG_MAGIC)
    assert (copy / "predictions.csv").read_bytes() == predictions  # inputs untouched
    assert (copy / "manifest.json").read_bytes() == manifest


def test_report_reads_a_half_written_last_row_without_cutting_it(cli, finished_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    with open(copy / "predictions.csv", "a", encoding="utf-8") as handle:
        handle.write('tired/009.png,abc,tired,tired,"Tir')
    before = (copy / "predictions.csv").read_bytes()
    result = cli("report", copy)
    assert result.exit_code == 0, result.output
    assert (copy / "metrics.json").read_bytes() == (finished_run / "metrics.json").read_bytes()
    assert (copy / "predictions.csv").read_bytes() == before


def test_report_refuses_a_folder_that_is_no_run_and_a_run_being_written(
    cli, finished_run, tmp_path
):
    result = cli("report", tmp_path)
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: {tmp_path} is not an emoprobe run folder (no manifest.json)"
    )
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    with RunDir(copy).locked():
        result = cli("report", copy)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is writing into" in result.stderr
    assert (copy / LOCK).exists()


def test_a_llama_run_sits_beside_the_papers_llama_and_an_other_family_beside_nothing(
    cli, ollama_double: OllamaDouble, tmp_path
):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    ollama_double.add_model(
        ModelSpec(
            name="llava:7b",
            family="llama",
            families=["llama", "clip"],
            capabilities=["completion", "vision"],
        )
    )
    for model in ("llama3.2-vision:11b", "llava:7b"):
        out = tmp_path / model.replace(":", "-")
        result = cli(
            "run", root, "--model", model, "--host", ollama_double.url, "--out", out, "--quiet"
        )
        assert result.exit_code == 0, result.output
    llama = (tmp_path / "llama3.2-vision-11b" / "report.md").read_text()
    assert "| Llama-3.2-11B-Vision-Instruct (paper) | 0.4519 | 0.5118 | 0.6473 | 0.5118 |" in llama
    assert "precision 1.00 and recall 0.02" in llama
    llava = (tmp_path / "llava-7b" / "report.md").read_text()
    assert "(paper)" not in llava
    assert "The paper tested no model of this family" in llava
    assert (tmp_path / "llava-7b" / "per_class_f1.png").read_bytes().startswith(PNG_MAGIC)


def test_a_model_of_another_size_is_flagged_beside_the_paper():
    rows = [
        Row(f"{label}/{i}.png", "s", label, label, label, "ok", "", 1.0, False)
        for i, label in enumerate(LABELS)
    ]
    predictions = to_frame(rows, LABELS)
    metrics = compute_metrics(predictions, LABELS)
    manifest = Manifest.from_dict(
        {
            "model": {"name": "qwen2.5vl:32b", "family": "qwen25vl"},
            "dataset": {},
            "task": {"prompt_sha256": PAPER_TASK.prompt_sha256},
        }
    )
    report = render_report(metrics, manifest, predictions)
    assert "Qwen2.5-VL-7B-Instruct (paper)" in report
    assert "this model is named 32B, the paper's is 7B" in report
    manifest.model.name = "qwen2.5vl:7b-q8_0"
    assert "Note:** this model is named" not in render_report(metrics, manifest, predictions)

"""The real-face check set: files, licence, and the README's command end to end."""

from __future__ import annotations

import csv
import json

from face_runs import FACES, LABELS_CSV, TASK, face_answers, run_faces
from ollama_double import OllamaDouble
from PIL import Image

from emoprobe.task.definition import load_task


def test_the_subset_is_small_labelled_and_carries_no_metadata():
    with open(LABELS_CSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert sorted({row["label"] for row in rows}) == ["happy", "neutral"]
    assert sum(row["label"] == "happy" for row in rows) == 10
    total = 0
    for row in rows:
        path = FACES / row["path"]
        total += path.stat().st_size
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 256
            assert not image.getexif() and "exif" not in image.info
            assert "comment" not in image.info and "icc_profile" not in image.info
    assert total < 1_000_000
    attribution = (FACES / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in attribution and "DeBruine" in attribution
    assert "10.6084/m9.figshare.5047666" in attribution


def test_the_task_file_names_the_two_classes():
    assert load_task(TASK).labels == ("happy", "neutral")


def test_the_readme_command_runs_end_to_end(tmp_path):
    with OllamaDouble(answer=face_answers()) as double:
        result = run_faces(tmp_path / "faces", double.url, "qwen2.5vl:7b")
    assert result.exit_code == 0, result.output
    assert "20/20 images  accuracy 0.9000" in result.output
    metrics = json.loads((tmp_path / "faces" / "metrics.json").read_text())
    assert metrics["n"] == 20 and metrics["n_unparsed"] == 2
    assert metrics["labels"] == ["happy", "neutral"]
    assert (tmp_path / "faces" / "report.md").is_file()

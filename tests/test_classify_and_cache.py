"""`emoprobe classify`, cache bundles and offline replay: the classroom workflow."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from factories import make_image_folder, scripted_answers
from ollama_double import answer_by_image


@pytest.fixture
def faces(tmp_path: Path, ollama_double):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    ollama_double.answer = answer_by_image(scripted_answers(truth))
    return root, sorted(root.rglob("*.png"))


def test_classify_prints_a_label_per_image_and_caches(cli, ollama_double, faces):
    _, images = faces
    first = cli("classify", *images[:3], "--host", ollama_double.url)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert len(lines) == 3
    assert all(line.startswith(str(image)) for line, image in zip(lines, images, strict=False))
    sent = len(ollama_double.chat_requests)
    again = cli("classify", images[0], "--host", ollama_double.url)
    assert "cached" in again.stdout
    assert len(ollama_double.chat_requests) == sent


def test_classify_json_has_one_object_per_line(cli, ollama_double, faces, tmp_path):
    _, images = faces
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    result = cli("classify", images[0], bad, "--host", ollama_double.url, "--json")
    assert result.exit_code == 1  # one image could not be classified
    good, broken = (json.loads(line) for line in result.stdout.splitlines())
    assert set(good) == {"path", "prediction", "raw", "status", "latency_s", "cached"}
    assert good["path"] == str(images[0]) and good["cached"] is False
    assert good["status"] == "ok" and broken["status"] == "unreadable"
    assert good["latency_s"] > 0
    assert broken["prediction"] is None
    assert broken["error"] == "not an image: cannot identify image file"


def test_classify_uses_the_same_cache_as_run(cli, ollama_double, faces, tmp_path):
    root, images = faces
    run = cli("run", root, "--host", ollama_double.url, "--out", tmp_path / "o", "--quiet")
    assert run.exit_code == 0, run.output
    sent = len(ollama_double.chat_requests)
    result = cli("classify", *images, "--host", ollama_double.url, "--json")
    assert all(json.loads(line)["cached"] for line in result.stdout.splitlines())
    assert len(ollama_double.chat_requests) == sent


def test_classify_a_missing_model_is_one_line(cli, ollama_double, faces):
    _, images = faces
    result = cli("classify", images[0], "--host", ollama_double.url, "--model", "nope:1b")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "ollama pull nope:1b" in result.stderr


def test_cache_info_export_import_and_clear(cli, ollama_double, faces, tmp_path):
    _, images = faces
    home = tmp_path / "home-cache"
    cli("classify", *images, "--host", ollama_double.url, "--cache-dir", home)
    info = cli("cache", "info", "--cache-dir", home)
    assert info.exit_code == 0, info.output
    assert f"answers: {len(images)}" in info.stdout
    assert "qwen2.5vl:7b" in info.stdout

    bundle = tmp_path / "lesson.bundle"
    exported = cli("cache", "export", bundle, "--cache-dir", home)
    assert exported.stdout.strip() == f"exported {len(images)} answers to {bundle}"
    text = gzip.decompress(bundle.read_bytes())
    for image in images:
        data = image.read_bytes()
        assert data not in text and base64.b64encode(data)[:40] not in text

    classroom = tmp_path / "classroom-cache"
    imported = cli("cache", "import", bundle, "--cache-dir", classroom)
    assert imported.stdout.strip() == f"imported {len(images)} answers (0 were already cached)"
    again = cli("cache", "import", bundle, "--cache-dir", classroom)
    assert again.stdout.strip() == f"imported 0 answers ({len(images)} were already cached)"

    cleared = cli("cache", "clear", "--yes", "--cache-dir", classroom)
    assert cleared.stdout.strip() == f"removed {len(images)} answers"
    assert "answers: 0" in cli("cache", "info", "--cache-dir", classroom).stdout


def test_importing_something_that_is_not_a_bundle_is_one_line(cli, tmp_path):
    fake = tmp_path / "fake.bundle"
    fake.write_bytes(gzip.compress(b'{"format": "zip"}\n'))
    result = cli("cache", "import", fake, "--cache-dir", tmp_path / "c")
    assert result.exit_code == 1
    assert "is not an emoprobe cache bundle" in result.stderr
    fake.write_text("plain text")
    result = cli("cache", "import", fake, "--cache-dir", tmp_path / "c")
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot read bundle")


def test_classify_offline_answers_from_an_imported_bundle_without_any_connection(
    cli, ollama_double, faces, tmp_path
):
    _, images = faces
    home = tmp_path / "home-cache"
    cli("classify", *images[:2], "--host", ollama_double.url, "--cache-dir", home)
    bundle = tmp_path / "b.bundle"
    cli("cache", "export", bundle, "--cache-dir", home)
    classroom = tmp_path / "classroom"
    cli("cache", "import", bundle, "--cache-dir", classroom)
    ollama_double.stop()  # no server at all in the classroom
    result = cli(
        "classify",
        *images[:3],
        "--offline",
        "--cache-dir",
        classroom,
        "--host",
        ollama_double.url,
        "--json",
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["cached"] for r in records] == [True, True, False]
    assert records[2]["error"] == "not in cache"
    assert result.exit_code == 1


def test_run_without_a_dataset_runs_the_demo_set(cli, ollama_double, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("run", "--host", ollama_double.url, "--quiet")
    assert result.exit_code == 0, result.output
    assert "running the demo set of 25 cartoon faces" in result.stdout
    report = tmp_path / "reports" / "demo-qwen2.5vl-7b" / "report.md"
    assert f"report: {report.relative_to(tmp_path)}" in result.stdout
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["n"] == 25 and metrics["n_error"] == 0
    assert {c: v["support"] for c, v in metrics["per_class"].items()} == dict.fromkeys(
        ("confused", "distracted", "happy", "tired", "neutral"), 5
    )


def test_an_offline_replay_of_a_bundle_gives_the_same_metrics(cli, ollama_double, faces, tmp_path):
    root, _ = faces
    home, classroom = tmp_path / "home", tmp_path / "classroom"
    online = cli(
        "run",
        root,
        "--host",
        ollama_double.url,
        "--out",
        tmp_path / "online",
        "--cache-dir",
        home,
        "--quiet",
    )
    assert online.exit_code == 0, online.output
    bundle = tmp_path / "lesson.bundle"
    cli("cache", "export", bundle, "--cache-dir", home)
    cli("cache", "import", bundle, "--cache-dir", classroom)
    ollama_double.stop()
    replay = cli(
        "run",
        root,
        "--offline",
        "--host",
        ollama_double.url,
        "--out",
        tmp_path / "replay",
        "--cache-dir",
        classroom,
        "--quiet",
    )
    assert replay.exit_code == 0, replay.output
    keys = (
        "accuracy",
        "f1_weighted",
        "precision_weighted",
        "recall_weighted",
        "per_class",
        "confusion_matrix",
        "n",
        "n_unparsed",
    )
    first, second = (
        json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("online", "replay")
    )
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}
    manifest = json.loads((tmp_path / "replay" / "manifest.json").read_text())
    assert (
        manifest["model"]["digest"]
        == json.loads((tmp_path / "online" / "manifest.json").read_text())["model"]["digest"]
    )


def test_an_offline_run_without_cached_answers_says_what_to_do(cli, ollama_double, faces, tmp_path):
    root, images = faces
    home = tmp_path / "home"
    cli("classify", images[0], "--host", ollama_double.url, "--cache-dir", home)
    ollama_double.stop()
    out = tmp_path / "out"
    result = cli("run", root, "--offline", "--out", out, "--cache-dir", home, "--quiet")
    assert result.exit_code == 3
    assert f"{len(images) - 1} of {len(images)} images are not in the cache" in result.stderr
    rows = (out / "predictions.csv").read_text().splitlines()
    assert sum(",not in cache," in row for row in rows) == len(images) - 1


def test_offline_with_nothing_recorded_for_the_model_is_one_line(cli, tmp_path, faces):
    root, _ = faces
    result = cli(
        "run", root, "--offline", "--out", tmp_path / "o", "--cache-dir", tmp_path / "empty"
    )
    assert result.exit_code == 1
    assert "has no answers from qwen2.5vl:7b" in result.stderr


def test_the_demo_set_is_drawn_deterministically_and_matches_the_shipped_copy(tmp_path):
    from emoprobe.data.demo import REPO_DEMO, demo_dataset, make_demo

    rows = make_demo(tmp_path / "a")
    assert len(rows) == 25
    assert sorted({label for _, label in rows}) == sorted(
        ["confused", "distracted", "happy", "tired", "neutral"]
    )
    make_demo(tmp_path / "b")
    for relpath, _ in rows:
        assert (tmp_path / "a" / relpath).read_bytes() == (tmp_path / "b" / relpath).read_bytes()
    assert (tmp_path / "a" / "labels.csv").read_text() == (REPO_DEMO / "labels.csv").read_text()
    assert demo_dataset(tmp_path / "cache") == REPO_DEMO / "labels.csv"


def test_classify_stops_when_the_server_keeps_failing(cli, ollama_double, tmp_path):
    root = tmp_path / "many"
    make_image_folder(root, per_label=3)  # 15 images
    images = sorted(root.rglob("*.png"))
    ollama_double.inject("http500")
    result = cli("classify", *images, "--host", ollama_double.url, "--retries", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: stopped after 10 images in a row failed, 5 not tried")
    assert len(result.stderr.splitlines()) == 1 and "HTTP 500" in result.stderr
    assert len(result.stdout.splitlines()) == 10  # one line per image tried
    assert len(ollama_double.chat_requests) == 10


def test_classify_does_not_stop_for_unreadable_images(cli, ollama_double, tmp_path):
    broken = [tmp_path / f"broken{i}.png" for i in range(12)]
    for path in broken:
        path.write_bytes(b"not an image")
    result = cli("classify", *broken, "--host", ollama_double.url)
    assert result.exit_code == 1  # every image failed, but each was looked at
    assert len(result.stdout.splitlines()) == 12
    assert "in a row" not in result.stderr

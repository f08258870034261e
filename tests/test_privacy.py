"""Privacy by default: faces stay on this machine and out of every file emoprobe writes."""

from __future__ import annotations

import base64
from pathlib import Path

from factories import make_image_folder, scripted_answers
from ollama_double import answer_by_image


def fingerprints(image: bytes) -> list[bytes]:
    """The image's bytes and base64, whole and as a slice from its middle."""
    middle = image[len(image) // 3 : len(image) // 3 + 24]
    encoded = base64.b64encode(image)
    return [image, middle, encoded, encoded[len(encoded) // 3 : len(encoded) // 3 + 32]]


def test_no_image_bytes_or_base64_in_anything_a_run_writes(cli, ollama_double, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=3)
    ollama_double.answer = answer_by_image(scripted_answers(truth))
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = cli(
        "run", str(root), "--host", ollama_double.url, "--out", str(out), "--cache-dir", str(cache)
    )
    assert result.exit_code == 0, result.output
    assert len(ollama_double.chat_requests) >= len(truth)  # the images did go to the server

    written = [path for folder in (out, cache) for path in folder.rglob("*") if path.is_file()]
    assert any(path.name == "predictions.csv" for path in written)
    assert any(path.suffix == ".db" for path in written)  # the cache's SQLite files
    blobs = {path: path.read_bytes() for path in written}
    blobs[Path("<stdout+stderr>")] = result.output.encode()
    for image_path in root.rglob("*.png"):
        for needle in fingerprints(image_path.read_bytes()):
            leaks = [str(path) for path, blob in blobs.items() if needle in blob]
            assert not leaks, f"{image_path.name} found in {leaks}"


def test_a_remote_ollama_host_from_the_environment_is_refused_before_connecting(
    cli, tmp_path, monkeypatch
):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    monkeypatch.setenv("OLLAMA_HOST", "http://192.0.2.1:11434")  # TEST-NET: never routed
    result = cli("run", str(root), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "refusing to send images to non-local host http://192.0.2.1:11434" in result.stderr
    assert "--allow-remote" in result.stderr
    assert not (tmp_path / "o").exists()


def test_reports_hold_no_image_file_names(cli, ollama_double, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    (root / "happy" / "student-jane-doe.png").write_bytes(b"broken")
    ollama_double.answer = answer_by_image(scripted_answers(truth))
    out = tmp_path / "out"
    result = cli("run", str(root), "--host", ollama_double.url, "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "jane" not in report and "000.png" not in report

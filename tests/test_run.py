"""`emoprobe run` end to end: the real CLI and client against the Ollama test double."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from factories import LABELS, make_image_folder, scripted_answers
from ollama_double import OllamaDouble, answer_by_image, image_sha256s
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from emoprobe.results.predictions import COLUMNS
from emoprobe.task.definition import PAPER_TASK

METRIC_KEYS = {
    "n",
    "n_ok",
    "n_unparsed",
    "n_error",
    "accuracy",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "per_class",
    "confusion_matrix",
}


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "faces"
    return root, make_image_folder(root, per_label=4)


@pytest.fixture
def model_server(ollama_double: OllamaDouble, dataset) -> OllamaDouble:
    _, truth = dataset
    ollama_double.answer = answer_by_image(scripted_answers(truth))
    return ollama_double


def test_run_writes_predictions_metrics_manifest_and_report(cli, model_server, dataset, tmp_path):
    root, truth = dataset
    out = tmp_path / "out"
    result = cli("run", root, "--host", model_server.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.md'}" in result.stdout

    rows = read_rows(out)
    assert list(rows[0]) == COLUMNS
    assert len(rows) == len(truth) == 20
    assert {row["path"] for row in rows} == {
        p.relative_to(root).as_posix() for p in root.rglob("*.png")
    }
    for row in rows:
        assert row["label"] == truth[row["sha256"]]
        assert row["status"] in {"ok", "unparsed", "refused"}
        assert (row["prediction"] == "unparsed") == (row["status"] != "ok")
        assert row["cached"] == "false"
        assert float(row["latency_s"]) > 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    y_true = [row["label"] for row in rows]
    y_pred = [row["prediction"] for row in rows]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=list(LABELS), average="weighted", zero_division=0
    )
    assert (metrics["precision_weighted"], metrics["recall_weighted"], metrics["f1_weighted"]) == (
        pytest.approx(p),
        pytest.approx(r),
        pytest.approx(f),
    )
    assert metrics["n_unparsed"] == sum(row["status"] != "ok" for row in rows) > 0
    assert metrics["statuses"]["refused"] == sum(row["status"] == "refused" for row in rows) > 0
    assert metrics["statuses"]["unparsed"] == sum(row["status"] == "unparsed" for row in rows)
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == 20

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["name"] == "qwen2.5vl:7b"
    assert len(manifest["model"]["digest"]) == 64
    assert manifest["server"]["version"] == "0.13.0"
    assert manifest["task"]["prompt"] == PAPER_TASK.system_prompt
    assert manifest["options"] == {"temperature": 0.0, "seed": 42, "num_predict": 32}
    assert {f["sha256"] for f in manifest["files"]} == set(truth)

    report = (out / "report.md").read_text()
    for heading in ("## Overall", "## Per class", "## Confusion matrix", "## Speed"):
        assert heading in report
    assert "Qwen2.5-VL-7B-Instruct (paper) | 0.5197 | 0.5546 | 0.7613 | 0.5546" in report


def test_requests_carry_the_prompt_as_system_and_the_image_as_user(
    cli, model_server, dataset, tmp_path
):
    root, truth = dataset
    result = cli(
        "run",
        root,
        "--host",
        model_server.url,
        "--out",
        tmp_path / "o",
        "--option",
        "num_ctx=4096",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    chats = [body for body in model_server.chat_requests if body.get("messages")]
    assert len(chats) == len(truth)
    for body in chats:
        system, user = body["messages"]
        assert system == {"role": "system", "content": PAPER_TASK.system_prompt}
        assert user["role"] == "user" and len(user["images"]) == 1
        assert body["options"] == {
            "temperature": 0.0,
            "seed": 42,
            "num_predict": 32,
            "num_ctx": 4096,
        }
        assert body["keep_alive"] == "30m"
    assert {sha for body in chats for sha in image_sha256s(body)} == set(truth)


def test_a_second_run_is_answered_from_the_cache(cli, model_server, dataset, tmp_path):
    root, _ = dataset
    first = cli("run", root, "--host", model_server.url, "--out", tmp_path / "a", "--quiet")
    assert first.exit_code == 0, first.output
    sent = len(model_server.chat_requests)
    second = cli("run", root, "--host", model_server.url, "--out", tmp_path / "b", "--quiet")
    assert second.exit_code == 0, second.output
    assert len(model_server.chat_requests) == sent
    assert all(row["cached"] == "true" for row in read_rows(tmp_path / "b"))
    measured = {"cached", "latency_s", "prompt_tokens", "output_tokens", "prefill_ms", "decode_ms"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in measured} for r in rows]  # noqa: E731
    assert strip(read_rows(tmp_path / "a")) == strip(read_rows(tmp_path / "b"))
    # an answer from the cache brings no latency and no server timings along
    assert all(float(row["latency_s"]) > 0 for row in read_rows(tmp_path / "a"))
    assert all(row[k] == "" for row in read_rows(tmp_path / "b") for k in measured - {"cached"})


def test_a_finished_run_re_run_needs_no_server(cli, model_server, dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "o"
    assert cli("run", root, "--host", model_server.url, "--out", out, "--quiet").exit_code == 0
    model_server.stop()
    again = cli("run", root, "--host", model_server.url, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output


def test_per_class_sample_is_stable_for_a_seed(cli, model_server, dataset, tmp_path):
    root, _ = dataset
    paths = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = cli(
            "run",
            root,
            "--host",
            model_server.url,
            "--out",
            out,
            "--per-class",
            2,
            "--seed",
            7,
            "--quiet",
        )
        assert result.exit_code == 0, result.output
        paths.append([row["path"] for row in read_rows(out)])
    assert paths[0] == paths[1]
    assert len(paths[0]) == 10
    assert sorted(path.split("/")[0] for path in paths[0]) == sorted(list(LABELS) * 2)


def test_default_out_folder_is_under_reports_and_the_same_command_resumes_it(
    cli, model_server, dataset, tmp_path, monkeypatch
):
    root, _ = dataset
    monkeypatch.chdir(tmp_path)
    first = cli("run", root, "--host", model_server.url, "--per-class", 1, "--quiet")
    assert first.exit_code == 0, first.output
    out = tmp_path / "reports" / "faces-qwen2.5vl-7b-n1-seed0"
    assert (out / "report.md").exists()
    again = cli("run", root, "--host", model_server.url, "--per-class", 1, "--quiet")
    assert f"report: {Path('reports') / out.name / 'report.md'}" in again.stdout
    other = cli(
        "run",
        root,
        "--host",
        model_server.url,
        "--per-class",
        1,
        "--option",
        "temperature=0.5",
        "--quiet",
    )
    assert other.exit_code == 0
    assert (tmp_path / "reports" / f"{out.name}-2" / "report.md").exists()


def test_unreadable_images_become_error_rows_and_the_run_goes_on(
    cli, model_server, dataset, tmp_path
):
    root, truth = dataset
    (root / "happy" / "empty.jpg").write_bytes(b"")
    (root / "tired" / "notes.jpg").write_text("not a picture")
    (root / "neutral" / "cut.png").write_bytes((root / "neutral" / "000.png").read_bytes()[:60])
    out = tmp_path / "o"
    result = cli("run", root, "--host", model_server.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    errors = {row["path"]: row["error"] for row in read_rows(out) if row["status"] == "unreadable"}
    assert errors == {
        "happy/empty.jpg": "empty file (0 bytes)",
        "tired/notes.jpg": "not an image: cannot identify image file",
        "neutral/cut.png": "truncated or corrupt image",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n"], metrics["n_error"]) == (len(truth) + 3, 3)
    assert sum(c["support"] for c in metrics["per_class"].values()) == len(truth)


def test_concurrency_bounds_what_is_in_flight(cli, ollama_double, dataset, tmp_path):
    root, _ = dataset
    ollama_double.latency = 0.06  # long enough for every worker to be waiting
    result = cli(
        "run",
        root,
        "--host",
        ollama_double.url,
        "--out",
        tmp_path / "o",
        "--concurrency",
        3,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert ollama_double.max_in_flight == 3
    assert ollama_double.max_queued == 2


def test_max_side_downscales_what_is_sent_and_the_report_shows_the_saving(
    cli, ollama_double, tmp_path
):
    import base64
    import io

    from PIL import Image

    root = tmp_path / "frames"
    for shade, label in enumerate(("happy", "tired")):
        (root / label).mkdir(parents=True)
        for number in range(2):
            Image.new("RGB", (1280, 720), (number * 90, shade * 90, 200)).save(
                root / label / f"{number}.jpg"
            )
    out = tmp_path / "out"
    result = cli(
        "run", root, "--host", ollama_double.url, "--out", out, "--max-side", 448, "--quiet"
    )
    assert result.exit_code == 0, result.output
    for body in ollama_double.chat_requests:
        if body.get("messages"):
            image = Image.open(io.BytesIO(base64.b64decode(body["messages"][-1]["images"][0])))
            assert image.size == (448, 252)
    report = (out / "report.md").read_text()
    assert "`--max-side 448` cut them from 0.92 megapixels" in report
    assert "88% fewer pixels" in report
    # Qwen2.5-VL on Ollama 0.13: 28x28 px a token; 1280x720 -> 46x26, 448x252 -> 16x9.
    assert "one per 28×28 pixels after resizing, 4 to 1,280 per image" in report
    assert "about 144 per image sent (4 of 4 requests)" in report
    assert "as stored they would cost 1,196" in report and "saved 88% of the image" in report
    again = cli("run", root, "--host", ollama_double.url, "--out", tmp_path / "full", "--quiet")
    assert again.exit_code == 0
    assert len([b for b in ollama_double.chat_requests if b.get("messages")]) == 8  # new keys


def test_a_task_file_and_a_dataset_format_from_the_command_line(cli, ollama_double, tmp_path):
    csv_path = tmp_path / "fer2013.csv"
    pixels = " ".join(["128"] * 48 * 48)
    csv_path.write_text(
        "emotion,pixels,Usage\n"
        f"3,{pixels},Training\n"
        f"6,{pixels.replace('128', '10', 5)},PublicTest\n"
        f"0,{pixels.replace('128', '250', 7)},PrivateTest\n"
    )
    ollama_double.answer = lambda request: "Happiness"
    task = Path(__file__).resolve().parent.parent / "examples" / "tasks" / "basic-emotions.toml"
    out = tmp_path / "out"
    result = cli(
        "run",
        csv_path,
        "--task",
        task,
        "--format",
        "fer2013",
        "--host",
        ollama_double.url,
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert sorted(row["label"] for row in rows) == ["anger", "happiness", "neutral"]
    assert {row["prediction"] for row in rows} == {"happiness"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"]["labels"][0] == "anger"
    assert manifest["dataset"]["format"] == "fer2013"
    system = ollama_double.chat_requests[-1]["messages"][0]["content"]
    assert "happiness" in system.lower() and "distracted" not in system.lower()

    wrong = cli(
        "run", csv_path, "--format", "rafdb", "--host", ollama_double.url, "--out", tmp_path / "o2"
    )
    assert wrong.exit_code == 1 and wrong.stderr.count("\n") == 1
    report = (out / "report.md").read_text()
    assert "(paper)" not in report  # the paper's figures belong to the paper's task only

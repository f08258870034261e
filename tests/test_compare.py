"""`emoprobe compare` and multi-model `emoprobe run`, against the Ollama test double."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from conftest import Cli
from factories import make_image_folder, scripted_answers
from ollama_double import OllamaDouble, image_sha256s
from sklearn.metrics import cohen_kappa_score, f1_score

from emoprobe.results.comparison import build_comparison

QWEN, LLAMA = "qwen2.5vl:7b", "llama3.2-vision:11b"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(cli: Cli, root: Path, host: str, *args: object) -> Result:
    return cli("run", root, "--host", host, "--quiet", *args)


def answers_by_model(truth: dict[str, str]):
    """qwen: the scripted answers; llama: right on two images in three, else "happy"."""
    qwen = scripted_answers(truth)
    llama = {sha: truth[sha] if i % 3 else "happy" for i, sha in enumerate(sorted(truth))}

    def answer(body: dict) -> str:
        sha = image_sha256s(body)[-1]
        return (llama if body["model"].startswith("llama") else qwen)[sha]

    return answer


def rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "predictions.csv", encoding="utf-8", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def runs(cli, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """qwen and llama on the same 20 images, qwen on 2 per class, qwen on other images."""
    base = tmp_path_factory.mktemp("compare")
    faces, others = base / "faces", base / "others"
    truth = make_image_folder(faces, per_label=4)
    truth.update(make_image_folder(others, per_label=2, labels=("happy", "tired")))
    folders = {
        "qwen": (faces, QWEN, ()),
        "llama": (faces, LLAMA, ()),
        "qwen_part": (faces, QWEN, ("--per-class", 2, "--seed", 3)),
        "qwen_others": (others, QWEN, ()),
    }
    with OllamaDouble(answer=answers_by_model(truth)) as double:
        for name, (root, model, extra) in folders.items():
            args = ["--model", model, "--out", base / name, "--cache-dir", base / "cache"]
            result = run(cli, root, double.url, *args, *extra)
            assert result.exit_code == 0, result.output
    return {name: base / name for name in folders}


def test_compare_two_runs_pairs_them_on_every_image(cli, runs, tmp_path):
    out = tmp_path / "cmp"
    result = cli(
        "compare", runs["qwen"], runs["llama"], "--out", out, "--seed", 1, "--resamples", 1000
    )
    assert result.exit_code == 0, result.output
    text = (out / "comparison.md").read_text()
    assert (out / "comparison.png").read_bytes().startswith(PNG_MAGIC)
    assert "![Weighted F1" in text and "(comparison.png)" in text
    assert "Compared on **20 images**" in text and "Compared on **20 images**" in result.stdout
    assert "| run | quantization | size (GB) | F1 |" in result.stdout  # the runs table, printed
    assert f"comparison: {out / 'comparison.md'}" in result.stdout

    qwen, llama = rows(runs["qwen"]), rows(runs["llama"])
    paths = sorted(qwen)
    truth = [qwen[p]["label"] for p in paths]
    a, b = [qwen[p]["prediction"] for p in paths], [llama[p]["prediction"] for p in paths]
    only_first = sum(x == t != y for x, y, t in zip(a, b, truth, strict=True))
    only_second = sum(y == t != x for x, y, t in zip(a, b, truth, strict=True))
    labels = ["confused", "distracted", "happy", "tired", "neutral"]
    f1 = [f1_score(truth, p, labels=labels, average="weighted", zero_division=0) for p in (a, b)]
    kappa = cohen_kappa_score(a, b)

    comparison = build_comparison([runs["qwen"], runs["llama"]], resamples=1000, seed=1)
    pair = comparison.paired[0]
    assert (pair.mcnemar.b, pair.mcnemar.c) == (only_first, only_second)
    assert pair.mcnemar.method == "exact binomial"  # fewer than 25 discordant images
    assert pair.kappa == pytest.approx(kappa)
    assert pair.f1_difference == pytest.approx(f1[1] - f1[0])
    low, high = pair.f1_interval
    assert low <= pair.f1_difference <= high
    assert f"| {LLAMA} | {f1[1] - f1[0]:+.4f} | [{low:+.4f}, {high:+.4f}] |" in text
    assert f"| {only_first} | {only_second} | {pair.mcnemar.p_value:.4f} | exact binomial |" in text
    assert f"| {kappa:.4f} |" in text
    assert "- model: qwen2.5vl:7b; llama3.2-vision:11b" in text  # what differs
    assert "## Per-class F1" in text and "## How to read this" in text


def test_compare_is_deterministic_for_a_seed(cli, runs, tmp_path):
    for name in ("one", "two"):
        result = cli(
            "compare", runs["qwen"], runs["llama"], "--out", tmp_path / name, "--resamples", 1000
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "one" / "comparison.md").read_text() == (
        tmp_path / "two" / "comparison.md"
    ).read_text()


def test_compare_partly_overlapping_runs_on_the_shared_images(cli, runs, tmp_path):
    result = cli("compare", runs["qwen"], runs["qwen_part"], "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "c" / "comparison.md").read_text()
    assert "Compared on **10 images**" in text
    assert "The runs cover different images" in text
    assert "sample: all 20 images; 2 per class, seed 3" in text
    # the same model and cache: identical answers on the shared images
    assert "| 0 | 0 | 1.0000 | exact binomial | 1.0000 | 1.0000 |" in text
    assert "qwen2.5vl:7b (qwen)" in text and "qwen2.5vl:7b (qwen_part)" in text


def test_compare_refuses_runs_without_shared_images(cli, runs, tmp_path):
    result = cli("compare", runs["qwen"], runs["qwen_others"], "--out", tmp_path / "c")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the runs share no scored image")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_compare_refuses_runs_of_different_tasks_or_labels(cli, runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs["llama"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["task"]["labels"] = ["happy", "sad"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    result = cli("compare", runs["qwen"], other, "--out", tmp_path / "c")
    assert result.exit_code == 1
    assert "only runs of the same task can be compared" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_compare_usage_errors(cli, runs, tmp_path):
    assert cli("compare", runs["qwen"], "--out", tmp_path).exit_code == 2
    result = cli("compare", runs["qwen"], runs["llama"], "--resamples", 999)
    assert result.exit_code == 2
    result = cli("compare", runs["qwen"], runs["qwen"], "--out", tmp_path / "c")
    assert result.exit_code == 1 and "is given twice" in result.stderr
    result = cli("compare", runs["qwen"], tmp_path / "missing", "--out", tmp_path / "c")
    assert result.exit_code == 1 and "does not exist" in result.stderr


# -- several models in one `emoprobe run` ------------------------------------------
@pytest.fixture
def faces(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "faces"
    return root, make_image_folder(root, per_label=2)


def test_run_with_two_models_runs_each_in_turn_one_loaded_at_a_time(
    cli, ollama_double: OllamaDouble, faces, tmp_path
):
    root, truth = faces
    answer = answers_by_model(truth)
    loaded_during_chat: list[tuple[str, list[str]]] = []

    def recording(body: dict) -> str:
        loaded_during_chat.append((body["model"], ollama_double.loaded))
        return answer(body)

    ollama_double.answer = recording
    out = tmp_path / "both"
    result = run(cli, root, ollama_double.url, "--model", QWEN, "--model", LLAMA, "--out", out)
    assert result.exit_code == 0, result.output

    assert [model for model, _ in loaded_during_chat] == [QWEN] * 10 + [LLAMA] * 10
    assert all(loaded == [model] for model, loaded in loaded_during_chat)
    unloads = [
        (index, r.json["model"])
        for index, r in enumerate(ollama_double.requests)
        if r.path == "/api/chat"
        and r.json
        and not r.json.get("messages")
        and r.json.get("keep_alive") == 0
    ]
    first_llama_chat = next(
        index
        for index, r in enumerate(ollama_double.requests)
        if r.path == "/api/chat" and r.json and r.json.get("messages") and r.json["model"] == LLAMA
    )
    assert [model for _, model in unloads] == [QWEN]
    assert unloads[0][0] < first_llama_chat

    for slug, model in (("qwen2.5vl-7b", QWEN), ("llama3.2-vision-11b", LLAMA)):
        manifest = json.loads((out / slug / "manifest.json").read_text())
        assert manifest["model"]["name"] == model
        assert len(rows(out / slug)) == 10
    assert (
        "model 1/2: qwen2.5vl:7b" in result.stdout
        and "model 2/2: llama3.2-vision:11b" in result.stdout
    )
    assert "Compared on **10 images**" in (out / "comparison.md").read_text()
    assert f"comparison: {out / 'comparison.md'}" in result.stdout

    ollama_double.stop()  # a finished multi-model run re-run needs no server
    again = run(cli, root, ollama_double.url, "--model", QWEN, "--model", LLAMA, "--out", out)
    assert again.exit_code == 0, again.output


def test_run_with_two_models_without_out_uses_the_default_folders(
    cli, ollama_double: OllamaDouble, faces, tmp_path, monkeypatch
):
    root, _ = faces
    monkeypatch.chdir(tmp_path)
    result = cli(
        "run", root, "--model", QWEN, "--model", LLAMA, "--host", ollama_double.url, "--quiet"
    )
    assert result.exit_code == 0, result.output
    reports = tmp_path / "reports"
    assert (reports / "faces-qwen2.5vl-7b" / "report.md").exists()
    assert (reports / "faces-llama3.2-vision-11b" / "report.md").exists()
    [comparison] = reports.glob("comparison-faces-*/comparison.md")
    assert "2 runs on faces" in comparison.read_text()


def test_run_with_a_missing_second_model_fails_before_any_image(
    cli, ollama_double: OllamaDouble, faces, tmp_path
):
    root, _ = faces
    typo = "llama3.2-vison:11b"
    result = run(cli, root, ollama_double.url, "--model", QWEN, "--model", typo, "--out", tmp_path)
    assert result.exit_code == 1
    assert "llama3.2-vison:11b" in result.stderr and "pull" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not [r for r in ollama_double.chat_requests if r.get("messages")]

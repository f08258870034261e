"""`emoprobe study`: study files, the matrix of cells, resuming, and the combined report."""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from factories import make_image_folder
from ollama_double import CURRENT_MODELS, DEFAULT_MODELS, OllamaDouble, image_sha256s
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

import emoprobe
from emoprobe.errors import ConfigError
from emoprobe.pipeline.study_file import load_study
from emoprobe.results.stats import holm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "studies"
ALL_MODELS = (*DEFAULT_MODELS, *CURRENT_MODELS)
FIVE = ("confused", "distracted", "happy", "tired", "neutral")


def model_answer(request: dict[str, Any]) -> str:
    """A model that is right on some images, differently for each model and prompt."""
    system = request["messages"][0]["content"]
    labels = ["happy", "neutral"] if "happy or neutral" in system else list(FIVE)
    sha = (image_sha256s(request) or [""])[-1]
    digest = hashlib.sha256(f"{request['model']}|{sha}|{len(system)}".encode()).digest()
    return labels[digest[0] % len(labels)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def study_text(root: Path, models: list[str], extra: str = "") -> str:
    return (
        f'dataset = "{root.as_posix()}"\nmodels = {json.dumps(models)}\nanswers = ["text"]\n{extra}'
    )


def chat_keys(double: OllamaDouble) -> list[tuple[str, str, str, str]]:
    """(model, system prompt, image, format) of every chat request that asked something."""
    keys = []
    for request in double.chat_requests:
        if request.get("messages"):
            system = request["messages"][0]["content"]
            fmt = json.dumps(request.get("format"), sort_keys=True)
            keys.append((request["model"], system, image_sha256s(request)[-1], fmt))
    return keys


def rows(path: Path) -> list[tuple[str, ...]]:
    with open(path / "predictions.csv", encoding="utf-8", newline="") as handle:
        found = list(csv.DictReader(handle))
    keep = ("path", "sha256", "label", "prediction", "raw", "status")
    return sorted(tuple(row[key] for key in keep) for row in found)


# -- the shipped study files ---------------------------------------------------------
@pytest.mark.parametrize("name", ["quantization", "prompt-sensitivity"])
def test_each_shipped_study_file_parses_and_runs_against_the_double(
    cli: Cli, tmp_path: Path, name: str
) -> None:
    spec = load_study(EXAMPLES / f"{name}.toml")
    assert spec.dataset is not None and spec.dataset.exists()
    if name == "quantization":  # one family, three quantization levels
        assert len(spec.models) == 3 and len({m.rsplit("-", 1)[0] for m in spec.models}) == 1
    else:  # with and without the definitions, the labels in other orders
        assert len(spec.variants) >= 3
        assert any(not v.task.list_definitions for v in spec.variants)
        assert len({v.task.labels for v in spec.variants}) >= 2
        for variant in spec.variants:  # the instruction names the labels in the same order
            text = variant.task.instruction
            positions = [text.index(label) for label in variant.task.labels]
            assert positions == sorted(positions), variant.name
    out = tmp_path / "study"
    with OllamaDouble(version="0.34.1", models=ALL_MODELS, answer=model_answer) as double:
        result = cli("study", EXAMPLES / f"{name}.toml", "--host", double.url, "--out", out)
        asked = len(chat_keys(double))
    assert result.exit_code == 0, result.output
    cells = spec.cells
    n_images = len(spec.dataset.read_text().splitlines()) - 1
    assert asked == len(cells) * n_images  # every cell over every image, once
    report = (out / "report.md").read_text(encoding="utf-8")
    for cell in cells:
        assert cell.name in report
        assert rows(out / cell.folder) and (out / cell.folder / "report.md").is_file()
    assert f"**{n_images} images that every cell scored**" in report
    assert "## Paired tests (McNemar, Holm-corrected)" in report
    assert "## Agreement between models" in report
    page = (out / "view.html").read_text(encoding="utf-8")
    assert "data:image" not in page
    assert all(f"<td>{html.escape(cell.name)}</td>" in page for cell in cells)  # named as cells
    assert f"study report: {out / 'report.md'}" in result.stdout


# -- study files: mistakes are one line naming the key and its line ---------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "x"\nmodles = ["a"]\n', "line 2: unknown key 'modles' (did you mean 'models'?)"),
        ('models = ["a"]\nper_class = "ten"\n', "line 2: per_class must be a whole number"),
        ('models = ["a"]\nper_class = 0\n', "line 2: per_class must be at least 1 (got 0)"),
        (
            'models = ["a"]\n\n[[variants]]\nname = "one"\n\n[[variants]]\nname = "two"\n'
            'lable_order = "reversed"\n',
            "line 8: unknown key 'lable_order' in variants[2] (did you mean 'label_order'?)",
        ),
        (
            'models = ["a"]\nanswers = ["text",\n  "jsn"]\n',
            "line 3: answer mode 'jsn' is not one of text, json, logprobs",
        ),
        (
            'models = ["a"]\n[options]\ntemperatur = 0\n',
            "line 3: unknown key 'temperatur' in options (did you mean 'temperature'?)",
        ),
        ('models = ["a"]\n[options]\ntemperature = "hot"\n', "line 3: option 'temperature' must"),
        (
            'models = ["a"]\n[[variants]]\nname = "x"\nlabel_order = ["happy"]\n',
            "line 4: label_order must list each label once",
        ),
        (
            'models = ["a"]\n[[variants]]\nname = "x"\ndefinitions = "no"\n',
            "line 4: definitions must be true or false",
        ),
        ('models = ["a", "a"]\n', "line 1: models lists 'a' twice"),
        ('models = ["a"]\n[[variants]]\nname = "x"\n[[variants]]\nname = "x"\n', "line 5: two"),
        ('models = ["a"]\n[[variants]]\nname = "a b"\n', "line 3: variants[1].name 'a b' must"),
        ('models = ["a"]\ntask = "nowhere.toml"\n', "line 2: task: task file not found"),
        ('models = ["a"]\nformat = "folder"\n', "line 2: format 'folder' is not one of"),
        (
            'models = ["a"]\n\ndataset = "gone/"\n',
            "gone does not exist (a path relative to the study file)",
        ),
        ('name = "x"\n', "missing key 'models'"),
        ('models = ["a"\n', "is not valid TOML"),
    ],
)
def test_a_mistake_in_a_study_file_is_one_line_naming_the_key_and_its_line(
    cli: Cli, tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "s.toml", text)
    with pytest.raises(ConfigError) as raised:
        load_study(path)
    assert expected in str(raised.value)
    result = cli("study", path, "--host", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and expected in result.stderr
    assert f"study file {path}" in result.stderr


def test_an_unknown_model_is_one_line_before_anything_runs(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    path = write(
        tmp_path / "s.toml",
        study_text(root, ["qwen2.5vl:7b", "qwen3-vl:8b-instruct-q5"]),
    )
    out = tmp_path / "out"
    with OllamaDouble(models=ALL_MODELS) as double:
        result = cli("study", path, "--host", double.url, "--out", out)
        asked = chat_keys(double)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "model 'qwen3-vl:8b-instruct-q5' is not on the Ollama server" in result.stderr
    assert asked == [] and not out.exists()  # the good first model did not run either


def test_several_unknown_models_are_named_in_the_one_line(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    path = write(tmp_path / "s.toml", study_text(root, ["nope:1", "qwen2.5vl:7b", "nope:2"]))
    with OllamaDouble(models=ALL_MODELS) as double:
        result = cli("study", path, "--host", double.url, "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "2 models are missing ('nope:1', 'nope:2')" in result.stderr


def test_an_answer_mode_the_server_cannot_give_fails_before_anything_runs(
    cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    text = study_text(root, ["qwen2.5vl:7b"]).replace('["text"]', '["text", "logprobs"]')
    path = write(tmp_path / "s.toml", text)
    with OllamaDouble(version="0.12.0", models=ALL_MODELS) as double:
        result = cli("study", path, "--host", double.url, "--out", tmp_path / "out")
        asked = chat_keys(double)
    assert result.exit_code == 1 and "logprobs" in result.stderr and asked == []


def test_dry_run_lists_the_cells_and_checks_the_models(cli: Cli, tmp_path: Path) -> None:
    with OllamaDouble(models=ALL_MODELS) as double:
        result = cli("study", EXAMPLES / "quantization.toml", "--host", double.url, "--dry-run")
        asked = chat_keys(double)
    assert result.exit_code == 0, result.output
    assert "cell 6/6: qwen3-vl:8b-instruct-bf16 · json · default" in result.stdout
    assert "every model is on" in result.stdout and asked == []


# -- running the matrix ----------------------------------------------------------------
VARIANTS = """
[[variants]]
name = "paper"
[[variants]]
name = "bare"
definitions = false
[[variants]]
name = "reversed"
label_order = "reversed"
"""


def test_cells_run_model_by_model_with_the_variants_prompts(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    text = study_text(root, ["qwen2.5vl:7b", "qwen3-vl:8b-instruct-q8_0"], VARIANTS)
    path = write(tmp_path / "s.toml", text.replace('["text"]', '["text", "json"]'))
    with OllamaDouble(models=ALL_MODELS, answer=model_answer) as double:
        study = emoprobe.run_study(path, out=tmp_path / "out", host=double.url)
        requests = [r.json for r in double.requests if r.path == "/api/chat"]
    assert study.complete and len(study.results) == 2 * 2 * 3
    # one model at a time: every request of the first model, its unload, then the second
    models = [r["model"] for r in requests]
    unloads = [i for i, r in enumerate(requests) if r.get("keep_alive") == 0]
    assert len(unloads) == 1
    unload = unloads[0]
    assert requests[unload]["model"] == "qwen2.5vl:7b" and not requests[unload]["messages"]
    assert set(models[:unload]) == {"qwen2.5vl:7b"}
    assert set(models[unload + 1 :]) == {"qwen3-vl:8b-instruct-q8_0"}
    prompts = {r["messages"][0]["content"] for r in requests if r.get("messages")}
    paper = emoprobe.PAPER_TASK
    assert prompts == {
        paper.system_prompt,
        paper.instruction,  # no definitions: the instruction alone
        paper.system_prompt.split("- Confused")[0]
        + "\n".join(
            f"- {label.capitalize()}: {paper.definitions[label]}" for label in reversed(FIVE)
        ),
    }
    enums = {
        tuple(r["format"]["properties"]["label"]["enum"])
        for r in requests
        if isinstance(r.get("format"), dict)
    }
    assert enums == {FIVE, tuple(reversed(FIVE))}  # the JSON enum follows the order too
    assert study.view and "reversed" in study.view.read_text(encoding="utf-8")  # one page
    # the report says which variant reversed the labels and which left the definitions out
    report = study.report.read_text(encoding="utf-8") if study.report else ""
    assert "| bare | academic-emotion | confused, distracted, happy, tired, neutral | no |" in (
        report
    )
    assert "| reversed | academic-emotion | neutral, tired, happy, distracted, confused |" in (
        report
    )


def test_the_report_figures_are_rederivable_from_the_cells_predictions(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=6)
    models = ["qwen2.5vl:7b", "qwen3-vl:8b-instruct-q4_K_M", "gemma3:4b"]
    path = write(tmp_path / "s.toml", study_text(root, models, VARIANTS))
    with OllamaDouble(models=ALL_MODELS, answer=model_answer) as double:
        study = emoprobe.run_study(path, out=tmp_path / "out", host=double.url)
    figures = study.figures
    assert figures is not None and figures.shared == 30
    # 3 models × 3 variants: 3 model pairs per variant + 3 variant pairs per model = 18
    assert len(figures.pairs) == 18
    assert {p.factor for p in figures.pairs} == {"model", "variant"}
    tables = []
    for cell in study.cells:
        with open(study.out / cell.folder / "predictions.csv", encoding="utf-8") as handle:
            tables.append({row["sha256"]: row for row in csv.DictReader(handle)})
    for pair in figures.pairs:
        first, second = tables[pair.first], tables[pair.second]
        shas = sorted(first)
        right_a = [first[s]["prediction"] == first[s]["label"] for s in shas]
        right_b = [second[s]["prediction"] == second[s]["label"] for s in shas]
        b = sum(x and not y for x, y in zip(right_a, right_b, strict=True))
        c = sum(y and not x for x, y in zip(right_a, right_b, strict=True))
        assert (pair.only_first_right, pair.only_second_right) == (b, c)
        assert pair.p_value == pytest.approx(1.0 if b + c == 0 else binomtest(b, b + c).pvalue)
        kappa = cohen_kappa_score(
            [first[s]["prediction"] for s in shas], [second[s]["prediction"] for s in shas]
        )
        assert pair.kappa == pytest.approx(kappa)
    assert [p.p_holm for p in figures.pairs] == holm([p.p_value for p in figures.pairs])
    for cell, table in zip(figures.cells, tables, strict=True):
        right = sum(row["prediction"] == row["label"] for row in table.values())
        assert cell.metrics.accuracy == pytest.approx(right / 30)
    report = study.report.read_text(encoding="utf-8") if study.report else ""
    assert "18 McNemar tests" in report and "Holm's correction over all 18" in report


def test_a_finished_study_run_again_asks_nothing_and_writes_the_same_report(
    tmp_path: Path,
) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    path = write(tmp_path / "s.toml", study_text(root, ["qwen2.5vl:7b", "gemma3:4b"]))
    with OllamaDouble(models=ALL_MODELS, answer=model_answer) as double:
        first = emoprobe.run_study(path, out=tmp_path / "out", host=double.url)
        report = first.report.read_text(encoding="utf-8") if first.report else ""
        asked = len(chat_keys(double))
        again = emoprobe.run_study(path, out=tmp_path / "out", host=double.url)
        assert len(chat_keys(double)) == asked == 20
    assert again.report and again.report.read_text(encoding="utf-8") == report


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_an_interrupted_study_resumes_and_asks_nothing_twice(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=3)  # 15 images × 2 models × 2 variants = 60 cells' rows
    models = ["qwen2.5vl:7b", "qwen3-vl:8b-instruct-q4_K_M"]
    extra = '[[variants]]\nname = "paper"\n[[variants]]\nname = "bare"\ndefinitions = false\n'
    path = write(tmp_path / "s.toml", study_text(root, models, extra))

    def start(out: Path, cache: Path) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "emoprobe", "study", str(path), "--host", double.url]
        command += ["--out", str(out), "--cache-dir", str(cache), "--concurrency", "1"]
        return subprocess.Popen(
            [*command, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    with OllamaDouble(models=ALL_MODELS, answer=model_answer, latency=0.005) as double:
        whole = start(tmp_path / "whole", tmp_path / "cache-whole")
        assert whole.wait(timeout=120) == 0, whole.communicate()[1]
        double.reset_stats()
        double.inject("hang", on={37})  # mid-study, in the second model's first cell
        process = start(tmp_path / "out", tmp_path / "cache")
        assert double.wait_until(lambda: double.hung == 1, timeout=60)
        before = chat_keys(double)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert err.strip().splitlines()[-1] == (
            "error: interrupted; run the same command again to resume"
        )
        double.clear_faults()
        resumed = start(tmp_path / "out", tmp_path / "cache")
        assert resumed.wait(timeout=120) == 0, resumed.communicate()[1]
        keys = chat_keys(double)
    hung = before[-1]  # asked, never answered: the one request asked again
    assert keys.count(hung) == 2
    twice = [(keys.index(key), key[0]) for key in set(keys) if key != hung and keys.count(key) > 1]
    assert twice == [], f"asked twice: {twice}; {len(before)} asked before the interrupt"
    assert len(set(keys)) == 60
    plan = json.loads((tmp_path / "out" / "study.json").read_text(encoding="utf-8"))
    for cell in plan["cells"]:
        assert rows(tmp_path / "out" / cell["folder"]) == rows(tmp_path / "whole" / cell["folder"])
    whole_report = (tmp_path / "whole" / "report.md").read_text(encoding="utf-8")
    resumed_report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert _figures_only(resumed_report) == _figures_only(whole_report)


def _figures_only(report: str) -> str:
    """The report without the speed column, which differs between two runs."""
    lines = []
    for line in report.splitlines():
        if line.startswith("| qwen") and line.count("|") == 12:  # the cells table
            line = line.rsplit("|", 2)[0]
        lines.append(line)
    return "\n".join(lines)


def test_a_cell_with_failures_exits_3_and_the_report_covers_what_finished(
    cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    path = write(tmp_path / "s.toml", study_text(root, ["qwen2.5vl:7b", "gemma3:4b"]))
    out = tmp_path / "out"
    with OllamaDouble(models=ALL_MODELS, answer=model_answer) as double:
        double.inject("http500", model="gemma3:4b", on={12, 13})
        result = cli("study", path, "--host", double.url, "--out", out, "--retries", "0")
    assert result.exit_code == 3
    assert "gemma3:4b · text · default: " in result.stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**8 images that every cell scored**" in report
    assert "| 8 of 10 |" in report, report.split("## Paired")[0]


# -- Holm's correction -------------------------------------------------------------------
def test_holm_matches_r_p_adjust() -> None:
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([1.5])


def test_a_variant_task_file_with_other_labels_is_refused_with_its_line(tmp_path: Path) -> None:
    tasks = Path(__file__).resolve().parents[1] / "examples" / "tasks"
    text = (
        f'models = ["a"]\n[[variants]]\nname = "paper"\n[[variants]]\nname = "faces"\n'
        f'task = "{(tasks / "faces-happy-neutral.toml").as_posix()}"\n'
    )
    with pytest.raises(ConfigError, match=r"line 6: variant 'faces' has the labels happy"):
        load_study(write(tmp_path / "s.toml", text))
    same = text.replace("faces-happy-neutral.toml", "academic-emotion.toml")
    spec = load_study(write(tmp_path / "same.toml", same))  # the paper's task again: fine
    assert [v.task.labels for v in spec.variants] == [FIVE, FIVE]


def test_a_finished_study_rebuilds_offline_without_a_connection(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=2)
    path = write(tmp_path / "s.toml", study_text(root, ["qwen2.5vl:7b", "gemma3:4b"]))
    out = tmp_path / "out"
    with OllamaDouble(models=ALL_MODELS, answer=model_answer) as double:
        assert cli("study", path, "--host", double.url, "--out", out).exit_code == 0
    first = (out / "report.md").read_text(encoding="utf-8")
    (out / "report.md").unlink()
    result = cli("study", path, "--out", out, "--offline")  # the server is gone
    assert result.exit_code == 0, result.output
    assert (out / "report.md").read_text(encoding="utf-8") == first

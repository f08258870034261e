"""`load_run`: a run folder read back as typed records and a pandas table.

Old run folders, written before manifests had a version, still open and report as
before: tests/data/runs-v1 holds four runs (text, llama, logprobs, json) and their comparison,
made by emoprobe 0.1.0 against the Ollama double: unversioned manifests, predictions.csv
as it was, and the report.md, metrics.json and comparison.md that version wrote.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from factories import LABELS, make_image_folder, scripted_answers
from ollama_double import OllamaDouble, answer_by_image
from sklearn.metrics import f1_score

from emoprobe.cli.main import cli
from emoprobe.errors import ConfigError
from emoprobe.results.load import RunRecord, load_run
from emoprobe.results.manifest import SCHEMA_VERSION, Manifest
from emoprobe.results.predictions import Row, read_rows

OLD = Path(__file__).parent / "data" / "runs-v1"
RUNS = ("text", "llama", "logprobs", "json")


def emoprobe(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture
def old_runs(tmp_path: Path) -> Path:
    copy = tmp_path / "runs-v1"
    shutil.copytree(OLD, copy)
    for name in RUNS:
        (copy / name / "report.md").unlink()
        (copy / name / "metrics.json").unlink()
    return copy


def section_tables(text: str, headings: tuple[str, ...]) -> list[str]:
    """The table lines of the report's sections with these headings."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line.startswith(headings)
        elif inside and line.startswith("|"):
            lines.append(line)
    return lines


@pytest.mark.parametrize("name", RUNS)
def test_report_on_an_old_run_folder_keeps_its_figures_and_says_what_is_new(old_runs, name):
    result = emoprobe("report", old_runs / name)
    assert result.exit_code == 0, result.output
    for file in ("manifest.json", "predictions.csv"):  # never touched
        assert (old_runs / name / file).read_bytes() == (OLD / name / file).read_bytes()
    old = json.loads((OLD / name / "metrics.json").read_text())
    new = json.loads((old_runs / name / "metrics.json").read_text())
    # Every figure of the old metrics.json is unchanged, except the label scores, which
    # now cover answers with a label only.
    assert {k: v for k, v in new.items() if k in old and k != "scores"} == {
        k: v for k, v in old.items() if k != "scores"
    }
    assert {"statuses", "balanced_accuracy", "cohen_kappa", "sample", "alarms"} <= set(new)
    assert new["sample"]["drawn_recorded"] is False  # counted from the rows it holds
    report = (old_runs / name / "report.md").read_text()
    headings = ("## Overall", "## Per class", "## Confusion matrix")
    assert (
        section_tables(report, headings)[:1]
        == section_tables((OLD / name / "report.md").read_text(), headings)[:1]
    )
    for line in section_tables((OLD / name / "report.md").read_text(), headings):
        assert line in report
    assert "rows in this folder (the draw is not recorded)" in report
    assert ("scoring version 1" in report) == (name == "logprobs")
    if name == "logprobs":
        with open(OLD / name / "predictions.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert new["scores"]["n_with_scores"] == sum(row["status"] == "ok" for row in rows)


def test_compare_of_old_run_folders_gives_the_same_comparison(old_runs, tmp_path):
    out = tmp_path / "cmp"
    result = emoprobe(
        "compare", old_runs / "text", old_runs / "llama", "--out", out, "--resamples", 1000
    )
    assert result.exit_code == 0, result.output
    text = (out / "comparison.md").read_text()
    for line in (OLD / "comparison.md").read_text().splitlines():  # the same figures
        if line.startswith("|"):
            assert line in text


# -- load_run on a fresh run ---------------------------------------------------------
@pytest.fixture(scope="module")
def logprobs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logprobs run over 10 images against the Ollama double, one of them unreadable."""
    base = tmp_path_factory.mktemp("load")
    root = base / "faces"
    truth = make_image_folder(root, per_label=2)
    (root / "happy" / "broken.png").write_bytes(b"not an image")
    out = base / "run"
    with OllamaDouble(answer=answer_by_image(scripted_answers(truth))) as double:
        result = emoprobe(
            "run",
            root,
            "--host",
            double.url,
            "--out",
            out,
            "--answer",
            "logprobs",
            "--cache-dir",
            base / "cache",
            "--quiet",
        )
    assert result.exit_code == 0, result.output
    return out


def test_load_run_gives_typed_manifest_metrics_and_a_typed_table(logprobs_run):
    run = load_run(logprobs_run)
    assert isinstance(run, RunRecord) and run.path == logprobs_run
    assert run.manifest.schema_version == SCHEMA_VERSION
    assert run.manifest.model.name == "qwen2.5vl:7b" and len(run.manifest.model.digest) == 64
    assert run.manifest.task.labels == list(LABELS) and run.manifest.answer_mode == "logprobs"
    assert run.manifest.sessions[0].requests == 10

    frame = run.predictions
    assert len(frame) == 11
    assert frame["cached"].dtype == bool and not frame["cached"].any()
    assert frame["latency_s"].dtype == "float64"
    assert frame["label"].dtype == "category" and frame["prediction"].dtype == "category"
    assert list(frame["label"].cat.categories[: len(LABELS)]) == list(LABELS)
    with open(logprobs_run / "predictions.csv", encoding="utf-8", newline="") as handle:
        statuses = Counter(row["status"] for row in csv.DictReader(handle))
    counts = {status: n for status, n in frame["status"].value_counts().items() if n}
    assert counts == statuses and statuses["unreadable"] == 1
    error = frame[frame["status"] == "unreadable"].iloc[0]
    assert pd.isna(error["latency_s"]) and pd.isna(error["prediction"])
    scores = frame[[f"score_{label}" for label in LABELS]]
    assert (scores.dtypes == "float64").all()
    labelled = frame["status"] == "ok"  # only answers with a label carry scores
    assert scores[labelled].sum(axis=1).round(4).eq(1.0).all()
    assert scores[~labelled].isna().all().all()
    answered = frame["status"] != "unreadable"

    written = json.loads((logprobs_run / "metrics.json").read_text())
    assert run.metrics.to_dict() == written
    assert run.metrics.to_json() == (logprobs_run / "metrics.json").read_text()
    scored = frame[answered]
    expected = f1_score(
        scored["label"].astype(str),
        scored["prediction"].astype(str),
        labels=list(LABELS),
        average="weighted",
        zero_division=0,
    )
    assert run.metrics.f1_weighted == pytest.approx(expected)


def test_rows_round_trip_to_the_same_bytes(logprobs_run, tmp_path):
    from emoprobe.results.predictions import keep_only

    rows = read_rows(logprobs_run / "predictions.csv")
    assert all(isinstance(row, Row) and isinstance(row.cached, bool) for row in rows)
    copy = tmp_path / "predictions.csv"
    keep_only(copy, rows, LABELS)
    assert copy.read_bytes() == (logprobs_run / "predictions.csv").read_bytes()


def test_a_manifest_round_trips_through_json(logprobs_run):
    text = (logprobs_run / "manifest.json").read_text()
    assert Manifest.from_json(text).to_json() == text


# -- old folders and bad ones ----------------------------------------------------------
@pytest.mark.parametrize("name", RUNS)
def test_an_unversioned_manifest_reads_as_version_1(name):
    assert "schema_version" not in json.loads((OLD / name / "manifest.json").read_text())
    run = load_run(OLD / name)
    assert run.manifest.schema_version == 1
    old = json.loads((OLD / name / "metrics.json").read_text())
    new = run.metrics.to_dict()
    assert {k: new[k] for k in old if k != "scores"} == {
        k: v for k, v in old.items() if k != "scores"
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["task"].update(labels="happy"), "manifest.json: task.labels: "),
        (lambda m: m["sessions"][0].update(requests="15"), "sessions.0.requests: "),
        (lambda m: m["model"].update(size_bytes=None), "model.size_bytes: "),
        (lambda m: m.update(schema_version=SCHEMA_VERSION + 1), "upgrade emoprobe"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_the_file_and_field(old_runs, change, message):
    path = old_runs / "text" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError) as caught:
        load_run(old_runs / "text")
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
    result = emoprobe("report", old_runs / "text")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {caught.value}"


def test_a_manifest_that_is_no_json_and_a_folder_that_is_no_run(old_runs, tmp_path):
    (old_runs / "json" / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"manifest\.json is not JSON"):
        load_run(old_runs / "json")
    no_run = f"^{re.escape(str(tmp_path))} is not an emoprobe run folder"
    with pytest.raises(ConfigError, match=no_run):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "missing")
    (old_runs / "llama" / "predictions.csv").unlink()
    with pytest.raises(ConfigError, match=r"holds no predictions\.csv"):
        load_run(old_runs / "llama")

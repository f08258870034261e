"""Run folders written before manifests had a version still open and report as before.

tests/data/runs-v1 holds four runs (text, llama, logprobs, json) and their comparison,
made by emoprobe 0.1.0 against the Ollama double: unversioned manifests, predictions.csv
as it was, and the report.md, metrics.json and comparison.md that version wrote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emoprobe.cli.main import cli

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


@pytest.mark.parametrize("name", RUNS)
def test_report_on_an_old_run_folder_gives_the_same_report(old_runs, name):
    result = emoprobe("report", old_runs / name)
    assert result.exit_code == 0, result.output
    for file in ("report.md", "metrics.json"):
        assert (old_runs / name / file).read_text() == (OLD / name / file).read_text(), file
    for file in ("manifest.json", "predictions.csv"):
        assert (old_runs / name / file).read_bytes() == (OLD / name / file).read_bytes()


def test_compare_of_old_run_folders_gives_the_same_comparison(old_runs, tmp_path):
    out = tmp_path / "cmp"
    result = emoprobe(
        "compare", old_runs / "text", old_runs / "llama", "--out", out, "--resamples", 1000
    )
    assert result.exit_code == 0, result.output
    assert (out / "comparison.md").read_text() == (OLD / "comparison.md").read_text()

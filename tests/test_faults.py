"""Faults on the server side: every answer still lands once, correct; nothing failed is kept."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest
from factories import make_image_folder, scripted_answers
from ollama_double import NotOllamaServer, OllamaDouble, answer_by_image

FAST_RETRY = ["--backoff", "0.01", "--retries", "4", "--quiet"]


def rows_by_path(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_path = {row["path"]: row for row in rows}
    assert len(by_path) == len(rows), "a row was written twice"
    return by_path


def answers(rows: dict[str, dict[str, str]]) -> dict[str, tuple[str, str, str]]:
    return {path: (r["prediction"], r["raw"], r["status"]) for path, r in rows.items()}


@pytest.fixture
def study(cli, tmp_path: Path, ollama_double: OllamaDouble):
    """A dataset, a double that answers it, and the fault-free predictions to match."""
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=3)
    ollama_double.answer = answer_by_image(scripted_answers(truth))
    clean = tmp_path / "clean"
    result = cli(
        "run",
        root,
        "--host",
        ollama_double.url,
        "--out",
        clean,
        "--cache-dir",
        tmp_path / "clean-cache",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    ollama_double.reset_stats()
    return root, ollama_double, answers(rows_by_path(clean))


@pytest.mark.parametrize(
    "kind",
    ["http500", "busy503", "drop", "error_midstream", "malformed", "truncated", "no_done"],
)
def test_a_fault_every_few_requests_loses_nothing_and_changes_nothing(cli, study, tmp_path, kind):
    root, double, expected = study
    # At most one fault per image: with several workers, one image's retries could
    # otherwise each land on a third request and use up its retries (a flake, not a bug).
    double.inject(kind, every=3, per_request=1)
    out = tmp_path / "out"
    result = cli("run", root, "--host", double.url, "--out", out, *FAST_RETRY)
    assert result.exit_code == 0, result.output
    # 15 images: F faults make 15 + F requests, whose multiples of 3 are each a fault or
    # an image's one retry skipped, so (15 + F) // 3 <= 2F and F >= 3.
    assert double.faults_served >= 3
    assert answers(rows_by_path(out)) == expected


def test_a_hung_request_times_out_and_is_retried(cli, study, tmp_path):
    root, double, expected = study
    double.inject("hang", on={2})
    out = tmp_path / "out"
    result = cli("run", root, "--host", double.url, "--out", out, "--timeout", "0.5", *FAST_RETRY)
    assert result.exit_code == 0, result.output
    assert answers(rows_by_path(out)) == expected


def test_a_slow_server_within_the_timeout_is_just_slow(cli, study, tmp_path):
    root, double, expected = study
    double.inject("slow", on={1}, seconds=0.3)
    out = tmp_path / "out"
    result = cli("run", root, "--host", double.url, "--out", out, "--timeout", "5", *FAST_RETRY)
    assert result.exit_code == 0, result.output
    assert answers(rows_by_path(out)) == expected


def test_failures_past_the_retries_are_neither_written_nor_cached_and_a_rerun_finishes(
    cli, study, tmp_path
):
    root, double, expected = study
    double.inject("http500", on={0, 1, 2, 3})  # the first image's four tries all fail
    out = tmp_path / "out"
    result = cli(
        "run",
        root,
        "--host",
        double.url,
        "--out",
        out,
        "--backoff",
        "0.01",
        "--retries",
        "3",
        "--concurrency",
        "1",
        "--quiet",
    )
    assert result.exit_code == 3, result.output
    last_line = result.stderr.strip().splitlines()[-1]
    assert "1 of 15 images are unfinished" in last_line
    assert "run the same command again" in last_line
    partial = rows_by_path(out)
    assert len(partial) == 14
    assert all(expected[path] == answer for path, answer in answers(partial).items())

    double.clear_faults()
    sent = len(double.chat_requests)
    again = cli("run", root, "--host", double.url, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output
    assert len(double.chat_requests) == sent + 1  # only the failed image is asked again
    assert answers(rows_by_path(out)) == expected


def test_a_dead_server_stops_the_run_early_with_the_reason(cli, study, tmp_path):
    root, double, _ = study
    double.inject("http500")
    out = tmp_path / "out"
    result = cli(
        "run",
        root,
        "--host",
        double.url,
        "--out",
        out,
        "--backoff",
        "0.01",
        "--retries",
        "0",
        "--concurrency",
        "1",
        "--quiet",
    )
    assert result.exit_code == 3
    assert "stopped after 10 images in a row failed" in result.stderr
    assert len(double.chat_requests) <= 12
    assert rows_by_path(out) == {}


def test_a_server_that_dies_mid_run_and_comes_back(cli, study, tmp_path):
    root, double, expected = study
    double.latency = 0.02

    def bounce() -> None:
        double.wait_until(lambda: len(double.chat_requests) >= 5, timeout=10)
        double.stop()
        time.sleep(0.3)
        double.start()

    thread = threading.Thread(target=bounce)
    thread.start()
    out = tmp_path / "out"
    result = cli(
        "run",
        root,
        "--host",
        double.url,
        "--out",
        out,
        "--backoff",
        "0.2",
        "--retries",
        "5",
        "--quiet",
    )
    thread.join()
    assert result.exit_code == 0, result.output
    assert answers(rows_by_path(out)) == expected


def test_something_else_on_the_port_is_named_as_not_ollama(cli, tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    with NotOllamaServer() as other:
        result = cli("run", root, "--host", other.url, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "answers, but not as an Ollama server" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_wrong_port_is_a_one_line_error(cli, tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    with OllamaDouble() as double:
        port = double.port
    result = cli("run", root, "--host", f"127.0.0.1:{port}", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "cannot reach Ollama" in result.stderr

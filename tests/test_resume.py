"""Kill a run at any moment, run it again: the same predictions, none lost or doubled."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factories import make_image_folder, scripted_answers
from ollama_double import OllamaDouble, answer_by_image, image_sha256s

import emoprobe
from emoprobe.errors import RunLockedError
from emoprobe.results.predictions import COLUMNS, HEADER, PredictionWriter, Row, recover
from emoprobe.results.rundir import RunDir


def start_run(root: Path, url: str, out: Path, cache: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "emoprobe",
        "run",
        str(root),
        "--host",
        url,
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        "--quiet",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def comparable(out: Path) -> list[tuple[str, ...]]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["path"] for row in rows}) == len(rows), "a row was written twice"
    keep = ("path", "sha256", "label", "prediction", "raw", "status", "error")
    return [tuple(row[key] for key in keep) for row in rows]


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result(tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=8)
    rng = random.Random(1)
    with OllamaDouble(answer=answer_by_image(scripted_answers(truth)), latency=0.01) as double:
        whole = tmp_path / "whole"
        done = start_run(root, double.url, whole, tmp_path / "cache-whole")
        assert done.wait(timeout=60) == 0, done.stderr.read()

        out, cache = tmp_path / "killed", tmp_path / "cache-killed"
        kills = 0
        for _ in range(12):
            process = start_run(root, double.url, out, cache)
            time.sleep(rng.uniform(0.2, 1.2))
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        final = start_run(root, double.url, out, cache)
        assert final.wait(timeout=60) == 0, final.stderr.read()
    assert kills >= 3
    assert comparable(out) == comparable(whole)


def test_recover_cuts_a_half_written_last_row(tmp_path):
    path = tmp_path / "predictions.csv"
    rows = [
        Row("a.png", "1" * 64, "happy", "happy", "Happy", "ok", "", 0.5, False),
        Row(
            "b.png",
            "2" * 64,
            "tired",
            "unparsed",
            'multi\nline, "quoted"\r\u2028',
            "unparsed",
            "",
            0.7,
            False,
        ),
    ]
    with PredictionWriter(path) as writer:
        for row in rows:
            writer.write(row)
    whole = path.read_bytes()
    cuts = ("c.png,333", 'c.png,3,tired,tired,"half\nan answer', "c.png,3,tired,x,x,ok,,0.1,false")
    for cut in cuts:
        path.write_bytes(whole + cut.encode())
        assert recover(path) == rows
        assert path.read_bytes() == whole


def test_recover_handles_a_missing_empty_or_header_only_file(tmp_path):
    path = tmp_path / "predictions.csv"
    assert recover(path) == []
    path.write_text("")
    assert recover(path) == []
    path.write_text(HEADER[:10])
    assert recover(path) == []
    assert path.read_text() == ""
    path.write_text(HEADER)
    assert recover(path) == []
    assert COLUMNS[0] == "path"


def test_a_second_run_into_the_same_out_is_refused(tmp_path):
    with (
        RunDir(tmp_path / "out").locked(),
        pytest.raises(RunLockedError, match="another"),
        RunDir(tmp_path / "out").locked(),
    ):
        pass


def test_two_concurrent_processes_the_second_refuses_with_one_line(tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    answer = answer_by_image(scripted_answers(truth))
    with OllamaDouble(answer=answer, latency=0.3) as double:
        out = tmp_path / "out"
        first = start_run(root, double.url, out, tmp_path / "cache")
        double.wait_until(lambda: len(double.chat_requests) >= 1, timeout=20)
        second = start_run(root, double.url, out, tmp_path / "cache")
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert err.startswith("error: another emoprobe run is writing into")
        assert err.count("\n") == 1
        assert first.wait(timeout=60) == 0


def test_two_runs_sharing_one_cache_are_both_correct(tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=4)
    with OllamaDouble(
        answer=answer_by_image(scripted_answers(truth)), latency=0.01, parallel=2
    ) as double:
        runs = [
            start_run(root, double.url, tmp_path / f"out{i}", tmp_path / "cache") for i in range(2)
        ]
        for process in runs:
            assert process.wait(timeout=60) == 0, process.stderr.read()
    assert comparable(tmp_path / "out0") == comparable(tmp_path / "out1")
    assert len(comparable(tmp_path / "out0")) == len(truth)


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_ctrl_c_says_how_to_resume(tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=4)
    with OllamaDouble(latency=0.2) as double:
        process = start_run(root, double.url, tmp_path / "out", tmp_path / "cache")
        double.wait_until(lambda: len(double.chat_requests) >= 2, timeout=20)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == (
        "error: interrupted; run the same command again to resume"
    )


def test_answers_still_queued_at_an_interrupt_are_cached_not_asked_again(tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=4)  # 20 images

    with OllamaDouble() as double:

        def asked() -> list[str]:
            return [image_sha256s(r)[-1] for r in double.chat_requests if r.get("messages")]

        class InterruptAfterOthersAnswered(emoprobe.RunEvents):
            def row_written(self, row: Row) -> None:  # the main thread, blocked at row one
                assert double.wait_until(lambda: len(asked()) >= 6, timeout=30)
                time.sleep(0.3)  # the workers hand their answers on
                raise KeyboardInterrupt

        config = emoprobe.RunConfig(
            dataset=root, host=double.url, out=tmp_path / "o", cache_dir=tmp_path / "c",
            concurrency=4,
        )  # fmt: skip
        with pytest.raises(KeyboardInterrupt):
            emoprobe.run(config, InterruptAfterOthersAnswered())
        first = asked()
        assert len(first) >= 6
        result = emoprobe.run(config)
        again = asked()[len(first) :]
    assert result.complete
    assert not set(again) & set(first)  # every answer given before the interrupt was kept
    assert sorted(first + again) == sorted(set(first + again))

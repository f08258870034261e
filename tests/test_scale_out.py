"""Several hosts in one run, and OpenAI-compatible servers, through `emoprobe run`."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import pytest
from factories import make_image_folder, scripted_answers
from ollama_double import ModelSpec, OllamaDouble, answer_by_image
from openai_double import OpenAIDouble
from openai_double import answer_by_image as openai_answer_by_image

from emoprobe.task.definition import PAPER_TASK


def answers_of(out: Path) -> dict[str, tuple[str, str, str]]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["path"] for row in rows}) == len(rows)
    return {row["path"]: (row["prediction"], row["raw"], row["status"]) for row in rows}


@pytest.fixture
def study(tmp_path: Path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=6)
    return root, answer_by_image(scripted_answers(truth))


def chats(double) -> int:
    return len([body for body in double.chat_requests if body.get("messages")])


def test_two_hosts_share_the_work_and_give_the_one_host_results(cli, study, tmp_path):
    root, answer = study
    with OllamaDouble(answer=answer, latency=0.03) as one:
        alone = cli(
            "run",
            root,
            "--host",
            one.url,
            "--out",
            tmp_path / "one",
            "--cache-dir",
            tmp_path / "c1",
            "--quiet",
        )
        assert alone.exit_code == 0, alone.output
    with (
        OllamaDouble(answer=answer, latency=0.03) as a,
        OllamaDouble(answer=answer, latency=0.03) as b,
    ):
        both = cli(
            "run",
            root,
            "--host",
            a.url,
            "--host",
            b.url,
            "--out",
            tmp_path / "two",
            "--cache-dir",
            tmp_path / "c2",
            "--quiet",
        )
        assert both.exit_code == 0, both.output
        assert chats(a) >= 8 and chats(b) >= 8
        assert chats(a) + chats(b) == 30
        assert a.max_in_flight <= 2 and b.max_in_flight <= 2
    assert answers_of(tmp_path / "two") == answers_of(tmp_path / "one")
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    served = {host["url"]: host["images"] for host in manifest["sessions"][-1]["hosts"]}
    assert served == {a.url: chats(a), b.url: chats(b)}
    assert manifest["server"]["hosts"] == [a.url, b.url]
    assert "Servers that shared the work" in (tmp_path / "two" / "report.md").read_text()


def test_a_failing_host_is_left_alone_and_its_images_go_to_the_other(cli, study, tmp_path):
    root, answer = study
    with (
        OllamaDouble(answer=answer, latency=0.02) as good,
        OllamaDouble(answer=answer, latency=0.02) as bad,
    ):
        with OllamaDouble(answer=answer) as reference:
            cli(
                "run",
                root,
                "--host",
                reference.url,
                "--out",
                tmp_path / "ref",
                "--cache-dir",
                tmp_path / "c0",
                "--quiet",
            )
        bad.inject("http500")
        result = cli(
            "run",
            root,
            "--host",
            good.url,
            "--host",
            bad.url,
            "--out",
            tmp_path / "out",
            "--backoff",
            "0.2",
            "--quiet",
        )
        assert result.exit_code == 0, result.output
        assert chats(good) == 30
        assert 1 <= chats(bad) <= 6  # tried, then cooled down; probed, not flooded
    assert answers_of(tmp_path / "out") == answers_of(tmp_path / "ref")
    hosts = json.loads((tmp_path / "out" / "manifest.json").read_text())["sessions"][-1]["hosts"]
    assert {h["url"]: h["images"] for h in hosts} == {good.url: 30, bad.url: 0}


def test_a_host_that_dies_mid_run_is_tried_again_when_it_comes_back(cli, study, tmp_path):
    root, answer = study
    with (
        OllamaDouble(answer=answer, latency=0.05) as steady,
        OllamaDouble(answer=answer, latency=0.05) as flaky,
    ):

        def bounce() -> None:
            flaky.wait_until(lambda: len(flaky.chat_requests) >= 2, timeout=10)
            flaky.stop()
            time.sleep(0.4)
            flaky.start()

        thread = threading.Thread(target=bounce)
        thread.start()
        result = cli(
            "run",
            root,
            "--host",
            steady.url,
            "--host",
            flaky.url,
            "--out",
            tmp_path / "out",
            "--backoff",
            "0.1",
            "--quiet",
        )
        thread.join()
    assert result.exit_code == 0, result.output
    assert len(answers_of(tmp_path / "out")) == 30


def test_hosts_serving_different_builds_are_refused(cli, study, tmp_path):
    root, answer = study
    other = [
        ModelSpec(
            name="qwen2.5vl:7b",
            digest="e" * 64,
            family="qwen25vl",
            capabilities=["completion", "vision"],
        )
    ]
    with OllamaDouble(answer=answer) as a, OllamaDouble(models=other, answer=answer) as b:
        result = cli("run", root, "--host", a.url, "--host", b.url, "--out", tmp_path / "out")
        assert chats(a) == chats(b) == 0
    assert result.exit_code == 1
    assert "serve different builds of qwen2.5vl:7b" in result.stderr
    assert result.stderr.count("\n") == 1


def test_remote_hosts_still_need_allow_remote(cli, study, tmp_path):
    root, _ = study
    with OllamaDouble() as local:
        result = cli(
            "run",
            root,
            "--host",
            local.url,
            "--host",
            "http://10.1.2.3:11434",
            "--out",
            tmp_path / "out",
        )
    assert result.exit_code == 1 and "--allow-remote" in result.stderr


# -- OpenAI-compatible servers --------------------------------------------------------------
MODEL_ID = "Qwen/Qwen2.5-VL-7B-Instruct"


def test_an_openai_compatible_server_runs_the_same_study_without_native_calls(cli, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    answers = scripted_answers(truth)
    with OpenAIDouble(answer=openai_answer_by_image(answers)) as vllm:
        result = cli(
            "run",
            root,
            "--backend",
            "openai",
            "--host",
            f"{vllm.url}/v1",
            "--model",
            MODEL_ID,
            "--out",
            tmp_path / "out",
            "--quiet",
        )
        paths = [record.path for record in vllm.requests]
        bodies = list(vllm.chat_requests)
    assert result.exit_code == 0, result.output
    assert not [path for path in paths if path.startswith("/api/")]
    assert len(bodies) == 10
    assert bodies[0]["messages"][0] == {"role": "system", "content": PAPER_TASK.system_prompt}
    image_part = bodies[0]["messages"][1]["content"][-1]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert bodies[0]["temperature"] == 0 and bodies[0]["max_tokens"] == 32
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n"] == 10
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["backend"] == "openai" and manifest["model"]["backend"] == "openai"


def test_an_openai_api_key_comes_from_the_environment(cli, tmp_path, monkeypatch):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    with OpenAIDouble(api_key="sekrit") as vllm:
        refused = cli(
            "run",
            root,
            "--backend",
            "openai",
            "--host",
            f"{vllm.url}/v1",
            "--model",
            MODEL_ID,
            "--out",
            tmp_path / "o1",
        )
        monkeypatch.setenv("OPENAI_API_KEY", "sekrit")
        accepted = cli(
            "run",
            root,
            "--backend",
            "openai",
            "--host",
            f"{vllm.url}/v1",
            "--model",
            MODEL_ID,
            "--out",
            tmp_path / "o2",
            "--quiet",
        )
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert "sekrit" not in refused.output
    assert accepted.exit_code == 0, accepted.output


def test_an_openai_model_that_is_not_served_is_one_line(cli, tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    with OpenAIDouble() as vllm:
        result = cli(
            "run",
            root,
            "--backend",
            "openai",
            "--host",
            f"{vllm.url}/v1",
            "--model",
            "nope",
            "--out",
            tmp_path / "o",
        )
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert MODEL_ID in result.stderr


def test_options_an_openai_server_cannot_take_are_named(cli, tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    with OpenAIDouble() as vllm:
        result = cli(
            "run",
            root,
            "--backend",
            "openai",
            "--host",
            f"{vllm.url}/v1",
            "--model",
            MODEL_ID,
            "--option",
            "num_ctx=4096",
            "--out",
            tmp_path / "o",
            "--quiet",
        )
        assert "num_ctx" not in json.dumps(vllm.chat_requests)
    assert result.exit_code == 0, result.output
    assert "warning: an OpenAI-compatible server takes no num_ctx" in result.stderr

"""Runs that end and reads that stay bounded, whatever the server does (issue 16, 1-4, 9).

Servers that die, fail every request, trickle, hang, flood or bomb; the run must end with
the right status, keep what it has, and read no more than its caps. No timings are
asserted: `ended()` only guards against a run that never ends at all.
"""

from __future__ import annotations

import csv
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from factories import make_image_folder
from hostile_server import MODEL, HostileServer
from ollama_double import OllamaDouble, image_sha256s

from emoprobe.backends.base import MAX_ANSWER_CHARS
from emoprobe.backends.bounded import MAX_REPLY_BYTES

GUARD_S = 100.0  # not a timing assertion: a run that never ends must fail, not hang
SLACK = 8 * 1024 * 1024  # socket buffers between the server's writes and the client's reads


def ended(cli: Any, *args: object) -> Result:
    """`cli(*args)`, failing (instead of hanging the suite) if the command never ends."""
    outcome: list[Result] = []
    thread = threading.Thread(target=lambda: outcome.append(cli(*args)), daemon=True)
    thread.start()
    thread.join(GUARD_S)
    assert outcome, f"emoprobe {' '.join(map(str, args[:1]))} never ended"
    return outcome[0]


def rows(out: Path) -> list[dict[str, str]]:
    path = out / "predictions.csv"
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=3)  # 15 images
    return root


FAST = ["--backoff", "0.02", "--quiet"]


# -- 1. a server that dies and stays down --------------------------------------------------
@pytest.mark.parametrize("retries", ["0", "3"])
def test_a_server_that_dies_and_stays_down_ends_the_run_resumably(cli, faces, tmp_path, retries):
    double = OllamaDouble().start()
    double.latency = 0.02
    watcher = threading.Thread(
        target=lambda: (
            double.wait_until(lambda: len(double.chat_requests) >= 5, timeout=30),
            double.stop(),
        )
    )
    watcher.start()
    out = tmp_path / "out"
    args = ["run", faces, "--host", double.url, "--out", out, "--timeout", "0.5"]
    result = ended(cli, *args, "--retries", retries, *FAST)
    watcher.join()
    assert result.exit_code == 3, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert re.search(r"no server has answered since \d\d:\d\d; stopping", last), last
    assert "run the same command again" in last
    kept = rows(out)
    assert 1 <= len(kept) < 15 and all(row["status"] == "ok" for row in kept)

    double.start()  # back up: the run resumes where it stopped
    try:
        again = ended(cli, *args, *FAST)
    finally:
        double.stop()
    assert again.exit_code == 0, again.output
    assert sorted(row["path"] for row in rows(out)) == sorted(
        str(path.relative_to(faces)) for path in faces.rglob("*.png")
    )


# -- 2. a live server that fails every request ---------------------------------------------
def test_a_live_server_failing_every_request_stops_after_ten_images_without_retrying_each(
    cli, faces, tmp_path, ollama_double
):
    ollama_double.inject("http500")
    out = tmp_path / "out"
    result = ended(
        cli, "run", faces, "--host", ollama_double.url, "--out", out, "--retries", "3", *FAST
    )
    assert result.exit_code == 3, result.output
    assert "stopped after 10 images in a row failed" in result.stderr
    # the preload, then the same failure until it outlasts one image's 4 tries, then one
    # try for each image, give or take the second slot (today: 4 tries for every image,
    # over 40 requests with ever longer cooldowns)
    assert len(ollama_double.chat_requests) <= 1 + 5 + 10 + 2
    assert rows(out) == []


def test_a_model_that_cannot_load_fails_the_run_at_once(cli, faces, tmp_path):
    with OllamaDouble(version="0.34.1") as double:
        result = ended(
            cli, "run", faces, "--host", double.url, "--model", "llama3.2-vision:11b",
            "--out", tmp_path / "out", *FAST,
        )  # fmt: skip
        assert result.exit_code != 0, result.output
        assert len(double.chat_requests) <= 1 + 5 + 10 + 2
    assert "Traceback" not in result.output


# -- 3. --timeout bounds each request as a whole -------------------------------------------
@pytest.mark.parametrize("kind", ["trickle", "slow_headers", "hang"])
def test_the_timeout_bounds_a_chat_that_trickles_or_hangs(cli, faces, tmp_path, kind):
    with HostileServer(chat=kind) as server:
        result = ended(
            cli, "run", faces, "--host", server.url, "--model", MODEL, "--out", tmp_path / "o",
            "--timeout", "0.4", "--retries", "0", *FAST,
        )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "timed out after 0.4s" in result.stderr
    assert rows(tmp_path / "o") == []


def test_the_timeout_bounds_a_model_load_that_hangs(cli, faces, tmp_path):
    with HostileServer(load="hang") as server:
        result = ended(
            cli, "run", faces, "--host", server.url, "--model", MODEL, "--out", tmp_path / "o",
            "--timeout", "0.4", *FAST,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "could not preload" in result.stderr and "timed out after 0.4s" in result.stderr
    assert len(rows(tmp_path / "o")) == 15


@pytest.mark.parametrize("kind", ["trickle", "slow_headers"])
def test_classify_keeps_to_the_timeout(cli, faces, kind):
    image = next(faces.rglob("*.png"))
    with HostileServer(chat=kind) as server:
        result = ended(
            cli, "classify", image, "--host", server.url, "--model", MODEL,
            "--timeout", "0.4", "--retries", "1",
        )  # fmt: skip
    assert result.exit_code != 0, result.output
    assert "timed out after 0.4s" in result.output


# -- 4. the window adapts to a busy server -------------------------------------------------
def test_a_wide_window_against_one_slot_shrinks_on_busy_replies_and_finishes(cli, tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=12)  # 60 images
    with OllamaDouble(parallel=1, max_queue=3) as double:
        double.latency = 0.01
        result = ended(
            cli, "run", root, "--host", double.url, "--out", tmp_path / "o",
            "--concurrency", "32", "--backoff", "0.01", "--quiet",
        )  # fmt: skip
        busy = sum(record.status == 503 for record in double.requests)
    assert result.exit_code == 0, result.output
    assert len(rows(tmp_path / "o")) == 60
    # the first burst halves the window down to 1; then it grows back, one over the
    # server's 4 places now and then (today: a busy reply for most images, several each)
    assert busy <= 28 + 20, busy


def test_a_server_busy_for_ever_ends_the_run(cli, faces, tmp_path, ollama_double):
    ollama_double.inject("busy503")
    result = ended(
        cli, "run", faces, "--host", ollama_double.url, "--out", tmp_path / "o",
        "--concurrency", "8", "--timeout", "1", *FAST,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "images in a row failed" in last or "no server has answered since" in last, last
    assert len(ollama_double.chat_requests) <= 1 + 4 * 15


# -- 9. bounded reads --------------------------------------------------------------------
def _bounded(server: HostileServer) -> None:
    assert server.bytes_sent, "the server was never asked"
    assert max(server.bytes_sent) <= MAX_REPLY_BYTES + SLACK, server.bytes_sent


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("huge", "larger than 16 MiB"),
        ("gzip_bomb", "compressed its reply (gzip)"),
        ("endless_header", "GET /api/version: the reply's headers are longer than 100 KiB"),
    ],
)
def test_a_version_reply_that_floods_is_one_line_and_read_no_further(
    cli, faces, tmp_path, kind, message
):
    with HostileServer(version=kind) as server:
        result = ended(
            cli, "run", faces, "--host", server.url, "--model", MODEL, "--out", tmp_path / "o",
            "--timeout", "5",
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    _bounded(server)


def test_a_chat_line_that_never_ends_fails_its_images_with_bounded_reads(cli, faces, tmp_path):
    with HostileServer(chat="endless_line") as server:
        result = ended(
            cli, "run", faces, "--host", server.url, "--model", MODEL, "--out", tmp_path / "o",
            "--timeout", "30", "--retries", "0", *FAST,
        )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "larger than 16 MiB" in result.stderr
    _bounded(server)


def test_chunks_that_never_say_done_are_cut_off_as_truncated(cli, faces, tmp_path):
    out = tmp_path / "o"
    with HostileServer(chat="never_done") as server:
        result = ended(
            cli, "run", faces, "--host", server.url, "--model", MODEL, "--out", out,
            "--timeout", "30", *FAST,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = rows(out)
    assert len(written) == 15
    assert {row["status"] for row in written} == {"truncated"}
    assert {row["prediction"] for row in written} == {"unparsed"}
    assert all(len(row["raw"]) == MAX_ANSWER_CHARS for row in written)
    _bounded(server)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "ok 0, unparsed 0, refused 0, truncated 15" in report


# -- #17.1 one connection per in-flight slot -------------------------------------------------
def test_connections_are_kept_alive_one_per_slot(cli, tmp_path, ollama_double):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=40)  # 200 images
    result = cli(
        "run", root, "--host", ollama_double.url, "--out", tmp_path / "o",
        "--concurrency", "3", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    chats = [record for record in ollama_double.requests if record.path == "/api/chat"]
    assert len(chats) >= 200
    ports = {record.peer for record in ollama_double.requests}
    assert len(ports) <= 3 + 1, len(ports)  # today: one connection per request


def test_the_openai_backend_keeps_to_the_same_caps():
    from emoprobe.backends.openai import OpenAIBackend
    from emoprobe.errors import BackendError

    with HostileServer(**{"/v1/models": "huge"}) as server:
        backend = OpenAIBackend(server.url, timeout=5)
        try:
            with pytest.raises(BackendError, match="larger than 16 MiB"):
                backend.describe("some-model")
        finally:
            backend.close()
    _bounded(server)


def test_a_host_failing_for_good_does_not_fail_images_another_host_can_answer(cli, tmp_path):
    root = tmp_path / "faces"
    make_image_folder(root, per_label=8)  # 40 images
    with OllamaDouble(latency=0.1) as good, OllamaDouble(latency=0.1) as bad:
        bad.inject("http500")
        result = ended(
            cli, "run", root, "--host", good.url, "--host", bad.url, "--out", tmp_path / "o",
            *FAST,
        )  # fmt: skip
        assert len(bad.chat_requests) > 1 + 5  # it failed the same way past one image's tries
        tried = [image_sha256s(asked)[-1] for asked in bad.chat_requests if asked.get("messages")]
    assert len(tried) == len(set(tried))  # an image it failed went to the host that answers
    assert result.exit_code == 0, result.output
    assert len(rows(tmp_path / "o")) == 40

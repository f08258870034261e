"""emoprobe against today's Ollama (0.34) beside the 0.13 it was built on (issue 14).

Every main path (run, classify, doctor, models) against both behaviours of the double:
mllama refused before the first image on >= 0.30 and its load error fatal whatever the
version says, think:false for thinking models, image tokens by the family's rule, the
in-flight window the server really runs, the quantized half of the weights, no
redirects, and OLLAMA_HOST=0.0.0.0 as this machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from factories import make_image_folder
from ollama_double import (
    CURRENT_MODELS,
    DEFAULT_MODELS,
    MLLAMA_LOAD_MESSAGE,
    OllamaDouble,
)

from emoprobe.backends.ollama import OllamaBackend
from emoprobe.errors import ModelUnservable, ServerRedirected
from emoprobe.pipeline.probe import Outcome, Probe

OLD, NEW = "0.13.0", "0.34.1"
MODELS = (*DEFAULT_MODELS, *CURRENT_MODELS)
LLAMA_BASE = DEFAULT_MODELS[1].renamed("llama3.2-vision:11b-instruct-q4_K_M")
LIBRARY = (*MODELS, LLAMA_BASE)


@pytest.fixture(params=[OLD, NEW])
def double(request: pytest.FixtureRequest) -> Iterator[OllamaDouble]:
    with OllamaDouble(models=MODELS, library=LIBRARY, version=request.param) as server:
        server.answer = lambda body: "happy"
        yield server


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    return root


def image_chats(double: OllamaDouble) -> list[dict]:
    return [body for body in double.chat_requests if body.get("messages")]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


# -- 1. know the server ----------------------------------------------------------------
def test_llama_vision_on_a_current_server_stops_before_the_first_image(cli, faces, tmp_path):
    with OllamaDouble(models=MODELS, version=NEW) as double:
        out = tmp_path / "out"
        result = cli(
            "run", faces, "--model", "llama3.2-vision:11b", "--host", double.url, "--out", out
        )
        assert image_chats(double) == []
        assert not any(r.path == "/api/chat" for r in double.requests)  # not even a load
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Ollama 0.34.1 cannot run mllama models" in lines[0]
    assert "an Ollama 0.24.x server" in lines[0]  # way out 1 (no 0.25-0.29 release exists)
    assert "vLLM" in lines[0] and "openai backend" in lines[0] and "--backend" in lines[0]
    assert not (out / "predictions.csv").exists()


def test_llama_vision_still_runs_on_0_13(cli, faces, tmp_path):
    with OllamaDouble(models=MODELS, version=OLD) as double:
        double.answer = lambda body: "happy"
        result = cli(
            "run",
            faces,
            "--model",
            "llama3.2-vision:11b",
            "--host",
            double.url,
            "--out",
            tmp_path / "out",
            "--quiet",
        )
    assert result.exit_code == 0, result.output


def test_the_load_error_is_fatal_whatever_the_version_says(cli, faces, tmp_path):
    """A server that says 0.13 but answers llama-server's mllama error: not retried."""
    with OllamaDouble(models=MODELS, version=OLD) as double:
        double.answer = lambda body: "happy"
        double.inject("http500", message=MLLAMA_LOAD_MESSAGE, on={3})
        out = tmp_path / "out"
        result = cli(
            "run",
            faces,
            "--model",
            "llama3.2-vision:11b",
            "--host",
            double.url,
            "--out",
            out,
            "--concurrency",
            "1",
            "--retries",
            "3",
        )
        sent = len(image_chats(double))
    assert result.exit_code == 1
    assert sent == 4  # three answered, the fourth failed once and was not retried
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot run llama3.2-vision:11b" in last and "unknown model architecture" in last
    assert "0.24.x" in last and "server error" not in last
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # what was answered is kept


def test_the_backend_names_the_load_error_unservable():
    with OllamaDouble(models=MODELS, version=NEW) as double:
        backend = OllamaBackend(double.url, timeout=5)
        try:
            with pytest.raises(ModelUnservable, match=r"0\.24\.x"):
                backend.load("llama3.2-vision:11b")
            with pytest.raises(ModelUnservable):
                backend.describe("llama3.2-vision:11b")
        finally:
            backend.close()


def test_an_unparsable_server_version_is_one_warning_and_the_run_goes_on(cli, faces, tmp_path):
    with OllamaDouble(models=MODELS, version="nightly") as double:
        double.answer = lambda body: "happy"
        result = cli("run", faces, "--host", double.url, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "'nightly'" in line]
    assert len(warned) == 1 and "cannot parse the server version" in warned[0]


def test_a_model_without_capabilities_is_one_warning(cli, faces, tmp_path):
    from ollama_double import ModelSpec

    bare = ModelSpec(name="oldvision:1b", family="clip", capabilities=[])
    with OllamaDouble(models=[bare], version=OLD) as double:
        double.answer = lambda body: "happy"
        result = cli(
            "run", faces, "--model", "oldvision:1b", "--host", double.url, "--out", tmp_path / "o"
        )
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "no capabilities" in line]
    assert len(warned) == 1


# -- 2. thinking off by default ----------------------------------------------------------
def test_a_thinking_model_gets_think_false(cli, double, faces, tmp_path):
    out = tmp_path / "out"
    result = cli("run", faces, "--model", "qwen3-vl:8b", "--host", double.url, "--out", out)
    assert result.exit_code == 0, result.output
    bodies = image_chats(double)
    assert bodies and all(body.get("think") is False for body in bodies)
    rows = (out / "predictions.csv").read_text()
    assert ",ok," in rows
    report = (out / "report.md").read_text()
    assert "| thinking | off (think: false sent) |" in report


def test_a_model_that_cannot_think_gets_no_think_field(cli, double, faces, tmp_path):
    result = cli("run", faces, "--host", double.url, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    assert all("think" not in body for body in image_chats(double))


def test_think_on_by_option_reports_the_thinking_text(double, faces):
    image = next(faces.rglob("*.png"))
    with Probe.open("qwen3-vl:8b", double.url, options={"num_predict": 400, "think": True}) as p:
        job = p.prepare(0, image)
        assert not isinstance(job, Outcome) and p.backend is not None
        answer = p.send(job, p.backend).answer
        result = p.classify(image)  # from the cache now
    assert result.label == "happy" and result.cached
    assert answer is not None and answer.thinking_chars > 100  # the double's thinking text
    cached = p.cache.answer(job.key)
    assert cached is not None and cached.thinking_chars == answer.thinking_chars
    assert all(body.get("think") is True for body in image_chats(double))


def test_think_on_a_model_that_cannot_think_is_one_line(cli, double, faces, tmp_path):
    result = cli(
        "run", faces, "--host", double.url, "--out", tmp_path / "out", "--option", "think=true"
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "qwen2.5vl:7b cannot think" in result.stderr and "--option" in result.stderr
    assert image_chats(double) == []


def test_an_unknown_think_value_is_one_line_before_any_image(cli, faces, tmp_path):
    with OllamaDouble(models=MODELS, version=OLD) as double:
        double.answer = lambda body: "happy"
        result = cli(
            "run",
            faces,
            "--model",
            "qwen3-vl:8b",
            "--host",
            double.url,
            "--out",
            tmp_path / "out",
            "--option",
            "think=max",
        )
    assert result.exit_code == 1
    assert "think must be true, false, low, medium or high" in result.stderr


def test_a_think_the_server_refuses_is_fatal_in_one_line(cli, faces, tmp_path):
    """A model whose /api/show lists no capabilities: emoprobe cannot check; the server
    refuses think:true with 400, and the run stops at once instead of failing per image."""
    from ollama_double import ModelSpec

    bare = ModelSpec(name="oldvision:1b", family="clip", capabilities=[])
    with OllamaDouble(models=[bare], version=OLD) as double:
        result = cli(
            "run",
            faces,
            "--model",
            "oldvision:1b",
            "--host",
            double.url,
            "--out",
            tmp_path / "out",
            "--option",
            "think=true",
        )
        sent = len(image_chats(double))
    assert result.exit_code == 1
    assert sent == 0  # refused at the load, before the first image
    last = result.stderr.strip().splitlines()[-1]
    assert "the server refused the think setting for oldvision:1b" in last
    assert "does not support thinking" in last


# -- 3. image tokens -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "old", "new"),
    [
        # 24x16 px faces: the Qwen-VL floor lifts them to >= 1,024 tokens from 0.30.
        ("qwen3-vl:8b-instruct-q8_0", "32×32 pixels after resizing, 64 to", "1,024 to 16,384"),
        ("qwen2.5vl:7b", "28×28 pixels after resizing, 4 to 1,280", "1,024 to 4,096"),
        ("gemma3:4b", "256 per image, whatever its size", "256 per image, whatever its size"),
    ],
)
def test_image_tokens_follow_the_family_rule(cli, double, faces, tmp_path, model, old, new):
    out = tmp_path / "out"
    result = cli("run", faces, "--model", model, "--host", double.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert (new if double.version == NEW else old) in report
    # The double counts image tokens by its own code: the report's figure must match it.
    spec = double.models[model]
    image = next(faces.rglob("*.png")).read_bytes()
    expected = double.image_token_count(spec, image)
    assert f"about {expected:,} per image sent (5 of 5 requests)" in report
    assert expected >= (1024 if double.version == NEW and "qwen" in model else 1)
    counted = manifest(out)["sessions"][0]["prompt_eval_count"] / 5
    assert f"The server counted {counted:,.0f} prompt tokens per request" in report


def test_a_context_too_small_for_the_image_is_one_warning(cli, faces, tmp_path):
    with OllamaDouble(models=MODELS, version=NEW) as double:
        double.answer = lambda body: "happy"
        result = cli(
            "run",
            faces,
            "--model",
            "qwen3-vl:8b-instruct-q4_K_M",
            "--host",
            double.url,
            "--out",
            tmp_path / "out",
            "--option",
            "num_ctx=1024",
        )
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "num_ctx" in line]
    assert len(warned) == 1
    assert "(1,080 image tokens)" in warned[0] and "--option num_ctx=2048" in warned[0]
    assert "context of 1,024" in warned[0]


# -- 4. concurrency that matches the server ----------------------------------------------
@pytest.mark.parametrize(
    ("model", "window"), [("qwen3-vl:8b-instruct-q4_K_M", 1), ("gemma3:4b", 3)]
)
def test_the_window_follows_the_servers_slots(cli, double, faces, tmp_path, model, window):
    out = tmp_path / "out"
    result = cli(
        "run",
        faces,
        "--model",
        model,
        "--host",
        double.url,
        "--out",
        out,
        "--concurrency",
        "3",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    request = manifest(out)["request"]
    assert request["concurrency"] == 3 and request["in_flight"] == window
    report = (out / "report.md").read_text()
    assert f"({window} requests in flight per host)" in report
    if window == 1:
        assert "runs qwen3vl one request at a time" in report


# -- 6. quantization stated ------------------------------------------------------------
def test_the_report_says_which_weights_the_quantization_changes(cli, double, faces, tmp_path):
    runs = []
    for model in ("qwen3-vl:8b-instruct-q4_K_M", "qwen3-vl:8b-instruct-q8_0", "qwen2.5vl:7b"):
        out = tmp_path / model.replace(":", "-")
        result = cli("run", faces, "--model", model, "--host", double.url, "--out", out, "--quiet")
        assert result.exit_code == 0, result.output
        runs.append(out)
    q4, q8, old = ((out / "report.md").read_text() for out in runs)
    assert "the language model only (Q4_K); the vision tower stays F16" in q4
    assert "the language model only (Q8_0); the vision tower stays F16" in q8
    assert "| weights quantization changes | unknown (the server listed no tensor types) |" in old
    compared = cli("compare", runs[0], runs[1], "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.output
    text = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "weights quantization changes: the language model only (Q4_K)" in text


# -- classify, doctor, models against both ----------------------------------------------
def test_classify_against_both(cli, double, faces):
    images = sorted(faces.rglob("*.png"))[:2]
    result = cli("classify", *images, "--model", "gemma3:4b", "--host", double.url)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2 and "happy  (answer" in result.stdout
    refused = cli("classify", images[0], "--model", "llama3.2-vision:11b", "--host", double.url)
    if double.version == NEW:
        assert refused.exit_code == 1 and "0.24.x" in refused.stderr
        assert refused.stderr.count("\n") == 1
    else:
        assert refused.exit_code == 0, refused.output


def test_doctor_against_both(cli, double, tmp_path):
    built = cli("models", "build", "llama3.2-vision-q4", "--host", double.url)
    assert built.exit_code == 0, built.output
    notes = [line for line in built.stderr.splitlines() if line.startswith("note:")]
    if double.version == NEW:
        assert len(notes) == 1 and "cannot run mllama" in notes[0] and "0.24.x" in notes[0]
    else:
        assert notes == []
    assert cli("models", "build", "qwen3-vl-q4", "--host", double.url).exit_code == 0
    result = cli("doctor", "--host", double.url, "--cache-dir", tmp_path / "c")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    builds = [line for line in lines if " build " in f" {line.split(None, 2)[1]} "]
    llama = [line for line in builds if "emoprobe-llama3.2-vision:11b-q4_K_M" in line]
    qwen3 = [line for line in builds if "emoprobe-qwen3-vl:8b-q4_K_M" in line]
    assert qwen3 == ["✓ build     emoprobe-qwen3-vl:8b-q4_K_M (qwen3-vl-q4): built, reads images"]
    features = next(line for line in lines if " features " in line)
    if double.version == NEW:
        assert llama[0].startswith("✗") and "cannot run mllama" in llama[0]
        assert "0.24.x" in llama[0]
        assert sum("cannot run mllama" in line for line in builds) == 3  # per build
        assert "GGUF models run in llama-server" in features
        assert "Qwen-VL images cost at least 1,024 tokens" in features
        assert "cannot load mllama" in features
        assert "ready: emoprobe run DATASET --model emoprobe-qwen3-vl:8b-q4_K_M" in result.stdout
    else:
        assert llama[0].startswith("✓")
        assert "Go engine" in features and "cannot load" not in features
    print(result.stdout)  # the note's doctor output per behaviour (pytest -s)


def test_models_list_against_both(cli, double):
    result = cli("models", "list", "--host", double.url)
    assert result.exit_code == 0, result.output
    for key in ("qwen3-vl-q4", "qwen3-vl-bf16", "gemma3-q4", "gemma3-fp16"):
        assert f"\n{key} " in result.stdout
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    if double.version == NEW:
        assert len(notes) == 1 and notes[0].startswith(
            "note: llama3.2-vision-q4, llama3.2-vision-q8, llama3.2-vision-fp16: Ollama 0.34.1"
        )
    else:
        assert notes == []


def test_models_pull_and_verify_know_the_new_builds(cli, double):
    assert cli("models", "pull", "gemma3-q4", "--host", double.url).exit_code == 0
    assert cli("models", "build", "gemma3-q4", "--host", double.url).exit_code == 0
    verified = cli("models", "verify", "--host", double.url)
    assert verified.exit_code == 0, verified.output
    assert "emoprobe-gemma3:4b-q4_K_M" in verified.stdout
    from emoprobe.ollama_admin import builds

    entry = builds.Lock.load().entry(builds.find("gemma3-q4"))
    assert entry.source == "https://ollama.com/library/gemma3:4b-it-q4_K_M"
    assert entry.base_digest


# -- 8. no redirects, 0.0.0.0 is local ----------------------------------------------------
class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self._redirect()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._redirect()

    def _redirect(self) -> None:
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[tuple[str, OllamaDouble]]:
    with OllamaDouble(models=MODELS) as elsewhere:
        handler = type("Redirect", (_Redirect,), {"target": elsewhere.url})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", elsewhere
        finally:
            server.shutdown()
            server.server_close()


def test_a_307_never_re_posts_the_image_elsewhere(cli, faces, tmp_path, redirecting):
    url, elsewhere = redirecting
    result = cli("run", faces, "--host", url, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert elsewhere.requests == []  # nothing followed the redirect, not even /api/version
    assert result.stderr.count("\n") == 1
    assert "HTTP 307, a redirect" in result.stderr and "never follows redirects" in result.stderr


def test_the_backend_refuses_a_redirect_on_chat(redirecting, faces):
    url, elsewhere = redirecting
    backend = OllamaBackend(url, timeout=5)
    from emoprobe.backends.base import ChatRequest

    image = next(faces.rglob("*.png")).read_bytes()
    try:
        with pytest.raises(ServerRedirected, match="307"):
            backend.chat(ChatRequest("qwen2.5vl:7b", "s", "u", image, "image/png"))
        with pytest.raises(ServerRedirected):
            backend.load("qwen2.5vl:7b")
    finally:
        backend.close()
    assert elsewhere.chat_requests == []


def test_ollama_host_0_0_0_0_is_this_machine(cli, faces, tmp_path, monkeypatch):
    with OllamaDouble(models=MODELS) as double:
        double.answer = lambda body: "happy"
        port = double.url.rsplit(":", 1)[1]
        monkeypatch.setenv("OLLAMA_HOST", f"0.0.0.0:{port}")
        result = cli("run", faces, "--out", tmp_path / "out", "--quiet")
        assert result.exit_code == 0, result.output
        assert image_chats(double)

"""The Ollama double, driven by the real `ollama.Client` (and raw httpx where needed)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import pydantic
import pytest
from ollama_double import (
    BUSY_MESSAGE,
    DEFAULT_MODELS,
    FAULT_KINDS,
    ModelSpec,
    NotOllamaServer,
    OllamaDouble,
    answer_by_image,
    image_sha256s,
    normalize_model_name,
)

VISION = "qwen2.5vl:7b"
IMAGE_HAPPY = b"\x89PNG\r\n\x1a\n fake happy face"
IMAGE_SAD = b"\x89PNG\r\n\x1a\n fake sad face"
SHA_HAPPY = hashlib.sha256(IMAGE_HAPPY).hexdigest()
SHA_SAD = hashlib.sha256(IMAGE_SAD).hexdigest()
TIMINGS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def ask(image: bytes = IMAGE_HAPPY, text: str = "Which emotion? One word.") -> list[dict]:
    return [{"role": "user", "content": text, "images": [image]}]


@pytest.fixture
def client(ollama_double: OllamaDouble) -> Iterator[ollama.Client]:
    with ollama.Client(host=ollama_double.url, timeout=5) as c:
        yield c


def _consume(parts: Iterator[ollama.ChatResponse]) -> list[ollama.ChatResponse]:
    return list(parts)


# --------------------------------------------------------------------------- plumbing
def test_fixtures_isolate_environment(isolated_env, ollama_double: OllamaDouble) -> None:
    assert os.environ["EMOPROBE_CACHE_DIR"] == str(isolated_env)
    assert isolated_env.name == "cache"
    for name in ("OLLAMA_HOST", "HTTP_PROXY", "https_proxy", "ALL_PROXY"):
        assert name not in os.environ
    assert ollama_double.running
    assert ollama_double.url == f"http://127.0.0.1:{ollama_double.port}"
    assert set(ollama_double.models) == {spec.name for spec in DEFAULT_MODELS}


def test_version_get_and_head(ollama_double: OllamaDouble) -> None:
    with httpx.Client(base_url=ollama_double.url, trust_env=False) as http:
        response = http.get("/api/version")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.headers["content-length"] == str(len(response.content))
        assert response.json() == {"version": "0.13.0"}
        head = http.head("/api/version")
        assert head.status_code == 200
        assert head.content == b""
        root = http.get("/")
        assert root.text == "Ollama is running"
        # keep-alive: every request came over one connection
        assert len({record.peer for record in ollama_double.requests}) == 1


def test_unknown_path_and_wrong_method_like_gin(ollama_double: OllamaDouble) -> None:
    with httpx.Client(base_url=ollama_double.url, trust_env=False) as http:
        missing = http.get("/api/nothing-here")
        assert (missing.status_code, missing.text) == (404, "404 page not found")
        assert missing.headers["content-type"] == "text/plain"
        wrong = http.get("/api/chat")
        assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_list(client: ollama.Client) -> None:
    listing = client.list()
    names = {entry.model for entry in listing.models}
    assert names == {"qwen2.5vl:7b", "llama3.2-vision:11b", "llama3.2:3b"}
    for entry in listing.models:
        assert len(entry.digest) == 64
        assert int(entry.digest, 16) >= 0
        assert entry.details.format == "gguf"
        assert entry.size > 1_000_000_000
        assert entry.modified_at is not None
    vision = next(e for e in listing.models if e.model == "llama3.2-vision:11b")
    assert vision.details.family == "mllama"


def test_show_capabilities_and_details(client: ollama.Client) -> None:
    shown = client.show(VISION)
    assert shown.capabilities == ["completion", "vision"]
    assert shown.details.family == "qwen25vl"
    assert shown.details.parameter_size == "8.3B"
    assert shown.details.quantization_level == "Q4_K_M"
    assert shown.modelinfo["general.architecture"] == "qwen25vl"
    assert shown.modelinfo["general.parameter_count"] == 8_300_000_000
    assert "FROM " in shown.modelfile
    text_only = client.show("llama3.2:3b")
    assert "vision" not in text_only.capabilities


def test_show_missing_model(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("nope:1b")
    assert caught.value.status_code == 404
    assert caught.value.error == "model 'nope:1b' not found"


def test_names_without_tag_mean_latest() -> None:
    assert normalize_model_name("llava") == "llava:latest"
    assert normalize_model_name("registry.ollama.ai/library/llava:7b") == "llava:7b"
    assert normalize_model_name("me/mine") == "me/mine:latest"
    spec = ModelSpec(name="tiny")
    with OllamaDouble(models=[spec]) as double, ollama.Client(host=double.url) as c:
        assert c.show("tiny").details.family == "llama"
        assert c.show("tiny:latest").capabilities == ["completion"]


# --------------------------------------------------------------------------- chat
def test_chat_non_streamed_answers_by_image(client: ollama.Client, ollama_double) -> None:
    ollama_double.answer = answer_by_image({SHA_HAPPY: "happy", SHA_SAD: "sad"})
    reply = client.chat(VISION, ask(IMAGE_HAPPY), stream=False)
    assert reply.message.role == "assistant"
    assert reply.message.content == "happy"
    assert reply.done is True
    assert reply.done_reason == "stop"
    assert all(getattr(reply, name) > 0 for name in TIMINGS)
    assert client.chat(VISION, ask(IMAGE_SAD)).message.content == "sad"
    assert client.chat(VISION, ask(b"unknown face")).message.content == "neutral"
    bodies = ollama_double.chat_requests
    assert len(bodies) == 3
    assert image_sha256s(bodies[0]) == [SHA_HAPPY]
    assert bodies[0]["stream"] is False


def test_chat_streamed(client: ollama.Client, ollama_double: OllamaDouble) -> None:
    ollama_double.answer = lambda request: "The face looks happy"
    parts = _consume(client.chat(VISION, ask(), stream=True))
    assert len(parts) >= 4
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.message.content for p in parts) == "The face looks happy"
    final = parts[-1]
    assert final.done_reason == "stop"
    assert all(getattr(final, name) > 0 for name in TIMINGS)
    assert all(p.model == VISION for p in parts)


def test_stream_is_chunked_ndjson_and_stream_defaults_to_true(ollama_double) -> None:
    body = {"model": VISION, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=ollama_double.url, trust_env=False) as http:
        with http.stream("POST", "/api/chat", json=body) as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            assert response.headers["transfer-encoding"] == "chunked"
            lines = [json.loads(line) for line in response.iter_lines()]
        assert lines[-1]["done"] is True
        assert set(lines[0]) == {"model", "created_at", "message", "done"}
        whole = http.post("/api/chat", json={**body, "stream": False})
        assert "transfer-encoding" not in whole.headers
        assert int(whole.headers["content-length"]) == len(whole.content)


def test_chat_missing_model_is_404(client: ollama.Client) -> None:
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as caught:
            _consume(client.chat("nope:1b", ask(), stream=True)) if stream else client.chat(
                "nope:1b", ask()
            )
        assert caught.value.status_code == 404
        assert caught.value.error == "model 'nope:1b' not found"


def test_chat_bad_requests_raw(ollama_double: OllamaDouble) -> None:
    with httpx.Client(base_url=ollama_double.url, trust_env=False) as http:
        no_model = http.post("/api/chat", json={"messages": [{"role": "user", "content": "x"}]})
        assert (no_model.status_code, no_model.json()) == (400, {"error": "model is required"})
        broken = http.post("/api/chat", content=b"{not json")
        assert broken.status_code == 400
        assert broken.json()["error"].startswith("invalid character")
        empty = http.post("/api/chat", content=b"")
        assert empty.json() == {"error": "missing request body"}
        bad_top = http.post("/api/chat", json={"model": VISION, "top_logprobs": 21})
        assert bad_top.json() == {"error": "top_logprobs must be between 0 and 20"}


def test_num_predict_cuts_words_and_reports_length(client, ollama_double) -> None:
    ollama_double.answer = lambda request: "surprised and a little afraid"
    reply = client.chat(VISION, ask(), options={"num_predict": 2})
    assert reply.message.content == "surprised and"
    assert reply.done_reason == "length"
    parts = _consume(client.chat(VISION, ask(), options={"num_predict": 2}, stream=True))
    assert "".join(p.message.content for p in parts) == "surprised and"
    assert parts[-1].done_reason == "length"


def test_logprobs_are_shaped_like_the_server(client, ollama_double) -> None:
    ollama_double.answer = lambda request: "happy face"
    reply = client.chat(VISION, ask(), logprobs=True, top_logprobs=3)
    assert reply.logprobs
    assert "".join(entry.token for entry in reply.logprobs) == "happy face"
    for entry in reply.logprobs:
        assert entry.logprob < 0
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token
    raw = ollama_double.requests[-1]
    assert raw.json["logprobs"] is True
    parts = _consume(client.chat(VISION, ask(), logprobs=True, stream=True))
    assert all(len(p.logprobs) == 1 for p in parts[:-1])
    assert parts[-1].logprobs is None
    assert parts[0].logprobs[0].top_logprobs is None
    plain = client.chat(VISION, ask())
    assert plain.logprobs is None


def test_empty_chat_loads_and_keep_alive_zero_unloads(client, ollama_double) -> None:
    with httpx.Client(base_url=ollama_double.url, trust_env=False) as http:
        load = http.post("/api/chat", json={"model": VISION, "messages": []})
        assert load.json()["done_reason"] == "load"
        assert [m.model for m in client.ps().models] == [VISION]
        unload = http.post("/api/chat", json={"model": VISION, "keep_alive": 0})
        assert unload.json()["done_reason"] == "unload"
    assert client.ps().models == []
    assert ollama_double.chat_requests == []  # loads are not chat requests


def test_ps_after_chat(client: ollama.Client) -> None:
    assert client.ps().models == []
    client.chat("llama3.2-vision:11b", ask(), keep_alive="10m")
    client.chat("llama3.2:3b", [{"role": "user", "content": "hi"}], keep_alive=-1)
    loaded = client.ps().models
    assert [m.name for m in loaded] == ["llama3.2:3b", "llama3.2-vision:11b"]
    assert loaded[0].expires_at.year > 2200  # keep_alive -1: forever, like the server
    assert loaded[1].size_vram == loaded[1].size
    assert loaded[1].context_length == 4096
    assert loaded[1].details.family == "mllama"


# --------------------------------------------------------------------------- models
def test_pull_streams_progress_and_installs(client: ollama.Client) -> None:
    progress = list(client.pull("llava:7b", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layers = [p for p in progress if p.status.startswith("pulling ") and p.digest]
    assert len({p.digest for p in layers}) >= 3
    for p in layers:
        assert p.digest.startswith("sha256:")
        assert p.status == f"pulling {p.digest[7:19]}"
        assert p.total > 0
    assert layers[-1].completed == layers[-1].total
    assert client.show("llava:7b").capabilities == ["completion", "vision"]
    assert client.pull("gemma3:4b").status == "success"
    assert "gemma3:4b" in {m.model for m in client.list().models}


def test_pull_unknown_model(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.pull("no-such-model:1b", stream=True))
    assert streamed.value.error == "pull model manifest: file does not exist"
    assert streamed.value.status_code == -1  # 200 stream with an error line
    with pytest.raises(ollama.ResponseError) as whole:
        client.pull("no-such-model:1b")
    assert (whole.value.status_code, whole.value.error) == (
        500,
        "pull model manifest: file does not exist",
    )


def test_create_then_show(client: ollama.Client, ollama_double: OllamaDouble) -> None:
    statuses = [
        p.status
        for p in client.create(
            "emo-qwen",
            from_=VISION,
            system="Answer with one emotion word.",
            parameters={"temperature": 0, "seed": 42},
            stream=True,
        )
    ]
    assert statuses[-2:] == ["writing manifest", "success"]
    assert any(s.startswith("using existing layer sha256:") for s in statuses)
    assert any(s.startswith("creating new layer sha256:") for s in statuses)
    shown = client.show("emo-qwen")
    assert shown.capabilities == ["completion", "vision"]
    assert shown.details.family == "qwen25vl"
    assert shown.details.parent_model == VISION
    assert "seed" in shown.parameters
    assert 'SYSTEM """Answer with one emotion word."""' in shown.modelfile
    spec = ollama_double.models["emo-qwen:latest"]
    assert spec.system == "Answer with one emotion word."
    assert spec.parameters.splitlines()[-2:] == ["temperature 0", "seed 42"]
    listed = {m.model: m.digest for m in client.list().models}
    assert listed["emo-qwen:latest"] != listed[VISION]


def test_create_errors(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.create("x", from_="not-installed:1b")
    assert (missing.value.status_code, missing.value.error) == (
        500,
        "pull model manifest: file does not exist",
    )
    with pytest.raises(ollama.ResponseError) as nothing:
        client.create("x")
    assert (nothing.value.status_code, nothing.value.error) == (
        400,
        "neither 'from' or 'files' was specified",
    )


def test_delete_and_copy(client: ollama.Client) -> None:
    assert client.copy(VISION, "backup:1").status == "success"
    assert client.show("backup:1").details.family == "qwen25vl"
    assert client.delete("backup:1").status == "success"
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete("backup:1")
    assert (caught.value.status_code, caught.value.error) == (404, "model 'backup:1' not found")
    with pytest.raises(ollama.ResponseError) as copy_missing:
        client.copy("ghost:1", "other:1")
    assert copy_missing.value.error == 'model "ghost:1" not found'


# --------------------------------------------------------------------------- faults
# What each fault surfaces as through ollama.Client.chat.  With stream=True the
# exception comes from iterating the generator (the request is sent lazily).
EXPECTED = {
    ("http500", False): (ollama.ResponseError, 500),
    ("http500", True): (ollama.ResponseError, 500),
    ("busy503", False): (ollama.ResponseError, 503),
    ("busy503", True): (ollama.ResponseError, 503),
    ("error_midstream", False): (ollama.ResponseError, 500),
    ("error_midstream", True): (ollama.ResponseError, -1),
    ("drop", False): (httpx.RemoteProtocolError, None),
    ("drop", True): (httpx.RemoteProtocolError, None),
    ("truncated", False): (httpx.RemoteProtocolError, None),
    ("truncated", True): (httpx.RemoteProtocolError, None),
    ("malformed", False): (json.JSONDecodeError, None),
    ("malformed", True): (json.JSONDecodeError, None),
    ("hang", False): (httpx.ReadTimeout, None),
    ("hang", True): (httpx.ReadTimeout, None),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", sorted({kind for kind, _ in EXPECTED}))
def test_fault_surfaces_through_real_client(kind: str, stream: bool) -> None:
    error_type, status = EXPECTED[kind, stream]
    with OllamaDouble() as double, ollama.Client(host=double.url, timeout=0.3) as c:
        double.inject(kind, times=1)
        seen: list[str] = []
        with pytest.raises(error_type) as caught:
            if stream:
                for part in c.chat(VISION, ask(), stream=True):
                    seen.append(part.message.content)
            else:
                c.chat(VISION, ask())
        if status is not None:
            assert caught.value.status_code == status
        if kind == "busy503":
            assert caught.value.error == BUSY_MESSAGE
        if stream and kind in ("error_midstream", "truncated"):
            assert seen  # some content arrived before the failure
        double.clear_faults()
        assert c.chat(VISION, ask()).message.content == "neutral"  # the next one is fine
        assert double.faults_served == 1
        assert double.faults_by_kind == {kind: 1}
        assert double.errors == []


def test_slow_and_no_done_faults(client: ollama.Client, ollama_double: OllamaDouble) -> None:
    ollama_double.inject("slow", times=1, seconds=0.2)
    started = time.monotonic()
    assert client.chat(VISION, ask()).message.content == "neutral"
    assert time.monotonic() - started >= 0.2
    ollama_double.inject("no_done", times=2)
    parts = _consume(client.chat(VISION, ask(), stream=True))
    assert parts and not any(p.done for p in parts)
    assert client.chat(VISION, ask()).done is False
    assert ollama_double.faults_by_kind == {"slow": 1, "no_done": 2}


def test_malformed_with_json_of_the_wrong_shape_is_a_pydantic_error(client, ollama_double):
    ollama_double.inject("malformed", message='{"unexpected": true}')
    with pytest.raises(pydantic.ValidationError):
        client.chat(VISION, ask())


def test_fault_selectors(client: ollama.Client, ollama_double: OllamaDouble) -> None:
    def outcomes(n: int) -> list[str]:
        result = []
        for _ in range(n):
            try:
                client.chat(VISION, ask())
                result.append("ok")
            except ollama.ResponseError as error:
                result.append(str(error.status_code))
        return result

    rule = ollama_double.inject("http500", every=3)
    assert outcomes(6) == ["ok", "ok", "500", "ok", "ok", "500"]
    assert rule.served == 2
    ollama_double.clear_faults()
    ollama_double.reset_stats()
    rule = ollama_double.inject("http500", per_request=2)
    assert outcomes(4) == ["500", "500", "ok", "ok"]
    assert rule.served == 2
    with pytest.raises(ollama.ResponseError):  # other messages: faulted afresh
        client.chat(VISION, ask(text="Another question?"))
    assert rule.served == 3
    ollama_double.clear_faults()
    ollama_double.reset_stats()
    ollama_double.inject("busy503", on={0, 3})
    ollama_double.inject("http500", times=2)
    assert outcomes(5) == ["503", "500", "500", "503", "ok"]
    ollama_double.clear_faults()
    ollama_double.reset_stats()
    ollama_double.inject("http500", first=2)
    ollama_double.inject("busy503", model="llama3.2:3b")
    assert outcomes(3) == ["500", "500", "ok"]
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat("llama3.2:3b", [{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    assert ollama_double.faults_served == 3
    with pytest.raises(ValueError):
        ollama_double.inject("explode")
    assert "hang" in FAULT_KINDS


def test_hang_until_cleared_and_stop_releases(ollama_double: OllamaDouble) -> None:
    ollama_double.inject("hang")
    with (
        ollama.Client(host=ollama_double.url, timeout=0.2) as c,
        pytest.raises(httpx.ReadTimeout),
    ):
        c.chat(VISION, ask())
    # still hanging after the client gave up
    assert ollama_double.wait_until(lambda: ollama_double.hung == 1, timeout=2)
    ollama_double.clear_faults()
    assert ollama_double.wait_until(lambda: ollama_double.hung == 0, timeout=2)

    ollama_double.inject("hang")
    errors: list[BaseException] = []

    def call() -> None:
        with ollama.Client(host=ollama_double.url, timeout=10) as c:
            try:
                c.chat(VISION, ask())
            except Exception as error:
                errors.append(error)

    worker = threading.Thread(target=call)
    worker.start()
    assert ollama_double.wait_until(lambda: ollama_double.hung == 1, timeout=2)
    started = time.monotonic()
    ollama_double.stop()
    assert time.monotonic() - started < 1.0
    worker.join(2)
    assert isinstance(errors[0], httpx.RemoteProtocolError)


# --------------------------------------------------------------------------- lifecycle
def test_stop_and_start_on_the_same_port() -> None:
    double = OllamaDouble(latency=5.0)
    double.start()
    port = double.port
    try:
        with ollama.Client(host=double.url, timeout=10) as c:
            failures: list[BaseException] = []

            def call() -> None:
                try:
                    c.chat(VISION, ask())
                except Exception as error:
                    failures.append(error)

            worker = threading.Thread(target=call)
            worker.start()
            assert double.wait_until(lambda: double.in_flight == 1, timeout=2)
            started = time.monotonic()
            double.stop()  # "the server dies mid-run"
            assert time.monotonic() - started < 1.0
            worker.join(2)
            assert isinstance(failures[0], httpx.RemoteProtocolError)
            assert not double.running

            with pytest.raises(ConnectionError):
                c.list()
            with pytest.raises(httpx.ConnectError):  # the streaming path does not translate
                _consume(c.chat(VISION, ask(), stream=True))

            double.latency = 0.0
            double.start()  # "... and comes back"
            assert double.port == port
            assert c.chat(VISION, ask()).message.content == "neutral"
            assert [m.model for m in c.ps().models] == [VISION]  # reloaded after restart
    finally:
        double.stop()
    double.stop()  # idempotent


def _chat_concurrently(double: OllamaDouble, n: int) -> list[str | int]:
    """n threads, one client each (built beforehand), released together."""
    clients = [ollama.Client(host=double.url, timeout=5) for _ in range(n)]
    barrier = threading.Barrier(n)

    def call(c: ollama.Client) -> str | int:
        barrier.wait()
        try:
            return c.chat(VISION, ask()).message.content
        except ollama.ResponseError as error:
            assert error.error == BUSY_MESSAGE
            return error.status_code
        finally:
            c.close()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, clients))


def test_stop_from_inside_a_request_then_restart() -> None:
    double = OllamaDouble()
    calls: list[int] = []

    def dies_on_second_call(request: dict) -> str:
        calls.append(1)
        if len(calls) == 2:
            double.stop()
        return "happy"

    double.answer = dies_on_second_call
    with double, ollama.Client(host=double.url, timeout=5) as c:
        assert c.chat(VISION, ask()).message.content == "happy"
        with pytest.raises(httpx.RemoteProtocolError):
            c.chat(VISION, ask())
        assert not double.running
        double.start()
        assert c.chat(VISION, ask()).message.content == "happy"
    assert double.errors == []


def test_parallel_one_serialises_and_queues() -> None:
    latency = 0.15
    with OllamaDouble(latency=latency, parallel=1) as double:
        started = time.monotonic()
        answers = _chat_concurrently(double, 3)
        elapsed = time.monotonic() - started
        assert answers == ["neutral"] * 3
        assert double.max_in_flight == 3
        assert double.max_queued == 2
        assert elapsed >= 3 * latency
        assert double.last_reply - double.first_arrival >= 3 * latency
        served = [r for r in double.requests if r.path == "/api/chat"]
        assert [r.status for r in served] == [200, 200, 200]
        assert max(r.finished for r in served) - min(r.arrived for r in served) >= 3 * latency


def test_stats_are_settled_when_the_client_has_its_answer(client, ollama_double) -> None:
    for stream in (False, True, False, True):
        if stream:
            _consume(client.chat(VISION, ask(), stream=True))
        else:
            client.chat(VISION, ask())
        assert ollama_double.in_flight == 0
        assert ollama_double.requests[-1].finished is not None
        assert ollama_double.last_reply >= ollama_double.requests[-1].arrived
    assert ollama_double.max_queued == 0  # back-to-back calls never found the slot busy
    assert ollama_double.max_in_flight == 1


def test_parallel_slots_overlap() -> None:
    latency = 0.2
    with OllamaDouble(latency=latency, parallel=3) as double:
        assert _chat_concurrently(double, 3) == ["neutral"] * 3
        assert double.max_running == 3  # the three held their slots at once: no clock needed
        assert double.max_queued == 0
        assert double.max_in_flight == 3


def test_full_queue_answers_busy() -> None:
    with OllamaDouble(latency=0.3, parallel=1, max_queue=1) as double:
        outcomes = _chat_concurrently(double, 3)
        assert sorted(outcomes, key=str) == [503, "neutral", "neutral"]
        assert double.faults_served == 0  # a real overflow, not an injected fault
        assert double.max_queued == 1


def test_not_ollama_server_answers_html() -> None:
    with NotOllamaServer() as other:
        response = httpx.get(f"{other.url}/api/version", trust_env=False)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.text == "<html>hello</html>"
        with ollama.Client(host=other.url, timeout=2) as c:
            with pytest.raises(json.JSONDecodeError):
                c.list()
            with pytest.raises(json.JSONDecodeError):
                c.chat(VISION, ask())
            with pytest.raises(json.JSONDecodeError):
                _consume(c.chat(VISION, ask(), stream=True))
        port = other.port
        other.stop()
        other.start()
        assert other.port == port
        assert httpx.get(other.url, trust_env=False).text == "<html>hello</html>"


# ------------------------------------------------------------- behaviour by version
from ollama_double import (  # noqa: E402
    CURRENT_MODELS,
    IMAGE_REJECTED_MESSAGE,
    MLLAMA_LOAD_MESSAGE,
)

from emoprobe.backends.server_support import (  # noqa: E402
    image_tokens,
    is_unservable_load_error,
    parse_server_version,
    support_for,
)

THINKER = "qwen3-vl:8b"
QWEN3_INSTRUCT = "qwen3-vl:8b-instruct-q4_K_M"
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["happy", "sad", "neutral"]}},
    "required": ["label"],
}


def _png(colour: tuple[int, int, int] = (200, 120, 90)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


REAL_PNG = _png()


@pytest.fixture
def today() -> Iterator[OllamaDouble]:
    with OllamaDouble(version="0.34.1", models=[*DEFAULT_MODELS, *CURRENT_MODELS]) as double:
        yield double


def _post_chat(double: OllamaDouble, body: dict) -> httpx.Response:
    """POST /api/chat with raw httpx; image bytes go as base64, as the client sends them."""
    import base64

    messages = [
        {**m, "images": [base64.b64encode(i).decode() for i in m.get("images") or []]}
        for m in body.get("messages") or []
    ]
    body = {**body, "messages": messages}
    return httpx.post(f"{double.url}/api/chat", json=body, timeout=5, trust_env=False)


def test_the_default_behaviour_is_0_13_and_0_34_is_selectable(today: OllamaDouble) -> None:
    with OllamaDouble() as old:
        assert httpx.get(f"{old.url}/api/version", trust_env=False).json() == {"version": "0.13.0"}
        assert not old.llama_server
    assert httpx.get(f"{today.url}/api/version", trust_env=False).json()["version"] == "0.34.1"
    assert today.llama_server


@pytest.mark.parametrize("version", ["0.13.0", "0.34.1"])
def test_a_bad_format_is_a_500_with_the_runners_text(version: str) -> None:
    with OllamaDouble(version=version) as double:
        reply = _post_chat(
            double,
            {"model": VISION, "messages": ask(), "format": "xml", "stream": False},
        )
        assert reply.status_code == 500
        assert reply.json() == {
            "error": 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
        }
        assert double.requests[-1].status == 500


def test_a_schema_format_is_enforced_on_today_s_server() -> None:
    answers = {hashlib.sha256(REAL_PNG).hexdigest(): "happy"}
    double = OllamaDouble(version="0.34.1", answer=answer_by_image(answers, "grumpy"))
    with double, ollama.Client(host=double.start().url, timeout=5) as c:
        first = c.chat(VISION, ask(REAL_PNG), format=LABEL_SCHEMA)
        other = c.chat(VISION, ask(_png((1, 2, 3))), format=LABEL_SCHEMA)
        plain = c.chat(VISION, ask(REAL_PNG))
    assert json.loads(first.message.content) == {"label": "happy"}
    assert json.loads(other.message.content) == {"label": "happy"}  # "grumpy": first enum
    assert plain.message.content == "happy"


def test_the_0_13_behaviour_leaves_the_answer_as_the_callable_gave_it() -> None:
    double = OllamaDouble(answer=lambda request: "happy")
    with double, ollama.Client(host=double.start().url, timeout=5) as c:
        assert c.chat(VISION, ask(), format=LABEL_SCHEMA).message.content == "happy"


def test_a_thinking_model_thinks_unless_told_not_to(today: OllamaDouble) -> None:
    today.answer = lambda request: "happy"
    with ollama.Client(host=today.url, timeout=5) as c:
        assert "thinking" in (c.show(THINKER).capabilities or [])
        short = c.chat(THINKER, ask(REAL_PNG), options={"num_predict": 32})
        assert short.message.content == ""  # #16184: all 32 tokens went to thinking
        assert short.message.thinking and len(short.message.thinking.split()) == 32
        assert short.done_reason == "length" and short.eval_count >= 32
        roomy = c.chat(THINKER, ask(REAL_PNG), options={"num_predict": 400})
        assert roomy.message.content == "happy" and roomy.message.thinking
        off = c.chat(THINKER, ask(REAL_PNG), think=False, options={"num_predict": 32})
        assert off.message.content == "happy" and not off.message.thinking
        assert off.done_reason == "stop"
        parts = _consume(c.chat(THINKER, ask(REAL_PNG), stream=True))
        thoughts = [p.message.thinking for p in parts if p.message.thinking]
        assert thoughts and not parts[0].message.content
        assert "".join(p.message.content for p in parts) == "happy"
        instruct = c.chat(QWEN3_INSTRUCT, ask(REAL_PNG))  # no thinking capability
        assert instruct.message.content == "happy" and not instruct.message.thinking


def test_thinking_arrived_by_default_in_0_12_4() -> None:
    thinker = next(spec for spec in CURRENT_MODELS if spec.name == "qwen3-vl:8b")
    for version, thinks in (("0.12.3", False), ("0.12.4", True), ("0.13.0", True)):
        with OllamaDouble(version=version, models=[thinker]) as double:
            reply = _post_chat(
                double, {"model": THINKER, "messages": ask(REAL_PNG), "stream": False}
            )
            assert bool(reply.json()["message"].get("thinking")) is thinks, version


@pytest.mark.parametrize(
    ("version", "think", "status", "error"),
    [
        (
            "0.34.1",
            "bogus",
            400,
            'invalid think value: "bogus" (must be "high", "medium", "low", "max", true, or false)',
        ),
        (
            "0.13.0",
            "max",
            400,
            'invalid think value: "max" (must be "high", "medium", "low", true, or false)',
        ),
        (
            "0.34.1",
            3,
            400,
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        ),
        ("0.34.1", "low", 200, None),
    ],
)
def test_think_values_the_server_refuses(
    version: str, think: object, status: int, error: str | None
) -> None:
    with OllamaDouble(version=version, models=list(CURRENT_MODELS)) as double:
        reply = _post_chat(
            double, {"model": THINKER, "messages": ask(REAL_PNG), "think": think, "stream": False}
        )
        assert reply.status_code == status
        if error:
            assert reply.json() == {"error": error}
            assert double.chat_requests == []  # refused while binding the body


def test_thinking_asked_of_a_model_that_cannot_think(today: OllamaDouble) -> None:
    reply = _post_chat(today, {"model": VISION, "messages": [], "think": True})
    assert reply.status_code == 400
    assert reply.json() == {"error": f'"{VISION}" does not support thinking'}


def test_both_404_texts(today: OllamaDouble) -> None:
    today.add_model(ModelSpec(name="gone:1b", blob_missing=True))
    missing = _post_chat(today, {"model": "nosuch:7b", "messages": ask(REAL_PNG)})
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'nosuch:7b' not found"})
    gone = _post_chat(today, {"model": "gone:1b", "messages": []})
    assert gone.status_code == 404
    assert gone.json() == {"error": 'model "gone:1b" not found, try pulling it first'}
    with ollama.Client(host=today.url, timeout=5) as c:
        assert "gone:1b" in [m.model for m in c.list().models]  # listed, but cannot load
        with pytest.raises(ollama.ResponseError) as caught:
            c.chat("gone:1b", [{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 404
        assert caught.value.error.endswith("try pulling it first")


def _concurrently(double: OllamaDouble, model: str, n: int) -> list[str]:
    clients = [ollama.Client(host=double.url, timeout=10) for _ in range(n)]
    barrier = threading.Barrier(n)

    def call(c: ollama.Client) -> str:
        barrier.wait()
        try:
            return c.chat(model, ask(REAL_PNG), think=False).message.content
        finally:
            c.close()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, clients))


@pytest.mark.parametrize(
    ("version", "model", "in_flight"),
    [
        ("0.34.1", QWEN3_INSTRUCT, 1),  # qwen3vl: one at a time whatever parallel says
        ("0.12.6", QWEN3_INSTRUCT, 3),  # before 7d25b9e19
        ("0.34.1", "gemma3:4b", 3),
        ("0.34.1", VISION, 3),  # qwen25vl still runs in parallel
        ("0.13.0", "llama3.2-vision:11b", 1),  # mllama: always one
    ],
)
def test_families_forced_to_one_slot_queue(version: str, model: str, in_flight: int) -> None:
    with OllamaDouble(
        version=version, models=[*DEFAULT_MODELS, *CURRENT_MODELS], parallel=3, latency=0.15
    ) as double:
        assert _concurrently(double, model, 3) == ["neutral"] * 3  # queued, not refused
        assert double.max_running == in_flight
        assert double.max_in_flight == 3  # all three were with the server at once
        if in_flight == 1:
            assert double.max_queued >= 1


def test_undecodable_image_bytes_are_refused_by_today_s_server(today: OllamaDouble) -> None:
    reply = _post_chat(today, {"model": VISION, "messages": ask(IMAGE_HAPPY), "stream": False})
    assert reply.status_code == 400
    assert reply.json() == {"error": IMAGE_REJECTED_MESSAGE}
    assert "Failed to load image or audio file" in reply.json()["error"]
    ok = _post_chat(today, {"model": VISION, "messages": ask(REAL_PNG), "stream": False})
    assert ok.status_code == 200
    with OllamaDouble() as old:  # the 0.13 behaviour never looks inside the bytes
        assert (
            _post_chat(
                old, {"model": VISION, "messages": ask(IMAGE_HAPPY), "stream": False}
            ).status_code
            == 200
        )


def test_mllama_fails_to_load_from_0_30(today: OllamaDouble) -> None:
    for messages in ([], ask(REAL_PNG)):
        reply = _post_chat(today, {"model": "llama3.2-vision:11b", "messages": messages})
        assert reply.status_code == 500
        assert reply.json() == {"error": MLLAMA_LOAD_MESSAGE}
        assert is_unservable_load_error(reply.json()["error"])
    assert today.loaded == []
    with (
        ollama.Client(host=today.url, timeout=5) as c,
        pytest.raises(ollama.ResponseError) as caught,
    ):
        c.chat("llama3.2-vision:11b", ask(REAL_PNG))
    assert caught.value.status_code == 500
    assert "unknown model architecture: 'mllama'" in caught.value.error
    with OllamaDouble(version="0.24.0") as last:
        assert (
            _post_chat(last, {"model": "llama3.2-vision:11b", "messages": []}).json()["done_reason"]
            == "load"
        )


def test_a_load_checks_capabilities_but_not_vision(today: OllamaDouble) -> None:
    text_only = _post_chat(today, {"model": "llama3.2:3b", "messages": []})
    assert text_only.status_code == 200 and text_only.json()["done_reason"] == "load"
    today.add_model(ModelSpec(name="embed:1b", capabilities=["embedding"]))
    embed = _post_chat(today, {"model": "embed:1b", "messages": []})
    assert (embed.status_code, embed.json()) == (400, {"error": '"embed:1b" does not support chat'})
    assert "embed:1b" not in today.loaded


def test_today_s_models_show_real_details(today: OllamaDouble) -> None:
    with ollama.Client(host=today.url, timeout=5) as c:
        qwen = c.show(THINKER)
        gemma = c.show("gemma3:12b")
        q8 = c.show("qwen3-vl:8b-instruct-q8_0")
    assert qwen.details.family == "qwen3vl" and qwen.details.quantization_level == "Q4_K_M"
    assert set(qwen.capabilities or []) == {"completion", "vision", "tools", "thinking"}
    info = qwen.modelinfo or {}
    assert info["qwen3vl.vision.patch_size"] == 16
    assert info["qwen3vl.vision.spatial_merge_size"] == 2
    assert info["general.architecture"] == "qwen3vl"
    assert gemma.details.family == "gemma3" and gemma.details.parameter_size == "12.2B"
    assert (gemma.modelinfo or {})["gemma3.mm.tokens_per_image"] == 256
    assert "thinking" not in (gemma.capabilities or [])
    assert q8.details.quantization_level == "Q8_0"
    raw = httpx.post(
        f"{today.url}/api/show", json={"model": "qwen3-vl:8b-instruct-q8_0"}, trust_env=False
    ).json()
    types = {t["name"]: t["type"] for t in raw["tensors"]}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["v.blk.0.attn_q.weight"] == "F16"


def test_the_double_agrees_with_the_client_table_on_image_tokens(today: OllamaDouble) -> None:
    # the real model_info a client reads gives the same 32-px token the table uses
    support = support_for(parse_server_version(today.version))  # type: ignore[arg-type]
    with ollama.Client(host=today.url, timeout=5) as c:
        info = c.show(THINKER).modelinfo or {}
    side = info["qwen3vl.vision.patch_size"] * info["qwen3vl.vision.spatial_merge_size"]
    assert image_tokens("qwen3vl", side * 40, side * 40, support) == 1600


def test_long_arrays_need_verbose_and_no_capabilities_are_omitted(today: OllamaDouble) -> None:
    today.add_model(
        ModelSpec(name="bare:1b", capabilities=[], model_info={"llama.vocab": list(range(10))})
    )
    plain = httpx.post(f"{today.url}/api/show", json={"model": "bare:1b"}, trust_env=False)
    verbose = httpx.post(
        f"{today.url}/api/show", json={"model": "bare:1b", "verbose": True}, trust_env=False
    )
    assert plain.json()["model_info"]["llama.vocab"] == []
    assert verbose.json()["model_info"]["llama.vocab"] == list(range(10))
    assert "capabilities" not in plain.json()
    with ollama.Client(host=today.url, timeout=5) as c:
        assert c.show("bare:1b").capabilities is None


def test_today_s_models_can_be_pulled() -> None:
    with OllamaDouble(version="0.34.1") as double, ollama.Client(host=double.url, timeout=5) as c:
        assert c.pull("qwen3-vl:8b").status == "success"
        assert c.pull("gemma3:4b-it-fp16").status == "success"
        assert {"qwen3-vl:8b", "gemma3:4b-it-fp16"} <= {m.model for m in c.list().models}

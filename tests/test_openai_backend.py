"""The OpenAI-compatible backend against a real HTTP double of a vLLM-like /v1 server."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from factories import make_image_folder
from ollama_double import NotOllamaServer
from openai_double import (
    NO_VISION_MESSAGE,
    OPENAI_FAULT_KINDS,
    OpenAIDouble,
    ServedModel,
    answer_by_image,
    image_sha256s,
)
from PIL import Image

from emoprobe.backends.base import ChatRequest, ModelInfo
from emoprobe.backends.openai import (
    CREATED_IS_NOW_S,
    OpenAIBackend,
    base_url,
    build_request,
    public_url,
)
from emoprobe.errors import (
    BackendError,
    ConfigError,
    ModelNotFound,
    ModelUnsuitable,
    RequestRejected,
    ServerUnreachable,
    TransientError,
)

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
SYSTEM = "Classify the student's expression: confused, distracted, happy, tired or neutral."
USER = "Which one? One word."
KEY = "sk-test-0123456789abcdef"
OPTIONS = {
    "temperature": 0.0,
    "seed": 42,
    "num_predict": 32,
    "top_p": 0.9,
    "stop": ["\n"],
    "num_ctx": 4096,
    "num_gpu": 99,
    "top_k": 1,
}


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (shade, 10, 20)).save(buffer, "PNG")
    return buffer.getvalue()


HAPPY, SAD = png(200), png(40)
SHA_HAPPY, SHA_SAD = (hashlib.sha256(image).hexdigest() for image in (HAPPY, SAD))


def request(image: bytes = HAPPY, options: dict | None = None, **fields) -> ChatRequest:
    """What emoprobe's probe sends: the prompt, the image and its MIME type."""
    return ChatRequest(
        model=fields.pop("model", MODEL),
        system=SYSTEM,
        user_text=USER,
        image=image,
        image_mime=fields.pop("image_mime", "image/png"),
        options=OPTIONS if options is None else options,
        **fields,
    )


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "EMOPROBE_TEST_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def double() -> Iterator[OpenAIDouble]:
    with OpenAIDouble(answer=answer_by_image({SHA_HAPPY: "happy", SHA_SAD: "tired"})) as server:
        yield server


@pytest.fixture
def backend(double: OpenAIDouble) -> Iterator[OpenAIBackend]:
    client = OpenAIBackend(double.base_url, timeout=5)
    try:
        yield client
    finally:
        client.close()


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert text and "\n" not in text
    return text


def assert_never_native(double: OpenAIDouble) -> None:
    paths = [record.path for record in double.requests]
    assert paths, "the double saw no request"
    assert not [path for path in paths if path.startswith("/api")], paths


# --------------------------------------------------------------------------- addresses
def test_the_base_url_ends_in_v1_whether_or_not_it_was_typed() -> None:
    assert base_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert base_url("http://127.0.0.1:8080/proxy") == "http://127.0.0.1:8080/proxy/v1"
    assert public_url("http://user:secret@127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert OpenAIBackend("http://[::1]:8000", timeout=1).base_url == "http://[::1]:8000/v1"


def test_a_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        OpenAIBackend("ftp://127.0.0.1/v1", timeout=1)
    with pytest.raises(ConfigError):
        OpenAIBackend("http://127.0.0.1:port/v1", timeout=1)


def test_a_url_without_v1_reaches_the_same_server(double: OpenAIDouble) -> None:
    client = OpenAIBackend(double.url, timeout=5)
    try:
        assert client.describe(MODEL).name == MODEL
    finally:
        client.close()


# --------------------------------------------------------------------------- describe
def test_describe_a_listed_model(backend: OpenAIBackend, double: OpenAIDouble) -> None:
    info = backend.describe(MODEL)
    assert isinstance(info, ModelInfo)
    assert info.name == MODEL
    assert info.backend == "openai"
    assert info.server_version == "0.11.0"
    assert info.capabilities == ()
    assert len(info.digest) == 64 and int(info.digest, 16) >= 0
    assert ModelInfo.from_dict(info.to_dict()) == info
    assert backend.load(MODEL) == 0.0
    backend.unload(MODEL)  # a no-op, so the CLI's multi-model loop needs no special case
    assert {record.path for record in double.requests} == {"/v1/models", "/version"}
    assert_never_native(double)


def test_the_digest_is_stable_though_vllm_stamps_created_with_the_time_of_the_request(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    first = backend.describe(MODEL).digest
    entry = {"id": MODEL, "owned_by": "vllm", "root": MODEL, "created": int(time.time())}
    assert backend.model_digest(entry) == backend.model_digest(
        {**entry, "created": 1 + int(time.time())}
    )
    assert backend.describe(MODEL).digest == first


def test_the_digest_follows_the_served_models_identity(backend: OpenAIBackend) -> None:
    old = int(time.time() - 10 * CREATED_IS_NOW_S)  # Ollama's /v1: the model's mtime
    entry = {"id": "llava:latest", "owned_by": "library", "created": old}
    digest = backend.model_digest(entry)
    assert backend.model_digest(dict(entry)) == digest
    assert backend.model_digest({**entry, "created": old + 60}) != digest  # re-pulled
    assert backend.model_digest({**entry, "id": "llava:13b"}) != digest
    assert backend.model_digest({**entry, "owned_by": "someone"}) != digest
    weights = {"id": "m", "meta": {"n_params": 7_000_000_000, "size": 4_000_000_000}}
    assert backend.model_digest(weights) != backend.model_digest(
        {"id": "m", "meta": {"n_params": 7_000_000_000, "size": 8_000_000_000}}
    )
    assert backend.model_digest(weights) == backend.model_digest(
        {"id": "m", "meta": {**weights["meta"], "n_ctx": 8192}}  # a server flag, not weights
    )
    other = OpenAIBackend("http://127.0.0.1:9999/v1", timeout=1)
    assert other.model_digest(entry) != digest
    other.close()


def test_a_missing_model_names_the_models_the_server_has(double: OpenAIDouble) -> None:
    for number in range(6):
        double.add_model(f"org/model-{number}")
    client = OpenAIBackend(double.base_url, timeout=5)
    with pytest.raises(ModelNotFound) as error:
        client.describe("qwen2.5vl:7b")
    client.close()
    text = one_line(error)
    assert "'qwen2.5vl:7b' is not served at " + double.base_url in text
    assert f"it serves: {MODEL}, org/model-0, org/model-1, org/model-2, org/model-3" in text
    assert "(and 2 more)" in text


def test_a_server_with_no_models_says_so() -> None:
    with OpenAIDouble(models=()) as double:
        client = OpenAIBackend(double.base_url, timeout=5)
        with pytest.raises(ModelNotFound, match="it serves no models"):
            client.describe(MODEL)
        client.close()


def test_ollama_style_names_match_their_latest_tag() -> None:
    llava = ServedModel("llava:latest", owned_by="library", created=1_700_000_000)
    with OpenAIDouble(models=[llava], version=None) as double:
        client = OpenAIBackend(double.url, timeout=5)
        info = client.describe("llava")
        client.close()
    assert info.server_version == "unknown"  # no /version at the root: not an error
    assert info.name == "llava"


def test_llama_cpp_metadata_fills_size_and_parameters() -> None:
    meta = {"n_params": 7_615_616_512, "size": 4_677_120_000, "n_ctx": 4096, "n_vocab": 152064}
    served = ServedModel("qwen2.5-vl", owned_by="llamacpp", meta=meta)
    with OpenAIDouble(models=[served], version=None) as double:
        client = OpenAIBackend(double.base_url, timeout=5)
        info = client.describe("qwen2.5-vl")
        client.close()
    assert (info.parameter_size, info.size_bytes) == ("7.6B", 4_677_120_000)


def test_something_else_on_the_port_is_not_an_openai_server() -> None:
    with NotOllamaServer() as other:
        client = OpenAIBackend(other.url, timeout=5)
        with pytest.raises(ServerUnreachable) as error:
            client.describe(MODEL)
        client.close()
        assert all(not path.startswith("/api") for _, path in other.requests)
    text = one_line(error)
    assert "answers, but not as an OpenAI-compatible server" in text
    assert "HTTP 200, text/html" in text


def test_nothing_listening_is_one_line_naming_the_url() -> None:
    with OpenAIDouble() as double:
        url = double.base_url
    client = OpenAIBackend(url, timeout=2)
    with pytest.raises(ServerUnreachable) as error:
        client.describe(MODEL)
    with pytest.raises(ServerUnreachable):
        client.chat(request())
    client.close()
    text = one_line(error)
    assert url in text and "start it" in text


# --------------------------------------------------------------------------- chat
def test_a_chat_round_trip(backend: OpenAIBackend, double: OpenAIDouble) -> None:
    answer = backend.chat(request(HAPPY))
    assert answer.raw == "happy"
    assert answer.done_reason == "stop"
    assert answer.latency_s > 0
    assert answer.prompt_tokens > 576
    assert answer.output_tokens == 1
    assert answer.output_ms == 0 and answer.total_ms == 0
    assert backend.chat(request(SAD)).raw == "tired"

    [record] = [r for r in double.requests if r.path == "/v1/chat/completions"][:1]
    assert record.method == "POST" and record.status == 200
    body = double.chat_requests[0]
    assert body["model"] == MODEL
    assert body["stream"] is False
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    user = body["messages"][1]
    assert user["role"] == "user" and "images" not in user
    assert user["content"][0] == {"type": "text", "text": USER}
    url = user["content"][1]["image_url"]["url"]
    assert user["content"][1]["type"] == "image_url"
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == HAPPY
    assert image_sha256s(body) == [SHA_HAPPY]
    sent = {name: body[name] for name in ("temperature", "seed", "max_tokens", "top_p", "stop")}
    assert sent == {"temperature": 0.0, "seed": 42, "max_tokens": 32, "top_p": 0.9, "stop": ["\n"]}
    for dropped in ("num_ctx", "num_gpu", "top_k", "num_predict", "options", "keep_alive"):
        assert dropped not in body
    assert_never_native(double)


def test_a_reply_cut_at_max_tokens_says_length(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    double.answer = lambda body: "The student appears to be quite tired today"
    answer = backend.chat(request(options={**OPTIONS, "num_predict": 3}))
    assert (answer.raw, answer.done_reason) == ("The student appears", "length")
    assert double.chat_requests[-1]["max_tokens"] == 3


def test_options_map_to_openai_fields_and_the_rest_are_named() -> None:
    body = build_request(request(options={"num_predict": -1, "stop": "END", "seed": 7}))
    assert "max_tokens" not in body  # -1: unlimited
    assert body["stop"] == ["END"] and body["seed"] == 7
    client = OpenAIBackend("http://127.0.0.1:9/v1", timeout=1)
    assert client.ignored_options(OPTIONS) == ["num_ctx", "num_gpu", "top_k"]
    assert client.ignored_options({"temperature": 0.0, "presence_penalty": 0.5}) == []
    client.close()


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00", "image/gif"),
    ],
)
def test_the_media_type_is_the_one_the_request_carries(image: bytes, kind: str) -> None:
    body = build_request(request(image, options={}, image_mime=kind))
    url = body["messages"][1]["content"][1]["image_url"]["url"]
    assert url == f"data:{kind};base64,{base64.b64encode(image).decode()}"


def test_an_image_of_no_known_type_is_rejected_before_sending(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    with pytest.raises(RequestRejected, match="not JPEG, PNG, WebP or GIF"):
        backend.chat(request(b"BM\x00\x00 a bitmap", image_mime="image/bmp"))
    assert double.chat_requests == []


def test_a_model_the_server_dropped_is_model_not_found(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    double.remove_model(MODEL)
    with pytest.raises(ModelNotFound) as error:
        backend.chat(request())
    assert "does not exist" in one_line(error)


def test_a_model_without_vision_is_unsuitable_not_retried() -> None:
    text_only = ServedModel("Qwen/Qwen2.5-7B-Instruct", vision=False)
    with OpenAIDouble(models=[text_only]) as double:
        client = OpenAIBackend(double.base_url, timeout=5)
        client.describe(text_only.id)  # the API cannot tell up front
        with pytest.raises(ModelUnsuitable) as error:
            client.chat(request(model=text_only.id))
        client.close()
    text = one_line(error)
    assert "cannot read images" in text and NO_VISION_MESSAGE[:28] in text


def test_another_4xx_is_rejected_with_the_servers_message(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    double.inject("http400", times=1, message="prompt is\ntoo long:   9000 tokens")
    with pytest.raises(RequestRejected) as error:
        backend.chat(request())
    assert one_line(error) == "HTTP 400: prompt is too long: 9000 tokens"


# --------------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("http500", "HTTP 500: EngineCore"),
        ("busy503", "HTTP 503: Service Unavailable"),
        ("rate429", "HTTP 429: Rate limit"),
        ("drop", "connection dropped"),
        ("truncated", "connection dropped"),
        ("malformed", "malformed reply"),
        ("no_choices", "no choices"),
    ],
)
def test_each_fault_is_transient_and_the_next_request_succeeds(
    backend: OpenAIBackend, double: OpenAIDouble, kind: str, words: str
) -> None:
    double.inject(kind, times=1)
    with pytest.raises(TransientError) as error:
        backend.chat(request())
    assert words in one_line(error)
    assert double.faults_by_kind[kind] == 1
    assert backend.chat(request()).raw == "happy"


def test_every_fault_kind_is_covered() -> None:
    covered = {"http500", "busy503", "rate429", "drop", "truncated", "malformed", "no_choices"}
    assert covered | {"http400", "hang", "slow"} == OPENAI_FAULT_KINDS


def test_a_hung_server_times_out_within_the_timeout(double: OpenAIDouble) -> None:
    client = OpenAIBackend(double.base_url, timeout=0.3)
    double.inject("hang", times=1)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"timed out after 0\.3s"):
        client.chat(request())
    assert time.monotonic() - started < 2.0
    double.clear_faults()
    assert client.chat(request()).raw == "happy"
    client.close()


def test_a_slow_server_within_the_timeout_is_just_slow(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    double.inject("slow", times=1, seconds=0.2)
    assert backend.chat(request()).raw == "happy"


def test_requests_run_in_parallel_up_to_the_servers_slots(double: OpenAIDouble) -> None:
    from concurrent.futures import ThreadPoolExecutor

    double.parallel, double.latency = 2, 0.05
    client = OpenAIBackend(double.base_url, timeout=5)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: client.chat(request()).raw, range(8)))
    client.close()
    assert answers == ["happy"] * 8
    assert double.max_in_flight >= 2 and double.max_queued >= 1


# --------------------------------------------------------------------------- API key
def test_the_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIDouble(api_key=KEY) as double:
        client = OpenAIBackend(double.base_url, timeout=5)
        info = client.describe(MODEL)
        assert client.chat(request()).raw == "neutral"
        client.close()
    assert {r.headers.get("authorization") for r in double.requests} == {f"Bearer {KEY}"}
    assert KEY not in repr(client) and KEY not in repr(info.to_dict())


def test_the_key_variable_can_be_renamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOPROBE_TEST_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-wrong-one")
    with OpenAIDouble(api_key=KEY) as double:
        client = OpenAIBackend(double.base_url, timeout=5, api_key_env="EMOPROBE_TEST_KEY")
        client.describe(MODEL)
        client.close()
    assert {r.headers.get("authorization") for r in double.requests} == {f"Bearer {KEY}"}


def test_no_key_no_authorization_header(backend: OpenAIBackend, double: OpenAIDouble) -> None:
    backend.describe(MODEL)
    backend.chat(request())
    assert all("authorization" not in record.headers for record in double.requests)


def test_a_missing_key_is_one_fatal_line_naming_the_variable() -> None:
    with OpenAIDouble(api_key=KEY) as double:
        client = OpenAIBackend(double.base_url, timeout=5)
        with pytest.raises(BackendError) as error:
            client.describe(MODEL)
        with pytest.raises(BackendError) as chat_error:
            client.chat(request())
        client.close()
    for caught in (error, chat_error):
        # Not a subclass: not retried (Transient/Unreachable), not per image (Rejected).
        assert type(caught.value) is BackendError
        text = one_line(caught)
        assert "wants an API key (HTTP 401)" in text and "$OPENAI_API_KEY" in text


def test_a_wrong_key_never_appears_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-42")
    with OpenAIDouble(api_key=KEY) as double:
        client = OpenAIBackend(double.base_url, timeout=5)
        with pytest.raises(BackendError) as error:
            client.chat(request())
        client.close()
    text = one_line(error)
    assert "check the key in $OPENAI_API_KEY" in text
    assert "sk-wrong-key-42" not in text and KEY not in text


# --------------------------------------------------------------------------- proxies
def test_proxy_variables_are_ignored(monkeypatch: pytest.MonkeyPatch, double: OpenAIDouble) -> None:
    dead = "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    with pytest.raises(httpx.ConnectError):  # a client that trusts them goes nowhere
        httpx.Client(trust_env=True).get(f"{double.url}/health")
    client = OpenAIBackend(double.base_url, timeout=5)
    client.describe(MODEL)
    assert client.chat(request()).raw == "happy"
    client.close()
    assert len(double.chat_requests) == 1


# --------------------------------------------------------------------------- with the probe
def test_the_probe_retries_faults_and_caches_one_answer_per_image(
    tmp_path: Path, double: OpenAIDouble
) -> None:
    from emoprobe.pipeline.cache import ResponseCache
    from emoprobe.pipeline.probe import Job, Outcome, Probe
    from emoprobe.pipeline.retry import RetryPolicy
    from emoprobe.task.definition import PAPER_TASK

    truth = make_image_folder(tmp_path / "faces", per_label=2)
    double.answer = answer_by_image(truth)
    double.inject("http500", every=3)
    double.inject("drop", every=4)
    client = OpenAIBackend(double.base_url, timeout=5)
    cache = ResponseCache(tmp_path / "cache")
    info = client.describe(MODEL)
    probe = Probe(
        task=PAPER_TASK,
        model=MODEL,
        options=dict(OPTIONS),
        backend=client,
        cache=cache,
        info=info,
        retry=RetryPolicy(retries=5, backoff_s=0.001),
    )
    try:
        for path in sorted((tmp_path / "faces").rglob("*.png")):
            job = probe.prepare(0, path)
            assert isinstance(job, Job) and job.mime == "image/png"
            outcome = probe.ask(job)
            assert not outcome.failure, outcome.failure
            assert probe.result(outcome).label == truth[outcome.sha256]
            again = probe.prepare(0, path)
            assert isinstance(again, Outcome)
            assert again.cached and again.answer == outcome.answer
    finally:
        cache.close()
        client.close()
    assert double.faults_served >= 3
    assert probe.stats.retries == double.faults_served
    assert probe.stats.requests == len(truth)
    assert_never_native(double)


def test_no_image_data_reaches_an_error_message(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    encoded = base64.b64encode(HAPPY).decode()
    double.inject("http400", times=1, message=f"Invalid image URL: data:image/png;base64,{encoded}")
    double.inject("http500", times=1, message=f"cannot decode {encoded[10:90]} at byte 3")
    for kind in (RequestRejected, TransientError):
        with pytest.raises(kind) as error:
            backend.chat(request(HAPPY))
        text = one_line(error)
        assert "Invalid image URL: data:…" in text or "cannot decode … at byte 3" in text
        assert not any(encoded[i : i + 24] in text for i in range(0, len(encoded) - 24))


def test_a_json_schema_and_log_probabilities_are_asked_for_the_openai_way(
    backend: OpenAIBackend, double: OpenAIDouble
) -> None:
    schema = {"type": "object", "properties": {"label": {"enum": ["happy", "tired"]}}}
    answer = backend.chat(request(format=schema, top_logprobs=3))
    body = double.chat_requests[-1]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }
    assert (body["logprobs"], body["top_logprobs"]) == (True, 3)
    assert answer.raw == "happy"
    [first] = answer.logprobs
    assert first["token"] == "happy" and first["logprob"] < 0
    assert [alt["token"] for alt in first["top_logprobs"]][:1] == ["happy"]
    assert len(first["top_logprobs"]) == 3
    plain = backend.chat(request())
    assert plain.logprobs == ()
    assert "response_format" not in double.chat_requests[-1]
    assert "logprobs" not in double.chat_requests[-1]

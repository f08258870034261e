"""The library, without the CLI: `Probe` for one image, `RunConfig`'s host policy, retries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from factories import make_image_folder
from ollama_double import OllamaDouble, answer_by_image, image_sha256s

from emoprobe.backends.base import Answer
from emoprobe.backends.server_support import Version, has_logprobs, parse_server_version
from emoprobe.errors import (
    BackendError,
    ConfigError,
    ModelNotFound,
    RequestRejected,
    ServerUnreachable,
    TransientError,
)
from emoprobe.pipeline.cache import KeyMaker, ResponseCache, answer_from_value, response_key
from emoprobe.pipeline.config import RunConfig
from emoprobe.pipeline.probe import NOT_IN_CACHE, Probe
from emoprobe.pipeline.retry import MAX_BACKOFF_S, RetryPolicy, Verdict
from emoprobe.task.definition import PAPER_TASK
from emoprobe.task.model_options import DEFAULT_OPTIONS


@pytest.fixture
def faces(tmp_path: Path) -> tuple[dict[str, str], list[Path]]:
    truth = make_image_folder(tmp_path / "faces", per_label=1)
    return truth, sorted((tmp_path / "faces").rglob("*.png"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- Probe -------------------------------------------------------------------------------
def test_one_image_is_classified_and_asked_again_it_is_a_cache_hit(ollama_double, faces):
    _, images = faces
    ollama_double.answer = answer_by_image({sha(images[0]): "The student looks Happy."})
    with Probe.open(host=ollama_double.url) as probe:
        first = probe.classify(images[0])
        second = probe.classify(images[0])
    assert (first.label, first.status, first.cached) == ("happy", "ok", False)
    assert first.raw == "The student looks Happy." and first.sha256 == sha(images[0])
    assert first.latency_s is not None and first.latency_s > 0
    assert (second.label, second.raw, second.cached) == ("happy", first.raw, True)
    assert len(ollama_double.chat_requests) == 1
    assert probe.stats.requests == 1


def test_the_request_puts_the_prompt_first_and_the_image_in_the_user_message(ollama_double, faces):
    _, images = faces
    with Probe.open(host=ollama_double.url, options={"temperature": 0.0, "seed": 7}) as probe:
        probe.classify(images[0])
    [body] = ollama_double.chat_requests
    system, user = body["messages"]
    assert system == {"role": "system", "content": PAPER_TASK.system_prompt}
    assert user["role"] == "user" and user.get("content", "") == PAPER_TASK.user_text == ""
    assert image_sha256s(body) == [sha(images[0])]
    assert body["options"] == {"temperature": 0.0, "seed": 7}


def test_offline_answers_only_from_the_cache_and_opens_no_connection(ollama_double, faces):
    _, images = faces
    with Probe.open(host=ollama_double.url) as probe:
        online = probe.classify(images[0])
    ollama_double.stop()
    with Probe.open(host=ollama_double.url, offline=True) as probe:
        replayed = probe.classify(images[0])
        missing = probe.classify(images[1])
    assert (replayed.label, replayed.raw, replayed.cached) == (online.label, online.raw, True)
    assert (missing.status, missing.error, missing.raw) == ("not_in_cache", NOT_IN_CACHE, None)


def test_offline_without_any_record_of_the_model_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"has no answers from qwen2\.5vl:7b") as error:
        Probe.open(offline=True, cache_dir=tmp_path / "empty")
    assert error.value.setting == "offline" and "--" not in str(error.value)


def test_a_remote_host_is_refused_unless_allowed(tmp_path):
    with pytest.raises(ConfigError, match="refusing to send images to non-local host"):
        Probe.open(host="http://192.0.2.7:11434", cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()  # refused before anything was opened
    with pytest.raises((ServerUnreachable, TransientError)):  # allowed: it is tried
        Probe.open(host="http://192.0.2.7:11434", allow_remote=True, timeout=0.2)


def test_ollama_host_is_the_default_server(ollama_double, faces, monkeypatch):
    _, images = faces
    monkeypatch.setenv("OLLAMA_HOST", ollama_double.url.removeprefix("http://"))
    with Probe.open() as probe:
        assert probe.backend is not None and probe.backend.host == ollama_double.url
        assert probe.classify(images[0]).status in ("ok", "unparsed")
    assert len(ollama_double.chat_requests) == 1


def test_an_unreadable_image_is_an_error_result_and_no_request(ollama_double, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    with Probe.open(host=ollama_double.url) as probe:
        missing = probe.classify(tmp_path / "nowhere.png")
        broken = probe.classify(tmp_path / "broken.png")
    assert (missing.status, missing.error) == ("unreadable", "file not found")
    assert broken.status == "unreadable" and broken.error.startswith("not an image")
    assert ollama_double.chat_requests == []


def test_a_failed_request_is_retried_then_reported_never_cached(ollama_double, faces):
    _, images = faces
    ollama_double.inject("http500", times=2)
    with Probe.open(host=ollama_double.url, retries=1) as probe:
        probe.retry = RetryPolicy(retries=1, backoff_s=0.001)
        failed = probe.classify(images[0])
        answered = probe.classify(images[0])
    assert failed.status == "failed" and "HTTP 500" in failed.error and failed.raw is None
    assert answered.status in ("ok", "unparsed") and not answered.cached
    assert probe.stats.retries == 1


def test_a_model_the_server_lacks_fails_at_open(ollama_double):
    with pytest.raises(ModelNotFound, match="nosuch:1b"):
        Probe.open("nosuch:1b", host=ollama_double.url)


# -- the cache -----------------------------------------------------------------------------
def test_answers_cached_by_the_previous_version_are_still_hits(ollama_double, faces, tmp_path):
    """Values stored under Ollama's timing names (nanoseconds) read as the same answers."""
    _, images = faces
    cache_dir = tmp_path / "old-cache"
    with Probe.open(host=ollama_double.url, cache_dir=cache_dir) as probe:
        info = probe.info
    key = response_key(  # exactly as the previous version built it
        backend="ollama",
        model_digest=info.digest,
        messages_text=[("system", PAPER_TASK.system_prompt), ("user", "<image>")],
        options=DEFAULT_OPTIONS,
        answer_mode="text",
        image_sha256=sha(images[0]),
        image_preparation="1:max_side=None",
    )
    old_value = {
        "raw": "Tired.",
        "latency_s": 1.25,
        "done_reason": "stop",
        "timings": {
            "total_duration": 900_000_000,
            "load_duration": 100_000_000,
            "prompt_eval_count": 600,
            "prompt_eval_duration": 500_000_000,
            "eval_count": 2,
            "eval_duration": 300_000_000,
        },
        "model": "qwen2.5vl:7b",
        "digest": info.digest,
    }
    with ResponseCache(cache_dir) as cache:
        cache.set(key, old_value)
    with Probe.open(host=ollama_double.url, cache_dir=cache_dir) as probe:
        assert probe.keys.legacy_key(sha(images[0])) == key  # #16 item 6: v2 keys name the model
        result = probe.classify(images[0])
    assert (result.label, result.raw, result.cached, result.latency_s) == (
        "tired",
        "Tired.",
        True,
        None,  # an answer from the cache brings no latency along: not measured now
    )
    assert result.answer is not None and result.answer.latency_s == 1.25  # as recorded
    assert ollama_double.chat_requests == []
    answer = answer_from_value(old_value)
    assert (answer.prompt_tokens, answer.output_tokens) == (600, 2)
    assert (answer.prompt_ms, answer.output_ms, answer.load_ms, answer.total_ms) == (
        500.0,
        300.0,
        100.0,
        900.0,
    )


def test_an_answer_reads_back_as_it_was_stored(tmp_path):
    positions = ((("happy",), {"happy": 0.75, "tired": 0.25}), (("tired",), {"tired": 1.0}))
    answer = Answer(
        "happy",
        0.5,
        "stop",
        10,
        1.5,
        1,
        0.25,
        3.0,
        5.0,
        label_positions=positions,
        thinking_chars=7,
    )
    keys = KeyMaker("ollama", "d" * 64, PAPER_TASK, {"seed": 1}, "logprobs", 448)
    with ResponseCache(tmp_path / "c") as cache:
        cache.store_answer(keys.key("a" * 64), answer, model="m", digest="d" * 64)
        assert cache.answer(keys.key("a" * 64)) == answer
        assert cache.answer(keys.key("b" * 64)) is None


# -- RunConfig -----------------------------------------------------------------------------
def test_run_config_normalises_hosts_and_keeps_them_local(tmp_path, monkeypatch):
    config = RunConfig(tmp_path, hosts=("localhost", "127.0.0.1:11500", "localhost:11434"))
    assert config.hosts == ("http://localhost:11434", "http://127.0.0.1:11500")
    assert config.host == "http://localhost:11434"
    with pytest.raises(ConfigError, match=r"non-local host http://10\.0\.0\.5:11434"):
        RunConfig(tmp_path, host="http://10.0.0.5:11434")
    assert RunConfig(tmp_path, host="10.0.0.5", allow_remote=True).host == "http://10.0.0.5:11434"
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:12000")
    assert RunConfig(tmp_path).hosts == ("http://127.0.0.1:12000",)
    assert RunConfig(tmp_path, backend="openai").host == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("concurrency", 0, "concurrency must be at least 1"),
        ("per_class", 0, "per_class must be at least 1"),
        ("retries", -1, "retries must be 0 or more"),
        ("timeout", 0, "timeout must be more than 0 seconds"),
        ("max_side", 27, "max_side must be at least 28 pixels"),
    ],
)
def test_run_config_errors_name_the_field_not_a_flag(tmp_path, field, value, message):
    with pytest.raises(ConfigError) as error:
        RunConfig(tmp_path, **{field: value})
    assert str(error.value) == message and error.value.setting == field


# -- retries and versions ------------------------------------------------------------------
def test_the_retry_policy_sorts_errors_and_caps_its_backoff():
    policy = RetryPolicy(retries=2, backoff_s=1.0)
    assert policy.verdict(TransientError("503")) is Verdict.RETRY
    assert policy.verdict(ServerUnreachable("down")) is Verdict.RETRY
    assert policy.verdict(RequestRejected("400")) is Verdict.REJECT
    assert policy.verdict(ModelNotFound("gone")) is Verdict.FATAL
    assert policy.verdict(BackendError("401")) is Verdict.FATAL
    assert [policy.may_retry(n) for n in (1, 2, 3)] == [True, True, False]
    assert 0.5 <= policy.delay(0) <= 1.0 and 2.0 <= policy.delay(2) <= 4.0
    assert MAX_BACKOFF_S / 2 <= policy.delay(20) <= MAX_BACKOFF_S


def test_server_versions_are_read_in_one_place():
    assert parse_server_version("0.12.11") == Version(0, 12, 11)
    assert parse_server_version("v0.13.0-rc1") == Version(0, 13, 0)
    assert parse_server_version("0.0.0") is None and parse_server_version("dev") is None
    assert has_logprobs("ollama", "0.12.11") and not has_logprobs("ollama", "0.12.3")
    assert not has_logprobs("ollama", "unknown") and has_logprobs("openai", "unknown")


def test_a_probe_built_in_one_line_needs_no_server_for_cached_answers(tmp_path):
    with OllamaDouble() as double:
        truth = make_image_folder(tmp_path / "f", per_label=1)
        double.answer = answer_by_image(truth)
        image = sorted((tmp_path / "f").rglob("*.png"))[0]
        with Probe.open(host=double.url) as probe:
            assert probe.classify(image).label == truth[sha(image)]
    with Probe.open(offline=True) as probe:
        assert probe.classify(image).cached

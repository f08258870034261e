"""Less client work per request: one cache lookup per image, request bodies built ahead."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from factories import make_image_folder
from ollama_double import answer_by_image

from emoprobe.backends.base import ChatRequest
from emoprobe.backends.ollama import OllamaBackend
from emoprobe.data.images import prepare_image
from emoprobe.pipeline import cache as cache_module
from emoprobe.pipeline.cache import ResponseCache
from emoprobe.pipeline.config import RunConfig
from emoprobe.pipeline.probe import Job, Outcome, Probe
from emoprobe.pipeline.runner import run


class CountingCache(ResponseCache):
    """The real cache, counting its reads: answer lookups and file-hash memo queries
    (every read of either, `get` included, is one `_read_many` query)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.answer_reads = 0
        self.memo_queries = 0

    def file_hash(self, path, stat):
        self.memo_queries += 1
        return super().file_hash(path, stat)

    def _read_many(self, store, keys):
        if store is self._hashes:
            self.memo_queries += 1
        else:
            self.answer_reads += 1
        return super()._read_many(store, keys)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    make_image_folder(tmp_path / "faces", per_label=8)
    return sorted((tmp_path / "faces").rglob("*.png"))


def probe_on(double, cache: ResponseCache) -> Probe:
    backend = OllamaBackend(double.url, timeout=30)
    from emoprobe.pipeline.probe import describe_model
    from emoprobe.task.definition import PAPER_TASK

    info = describe_model("qwen2.5vl:7b", [backend], cache)
    return Probe(task=PAPER_TASK, model="qwen2.5vl:7b", info=info, cache=cache, backend=backend)


def test_each_image_costs_one_answer_lookup_cold_and_warm(
    ollama_double, images, tmp_path, monkeypatch
):
    monkeypatch.setattr(cache_module, "HASH_BATCH", 16)
    monkeypatch.setattr("emoprobe.pipeline.probe.HASH_BATCH", 16)
    with CountingCache(tmp_path / "cache") as cache:
        probe = probe_on(ollama_double, cache)
        reads_before = cache.answer_reads
        cold = list(probe.prepare_many(enumerate(images)))
        assert all(isinstance(job, Job) for job in cold)
        assert cache.answer_reads - reads_before == len(images)  # one per image
        assert cache.memo_queries == -(-len(images) // 16)  # one per batch of 16
        for job in cold:
            probe.send(job, probe.backend)
        reads_before, queries_before = cache.answer_reads, cache.memo_queries
        warm = list(probe.prepare_many(enumerate(images)))
        assert all(isinstance(hit, Outcome) and hit.cached for hit in warm)
        assert cache.answer_reads - reads_before == len(images)
        assert cache.memo_queries - queries_before == -(-len(images) // 16)
        # a memo that still knows the file but no answer: looked up once, asked again
        cache.clear()
        probe.cache.remember_file_hash(
            images[0], images[0].stat(), hashlib.sha256(images[0].read_bytes()).hexdigest()
        )
        reads_before = cache.answer_reads
        [again] = probe.prepare_many([(0, images[0])])
        assert isinstance(again, Job) and cache.answer_reads - reads_before == 1
        probe.backend.close()


def test_a_run_reads_each_answer_once_and_loses_nothing(
    ollama_double, images, tmp_path, monkeypatch
):
    made: list[CountingCache] = []

    def counting(directory):
        made.append(CountingCache(directory))
        return made[-1]

    monkeypatch.setattr("emoprobe.pipeline.runner.ResponseCache", counting)
    for out in ("a", "b"):
        config = RunConfig(
            dataset=images[0].parents[1],
            hosts=(ollama_double.url,),
            out=tmp_path / out,
            cache_dir=tmp_path / "cache",
            concurrency=3,
        )
        result = run(config)
        assert result.finished == len(images) and result.complete
    cold, warm = made
    assert cold.answer_reads == len(images)
    assert warm.answer_reads == len(images)
    assert len(ollama_double.chat_requests) == len(images)
    rows_a = (tmp_path / "a" / "predictions.csv").read_text().count("\n")
    assert rows_a == (tmp_path / "b" / "predictions.csv").read_text().count("\n")


def test_a_job_carries_its_request_body_built_in_the_preparer(ollama_double, images, tmp_path):
    ollama_double.answer = answer_by_image({})
    with ResponseCache(tmp_path / "cache") as cache:
        probe = probe_on(ollama_double, cache)
        [job] = probe.prepare_many([(0, images[3])])
        assert isinstance(job, Job) and job.body
        body = json.loads(job.body)
        assert base64.b64decode(body["messages"][1]["images"][0]) == images[3].read_bytes()
        assert (
            "images" not in body["messages"][0] and body["stream"] is False
        )  # num_predict=32: a bounded answer comes whole
        assert body["options"] == probe.options and body["model"] == "qwen2.5vl:7b"
        assert "base64" not in repr(job) and str(body["messages"][1]["images"][0])[:20] not in repr(
            job
        )
        probe.send(job, probe.backend)
        [received] = ollama_double.chat_requests
        assert received["messages"] == body["messages"]
        probe.backend.close()


def test_the_prebuilt_body_is_what_the_ollama_client_would_send(ollama_double, images):
    """Built by hand, compared field by field with the `ollama` client's own request."""
    import ollama

    prepared = prepare_image(images[1])
    request = ChatRequest(
        model="qwen2.5vl:7b",
        system="S ü",
        user_text="Answer:",
        image=prepared.payload,
        image_mime=prepared.mime,
        options={"temperature": 0, "seed": 1},
        format={"type": "object"},
        top_logprobs=3,
    )
    backend = OllamaBackend(ollama_double.url, timeout=30)
    ours = json.loads(backend.encode(request))
    client = ollama.Client(host=ollama_double.url)
    client.chat(
        model=request.model,
        stream=False,
        keep_alive=backend.keep_alive,
        messages=[
            {"role": "system", "content": "S ü"},
            {"role": "user", "content": "Answer:", "images": [prepared.payload]},
        ],
        options={"temperature": 0, "seed": 1},
        format={"type": "object"},
        logprobs=True,
        top_logprobs=3,
    )
    theirs = ollama_double.chat_requests[-1]
    assert ours["stream"] is True  # log-probabilities: streamed
    assert {**ours, "stream": False} == theirs
    backend.close()


@pytest.mark.parametrize(
    ("options", "top_logprobs", "streamed"),
    [
        ({"num_predict": 32}, 0, False),  # bounded: nothing to cut off, the answer comes whole
        ({"num_predict": 128}, 0, False),
        ({"num_predict": 4096}, 0, True),  # might run past MAX_ANSWER_CHARS: cut off early
        ({"num_predict": -1}, 0, True),
        ({}, 0, True),
        ({"num_predict": 32}, 3, True),  # log-probabilities per token
    ],
)
def test_a_reply_is_streamed_only_where_it_serves(options, top_logprobs, streamed):
    from emoprobe.backends.ollama import streams

    request = ChatRequest("m", "s", "u", b"x", "image/jpeg", options, None, top_logprobs)
    assert streams(request) is streamed

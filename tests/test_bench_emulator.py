"""The benchmarks' Ollama emulator speaks Ollama's API as emoprobe and `ollama` use it.

Behaviour only (keep-alive, slots, records, what the benchmark inputs look like); the
benchmarks themselves print the timings.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import ollama
import pytest

from emoprobe.backends.ollama import OllamaBackend
from emoprobe.data.dataset import load_dataset
from emoprobe.pipeline.runner import RunConfig, run

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


emulator = _load("emulator")
inputs = _load("inputs")
measure = _load("measure")


@pytest.fixture
def server() -> Iterator[Any]:
    instance = emulator.EmulatedOllama(0, slots=1, service=0.03)
    thread = threading.Thread(target=instance.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield instance
    finally:
        instance.shutdown()
        instance.server_close()
        thread.join()


@pytest.fixture
def jpegs(tmp_path: Path) -> list[Path]:
    return inputs.make_jpeg_folder(tmp_path / "data", 5, size=(128, 72))


def _stats(server: Any) -> dict[str, Any]:
    return dict(server.stats(asking_port=-1))


def test_emoprobe_sees_a_vision_model(server: Any) -> None:
    backend = OllamaBackend(server.url, timeout=10)
    try:
        info = backend.describe("qwen2.5vl:7b")
    finally:
        backend.close()
    assert "vision" in info.capabilities
    assert info.digest == emulator.DIGEST
    assert info.server_version == emulator.VERSION


def test_whole_and_streamed_answers_over_one_kept_alive_connection(
    server: Any, jpegs: list[Path]
) -> None:
    client = ollama.Client(host=server.url, timeout=10)
    messages = [{"role": "user", "content": "which?", "images": [str(jpegs[0])]}]
    whole = client.chat(model="qwen2.5vl:7b", messages=messages)
    pieces = [
        chunk.message.content or ""
        for chunk in client.chat(model="qwen2.5vl:7b", messages=messages, stream=True)
    ]
    assert whole.done and whole.message.content == "".join(pieces)
    assert any(label in whole.message.content for label in emulator.LABELS)
    assert len(pieces) == emulator.TOKENS_PER_ANSWER + 1  # the tokens, then the done line
    stats = _stats(server)
    assert stats["connections"] == 1
    assert [chat["streamed"] for chat in stats["chats"]] == [False, True]
    image_bytes = jpegs[0].stat().st_size
    assert all(chat["image_bytes"] == image_bytes for chat in stats["chats"])


def test_requests_beyond_the_slots_queue(server: Any, jpegs: list[Path]) -> None:
    def ask(path: Path) -> None:
        client = ollama.Client(host=server.url, timeout=10)
        client.chat(
            model="qwen2.5vl:7b", messages=[{"role": "user", "content": "", "images": [str(path)]}]
        )

    threads = [threading.Thread(target=ask, args=(path,)) for path in jpegs[:3]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chats = sorted(_stats(server)["chats"], key=lambda chat: chat["slot_start"])
    assert len(chats) == 3
    for before, after in itertools.pairwise(chats):
        assert after["slot_start"] >= before["slot_end"]  # one slot: never two at once
    figures = measure.server_figures(_stats(server))
    assert figures["requests"] == 3 and figures["chat_ports"] == 3
    assert 0 < figures["busy_share"] <= 1


def test_stats_leave_out_the_asking_connection_and_reset(server: Any, jpegs: list[Path]) -> None:
    client = ollama.Client(host=server.url, timeout=10)
    client.chat(
        model="qwen2.5vl:7b", messages=[{"role": "user", "content": "", "images": [str(jpegs[1])]}]
    )
    reader = measure.EmulatorStats(server.url)
    assert reader.stats()["connections"] == 1
    reader.reset()
    assert reader.stats() | {"server_cpu_s": 0} == {
        "slots": 1,
        "service_s": 0.03,
        "connections": 0,
        "distinct_ports": 0,
        "other_requests": 0,
        "server_cpu_s": 0,
        "chats": [],
    }


def test_inputs_are_an_image_folder_and_run_folders_emoprobe_reads(
    server: Any, jpegs: list[Path], tmp_path: Path
) -> None:
    dataset = load_dataset(tmp_path / "data")
    assert sorted(item.label for item in dataset.items) == sorted(emulator.LABELS)
    assert len({path.read_bytes() for path in jpegs}) == len(jpegs)  # all distinct

    result = run(
        RunConfig(
            dataset=tmp_path / "data",
            host=server.url,
            out=tmp_path / "run",
            cache_dir=tmp_path / "cache",
            concurrency=2,
        )
    )
    assert result.finished == 5
    folders = inputs.make_run_folders(tmp_path / "run", tmp_path / "copies", runs=2, rows=30)
    for folder in folders:
        with open(folder / "predictions.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        manifest = json.loads((folder / "manifest.json").read_text())
        assert len(rows) == len(manifest["files"]) == 30
        assert {row["sha256"] for row in rows} == {entry["sha256"] for entry in manifest["files"]}
    assert (tmp_path / "run" / "predictions.csv").read_text().splitlines()[0] == (
        folders[0] / "predictions.csv"
    ).read_text().splitlines()[0]

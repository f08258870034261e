"""The response cache: keys that name everything an answer depends on, and no image."""

from __future__ import annotations

import os

import pytest

from emoprobe.data.images import PREPARE_VERSION
from emoprobe.errors import CacheError
from emoprobe.pipeline.cache import MEMO_WRITES, KeyMaker, ResponseCache, response_key
from emoprobe.task.definition import PAPER_TASK, Task

BASE = dict(
    backend="ollama",
    model_digest="d" * 64,
    messages_text=[("system", "prompt"), ("user", "<image>")],
    options={"temperature": 0.0, "seed": 42},
    answer_mode="text",
    image_sha256="a" * 64,
    image_preparation="1:max_side=None",
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backend", "openai"),
        ("model_digest", "e" * 64),
        ("messages_text", [("system", "prompt!"), ("user", "<image>")]),
        ("options", {"temperature": 0.5, "seed": 42}),
        ("answer_mode", "json"),
        ("image_sha256", "b" * 64),
        ("image_preparation", "1:max_side=640"),
    ],
)
def test_every_input_of_an_answer_changes_the_key(field, value):
    assert response_key(**{**BASE, field: value}) != response_key(**BASE)


def test_the_key_is_stable_and_ignores_option_order():
    reordered = {**BASE, "options": {"seed": 42, "temperature": 0.0}}
    assert response_key(**reordered) == response_key(**BASE)
    assert len(response_key(**BASE)) == 64


@pytest.mark.parametrize(
    "task",
    [PAPER_TASK, Task(name="odd", instruction="say 0" + "0" * 62 + "x", definitions={"a": "A"})],
)
@pytest.mark.parametrize("sha", ["a" * 64, "0" * 63 + "x", "not a hash"])
def test_key_maker_gives_response_key_of_the_same_fields(task, sha):
    """Keys put together from their parts are the keys of the whole text, even for a
    prompt that holds the placeholder's text or an image hash that is not hex."""
    keys = KeyMaker("ollama", "d" * 64, task, {"seed": 1}, "text", 448, model="m:1b")
    fields = dict(
        backend="ollama",
        model_digest="d" * 64,
        messages_text=[("system", task.system_prompt), ("user", task.user_text + "<image>")],
        options={"seed": 1},
        answer_mode="text",
        image_sha256=sha,
        image_preparation=f"{PREPARE_VERSION}:max_side=448",
    )
    for _ in range(2):  # the memo's second use too
        assert keys.key(sha) == response_key(**fields, model="m:1b")
        assert keys.legacy_key(sha) == response_key(**fields)


def test_values_and_file_hashes_survive_reopening(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"png")
    with ResponseCache(tmp_path / "cache") as cache:
        cache.set("k", {"raw": "happy"})
        cache.remember_file_hash(image, os.stat(image), "f" * 64)
        cache.remember_model("qwen2.5vl:7b", {"digest": "d" * 64})
    with ResponseCache(tmp_path / "cache") as cache:
        assert cache.get("k") == {"raw": "happy"}
        assert cache.file_hash(image, os.stat(image)) == "f" * 64
        assert cache.recall_model("qwen2.5vl:7b") == {"digest": "d" * 64}
        image.write_bytes(b"png, changed")
        assert cache.file_hash(image, os.stat(image)) is None


def test_file_hashes_are_written_in_batches_and_read_before_they_are(tmp_path):
    """The memo is written MEMO_WRITES entries at a time; entries not yet written are
    read all the same, and written at close."""
    images = []
    for n in range(MEMO_WRITES + 3):
        images.append(tmp_path / f"{n}.png")
        images[-1].write_bytes(b"png %d" % n)
    files = [(image, os.stat(image)) for image in images]
    with ResponseCache(tmp_path / "cache") as cache:
        for n, (image, st) in enumerate(files):
            cache.remember_file_hash(image, st, f"{n:064x}")
        with ResponseCache(tmp_path / "cache") as other:  # what is on disk so far
            on_disk = other.file_hashes(files)
        assert on_disk == [f"{n:064x}" for n in range(MEMO_WRITES)] + [None] * 3
        assert cache.file_hashes(files) == [f"{n:064x}" for n in range(len(files))]
        assert cache.file_hash(*files[-1]) == f"{len(files) - 1:064x}"
    with ResponseCache(tmp_path / "cache") as cache:
        assert cache.file_hashes(files) == [f"{n:064x}" for n in range(len(files))]
        assert cache.info()["file_hashes"] == len(files)


def test_a_corrupt_cache_is_a_one_line_error(tmp_path):
    folder = tmp_path / "cache" / "responses"
    folder.mkdir(parents=True)
    (folder / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match=r"unusable .* delete it or choose another") as error:
        ResponseCache(tmp_path / "cache")
    assert error.value.setting == "cache_dir" and "--" not in str(error.value)


def test_a_file_as_cache_dir_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="not a folder"):
        ResponseCache(tmp_path / "file")

"""The server-support table: versions, families, slots, image tokens, load errors."""

from __future__ import annotations

import pytest

from emoprobe.backends.server_support import (
    LAST_MLLAMA_SERVER,
    UnknownImageRule,
    Version,
    can_serve,
    image_tokens,
    is_unservable_load_error,
    parallel_slots,
    parse_server_version,
    support_for,
    think_value,
)

OLD = support_for(Version(0, 13, 0))
NEW = support_for(Version(0, 34, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.34.1", Version(0, 34, 1)),
        ("v0.30.0-rc3", Version(0, 30, 0)),
        ("0.13", Version(0, 13, 0)),
        ("  0.12.11\n", Version(0, 12, 11)),
        ("1.2.3+build.7", Version(1, 2, 3)),
        ("0.0.0", None),  # a source build: says nothing
        ("", None),
        ("latest", None),
        ("0.x.1", None),
        ("ollama version is 0.34.1", None),
        (None, None),
        (34, None),
    ],
)
def test_parse_server_version(text: object, expected: Version | None) -> None:
    assert parse_server_version(text) == expected


def test_versions_order_numerically() -> None:
    assert Version(0, 9, 0) < Version(0, 12, 11) < Version(0, 30, 0) < Version(1, 0, 0)
    assert str(Version(0, 34, 1)) == "0.34.1"


@pytest.mark.parametrize(
    ("name", "field", "first"),
    [
        ("schema_format", "schema_format", Version(0, 5, 0)),
        ("think_field", "think_field", Version(0, 9, 0)),
        ("think_levels", "think_levels", Version(0, 11, 0)),
        ("thinks_by_default", "thinks_by_default", Version(0, 12, 4)),
        ("logprobs", "logprobs", Version(0, 12, 11)),
    ],
)
def test_each_feature_starts_at_its_release(name: str, field: str, first: Version) -> None:
    before = Version(first.major, first.minor - 1, 99)
    assert getattr(support_for(first), field) is True
    assert getattr(support_for(before), field) is False
    assert getattr(NEW, field) is True


def test_engine_and_qwen_floor_change_at_0_30() -> None:
    assert support_for(Version(0, 24, 0)).engine == "ollama"
    assert support_for(Version(0, 30, 0)).engine == "llama-server"
    assert support_for(Version(0, 24, 0)).qwen_vl_min_image_tokens is None
    assert NEW.qwen_vl_min_image_tokens == 1024


def test_mllama_cannot_load_from_0_30_with_both_ways_out() -> None:
    assert can_serve(support_for(LAST_MLLAMA_SERVER), "mllama") is None
    assert can_serve(OLD, "mllama") is None
    reason = can_serve(NEW, "mllama")
    assert reason is not None and "\n" not in reason
    assert "0.34.1" in reason and "mllama" in reason
    assert "Ollama 0.24.x server" in reason  # way out 1
    assert "vLLM" in reason and "openai backend" in reason  # way out 2
    assert "--" not in reason  # the CLI adds flag hints, not this module


@pytest.mark.parametrize("family", ["qwen3vl", "gemma3", "qwen25vl", "", None, "nosuchfamily"])
def test_other_families_and_unknown_ones_are_servable(family: str | None) -> None:
    assert can_serve(NEW, family) is None


@pytest.mark.parametrize(
    "message",
    [
        "llama-server process has terminated: exit status 1: error loading model: "
        "unknown model architecture: 'mllama'\nerror loading model: unknown model "
        "architecture: 'mllama'",
        "llama runner process has terminated: error loading model architecture: "
        "unknown model architecture: 'mllama'",
        "'llama3.2-vision' is no longer compatible with your version of Ollama and has "
        "been replaced by a newer version. To re-download, run 'ollama pull llama3.2-vision'",
    ],
)
def test_unservable_load_errors_are_recognised(message: str) -> None:
    assert is_unservable_load_error(message)


@pytest.mark.parametrize(
    "message",
    [
        "llama runner process has terminated: exit status 2",
        "llama-server reported out-of-memory during startup: cudaMalloc failed",
        "server busy, please try again.  maximum pending requests exceeded",
        "",
        None,
        500,
    ],
)
def test_other_errors_are_not_unservable(message: object) -> None:
    assert not is_unservable_load_error(message)


@pytest.mark.parametrize(
    ("version", "family", "requested", "slots"),
    [
        (Version(0, 13, 0), "mllama", 4, 1),
        (Version(0, 6, 0), "mllama", 2, 1),
        (Version(0, 12, 6), "qwen3vl", 4, 4),  # before 7d25b9e19
        (Version(0, 12, 7), "qwen3vl", 4, 1),
        (Version(0, 34, 1), "qwen3vlmoe", 4, 1),
        (Version(0, 15, 4), "lfm2", 3, 3),
        (Version(0, 15, 5), "lfm2", 3, 1),
        (Version(0, 17, 1), "qwen35", 2, 1),
        (Version(0, 21, 0), "nemotron_h_omni", 2, 2),
        (Version(0, 22, 0), "nemotron_h_omni", 2, 1),
        (Version(0, 34, 1), "qwen25vl", 4, 4),  # still parallel
        (Version(0, 34, 1), "gemma3", 2, 2),
        (Version(0, 34, 1), "nosuchfamily", 3, 3),
        (Version(0, 34, 1), None, 2, 2),
        (Version(0, 34, 1), "gemma3", 0, 1),  # never fewer than one
    ],
)
def test_parallel_slots(version: Version, family: str | None, requested: int, slots: int) -> None:
    got, reason = parallel_slots(support_for(version), family, requested)
    assert got == slots
    assert reason and "\n" not in reason
    if slots == 1 and requested > 1:
        assert "one request at a time" in reason and str(family) in reason


@pytest.mark.parametrize(
    ("family", "width", "height", "old", "new"),
    [
        ("qwen25vl", 48, 48, 4, 1024),  # the floor: 1,024 tokens however small
        ("qwen25vl", 224, 224, 64, 1024),
        ("qwen25vl", 448, 448, 256, 1024),
        ("qwen25vl", 1120, 1120, 1225, 1600),  # 40x40 of 28 px; old engine cap is 1,280
        ("qwen25vl", 1920, 1080, 1222, 2691),
        ("qwen3vl", 48, 48, 64, 1024),
        ("qwen3vl", 1280, 1280, 1600, 1600),  # 40x40 of 32 px
        ("qwen3vl", 1920, 1080, 2040, 2040),
        ("qwen3vlmoe", 4000, 4000, 2025, 15625),  # caps: 2,048 old, 16,384 new
        ("gemma3", 48, 48, 256, 256),
        ("gemma3", 1920, 1080, 256, 256),
    ],
)
def test_image_tokens(family: str, width: int, height: int, old: int, new: int) -> None:
    assert image_tokens(family, width, height, OLD) == old
    assert image_tokens(family, width, height, NEW) == new


def test_image_tokens_stay_within_the_rule_bounds() -> None:
    for side in range(32, 4000, 97):
        for other in (32, side, 2 * side):
            assert 1024 <= image_tokens("qwen25vl", side, other, NEW) <= 4096
            assert 1024 <= image_tokens("qwen3vl", side, other, NEW) <= 16384


def test_mllama_costs_one_token_where_it_can_load() -> None:
    assert image_tokens("mllama", 560, 560, OLD) == 1
    with pytest.raises(UnknownImageRule, match=r"mllama on Ollama 0\.34\.1"):
        image_tokens("mllama", 560, 560, NEW)


@pytest.mark.parametrize("family", ["nosuchfamily", "", None])
def test_image_tokens_for_a_family_missing_from_the_table(family: str | None) -> None:
    with pytest.raises(UnknownImageRule) as caught:
        image_tokens(family, 64, 64, NEW)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, -1)])
def test_image_tokens_refuse_an_empty_image(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        image_tokens("gemma3", width, height, NEW)


@pytest.mark.parametrize(
    ("version", "capabilities", "wanted", "expected"),
    [
        (Version(0, 34, 1), ["completion", "vision", "thinking"], False, False),
        (Version(0, 34, 1), ["completion", "vision"], False, False),  # harmless
        (Version(0, 34, 1), None, False, False),  # no capabilities reported
        (Version(0, 34, 1), ["completion", "thinking"], True, True),
        (Version(0, 34, 1), None, True, True),  # let the server decide
        (Version(0, 8, 0), ["completion"], False, None),  # no such field yet
    ],
)
def test_think_value(
    version: Version, capabilities: list[str] | None, wanted: bool, expected: bool | None
) -> None:
    assert think_value(support_for(version), capabilities, wanted) is expected


def test_wanting_thinking_from_a_model_that_cannot_think_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot think"):
        think_value(NEW, ["completion", "vision"], wanted=True)


def test_support_is_frozen() -> None:
    with pytest.raises(AttributeError):
        NEW.logprobs = False  # type: ignore[misc]

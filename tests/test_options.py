"""--option KEY=VALUE: typed, validated, merged over reproducible defaults."""

from __future__ import annotations

import pytest

from emoprobe.errors import ConfigError
from emoprobe.task.model_options import DEFAULT_OPTIONS, parse_options


def test_defaults_are_reproducible_and_cheap():
    assert parse_options([]) == {"temperature": 0.0, "seed": 42, "num_predict": 32}
    assert parse_options([]) is not DEFAULT_OPTIONS


def test_values_are_typed():
    options = parse_options(
        ["num_ctx=4096", "top_p=0.9", "use_mmap=false", "seed=-1", "stop=<end>", "stop=\n\n"]
    )
    assert options["num_ctx"] == 4096 and isinstance(options["num_ctx"], int)
    assert options["top_p"] == 0.9
    assert options["use_mmap"] is False
    assert options["seed"] == -1
    assert options["stop"] == ["<end>", "\n\n"]


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("temperature=hot", "temperature must be float"),
        ("temperature=-1", "temperature must be >= 0"),
        ("temperature=nan", "temperature must be float"),
        ("num_ctx=4.5", "num_ctx must be int"),
        ("top_p=1.5", "between 0 and 1"),
        ("use_mmap=maybe", "use_mmap must be bool"),
        ("warmth=1", "unknown option"),
        ("temperature", "expected KEY=VALUE"),
        ("=1", "expected KEY=VALUE"),
    ],
)
def test_bad_options_are_one_line_config_errors(pair, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_options([pair])
    assert "\n" not in str(caught.value)

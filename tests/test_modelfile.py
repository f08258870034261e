"""The Modelfile parser and writer (emoprobe.ollama_admin.modelfile) and the six builds.

emoprobe reads back only the Modelfiles it renders (FROM, SYSTEM, PARAMETERs), perhaps
edited by hand; the cases below follow Ollama's parser (parser/parser_test.go) there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emoprobe.errors import ConfigError, EmoprobeError
from emoprobe.ollama_admin import builds
from emoprobe.ollama_admin.modelfile import (
    Modelfile,
    ModelfileError,
    format_parameter,
    parse,
    render,
    unquote,
)
from emoprobe.task.definition import PAPER_TASK
from emoprobe.task.model_options import DEFAULT_OPTIONS

REPO_MODELFILES = Path(__file__).resolve().parent.parent / "modelfiles"


# -- what the parser reads -------------------------------------------------------------
PARSED: list[tuple[str, Modelfile]] = [
    ("FROM foo", Modelfile("foo")),
    ("from foo\nsystem hi", Modelfile("foo", "hi")),
    ("From foo\nsYsTeM hi", Modelfile("foo", "hi")),
    ("FROM llama3:7b-instruct-q4_K_M", Modelfile("llama3:7b-instruct-q4_K_M")),
    ("FROM     FOOO BAR    ", Modelfile("FOOO BAR")),
    ('FROM "     model 1"', Modelfile("     model 1")),
    ('FROM "FOO BAR"\nPARAMETER seed 1', Modelfile("FOO BAR", None, {"seed": 1})),
    ("PARAMETER seed 1\nFROM foo", Modelfile("foo", None, {"seed": 1})),
    ("\n# comment\nFROM foo\n\t", Modelfile("foo")),
    ("  # indented comment\nFROM foo # not a comment", Modelfile("foo # not a comment")),
    ("FROM foo\n#SYSTEM commented out\n", Modelfile("foo")),
    ("FROM foo\r\nSYSTEM windows\r\n", Modelfile("foo", "windows")),
    ("\ufeffFROM foo", Modelfile("foo")),
    ("FROM test\n\tSYSTEM 你好👋", Modelfile("test", "你好👋")),
    ("FROM a\nSYSTEM one\nFROM b\nSYSTEM two\n", Modelfile("b", "two")),  # the last wins
    (
        'FROM foo\nSYSTEM """\nThis is a\nmultiline system.\n"""\n',
        Modelfile("foo", "\nThis is a\nmultiline system.\n"),
    ),
    (
        'FROM foo\nSYSTEM """\nThis is a\nmultiline system."""',
        Modelfile("foo", "\nThis is a\nmultiline system."),
    ),
    (
        'FROM foo\nSYSTEM """This is a\nmultiline system."""',
        Modelfile("foo", "This is a\nmultiline system."),
    ),
    (
        'FROM foo\nSYSTEM """This is a multiline system."""   \n',
        Modelfile("foo", "This is a multiline system."),
    ),
    (
        'FROM foo\nSYSTEM """\nA system with "quotes".\n"""\n',
        Modelfile("foo", '\nA system with "quotes".\n'),
    ),
    (
        'FROM foo\nSYSTEM """Keep\n\n  blank lines\tand tabs"""',
        Modelfile("foo", "Keep\n\n  blank lines\tand tabs"),
    ),
    ('FROM foo\nSYSTEM """"""', Modelfile("foo", "")),
    ('FROM foo\nSYSTEM ""', Modelfile("foo", "")),
    ('FROM foo\nSYSTEM "\'"', Modelfile("foo", "'")),
    (
        'FROM foo\nSYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""',
        Modelfile("foo", "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
    ),
    (
        "FROM foo\nPARAMETER stop <|im_end|>\nPARAMETER stop </s>\n"
        'PARAMETER stop "### User: "\nparameter stop """### User:\n"""',
        Modelfile("foo", None, {"stop": ["<|im_end|>", "</s>", "### User: ", "### User:\n"]}),
    ),
    ("FROM foo\nPARAMETER stop ### User: ", Modelfile("foo", None, {"stop": ["### User:"]})),
    ("FROM foo\nPARAMETER    seed    7", Modelfile("foo", None, {"seed": 7})),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse(text: str, expected: Modelfile) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "value", "complete"),
    [
        ('"""abc"""', "abc", True),
        ('""""""', "", True),
        ('"""abc""', "", False),
        ('"""', "", False),
        ('"abc"', "abc", True),
        ('"', "", False),
        ("plain", "plain", True),
    ],
)
def test_unquote(text: str, value: str, complete: bool) -> None:
    assert unquote(text) == (value, complete)


# -- typed parameters --------------------------------------------------------------------
TYPED: list[tuple[str, dict[str, Any]]] = [
    ("temperature 0", {"temperature": 0.0}),
    ("temperature 1e-3", {"temperature": 0.001}),
    ("temperature .5", {"temperature": 0.5}),
    ("seed 42", {"seed": 42}),
    ("seed -1", {"seed": -1}),
    ("num_predict 32", {"num_predict": 32}),
    ("num_ctx 4096", {"num_ctx": 4096}),
    ("num_batch 512", {"num_batch": 512}),
    ("num_gpu 99", {"num_gpu": 99}),
    ("main_gpu 1", {"main_gpu": 1}),
    ("num_thread 8", {"num_thread": 8}),
    ("num_keep 4", {"num_keep": 4}),
    ("top_k 40", {"top_k": 40}),
    ("top_p 0.9", {"top_p": 0.9}),
    ("min_p 0.05", {"min_p": 0.05}),
    ("typical_p 1.0", {"typical_p": 1.0}),
    ("repeat_last_n -1", {"repeat_last_n": -1}),
    ("repeat_penalty 1.1", {"repeat_penalty": 1.1}),
    ("presence_penalty -0.5", {"presence_penalty": -0.5}),
    ("frequency_penalty 0.5", {"frequency_penalty": 0.5}),
    ("use_mmap true", {"use_mmap": True}),
    ("use_mmap False", {"use_mmap": False}),
    ("use_mmap 1", {"use_mmap": True}),
    ("use_mmap f", {"use_mmap": False}),
    ("stop </s>", {"stop": ["</s>"]}),
    ("seed 1\nPARAMETER seed 2", {"seed": 2}),  # the last one wins, as in Ollama
    ("stop a\nPARAMETER stop b\nPARAMETER stop a", {"stop": ["a", "b", "a"]}),
]


@pytest.mark.parametrize(("line", "expected"), TYPED)
def test_parameters_are_typed_like_ollama_options(line: str, expected: dict[str, Any]) -> None:
    parameters = parse(f"FROM foo\nPARAMETER {line}\n").parameters
    assert parameters == expected
    for name, value in expected.items():
        assert type(parameters[name]) is type(value)


# -- errors name the line --------------------------------------------------------------
ERRORS: list[tuple[str, int, str]] = [
    ("", 0, "no FROM line"),
    ("# only a comment\n", 0, "no FROM line"),
    ("PARAMETER seed 1", 0, "no FROM line"),
    ("FROM foo\nBADCOMMAND param1 value1\n", 2, "unknown instruction 'BADCOMMAND'"),
    ("FROM foo\n\nSYS-TEM x\n", 3, "unknown instruction 'SYS-TEM'"),
    ("FROM foo\nTEMPLATE {{ .Prompt }}\n", 2, "expected one of FROM, SYSTEM, PARAMETER"),
    ("FROM\n", 1, "FROM needs a value"),
    ("FROM \n", 1, "FROM needs a value"),
    ("FROM foo\nSYSTEM", 2, "SYSTEM needs a value"),
    ("FROM foo\nPARAMETER param1\n", 2, "PARAMETER needs a name and a value"),
    ("FROM foo\nPARAMETER\n", 2, "PARAMETER needs a name and a value"),
    ("FROM foo\nPARAMETER temp-erature 1\n", 2, "PARAMETER needs a name and a value"),
    ('FROM foo\nSYSTEM """This is a multiline system.""\n', 2, 'unterminated """ quote'),
    ('FROM foo\n\n\nSYSTEM """\nnever closed\n', 4, 'unterminated """ quote'),
    ('FROM foo\nSYSTEM "\n', 2, 'unterminated " quote'),
    ('FROM foo\nSYSTEM """a""" trailing\n', 2, 'unterminated """ quote'),
    ("FROM foo\nPARAMETER temprature 0\n", 2, "unknown parameter 'temprature'"),
    ("FROM foo\nPARAMETER numa true\n", 2, "unknown parameter 'numa'"),
    ("FROM foo\nPARAMETER seed 4.2\n", 2, "seed must be an integer, not '4.2'"),
    ("FROM foo\nPARAMETER num_ctx 1_000\n", 2, "num_ctx must be an integer"),
    ("FROM foo\nPARAMETER temperature hot\n", 2, "temperature must be a number, not 'hot'"),
    ("FROM foo\nPARAMETER temperature nan\n", 2, "temperature must be a number"),
    ("FROM foo\nPARAMETER temperature inf\n", 2, "temperature must be a number"),
    ("FROM foo\nPARAMETER use_mmap yes\n", 2, "use_mmap must be true or false"),
    ('FROM foo\nSYSTEM """a\nb\nc"""\nPARAMETER seed x\n', 5, "seed must be an integer"),
    ("FROM foo\r\nBAD x\r\n", 2, "unknown instruction 'BAD'"),
]


@pytest.mark.parametrize(("text", "line", "message"), ERRORS)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ModelfileError) as caught:
        parse(text, source="x.Modelfile")
    error = caught.value
    assert error.line == line
    assert message in str(error)
    where = f"x.Modelfile, line {line}: " if line else "x.Modelfile: "
    assert str(error).startswith(where)
    assert "\n" not in str(error)
    assert isinstance(error, ConfigError) and isinstance(error, EmoprobeError)


# -- the create request ----------------------------------------------------------------
def test_create_fields_match_ollamas_create_request() -> None:
    parsed = parse(
        "FROM test\nPARAMETER temperature 0.5\nPARAMETER top_k 1\nPARAMETER stop a\n"
        "PARAMETER stop b\nSYSTEM You are a bot.\n"
    )
    assert parsed.create_fields() == {
        "from": "test",
        "system": "You are a bot.",
        "parameters": {"temperature": 0.5, "top_k": 1, "stop": ["a", "b"]},
    }
    json.dumps(parsed.create_fields())  # serialisable as it is
    assert parse("FROM a\n").create_fields() == {"from": "a"}


# -- writing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (0.9, "0.9"), (1e-05, "1e-05"), (42, "42"), (True, "true"), (False, "false")],
)
def test_format_parameter(value: Any, text: str) -> None:
    assert format_parameter(value) == text


def test_render_round_trips_every_field() -> None:
    system = 'Line one.\n\n  "Indented" line with \t tab.'
    parameters = {"temperature": 0.0, "seed": 42, "use_mmap": False, "stop": ["</s>", "###"]}
    text = render(
        "qwen2.5vl:7b", system=system, parameters=parameters, comments=["a header", "", "generated"]
    )
    assert text.startswith("# a header\n#\n# generated\n\nFROM qwen2.5vl:7b\n")
    assert parse(text) == Modelfile("qwen2.5vl:7b", system, parameters)


def test_render_refuses_unknown_parameters_and_unwritable_values() -> None:
    with pytest.raises(ModelfileError, match="unknown parameter 'temprature'"):
        render("x", parameters={"temprature": 0.0})
    with pytest.raises(ModelfileError, match="not a finite number"):
        render("x", parameters={"temperature": float("nan")})
    with pytest.raises(ModelfileError, match="cannot write"):
        render("x", system='a line that ends in """\nand goes on')
    with pytest.raises(ModelfileError, match="cannot write"):
        render("x", parameters={"stop": [" padded "]})


# -- the six shipped Modelfiles ----------------------------------------------------------
LIBRARY_TAGS = [
    "qwen2.5vl:7b-q4_K_M",
    "qwen2.5vl:7b-q8_0",
    "qwen2.5vl:7b-fp16",
    "llama3.2-vision:11b-instruct-q4_K_M",
    "llama3.2-vision:11b-instruct-q8_0",
    "llama3.2-vision:11b-instruct-fp16",
    "qwen3-vl:8b-instruct-q4_K_M",
    "qwen3-vl:8b-instruct-q8_0",
    "qwen3-vl:8b-instruct-bf16",
    "gemma3:4b-it-q4_K_M",
    "gemma3:4b-it-q8_0",
    "gemma3:4b-it-fp16",
]


def test_twelve_builds_from_the_library_tags() -> None:
    assert [b.base for b in builds.BUILDS] == LIBRARY_TAGS
    assert [b.name for b in builds.BUILDS] == [
        "emoprobe-qwen2.5vl:7b-q4_K_M",
        "emoprobe-qwen2.5vl:7b-q8_0",
        "emoprobe-qwen2.5vl:7b-fp16",
        "emoprobe-llama3.2-vision:11b-q4_K_M",
        "emoprobe-llama3.2-vision:11b-q8_0",
        "emoprobe-llama3.2-vision:11b-fp16",
        "emoprobe-qwen3-vl:8b-q4_K_M",
        "emoprobe-qwen3-vl:8b-q8_0",
        "emoprobe-qwen3-vl:8b-bf16",
        "emoprobe-gemma3:4b-q4_K_M",
        "emoprobe-gemma3:4b-q8_0",
        "emoprobe-gemma3:4b-fp16",
    ]
    assert [b.key for b in builds.BUILDS[6:]] == [
        "qwen3-vl-q4",
        "qwen3-vl-q8",
        "qwen3-vl-bf16",
        "gemma3-q4",
        "gemma3-q8",
        "gemma3-fp16",
    ]
    assert [b.arch for b in builds.BUILDS[::3]] == ["qwen25vl", "mllama", "qwen3vl", "gemma3"]
    assert builds.BUILDS[6].source == "https://ollama.com/library/qwen3-vl:8b-instruct-q4_K_M"
    shipped = sorted(p.name for p in REPO_MODELFILES.glob("*.Modelfile"))
    assert shipped == sorted(b.filename for b in builds.BUILDS)


@pytest.mark.parametrize("build", builds.BUILDS, ids=lambda b: b.key)
def test_shipped_modelfile_carries_the_prompt_and_the_defaults(build: builds.Build) -> None:
    path = REPO_MODELFILES / build.filename
    text = path.read_text(encoding="utf-8")
    parsed = parse(text)
    assert parsed.base == build.base
    assert parsed.system == PAPER_TASK.system_prompt
    assert parsed.parameters == {**DEFAULT_OPTIONS, "num_ctx": 4096}
    assert f'SYSTEM """{PAPER_TASK.system_prompt}"""' in text
    header = text.split("\nFROM ", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines() if line)
    assert "GENERATED by `emoprobe models render`" in header
    assert build.name in header
    expected = {
        "from": build.base,
        "system": PAPER_TASK.system_prompt,
        "parameters": {**DEFAULT_OPTIONS, "num_ctx": 4096},
    }
    assert builds.create_fields(build, REPO_MODELFILES) == expected
    assert builds.create_fields(build) == expected  # the package's own, with no folder


@pytest.mark.parametrize("build", builds.BUILDS, ids=lambda b: b.key)
def test_shipped_modelfile_round_trips(build: builds.Build) -> None:
    text = (REPO_MODELFILES / build.filename).read_text(encoding="utf-8")
    parsed = parse(text)
    comments = [
        line[2:] if line.startswith("# ") else line[1:]
        for line in text.split("\nFROM ", 1)[0].splitlines()
        if line
    ]
    again = render(
        parsed.base, system=parsed.system, parameters=parsed.parameters, comments=comments
    )
    assert again == text
    assert parse(again) == parsed


@pytest.mark.parametrize("build", builds.BUILDS, ids=lambda b: b.key)
def test_shipped_modelfile_has_not_drifted_from_render(build: builds.Build) -> None:
    assert builds.is_current(REPO_MODELFILES, build), (
        f"modelfiles/{build.filename} differs from what the code renders: "
        "run `emoprobe models render` and commit the result"
    )


def test_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = builds.BUILDS[0]
    (tmp_path / build.filename).write_text(builds.render_text(build), encoding="utf-8")
    assert builds.is_current(tmp_path, build)
    monkeypatch.setattr(
        PAPER_TASK.__class__, "system_prompt", property(lambda self: "A different prompt.")
    )
    assert not builds.is_current(tmp_path, build)


def test_qwen_context_fits_a_720p_frame_and_the_prompt() -> None:
    image_tokens = (1280 // 28) * (720 // 28)
    prompt_tokens = len(PAPER_TASK.system_prompt) // 3  # generous: ~4 characters a token
    for build in builds.BUILDS:
        assert build.num_ctx >= image_tokens + prompt_tokens + DEFAULT_OPTIONS["num_predict"]


def test_the_repository_ships_no_lock_and_the_lock_lives_in_the_data_dir(tmp_path: Path) -> None:
    assert not (REPO_MODELFILES / "lock.json").exists()
    assert builds.lock_path() == tmp_path / "data" / builds.LOCK_NAME  # $EMOPROBE_DATA_DIR
    lock = builds.Lock.load()
    assert list(lock.entries) == [b.name for b in builds.BUILDS]
    assert not builds.lock_path().exists()  # loading writes nothing
    lock.record_build(builds.BUILDS[0], "ab" * 32)
    lock.save()
    saved = json.loads(builds.lock_path().read_text(encoding="utf-8"))
    assert saved["builds"][builds.BUILDS[0].name]["digest"] == "ab" * 32
    assert saved["builds"][builds.BUILDS[1].name] == {
        "base": builds.BUILDS[1].base,
        "source": "https://ollama.com/library/qwen2.5vl:7b-q8_0",
        "base_digest": None,
        "pulled_at": None,
        "digest": None,
        "built_at": None,
    }

"""The Modelfile parser and writer (emoprobe.modelfile) and the six shipped Modelfiles.

Many cases are those of Ollama's own parser tests (parser/parser_test.go), so the two
parsers read the same text the same way.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import pytest

from emoprobe.errors import ConfigError, EmoprobeError
from emoprobe.ollama_admin import builds
from emoprobe.ollama_admin.modelfile import (
    ModelfileError,
    decode,
    format_parameter,
    parse,
    quote,
    render,
    unquote,
)
from emoprobe.task.definition import PAPER_TASK
from emoprobe.task.model_options import DEFAULT_OPTIONS

REPO_MODELFILES = Path(__file__).resolve().parent.parent / "modelfiles"
TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)


def commands(text: str) -> list[tuple[str, str, str]]:
    return [(i.command, i.key, i.value) for i in parse(text).instructions]


# -- what the parser reads -------------------------------------------------------------
PARSED: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("FROM foo", [("from", "", "foo")]),
    ("from foo\nsystem hi", [("from", "", "foo"), ("system", "", "hi")]),
    ("From foo\nsYsTeM hi", [("from", "", "foo"), ("system", "", "hi")]),
    ("FROM llama3:7b-instruct-q4_K_M", [("from", "", "llama3:7b-instruct-q4_K_M")]),
    ("FROM     FOOO BAR    ", [("from", "", "FOOO BAR")]),
    ('FROM "     model 1"', [("from", "", "     model 1")]),
    ('FROM "FOO BAR"\nPARAMETER seed 1', [("from", "", "FOO BAR"), ("parameter", "seed", "1")]),
    ("PARAMETER seed 1\nFROM foo", [("parameter", "seed", "1"), ("from", "", "foo")]),
    ("\n# comment\nFROM foo\n\t", [("from", "", "foo")]),
    ("  # indented comment\nFROM foo # not a comment", [("from", "", "foo # not a comment")]),
    ("FROM foo\n#SYSTEM commented out\n", [("from", "", "foo")]),
    ("FROM foo\r\nSYSTEM windows\r\n", [("from", "", "foo"), ("system", "", "windows")]),
    ("\ufeffFROM foo", [("from", "", "foo")]),
    ("FROM test\n\tSYSTEM 你好👋", [("from", "", "test"), ("system", "", "你好👋")]),
    (
        'FROM foo\nSYSTEM """\nThis is a\nmultiline system.\n"""\n',
        [("from", "", "foo"), ("system", "", "\nThis is a\nmultiline system.\n")],
    ),
    (
        'FROM foo\nSYSTEM """\nThis is a\nmultiline system."""',
        [("from", "", "foo"), ("system", "", "\nThis is a\nmultiline system.")],
    ),
    (
        'FROM foo\nSYSTEM """This is a\nmultiline system."""',
        [("from", "", "foo"), ("system", "", "This is a\nmultiline system.")],
    ),
    (
        'FROM foo\nSYSTEM """This is a multiline system."""   \n',
        [("from", "", "foo"), ("system", "", "This is a multiline system.")],
    ),
    (
        'FROM foo\nSYSTEM """\nA system with "quotes".\n"""\n',
        [("from", "", "foo"), ("system", "", '\nA system with "quotes".\n')],
    ),
    (
        'FROM foo\nSYSTEM """Keep\n\n  blank lines\tand tabs"""',
        [("from", "", "foo"), ("system", "", "Keep\n\n  blank lines\tand tabs")],
    ),
    ('FROM foo\nSYSTEM """"""', [("from", "", "foo"), ("system", "", "")]),
    ('FROM foo\nSYSTEM ""', [("from", "", "foo"), ("system", "", "")]),
    ('FROM foo\nSYSTEM "\'"', [("from", "", "foo"), ("system", "", "'")]),
    (
        'FROM foo\nSYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""',
        [("from", "", "foo"), ("system", "", "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'")],
    ),
    (
        'FROM foo\nTEMPLATE """\n{{ .Prompt }}\n"""',
        [("from", "", "foo"), ("template", "", "\n{{ .Prompt }}\n")],
    ),
    (
        f'FROM model1\nTEMPLATE """{TEMPLATE}"""    \n',
        [("from", "", "model1"), ("template", "", TEMPLATE)],
    ),
    (
        'FROM foo\nLICENSE """\nLegal text.\n"Oh look, a quote!"\n"""\nLICENSE MIT',
        [
            ("from", "", "foo"),
            ("license", "", '\nLegal text.\n"Oh look, a quote!"\n'),
            ("license", "", "MIT"),
        ],
    ),
    (
        "FROM foo\nMESSAGE system You are a file parser.\nMESSAGE user Hey there!\n"
        "MESSAGE assistant Hello!",
        [
            ("from", "", "foo"),
            ("message", "system", "You are a file parser."),
            ("message", "user", "Hey there!"),
            ("message", "assistant", "Hello!"),
        ],
    ),
    (
        'FROM foo\nMESSAGE system """\nYou are a multiline file parser.\n"""\n',
        [("from", "", "foo"), ("message", "system", "\nYou are a multiline file parser.\n")],
    ),
    (
        "FROM foo\nPARAMETER stop <|im_end|>\nPARAMETER stop </s>\n"
        'PARAMETER stop "### User: "\nparameter stop """### User:\n"""',
        [
            ("from", "", "foo"),
            ("parameter", "stop", "<|im_end|>"),
            ("parameter", "stop", "</s>"),
            ("parameter", "stop", "### User: "),
            ("parameter", "stop", "### User:\n"),
        ],
    ),
    (
        "FROM foo\nPARAMETER stop ### User: ",
        [("from", "", "foo"), ("parameter", "stop", "### User:")],
    ),
    ("FROM foo\nPARAMETER    seed    7", [("from", "", "foo"), ("parameter", "seed", "7")]),
    (
        "FROM foo\nRENDERER r1\nPARSER p1\nREQUIRES 0.12.11",
        [
            ("from", "", "foo"),
            ("renderer", "", "r1"),
            ("parser", "", "p1"),
            ("requires", "", "0.12.11"),
        ],
    ),
    (
        "FROM base\nDRAFT ./assistant\nADAPTER ./lora",
        [
            ("from", "", "base"),
            ("draft", "", "./assistant"),
            ("adapter", "", "./lora"),
        ],
    ),
    ("FROM foo\nSYSTEM bell\x07 dropped", [("from", "", "foo"), ("system", "", "bell dropped")]),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert commands(text) == expected


def test_instructions_know_their_line() -> None:
    text = '# header\n\nFROM foo\nSYSTEM """a\nb\nc"""\nPARAMETER seed 1\n'
    assert [i.line for i in parse(text).instructions] == [3, 4, 7]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-8", b""),
    ],
)
def test_decode_honours_byte_order_marks(encoding: str, bom: bytes) -> None:
    text = "FROM bob\nPARAMETER num_ctx 4096\nSYSTEM You are a utf16 file 你好.\n"
    data = bom + text.encode(encoding)
    assert commands(decode(data)) == [
        ("from", "", "bob"),
        ("parameter", "num_ctx", "4096"),
        ("system", "", "You are a utf16 file 你好."),
    ]


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


def test_deprecated_parameters_are_dropped_with_a_warning() -> None:
    parsed = parse("FROM foo\nPARAMETER mirostat 1\nPARAMETER seed 3\n")
    assert parsed.parameters == {"seed": 3}
    assert parsed.warnings == ("line 2: parameter mirostat is deprecated; ignored",)


# -- errors name the line --------------------------------------------------------------
ERRORS: list[tuple[str, int, str]] = [
    ("", 0, "no FROM line"),
    ("# only a comment\n", 0, "no FROM line"),
    ("PARAMETER seed 1", 0, "no FROM line"),
    ("FROM foo\nBADCOMMAND param1 value1\n", 2, "unknown instruction 'BADCOMMAND'"),
    ("FROM foo\n\nSYS-TEM x\n", 3, "unexpected '-' in an instruction"),
    ("FROM\n", 1, "FROM needs a value"),
    ("FROM \n", 1, "FROM needs a model name"),
    ("FROM foo\nSYSTEM", 2, "SYSTEM needs a value"),
    ("FROM foo\nPARAMETER param1\n", 2, "PARAMETER needs a name and a value"),
    ("FROM foo\nPARAMETER\n", 2, "PARAMETER needs a name and a value"),
    ("FROM foo\nPARAMETER temp-erature 1\n", 2, "unexpected '-' in a parameter name"),
    ("FROM foo\nMESSAGE badguy I'm a bad guy!\n", 2, "MESSAGE role 'badguy'"),
    ("FROM foo\nMESSAGE system\n", 2, "MESSAGE needs a role and a text"),
    ("FROM foo\nMESSAGE system", 2, "MESSAGE needs a role and a text"),
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
        "PARAMETER stop b\nSYSTEM You are a bot.\nTEMPLATE {{ .Prompt }}\n"
        "LICENSE license1\nLICENSE license2\nMESSAGE user Hello there!\n"
        "MESSAGE assistant Hi! How are you?\n"
    )
    assert parsed.create_fields() == {
        "from": "test",
        "system": "You are a bot.",
        "template": "{{ .Prompt }}",
        "license": ["license1", "license2"],
        "parameters": {"temperature": 0.5, "top_k": 1, "stop": ["a", "b"]},
        "messages": [
            {"role": "user", "content": "Hello there!"},
            {"role": "assistant", "content": "Hi! How are you?"},
        ],
    }
    json.dumps(parsed.create_fields())  # serialisable as it is


def test_create_fields_keep_the_last_from_and_system() -> None:
    parsed = parse("FROM a\nSYSTEM one\nFROM b\nSYSTEM two\n")
    assert parsed.create_fields() == {"from": "b", "system": "two"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM ./model.gguf\n", "names a local file"),
        ("FROM /models/llama\n", "names a local file"),
        ("FROM ~/models/x.gguf\n", "names a local file"),
        ("FROM foo\nADAPTER ./lora.gguf\n", "ADAPTER needs local files"),
        ("FROM foo\nDRAFT ./small\n", "DRAFT needs local files"),
    ],
)
def test_create_fields_refuse_local_files(text: str, message: str) -> None:
    with pytest.raises(ModelfileError, match=message):
        parse(text).create_fields()


# -- writing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("<|im_end|>", "<|im_end|>"),
        (" padded ", '" padded "'),
        ("two\nlines", '"two\nlines"'),
        ('say "hi"\nbye', '"""say "hi"\nbye"""'),  # "…" would end at the first line
        ('"quoted"', '""quoted""'),
        ("", '""'),
    ],
)
def test_quote_picks_the_simplest_form_that_reads_back(value: str, written: str) -> None:
    assert quote(value) == written
    assert commands(f"FROM x\nSYSTEM {written}") == [("from", "", "x"), ("system", "", value)]


def test_quote_refuses_what_cannot_be_read_back() -> None:
    with pytest.raises(ModelfileError, match="cannot write"):
        quote('ends a line with """\nthen more', block=True)
    with pytest.raises(ModelfileError, match="cannot write"):
        quote("a bell \x07 is dropped by the parser")


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (0.9, "0.9"), (1e-05, "1e-05"), (42, "42"), (True, "true"), (False, "false")],
)
def test_format_parameter(value: Any, text: str) -> None:
    assert format_parameter(value) == text


def test_render_round_trips_every_field() -> None:
    fields = {
        "system": 'Line one.\n\n  "Indented" line with \t tab.',
        "template": TEMPLATE,
        "parameters": {"temperature": 0.0, "seed": 42, "use_mmap": False, "stop": ["a b ", "</s>"]},
        "messages": [("user", "Hi"), ("assistant", " padded ")],
        "licenses": ["MIT", "line\nbreak"],
    }
    text = render("qwen2.5vl:7b", comments=["a header", "", "generated"], **fields)
    assert text.startswith("# a header\n#\n# generated\n\nFROM qwen2.5vl:7b\n")
    parsed = parse(text)
    assert parsed.base == "qwen2.5vl:7b"
    assert parsed.system == fields["system"]
    assert parsed.template == TEMPLATE
    assert parsed.parameters == fields["parameters"]
    assert parsed.messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": " padded "},
    ]
    assert parsed.licenses == ["MIT", "line\nbreak"]


def test_render_refuses_unknown_parameters_and_unwritable_values() -> None:
    with pytest.raises(ModelfileError, match="unknown parameter 'temprature'"):
        render("x", parameters={"temprature": 0.0})
    with pytest.raises(ModelfileError, match="not a finite number"):
        render("x", parameters={"temperature": float("nan")})
    with pytest.raises(ModelfileError, match="cannot write"):
        render("x", system='a line that ends in """\nand goes on')


# -- the six shipped Modelfiles ----------------------------------------------------------
LIBRARY_TAGS = [
    "qwen2.5vl:7b-q4_K_M",
    "qwen2.5vl:7b-q8_0",
    "qwen2.5vl:7b-fp16",
    "llama3.2-vision:11b-instruct-q4_K_M",
    "llama3.2-vision:11b-instruct-q8_0",
    "llama3.2-vision:11b-instruct-fp16",
]


def test_six_builds_from_the_library_tags() -> None:
    assert [b.base for b in builds.BUILDS] == LIBRARY_TAGS
    assert [b.name for b in builds.BUILDS] == [
        "emoprobe-qwen2.5vl:7b-q4_K_M",
        "emoprobe-qwen2.5vl:7b-q8_0",
        "emoprobe-qwen2.5vl:7b-fp16",
        "emoprobe-llama3.2-vision:11b-q4_K_M",
        "emoprobe-llama3.2-vision:11b-q8_0",
        "emoprobe-llama3.2-vision:11b-fp16",
    ]
    shipped = sorted(p.name for p in REPO_MODELFILES.glob("*.Modelfile"))
    assert shipped == sorted(b.filename for b in builds.BUILDS)


@pytest.mark.parametrize("build", builds.BUILDS, ids=lambda b: b.key)
def test_shipped_modelfile_carries_the_prompt_and_the_defaults(build: builds.Build) -> None:
    path = REPO_MODELFILES / build.filename
    text = path.read_text(encoding="utf-8")
    parsed = builds.read_modelfile(REPO_MODELFILES, build)
    assert parsed.base == build.base
    assert parsed.system == PAPER_TASK.system_prompt
    assert parsed.parameters == {**DEFAULT_OPTIONS, "num_ctx": 4096}
    assert parsed.warnings == ()
    assert f'SYSTEM """{PAPER_TASK.system_prompt}"""' in text
    header = text.split("\nFROM ", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines() if line)
    assert "GENERATED by `emoprobe models render`" in header
    assert build.name in header
    assert parsed.create_fields() == {
        "from": build.base,
        "system": PAPER_TASK.system_prompt,
        "parameters": {**DEFAULT_OPTIONS, "num_ctx": 4096},
    }


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


def test_committed_lock_has_no_digests_and_says_why() -> None:
    lock = json.loads((REPO_MODELFILES / builds.LOCK_NAME).read_text(encoding="utf-8"))
    assert "nothing was pulled" in lock["note"]
    assert list(lock["builds"]) == [b.name for b in builds.BUILDS]
    for build in builds.BUILDS:
        entry = lock["builds"][build.name]
        assert entry == {
            "base": build.base,
            "base_digest": None,
            "pulled_at": None,
            "digest": None,
            "built_at": None,
        }

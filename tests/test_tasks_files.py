"""Task files: the shipped examples load, and every mistake is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoprobe.errors import ConfigError
from emoprobe.task.definition import PAPER_TASK, Task, load_task
from emoprobe.task.parse import parse_answer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"

MINIMAL = """\
name = "mini"
labels = ["calm", "excited"]
instruction = "Classify the face: calm or excited."

[definitions]
calm = "Relaxed."
excited = "Eager."
"""


def write(tmp_path: Path, text: str, name: str = "task.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_task(path)
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------
# The shipped tasks


def test_academic_emotion_file_is_the_papers_task_exactly() -> None:
    task = load_task(EXAMPLES / "academic-emotion.toml")
    assert task.system_prompt == PAPER_TASK.system_prompt
    assert task.prompt_sha256 == PAPER_TASK.prompt_sha256
    assert task == PAPER_TASK


def test_basic_emotions_file() -> None:
    task = load_task(EXAMPLES / "basic-emotions.toml")
    assert task.labels == (
        "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"
    )  # fmt: skip
    assert task.system_prompt.startswith("Classify the facial expression")
    assert "- Happiness: The person is smiling" in task.system_prompt
    # FER2013's, RAF-DB's and AffectNet's class names all reach a label.
    fer = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
    raf = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]
    assert [task.canonical_label(name) for name in fer] == [
        "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"
    ]  # fmt: skip
    assert {task.canonical_label(name) for name in raf} == set(task.labels)
    assert task.canonical_label("Contempt") is None and task.ignores("contempt")
    # Synonyms reach the parser.
    assert parse_answer("Joy.", task.labels, task.synonyms) == "happiness"
    assert parse_answer("The person looks scared", task.labels, task.synonyms) == "fear"


def test_daisee_engagement_file() -> None:
    task = load_task(EXAMPLES / "daisee-engagement.toml")
    assert task.labels == ("boredom", "confusion", "engagement", "frustration")
    assert task.canonical_label("Bored") == "boredom"
    assert parse_answer("engaged", task.labels, task.synonyms) == "engagement"
    assert "dominant" in (EXAMPLES / "daisee-engagement.toml").read_text()


def test_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, MINIMAL))
    assert task == Task(
        name="mini",
        instruction="Classify the face: calm or excited.",
        definitions={"calm": "Relaxed.", "excited": "Eager."},
    )
    assert task.system_prompt == (
        "Classify the face: calm or excited.\n\n"
        "The definitions of each category are as follows:\n\n"
        "- Calm: Relaxed.\n- Excited: Eager."
    )


def test_optional_fields(tmp_path: Path) -> None:
    head = 'ignore_labels = ["Other"]\ncontext_header = ""\nuser_text = "Here is the face."\n'
    tail = (
        '\n[synonyms]\nCALM = ["relaxed", "serene"]\nexcited = "thrilled"\n'
        '\n[label_map]\n0 = "calm"\nHappy = "Excited"\n'
    )
    text = head + MINIMAL.replace("Classify the face: calm or excited.", "Calm or excited?") + tail
    task = load_task(write(tmp_path, text))
    assert task.system_prompt == "Calm or excited?\n\n- Calm: Relaxed.\n- Excited: Eager."
    assert task.user_text == "Here is the face."
    assert task.synonyms == {"calm": ("relaxed", "serene"), "excited": ("thrilled",)}
    assert task.label_map == {"0": "calm", "Happy": "excited"}
    assert task.canonical_label(" happy ") == "excited"
    assert task.canonical_label("0") == "calm"
    assert task.canonical_label("CALM") == "calm"
    assert task.canonical_label("sad") is None
    assert task.ignores("other") and not task.ignores("calm")


def test_paper_task_maps_nothing_new() -> None:
    assert PAPER_TASK.label_map == {} and PAPER_TASK.ignore_labels == ()
    assert PAPER_TASK.canonical_label("Happiness") is None


# ---------------------------------------------------------------------------------------
# Mistakes: one line each


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.toml") == f"task file not found: {tmp_path / 'nope.toml'}"


def test_a_folder(tmp_path: Path) -> None:
    assert "is a folder" in error_of(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    assert "is not UTF-8 text" in error_of(path)


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, 'name = "x"\nlabels = [\n"a", "b"\ninstruction = 3\n'))
    assert message.startswith(f"task file {tmp_path / 'task.toml'} is not valid TOML: ")
    assert "line 4" in message


BAD_CASES = [
    pytest.param("", "missing name, labels, instruction, definitions", id="empty"),
    pytest.param(
        MINIMAL.replace('instruction = "Classify the face: calm or excited."\n', ""),
        "missing instruction",
        id="no-instruction",
    ),
    pytest.param(MINIMAL.replace('"mini"', '"  "'), "name is empty", id="empty-name"),
    pytest.param(MINIMAL.replace('"mini"', "3"), "name must be a string", id="name-type"),
    pytest.param(
        MINIMAL.replace('instruction = "Classify the face: calm or excited."', 'instruction = ""'),
        "instruction is empty",
        id="empty-instruction",
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '"calm"'),
        "labels must be a list of strings",
        id="labels-type",
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '["calm"]'),
        "labels must name at least two labels",
        id="one-label",
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '["calm", ""]'), "a label is empty", id="empty-label"
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '["calm", "excited", "Calm"]'),
        "duplicate label 'Calm'",
        id="duplicate-label",
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '["calm", "excited", "Unparsed"]'),
        "'Unparsed' cannot be a label",
        id="unparsed-label",
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '["calm", "ex/cited"]'),
        "must not hold a slash",
        id="slash",
    ),
    pytest.param(
        MINIMAL.replace('["calm", "excited"]', '["calm", "excited\\nnow"]'),
        "must be one line",
        id="newline-label",
    ),
    pytest.param(
        MINIMAL + 'bored = "Weary."\n',
        "definition for unknown label 'bored': the labels are calm, excited",
        id="unknown-definition",
    ),
    pytest.param(
        MINIMAL.replace('excited = "Eager."\n', ""),
        "no definition for label(s) 'excited'",
        id="missing-definition",
    ),
    pytest.param(
        MINIMAL.replace('"Eager."', '" "'),
        "the definition of 'excited' is empty",
        id="empty-definition",
    ),
    pytest.param(
        MINIMAL + 'Calm = "Again."\n', "two definitions for label 'calm'", id="two-definitions"
    ),
    pytest.param(
        MINIMAL.split("[definitions]")[0] + "definitions = 3\n",
        "definitions must be a table",
        id="definitions-type",
    ),
    pytest.param('lables = ["a"]\n' + MINIMAL, "unknown key(s) 'lables'", id="unknown-key"),
    pytest.param(
        MINIMAL + '[synonyms]\nbored = ["weary"]\n',
        "synonyms for unknown label 'bored'",
        id="synonym-unknown-label",
    ),
    pytest.param(
        MINIMAL + '[synonyms]\ncalm = ["relaxed", "Excited"]\n',
        "synonym 'Excited' of 'calm' is another label, 'excited'",
        id="synonym-is-a-label",
    ),
    pytest.param(
        MINIMAL + '[synonyms]\ncalm = ["chill"]\nexcited = ["CHILL"]\n',
        "synonym 'CHILL' is given for both 'calm' and 'excited'",
        id="synonym-twice",
    ),
    pytest.param(MINIMAL + "[synonyms]\ncalm = [3]\n", "must be a string", id="synonym-type"),
    pytest.param(
        MINIMAL + '[synonyms]\ncalm = ["unparsed"]\n',
        "'unparsed' cannot be a synonym",
        id="synonym-unparsed",
    ),
    pytest.param(
        MINIMAL + '[label_map]\nHappy = "joyful"\n',
        "label_map maps 'Happy' onto unknown label 'joyful': the labels are calm, excited",
        id="map-onto-unknown",
    ),
    pytest.param(
        MINIMAL + '[label_map]\ncalm = "excited"\n',
        "label_map maps label 'calm' onto another label, 'excited'",
        id="map-a-label-elsewhere",
    ),
    pytest.param(
        MINIMAL + '[label_map]\nHappy = "calm"\nhappy = "excited"\n',
        "label_map has 'Happy' and 'happy'",
        id="map-twice",
    ),
    pytest.param(
        MINIMAL + "[label_map]\nHappy = 1\n", "label_map['Happy'] must be a string", id="map-type"
    ),
    pytest.param(
        'ignore_labels = ["Calm"]\n' + MINIMAL,
        "ignore_labels lists 'Calm', a label of the task",
        id="ignore-a-label",
    ),
    pytest.param(
        'ignore_labels = ["happy"]\n' + MINIMAL + '[label_map]\nHappy = "calm"\n',
        "ignore_labels lists 'happy', which label_map maps onto a label",
        id="ignore-a-mapped-label",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES)
def test_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    error = error_of(write(tmp_path, text))
    assert error.startswith(f"task file {tmp_path / 'task.toml'}: "), error
    assert message in error

"""Tests for emoprobe.parse: free-text VLM answers -> one label or UNPARSED."""

from __future__ import annotations

import random
import string
import time

import pytest

from emoprobe.task.definition import PAPER_TASK, UNPARSED
from emoprobe.task.parse import parse_answer, parse_json_answer

LABELS = PAPER_TASK.labels
U = UNPARSED

# (id, model answer, expected). Answers are in the style llama3.2-vision and qwen2.5vl give
# to the paper's prompt: terse labels, chatty sentences, markdown, JSON, refusals, ...
PAPER_CASES: list[tuple[str, str, str]] = [
    # terse labels
    ("bare-lower", "happy", "happy"),
    ("bare-capitalised", "Happy", "happy"),
    ("bare-upper", "TIRED", "tired"),
    ("period", "Neutral.", "neutral"),
    ("exclamation", "Confused!", "confused"),
    ("surrounding-space", "  distracted \n", "distracted"),
    ("double-quotes", '"tired"', "tired"),
    ("single-quotes", "'Neutral'", "neutral"),
    ("curly-quotes", "\u201cConfused\u201d", "confused"),
    ("bracketed", "[Happy]", "happy"),
    ("emoji-after", "Happy \U0001f60a", "happy"),
    # markdown
    ("bold", "**Happy**", "happy"),
    ("bold-period", "**Distracted**.", "distracted"),
    ("italic-underscore", "_tired_", "tired"),
    ("heading", "# Tired", "tired"),
    ("heading-2", "## Neutral", "neutral"),
    ("code-span", "`neutral`", "neutral"),
    ("code-fence", "```\nconfused\n```", "confused"),
    ("bullet", "- Confused", "confused"),
    ("numbered", "1. Distracted", "distracted"),
    ("xml-tag", "<answer>Confused</answer>", "confused"),
    # prefixes
    ("answer-colon", "Answer: Tired", "tired"),
    ("bold-answer-colon", "**Answer:** Happy", "happy"),
    ("category-colon", "Category: Distracted", "distracted"),
    ("the-category-is", "The category is happy.", "happy"),
    ("classification-dash", "Classification - Neutral", "neutral"),
    ("classify-it-as", "I would classify it as confused.", "confused"),
    ("classify-expression-as", "I'd classify the student's expression as tired.", "tired"),
    ("expression-colon", "The student's facial expression: Neutral", "neutral"),
    ("final-answer", "Final answer: distracted", "distracted"),
    # first-line label with an explanation
    ("label-newline-explanation", "Tired\n\nThe student is not happy and is yawning.", "tired"),
    ("label-period-explanation", "Happy. The student is smiling but seems a bit tired.", "happy"),
    ("label-dash-explanation", "**Happy** - The student is smiling broadly.", "happy"),
    ("label-colon-explanation", "Tired: the student is resting their head on a hand.", "tired"),
    (
        "answer-then-explanation",
        "**Answer:** Tired\n\n**Explanation:** The student is yawning and their eyes are "
        "half-closed, which suggests they are tired rather than confused or distracted.",
        "tired",
    ),
    (
        "label-then-explanation-lists-others",
        "Neutral\n\nThe student is not smiling, frowning or yawning and is looking at the "
        "screen, so none of confused, distracted, happy or tired applies.",
        "neutral",
    ),
    (
        "prompt-echo-then-answer",
        "Categories: confused, distracted, happy, tired, neutral\nAnswer: tired",
        "tired",
    ),
    ("explanation-then-label", "The image shows a student who is smiling. Happy.", "happy"),
    # chatty sentences
    ("sentence-tired", "The student looks tired and is yawning.", "tired"),
    (
        "llama-chatty-confused",
        "Based on the image, the student appears to be **confused**. They are frowning and "
        "looking at the screen with a puzzled expression.",
        "confused",
    ),
    (
        "qwen-chatty-happy",
        "The student in the image appears to be happy. They are smiling and seem to be "
        "enjoying the video.",
        "happy",
    ),
    (
        "looking-away",
        "The student is looking away from the screen, which suggests they are distracted.",
        "distracted",
    ),
    ("i-would-say", "The student is yawning, so I would say tired.", "tired"),
    ("hedged-single", "It's difficult to say, but the student might be distracted.", "distracted"),
    ("noun-confusion", "The student appears to be in a state of confusion.", "confused"),
    ("noun-tiredness", "The student exhibits tiredness.", "tired"),
    ("noun-happiness", "Happiness", "happy"),
    ("noun-distraction", "Distraction", "distracted"),
    ("expression-is-neutral", "The student's expression is neutral.", "neutral"),
    ("uncertain-but-tired", "I can't be certain, but the student appears tired.", "tired"),
    (
        "echo-in-parentheses-then-answer",
        "Based on the categories (confused, distracted, happy, tired, neutral), the student "
        "is happy.",
        "happy",
    ),
    # negations
    ("not-x-but-y", "not happy but confused", "confused"),
    ("not-x-semicolon-y", "The student is not distracted; they are neutral.", "neutral"),
    ("neither-nor", "neither happy nor tired", U),
    ("not-alone", "not confused", U),
    ("not-alone-sentence", "The student is not happy.", U),
    ("rather-than", "confused rather than tired", "confused"),
    ("instead-of", "Instead of happy, the student looks tired.", "tired"),
    ("x-comma-not-y", "Happy, not tired", "happy"),
    ("doesnt-look", "The student doesn't look happy; they look tired.", "tired"),
    ("isnt", "The student isn't distracted, just tired.", "tired"),
    (
        "no-signs-of",
        "The student shows no signs of happiness; they seem bored and distracted.",
        "distracted",
    ),
    (
        "neither-nor-then-y",
        "The student is neither confused nor distracted, just neutral.",
        "neutral",
    ),
    (
        "not-showing-list",
        "The student seems neutral, not showing any signs of confusion, distraction, "
        "happiness, or tiredness.",
        "neutral",
    ),
    ("more-than", "The student is more tired than confused.", "tired"),
    ("not-x-period-y", "Not distracted. Happy.", "happy"),
    ("question-then-answer", "Is the student happy? No, they look tired.", "tired"),
    ("unhappy-not-a-label", "The student looks unhappy.", U),
    ("unhappy-not-neutral", "The student is unhappy, not neutral.", U),
    (
        "far-negation",
        "The student doesn't appear to be looking at the screen and looks tired",
        "tired",
    ),
    # several labels without a choice
    ("x-or-y", "happy or neutral", U),
    ("slash", "confused/tired", U),
    ("could-be-either", "The student could be confused or tired.", U),
    ("two-labels-comma", "The student seems happy, tired", U),
    ("range", "The student appears neutral to slightly happy.", U),
    ("parenthetical-hedge", "Confused (or possibly tired)", U),
    ("two-terse", "Tired. Confused.", U),
    ("two-lines", "Confused\nDistracted", U),
    ("echo-all-five", "Confused, distracted, happy, tired, or neutral", U),
    ("echo-bullets", "- Confused\n- Distracted\n- Happy\n- Tired\n- Neutral", U),
    ("questioned", "Happy?", U),
    # refusals, non-answers
    ("refusal-identify", "I'm sorry, I can't help with identifying people", U),
    ("refusal-determine", "I cannot determine emotions from images", U),
    ("refusal-as-an-ai", "As an AI, I cannot determine whether the student is happy.", U),
    (
        "refusal-emotional-state",
        "I'm sorry, but I can't determine the emotional state of the person in this image.",
        U,
    ),
    ("refusal-unable", "I'm unable to identify emotions.", U),
    ("refusal-dont-know", "I don't know.", U),
    (
        "i-dont-see-then-label",
        "I don't see signs of distraction; the student looks tired.",
        "tired",
    ),
    ("empty", "", U),
    ("whitespace", "   \n\t", U),
    ("n-a", "N/A", U),
    ("unknown", "unknown", U),
    ("none-of-the-above", "None of the above", U),
    ("not-a-label", "Excited", U),
    ("does-not-fit", "The student's expression does not fit into any of the categories.", U),
    ("adverb-not-label", "The student is neutrally positioned.", U),
    ("hyphenated-compound", "The student looks happy-go-lucky.", U),
    # cut short by a token limit
    ("truncated-no-label", "The student appears to be", U),
    ("truncated-after-and", "The student appears happy and", U),
    ("truncated-adverb", "The student appears to be slightly", U),
    ("truncated-comma", "The student appears confused,", U),
    # reasoning blocks
    ("think-block", "<think>maybe confused</think>Neutral", "neutral"),
    ("unterminated-think", "<think>The student might be happy or", U),
    # JSON
    ("json-label", '{"label": "happy"}', "happy"),
    ("json-category-fenced", '```json\n{"category": "Tired"}\n```', "tired"),
    ("json-emotion-confidence", '{"emotion": "neutral", "confidence": 0.9}', "neutral"),
    ("json-bare-string", '"happy"', "happy"),
    ("json-not-a-label", '{"label": "excited"}', U),
    ("json-sentence-value", '{"answer": "The student looks happy"}', U),
    (
        "json-reason-mentions-other",
        '{"label": "happy", "reason": "The student is smiling, not tired"}',
        "happy",
    ),
    ("json-reasoning-first", '{"reasoning": "smiling", "category": "happy"}', "happy"),
    ("json-list-one", '["happy"]', "happy"),
    ("json-list-two", '["happy", "tired"]', U),
    ("json-in-text", 'Here is my answer: {"label": "distracted"}', "distracted"),
    ("python-dict", "{'label': 'happy'}", "happy"),
    ("json-cut-short-value", '{"label": "hap', U),
    ("json-cut-short-fence", '```json\n{"label": "neutral"', "neutral"),
    ("json-number", "42", U),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [pytest.param(raw, expected, id=case_id) for case_id, raw, expected in PAPER_CASES],
)
def test_paper_task_answers(raw: str, expected: str) -> None:
    assert parse_answer(raw, LABELS) == expected


def test_table_is_large_and_ids_unique() -> None:
    ids = [case_id for case_id, _, _ in PAPER_CASES]
    assert len(ids) >= 70
    assert len(set(ids)) == len(ids)


BASIC = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
BASIC_SYNONYMS = {"happiness": ["happy", "joy"]}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("Happiness", "happiness", id="label"),
        pytest.param("happy", "happiness", id="synonym-happy"),
        pytest.param("Joy", "happiness", id="synonym-joy"),
        pytest.param("The person looks happy.", "happiness", id="synonym-in-sentence"),
        pytest.param("The face shows joy and surprise", U, id="two-labels"),
        pytest.param("Sad", "sadness", id="variant-sad"),
        pytest.param("The expression is one of sadness.", "sadness", id="sadness-sentence"),
        pytest.param("Angry", "anger", id="variant-angry"),
        pytest.param("Surprised!", "surprise", id="variant-surprised"),
        pytest.param("fearful", "fear", id="variant-fearful"),
        pytest.param("not angry but disgusted", "disgust", id="negation"),
        pytest.param("unhappy", U, id="unhappy"),
        pytest.param("joyful", U, id="not-a-whole-word-synonym"),
        pytest.param('{"emotion": "Happy"}', "happiness", id="json-synonym"),
        pytest.param("The person is surprised, not afraid.", "surprise", id="x-not-y"),
        pytest.param(
            "anger, disgust, fear, happiness, sadness, surprise, or neutral", U, id="echo"
        ),
    ],
)
def test_basic_emotions_with_synonyms(raw: str, expected: str) -> None:
    assert parse_answer(raw, BASIC, BASIC_SYNONYMS) == expected


def test_synonyms_are_optional_for_basic_emotions() -> None:
    assert parse_answer("Joy", BASIC) == U
    assert parse_answer("happy", BASIC) == "happiness"  # built-in word form


def test_synonyms_as_tuples_and_plain_strings() -> None:
    assert parse_answer("joy", BASIC, {"happiness": ("happy", "joy")}) == "happiness"
    assert parse_answer("joy", BASIC, {"happiness": "joy"}) == "happiness"


def test_synonym_claimed_by_two_labels_is_ignored() -> None:
    synonyms = {"happy": ["upbeat"], "neutral": ["upbeat"]}
    assert parse_answer("Upbeat", LABELS, synonyms) == U


ENGAGEMENT = ("very engaged", "engaged", "not engaged")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("Not engaged", "not engaged", id="not-label-terse"),
        pytest.param("The student is not engaged.", "not engaged", id="not-label-sentence"),
        pytest.param("Answer: not engaged", "not engaged", id="not-label-prefixed"),
        pytest.param("not_engaged", "not engaged", id="underscore"),
        pytest.param('{"label": "not engaged"}', "not engaged", id="json"),
        pytest.param(
            "The student is not engaged; they are looking away.", "not engaged", id="explained"
        ),
        pytest.param("The student is engaged.", "engaged", id="engaged"),
        pytest.param("Very engaged", "very engaged", id="very-engaged"),
        pytest.param(
            "The student is very engaged, not distracted.", "very engaged", id="very-engaged-not"
        ),
        pytest.param("The student is engaged, not 'not engaged'", "engaged", id="negated-not"),
        pytest.param("The student is not very engaged.", U, id="negated-very"),
        pytest.param("engaged or not engaged", U, id="either"),
        pytest.param("The student isn't engaged", U, id="contraction"),
    ],
)
def test_multi_word_labels(raw: str, expected: str) -> None:
    assert parse_answer(raw, ENGAGEMENT) == expected


def test_label_case_is_returned_as_given() -> None:
    labels = ("Confused", "Distracted", "Happy", "Tired", "Neutral")
    assert parse_answer("the student looks happy", labels) == "Happy"
    assert parse_answer("TIRED", labels) == "Tired"


def test_parse_json_answer() -> None:
    assert parse_json_answer('{"label": "Tired"}', LABELS) == "tired"
    assert parse_json_answer('{"label": "sleepy"}', LABELS) == U
    assert parse_json_answer('{"confidence": 0.8}', LABELS) == U
    assert parse_json_answer("The student is tired.", LABELS) is None
    assert parse_json_answer("Tired", LABELS) is None


def _garbage(rng: random.Random) -> str:
    alphabet = string.printable + "áé…—“”‘’😊"
    words = [*LABELS, "not", "no", "but", "or", "and", "happiness", "```", "{", '"label":']
    parts = []
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.4:
            parts.append(rng.choice(words))
        else:
            parts.append("".join(rng.choices(alphabet, k=rng.randint(0, 10))))
    return rng.choice([" ", "\n", ", ", ""]).join(parts)


def test_result_is_always_a_label_or_unparsed() -> None:
    rng = random.Random(0)
    allowed = {*LABELS, U}
    for _ in range(2000):
        raw = _garbage(rng)
        assert parse_answer(raw, LABELS) in allowed, raw
        assert parse_answer(raw, BASIC, BASIC_SYNONYMS) in {*BASIC, U}, raw


def test_pure_same_input_same_output() -> None:
    rng = random.Random(0)
    answers = [raw for _, raw, _ in PAPER_CASES] + [_garbage(rng) for _ in range(200)]
    first = [parse_answer(raw, LABELS) for raw in answers]
    # interleave other label sets so that any shared state would show
    for raw in answers:
        parse_answer(raw, BASIC, BASIC_SYNONYMS)
        parse_answer(raw, ENGAGEMENT)
    assert [parse_answer(raw, list(LABELS)) for raw in answers] == first
    assert [parse_answer(raw, LABELS) for raw in answers] == first


def test_inputs_are_not_mutated() -> None:
    labels = list(LABELS)
    synonyms = {"happiness": ["happy", "joy"]}
    parse_answer("joy", labels, synonyms)
    assert labels == list(LABELS)
    assert synonyms == {"happiness": ["happy", "joy"]}


def test_non_string_answer_is_unparsed() -> None:
    assert parse_answer(None, LABELS) == U  # type: ignore[arg-type]


def test_fast_enough() -> None:
    answers = [raw for _, raw, _ in PAPER_CASES]
    for raw in answers:  # warm the per-label-set cache
        parse_answer(raw, LABELS)
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        for raw in answers:
            parse_answer(raw, LABELS)
    per_call = (time.perf_counter() - start) / (rounds * len(answers))
    assert per_call < 500e-6  # typically ~10 µs; generous for slow CI machines

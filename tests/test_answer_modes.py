"""--answer text | json | logprobs: constrained and scored answers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from factories import LABELS, make_image_folder
from ollama_double import OllamaDouble, answer_by_image
from sklearn.metrics import roc_auc_score

from emoprobe.results.calibration import reliability_bins, score_metrics
from emoprobe.results.predictions import Row, to_frame
from emoprobe.task.answers import json_label, json_schema, label_positions, scores_for, unsupported


def position(*candidates: tuple[str, float]) -> dict:
    return {
        "token": candidates[0][0],
        "logprob": candidates[0][1],
        "top_logprobs": [{"token": t, "logprob": p} for t, p in candidates],
    }


# -- pure pieces -------------------------------------------------------------------------
def test_the_json_schema_is_an_enum_of_the_labels():
    schema = json_schema(LABELS)
    assert schema["properties"]["label"]["enum"] == list(LABELS)
    assert schema["required"] == ["label"]


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ('{"label": "happy"}', "happy"),
        ('{"label": "Happy"}', None),
        ('{"emotion": "happy"}', None),
        ("happy", None),
        ('["happy"]', None),
        ('{"label": "bored"}', None),
    ],
)
def test_json_label_accepts_only_what_validates(raw, label):
    assert json_label(raw, LABELS) == label


def test_label_scores_come_from_the_word_that_names_the_parsed_label():
    logprobs = [
        position(("**", -0.01), ("The", -5.0)),
        position(
            ("Happy", math.log(0.6)),
            ("Neutral", math.log(0.2)),
            ("Conf", math.log(0.1)),
            ("Sad", math.log(0.05)),
        ),
        position((" tired", 0.0)),
    ]
    positions = label_positions(logprobs, LABELS)
    assert [named for named, _ in positions] == [("happy",), ("tired",)]
    assert scores_for(positions, "tired") == pytest.approx(
        {"happy": 0.0, "confused": 0.0, "distracted": 0.0, "tired": 1.0, "neutral": 0.0}
    )
    assert scores_for(positions, "distracted") is None
    scores = scores_for(positions, "happy")
    assert scores == pytest.approx(
        {
            "happy": 0.6 / 0.9,
            "neutral": 0.2 / 0.9,
            "confused": 0.1 / 0.9,
            "distracted": 0.0,
            "tired": 0.0,
        }
    )


def test_label_scores_use_synonyms_and_say_none_when_no_label_is_named():
    logprobs = [position(("joy", math.log(0.5)), ("sad", math.log(0.5)))]
    positions = label_positions(logprobs, ["happiness", "sadness"], {"happiness": ["joy"]})
    assert scores_for(positions, "happiness") == {"happiness": 0.5, "sadness": 0.5}
    assert label_positions([position(("I", -0.1), ("The", -2.0))], LABELS) == ()
    assert scores_for((), "happy") is None


def test_logprobs_need_a_recent_ollama_but_not_other_backends():
    assert unsupported("logprobs", "ollama", "0.13.0") == ""
    assert "needs Ollama 0.12.11 or newer (this server: 0.12.3)" in unsupported(
        "logprobs", "ollama", "0.12.3"
    )
    assert unsupported("logprobs", "openai", "unknown") == ""
    assert unsupported("json", "ollama", "0.1.0") == ""


def test_score_metrics_agree_with_scikit_learn_and_a_hand_worked_ece():
    rows = []
    table = [
        ("happy", (0.7, 0.1, 0.1, 0.05, 0.05)),
        ("tired", (0.2, 0.1, 0.1, 0.5, 0.1)),
        ("happy", (0.2, 0.2, 0.4, 0.1, 0.1)),
        ("confused", (0.9, 0.025, 0.025, 0.025, 0.025)),
    ]
    order = ["happy", "confused", "distracted", "tired", "neutral"]
    for label, probabilities in table:
        rows.append(
            Row(
                "p",
                "",
                label,
                label,
                label,
                "ok",
                "",
                1.0,
                False,
                scores=dict(zip(order, probabilities, strict=True)),
            )
        )
    metrics = score_metrics(to_frame(rows, order), order)
    assert metrics is not None
    truth = np.array([order.index(label) for label, _ in table])
    probabilities = np.array([p for _, p in table])
    assert metrics.roc_auc_ovr["happy"] == roc_auc_score(truth == 0, probabilities[:, 0])
    assert metrics.roc_auc_ovr["distracted"] is None  # no image of it
    # top scores: 0.7 right, 0.5 right, 0.4 wrong (distracted), 0.9 wrong (happy)
    assert metrics.top_score_accuracy == 0.5
    bins = reliability_bins(probabilities.max(axis=1), probabilities.argmax(axis=1) == truth)
    assert [b.count for b in bins] == [1, 1, 1, 1]
    assert metrics.ece == pytest.approx((0.3 + 0.5 + 0.4 + 0.9) / 4)


# -- through the command line --------------------------------------------------------------
@pytest.fixture
def faces(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "faces"
    return root, make_image_folder(root, per_label=2)


def test_json_mode_sends_the_schema_and_counts_answers_that_fail_it(
    cli, ollama_double, faces, tmp_path
):
    root, truth = faces
    answers = {sha: json.dumps({"label": label}) for sha, label in truth.items()}
    odd = sorted(answers)[0]
    answers[odd] = "Happy"  # a server that ignored the schema
    ollama_double.answer = answer_by_image(answers)
    out = tmp_path / "out"
    result = cli(
        "run", root, "--answer", "json", "--host", ollama_double.url, "--out", out, "--quiet"
    )
    assert result.exit_code == 0, result.output
    for body in ollama_double.chat_requests:
        if body.get("messages"):
            assert body["format"] == json_schema(LABELS)
    report = (out / "report.md").read_text()
    assert "Answers that still failed to validate: 1" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx((len(truth) - (truth[odd] != "happy")) / 10)


def test_logprobs_mode_writes_a_score_per_label_and_calibration(
    cli, ollama_double, faces, tmp_path
):
    root, truth = faces
    ollama_double.answer = answer_by_image(
        {sha: label.capitalize() for sha, label in truth.items()}
    )
    out = tmp_path / "out"
    result = cli(
        "run", root, "--answer", "logprobs", "--host", ollama_double.url, "--out", out, "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert all(
        b.get("logprobs") is True and b.get("top_logprobs") == 20
        for b in ollama_double.chat_requests
        if b.get("messages")
    )
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [c for c in rows[0] if c.startswith("score_")] == [f"score_{x}" for x in LABELS]
    for row in rows:
        scores = {label: float(row[f"score_{label}"]) for label in LABELS}
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scores"]["n_with_scores"] == 10
    assert 0 <= metrics["scores"]["ece"] <= 1
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](reliability.png)" in (out / "report.md").read_text()
    rebuilt = cli("report", out)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads((out / "metrics.json").read_text())["scores"] == metrics["scores"]


def test_each_mode_has_its_own_cache_entries(cli, ollama_double, faces, tmp_path):
    root, _ = faces
    sent = []
    for mode in ("text", "json", "logprobs", "text"):
        result = cli(
            "run",
            root,
            "--answer",
            mode,
            "--host",
            ollama_double.url,
            "--out",
            tmp_path / f"out-{mode}-{len(sent)}",
            "--quiet",
        )
        assert result.exit_code == 0, result.output
        sent.append(len([b for b in ollama_double.chat_requests if b.get("messages")]))
    assert sent == [10, 20, 30, 30]


def test_logprobs_on_an_old_ollama_is_one_line(cli, faces, tmp_path):
    root, _ = faces
    with OllamaDouble(version="0.12.3") as old:
        result = cli(
            "run", root, "--answer", "logprobs", "--host", old.url, "--out", tmp_path / "o"
        )
        assert not [b for b in old.chat_requests if b.get("messages")]
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "--answer logprobs needs Ollama 0.12.11 or newer (this server: 0.12.3)" in result.stderr


def test_classify_shows_scores_in_json(cli, ollama_double, faces):
    root, _ = faces
    image = sorted(root.rglob("*.png"))[0]
    result = cli("classify", image, "--answer", "logprobs", "--json", "--host", ollama_double.url)
    record = json.loads(result.stdout)
    assert set(record["scores"]) == set(LABELS)


def test_a_label_inside_a_word_is_no_label():
    # "cannot determine": the piece "ne" begins "neutral" but sits inside a word
    logprobs = [
        position(("I", -0.1)),
        position((" can", -0.1)),
        position(("not", -0.1)),
        position((" det", -0.1)),
        position(("ermi", -0.1)),
        position(("ne", -0.1), ("happy", -3.0)),
    ]
    assert label_positions(logprobs, LABELS) == ()

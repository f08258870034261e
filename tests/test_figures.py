"""Figures a researcher can trust (issue 15): scores that belong to the answer, statuses
that say what happened, the sample as drawn, speed only from this run, everything that
differs in `compare`, alarms for degenerate models, answer forms per mode, legible plots.
"""

from __future__ import annotations

import csv
import json
import warnings
from itertools import combinations
from pathlib import Path

import pytest
from factories import LABELS, make_image_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ollama_double import (
    CURRENT_MODELS,
    DEFAULT_MODELS,
    OllamaDouble,
    _logprobs,
    _pseudo_tokens,
    answer_by_image,
)
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from emoprobe.backends.base import Answer, ChatRequest
from emoprobe.backends.ollama import OllamaBackend
from emoprobe.pipeline.probe import answer_status
from emoprobe.pipeline.stats import failure_kind
from emoprobe.reporting import plots
from emoprobe.results import alarms as kinds
from emoprobe.results.alarms import alarms_for
from emoprobe.results.answer_forms import answer_forms
from emoprobe.results.calibration import score_metrics
from emoprobe.results.manifest import DatasetRecord, Manifest, Session
from emoprobe.results.metrics import run_metrics
from emoprobe.results.predictions import (
    LEGACY_ERROR,
    NO_LABEL_STATUSES,
    STATUSES,
    UNANSWERED_STATUSES,
    Row,
    to_frame,
)
from emoprobe.results.sample import sample_counts
from emoprobe.task.answers import label_positions, scores_for
from emoprobe.task.definition import UNPARSED
from emoprobe.task.parse import parse_answer

LABEL_LIST = list(LABELS)


def rows_of(folder: Path) -> list[dict[str, str]]:
    with open(folder / "predictions.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def top_disagreements(folder: Path) -> tuple[int, int, int]:
    """(rows with scores, ok rows whose top score is not the prediction, rows without a
    label that carry scores), from predictions.csv alone."""
    with_scores = differ = on_no_label = 0
    for row in rows_of(folder):
        scores = {k[6:]: float(v) for k, v in row.items() if k.startswith("score_") and v}
        if not scores:
            continue
        with_scores += 1
        if row["status"] != "ok":
            on_no_label += 1
        elif max(scores, key=scores.__getitem__) != row["prediction"]:
            differ += 1
    return with_scores, differ, on_no_label


# -- 1. scores that belong to the answer ---------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "top"),
    [
        ("The student is not neutral; the student looks happy.", "happy"),  # issue 15's case
        ("Happy", "happy"),
        ("Neutral. The student is not happy at all.", "neutral"),
        ("**Distracted**", "distracted"),
        ("The student shows happiness.", "happy"),  # an inflection the parser reads
        ("Not confused, rather tired.", "tired"),
        ("I'm sorry, I can't determine emotions from this image.", None),  # refusal
        ("The student seems to be", None),  # cut short: no label, no scores
        ("happy or neutral", None),  # no choice
    ],
)
def test_scores_come_from_where_the_answer_names_its_parsed_label(raw, top):
    positions = label_positions(_logprobs(_pseudo_tokens(raw), 20), LABEL_LIST)
    label = parse_answer(raw, LABEL_LIST)
    scores = scores_for(positions, label) if label != UNPARSED else None
    assert (max(scores, key=scores.__getitem__) if scores else None) == top
    if top is not None:
        assert label == top and sum(scores.values()) == pytest.approx(1.0)


def test_a_label_with_no_log_probabilities_at_its_word_keeps_no_scores():
    # the logprobs cover only the first words: the label's word has none
    tokens = _pseudo_tokens("The student looks happy.")
    positions = label_positions(_logprobs(tokens[:3], 20), LABEL_LIST)
    assert scores_for(positions, "happy") is None


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """40 images whose answers negate one label and choose another, refuse, ramble."""
    base = tmp_path_factory.mktemp("figures")
    root = base / "faces"
    truth = make_image_folder(root, per_label=8)
    answers = {}
    for number, (sha, label) in enumerate(sorted(truth.items())):
        other = "neutral" if label != "neutral" else "happy"
        answers[sha] = [
            label.capitalize(),
            f"The student is not {other}; the student looks {label}.",
            "I'm sorry, I can't determine emotions from this image.",
            f"The student appears {label}.",
            other,
            f"Not {other}, rather {label}.",
            "The student seems to be",
            label,
        ][number % 8]
    return root, answers, base


def test_logprobs_run_scores_only_labelled_answers_and_every_top_score_is_the_prediction(
    cli, tricky, tmp_path
):
    root, answers, _ = tricky
    out = tmp_path / "lp"
    with OllamaDouble(answer=answer_by_image(answers)) as double:
        result = cli("run", root, "--host", double.url, "--out", out, "--answer", "logprobs")
    assert result.exit_code == 0, result.output
    with_scores, differ, on_no_label = top_disagreements(out)
    statuses = [row["status"] for row in rows_of(out)]
    assert (with_scores, differ, on_no_label) == (statuses.count("ok"), 0, 0)
    assert statuses.count("refused") == 5 and statuses.count("unparsed") == 5
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scores"]["n_with_scores"] == 30 and metrics["scores"]["n_top_differs"] == 0
    assert metrics["scores"]["n_answered"] == 40
    report = (out / "report.md").read_text()
    assert "cover **30 of 40 answers**: 30 named a label, 10 named none" in report
    assert "at the word where the answer names the label the parser chose" in report
    assert "Answers whose top score is not their parsed label: **0** of 30." in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scoring_version"] == 2


def test_top_scores_that_differ_from_the_prediction_are_counted_by_pair():
    labels = ["happy", "neutral"]
    rows = [
        Row("a", "", "happy", "happy", "x", "ok", scores={"happy": 0.2, "neutral": 0.8}),
        Row("b", "", "happy", "happy", "x", "ok", scores={"happy": 0.9, "neutral": 0.1}),
        Row("c", "", "neutral", "happy", "x", "ok", scores={"happy": 0.4, "neutral": 0.6}),
        Row("d", "", "neutral", "neutral", "x", "ok", scores={"happy": 0.7, "neutral": 0.3}),
        Row("e", "", "neutral", UNPARSED, "x", "unparsed", scores={"happy": 0.7, "neutral": 0.3}),
        Row("f", "", "happy", "happy", "x", "ok", scores={"happy": 1.0}),  # a score missing
    ]
    scores = score_metrics(to_frame(rows, labels), labels)
    assert scores is not None
    assert (scores.n_with_scores, scores.n_answered, scores.n_ok_without_scores) == (4, 6, 1)
    assert scores.n_top_differs == 3
    assert scores.top_differs == {"happy → neutral": 2, "neutral → happy": 1}


# -- 2. statuses ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "label", "status"),
    [
        (Answer("Happy", 1.0, "stop"), "happy", "ok"),
        (Answer("Happy. The student smiles and", 1.0, "length"), "happy", "ok"),
        (Answer("I'm sorry, but the student looks happy.", 1.0), "happy", "ok"),
        (Answer("I'm sorry, I can't help with that.", 1.0), UNPARSED, "refused"),
        (Answer("The student appears to be", 1.0, "length"), UNPARSED, "truncated"),
        (Answer("The student appears to be", 1.0, "stop"), UNPARSED, "unparsed"),
        (Answer("", 1.0, "length", thinking_chars=180), UNPARSED, "empty_after_thinking"),
        (Answer("  ", 1.0, "stop", thinking_chars=3), UNPARSED, "empty_after_thinking"),
        (Answer("", 1.0, "stop"), UNPARSED, "unparsed"),
        (Answer("happy or sad", 1.0), UNPARSED, "unparsed"),
    ],
)
def test_an_answer_gets_the_status_that_says_what_happened(answer, label, status):
    assert answer_status(answer, label) == status


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("HTTP 503: server busy", "HTTP 503"),
        ("http://127.0.0.1:1: HTTP 500: boom", "HTTP 500"),
        ("POST /api/chat timed out after 5s", "timeout"),
        ("no complete answer within 30s", "timeout"),
        ("connection dropped during POST /api/chat (RemoteProtocolError)", "connection dropped"),
        ("malformed reply to POST /api/chat (JSONDecodeError)", "malformed reply"),
        ("truncated reply: the stream ended before the answer was done", "truncated reply"),
        ("server error: unexpected EOF", "server error"),
        ("something else", "other"),
    ],
)
def test_failures_are_counted_by_kind(error, kind):
    assert failure_kind(error) == kind


def test_a_thinking_model_with_no_answer_left_is_empty_after_thinking():
    thinker = next(spec for spec in CURRENT_MODELS if spec.name == "qwen3-vl:8b")
    with OllamaDouble(models=[*DEFAULT_MODELS, thinker]) as double:
        backend = OllamaBackend(double.url, timeout=10)
        try:
            answer = backend.chat(
                ChatRequest(
                    model="qwen3-vl:8b",
                    system="Say one word.",
                    user_text="",
                    image=b"\x89PNG",
                    image_mime="image/png",
                    options={"num_predict": 32},
                )
            )
        finally:
            backend.close()
    assert answer.raw == "" and answer.thinking_chars > 0 and answer.done_reason == "length"
    assert answer_status(answer, parse_answer(answer.raw, LABEL_LIST)) == "empty_after_thinking"


@pytest.mark.parametrize(
    ("message", "chars"),
    [
        ({"content": "", "reasoning_content": "Let me look at the face"}, 23),  # vLLM
        ({"content": "", "reasoning": "Hmm"}, 3),  # OpenRouter
        ({"content": "happy"}, 0),
    ],
)
def test_an_openai_compatible_reply_says_how_much_it_thought(message, chars):
    from emoprobe.backends.openai import _answer

    reply = {"choices": [{"message": {"role": "assistant", **message}, "finish_reason": "length"}]}
    answer = _answer(reply, 0.1)
    assert answer.thinking_chars == chars
    expected = "empty_after_thinking" if chars else "ok"
    assert answer_status(answer, parse_answer(answer.raw, LABEL_LIST)) == expected


def test_offline_rows_are_not_in_cache_counted_everywhere_and_answered_later(cli, tricky, tmp_path):
    root, answers, _ = tricky
    cache = tmp_path / "cache"
    with OllamaDouble(answer=answer_by_image(answers)) as double:
        seeded = cli(
            "run", root, "--host", double.url, "--out", tmp_path / "seed", "--per-class", "1",
            "--cache-dir", cache, "--quiet",
        )  # fmt: skip
        assert seeded.exit_code == 0, seeded.output
        out = tmp_path / "offline"
        for _attempt in range(2):  # the second offline run retries them, and says so
            offline = cli("run", root, "--offline", "--out", out, "--cache-dir", cache)
            assert offline.exit_code == 3
            assert "not in cache 35" in offline.stdout
            assert "nothing to do" not in offline.stdout
            assert "35 of 40 images are not in the cache" in offline.stderr
        assert "35 not in the cache: a run without --offline answers them" in offline.stdout
        assert "not in cache 35" in offline.stderr  # the progress line
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["statuses"]["not_in_cache"] == 35 and metrics["statuses"]["unreadable"] == 0
        assert metrics["n_scored"] == 5
        report = (out / "report.md").read_text()
        assert "not scored: unreadable 0, not in cache 35, failed 0" in report
        assert {row["status"] for row in rows_of(out)} >= {"not_in_cache"}
        sent = len(double.chat_requests)
        online = cli("run", root, "--host", double.url, "--out", out, "--cache-dir", cache)
        assert online.exit_code == 0, online.output
        assert len(double.chat_requests) - sent == 35  # exactly the rows not in the cache
    assert "not_in_cache" not in {row["status"] for row in rows_of(out)}


def test_answers_cut_at_the_length_limit_are_truncated(cli, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=1)
    answers = {sha: "The student appears to be quite happy today" for sha in truth}
    out = tmp_path / "out"
    with OllamaDouble(answer=answer_by_image(answers)) as double:
        result = cli(
            "run", root, "--host", double.url, "--out", out, "--option", "num_predict=4", "--quiet"
        )
    assert result.exit_code == 0, result.output
    assert {row["status"] for row in rows_of(out)} == {"truncated"}
    assert "truncated 5" in result.stdout
    report = (out / "report.md").read_text()
    assert "truncated 5 (1.0000)" in report
    assert "- ⚠ 100% of the answers are `truncated` (alarm above 10%)." in report


# -- property: metrics.json equals scikit-learn on every mix of statuses ---------------------
ROW_STATUSES = [*STATUSES[:-1], LEGACY_ERROR]  # failed requests leave no row


@st.composite
def predictions(draw: st.DrawFn) -> tuple[list[Row], int]:
    n = draw(st.integers(0, 40))
    rows = []
    for i in range(n):
        label = draw(st.sampled_from(LABEL_LIST))
        status = draw(st.sampled_from(ROW_STATUSES))
        if status == "ok":
            prediction = draw(st.sampled_from(LABEL_LIST))
        elif status in NO_LABEL_STATUSES:
            prediction = UNPARSED
        else:
            prediction = ""
        error = "not in cache" if status == LEGACY_ERROR and draw(st.booleans()) else ""
        rows.append(Row(f"{i}.png", f"{i:064x}", label, prediction, "x", status, error))
    return rows, draw(st.integers(0, 5))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(predictions())
def test_metrics_json_equals_scikit_learn_on_any_mix_of_statuses(drawn):
    rows, failed = drawn
    manifest = Manifest(sessions=[Session(failed=failed)])
    metrics = run_metrics(to_frame(rows, LABEL_LIST), LABEL_LIST, manifest).to_dict()
    legacy = {"unreadable" if r.error == "" else "not_in_cache" for r in rows} if rows else set()
    status_of = [
        ("not_in_cache" if r.error else "unreadable") if r.status == LEGACY_ERROR else r.status
        for r in rows
    ]
    assert legacy or not rows
    expected_counts = {s: status_of.count(s) for s in STATUSES} | {"failed": failed}
    assert metrics["statuses"] == expected_counts
    answered = [r for r, s in zip(rows, status_of, strict=True) if s not in UNANSWERED_STATUSES]
    assert metrics["n"] == len(rows) and metrics["n_scored"] == len(answered)
    assert metrics["n_error"] == len(rows) - len(answered)
    assert metrics["n_ok"] == sum(r.status == "ok" for r in answered)
    assert metrics["n_unparsed"] == len(answered) - metrics["n_ok"]
    if not answered:
        assert metrics["accuracy"] is None and metrics["f1_weighted"] is None
        return
    y_true = [r.label for r in answered]
    y_pred = [r.prediction for r in answered]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(y_true, y_pred)
        balanced = balanced_accuracy_score(y_true, y_pred)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert metrics["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
    if kappa == kappa:  # not NaN
        assert metrics["cohen_kappa"] == pytest.approx(kappa, abs=1e-9)
    else:
        assert metrics["cohen_kappa"] is None
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=LABEL_LIST, average=average, zero_division=0
        )
        assert metrics[f"precision_{average}"] == pytest.approx(p, abs=1e-12)
        assert metrics[f"recall_{average}"] == pytest.approx(r, abs=1e-12)
        assert metrics[f"f1_{average}"] == pytest.approx(f, abs=1e-12)
    matrix = confusion_matrix(y_true, y_pred, labels=[*LABEL_LIST, UNPARSED])[: len(LABEL_LIST)]
    assert metrics["confusion_matrix"]["matrix"] == matrix.tolist()
    support = {label: y_true.count(label) for label in LABEL_LIST}
    majority = max(LABEL_LIST, key=lambda label: (support[label], -LABEL_LIST.index(label)))
    assert metrics["majority_baseline"] == {
        "label": majority,
        "accuracy": pytest.approx(support[majority] / len(y_true)),
    }


# -- 3. the sample as drawn -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("per_class", "drawn", "short"),
    [
        (1000, {"happy": 40, "tired": 40}, ["happy", "tired"]),
        (40, {"happy": 40, "tired": 40}, []),
        (40, {"happy": 40, "tired": 12}, ["tired"]),
        (None, {"happy": 3, "tired": 9}, []),
    ],
)
def test_the_sample_as_requested_and_drawn(per_class, drawn, short):
    labels = ["happy", "tired"]
    manifest = Manifest(dataset=DatasetRecord(per_class=per_class, seed=0, drawn=drawn))
    counts = sample_counts(manifest, to_frame([], labels), labels)
    assert counts.drawn == drawn and counts.short == short and counts.drawn_recorded
    assert counts.requested == (dict.fromkeys(labels, per_class) if per_class else None)


def test_a_short_sample_is_a_warning_in_the_first_lines(cli, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=4)
    out = tmp_path / "out"
    with OllamaDouble(answer=answer_by_image(dict.fromkeys(truth, "happy"))) as double:
        result = cli("run", root, "--host", double.url, "--out", out, "--per-class", "1000")
    assert result.exit_code == 0, result.output
    head = "\n".join((out / "report.md").read_text().splitlines()[:3])
    assert "1000 per class requested, seed 0; drawn: confused 4, distracted 4" in head
    assert "(20 images of 5000 requested)" in head
    assert "**Warning: the sample is short of the request**" in head
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sample"]["drawn"] == dict.fromkeys(LABEL_LIST, 4)
    assert metrics["sample"]["short"] == LABEL_LIST
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["drawn"] == dict.fromkeys(sorted(LABEL_LIST), 4)
    assert manifest["dataset"]["available"] == dict.fromkeys(sorted(LABEL_LIST), 4)
    # every class always "happy": collapse, four classes never predicted, at the baseline
    alarms = {(a["kind"], a["subject"]) for a in metrics["alarms"]}
    assert (kinds.COLLAPSE, "happy") in alarms and (kinds.NOT_ABOVE_BASELINE, "confused") in alarms
    assert {s for k, s in alarms if k == kinds.NEVER_PREDICTED} == set(LABEL_LIST) - {"happy"}
    report = (out / "report.md").read_text()
    assert "- ⚠ class collapse: *happy* takes 100% of the predictions" in report
    assert "accuracy 0.2000 is not above the majority-class baseline 0.2000" in report


# -- 6. alarms ---------------------------------------------------------------------------------
def labelled(pairs: list[tuple[str, str]], status: str = "ok") -> list[Row]:
    return [
        Row(f"{i}-{status}.png", "", true, predicted, predicted, status)
        for i, (true, predicted) in enumerate(pairs)
    ]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (labelled([(label, label) for label in LABEL_LIST] * 2), set()),
        (
            labelled([(label, "happy") for label in LABEL_LIST]),
            {
                *((kinds.NEVER_PREDICTED, label) for label in LABEL_LIST if label != "happy"),
                (kinds.COLLAPSE, "happy"),
                (kinds.NOT_ABOVE_BASELINE, "confused"),
            },
        ),
        (
            labelled([(label, label) for label in LABEL_LIST] * 2)
            + labelled([("happy", UNPARSED), ("tired", UNPARSED)], "refused"),
            {(kinds.STATUS_SHARE, "refused")},
        ),
        (
            labelled([(label, label) for label in LABEL_LIST] * 2)
            + labelled([("happy", UNPARSED)], "unparsed"),
            set(),  # 1 of 11: under the threshold
        ),
    ],
)
def test_alarms_for_degenerate_runs(rows, expected):
    metrics = run_metrics(to_frame(rows, LABEL_LIST), LABEL_LIST)
    assert {(a.kind, a.subject) for a in alarms_for(metrics)} == expected


def test_two_classes_split_60_40_are_no_collapse():
    labels = ["happy", "neutral"]
    pairs = [("happy", "happy")] * 5 + [("neutral", "happy")] + [("neutral", "neutral")] * 4
    metrics = run_metrics(to_frame(labelled(pairs), labels), labels)
    assert alarms_for(metrics) == []


# -- 7. answer forms per mode ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "answers", "expected"),
    [
        ("text", [("Happy", "ok"), ("The student is happy.", "ok"), ("?", "unparsed")],
         {"exactly_one_label": 1, "json_valid": None}),
        ("json", [('{"label": "happy"}', "ok"), ("Happy", "ok"), ("no idea", "unparsed")],
         {"exactly_one_label": None, "json_valid": 1, "json_repaired": 1, "json_invalid": 1}),
        ("logprobs", [("tired.", "ok")], {"exactly_one_label": 1}),
    ],
)  # fmt: skip
def test_answer_forms_fit_the_mode(mode, answers, expected):
    rows = [
        Row(f"{i}.png", "", "happy", "happy" if s == "ok" else UNPARSED, raw, s)
        for i, (raw, s) in enumerate(answers)
    ]
    forms = answer_forms(to_frame(rows, LABEL_LIST), LABEL_LIST, mode)
    assert {k: getattr(forms, k) for k in expected} == expected


def test_json_report_counts_valid_repaired_invalid_and_no_bare_labels(cli, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    answers = {sha: json.dumps({"label": label}) for sha, label in truth.items()}
    first, second = sorted(answers)[:2]
    answers[first], answers[second] = "Happy", "I do not know"
    out = tmp_path / "out"
    with OllamaDouble(answer=answer_by_image(answers)) as double:
        result = cli("run", root, "--answer", "json", "--host", double.url, "--out", out)
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert (
        "JSON answers (10): valid per the schema 8 (0.8000), not valid but read by the "
        "free-text parser 1, invalid 1." in report
    )
    assert "exactly one label" not in report


# -- 4. speed only from what this run measured ----------------------------------------------
def test_answers_from_the_cache_bring_no_latency_and_retries_show_by_kind(cli, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    cache = tmp_path / "cache"
    with OllamaDouble(answer=answer_by_image(dict.fromkeys(truth, "Happy"))) as double:
        double.inject("busy503", every=3, per_request=1)
        first = cli(
            "run", root, "--host", double.url, "--out", tmp_path / "a", "--cache-dir", cache,
            "--backoff", "0.01", "--quiet",
        )  # fmt: skip
        assert first.exit_code == 0, first.output
        double.clear_faults()
        again = cli(
            "run", root, "--host", double.url, "--out", tmp_path / "b", "--cache-dir", cache
        )
        assert again.exit_code == 0, again.output
    own = (tmp_path / "a" / "report.md").read_text()
    assert "| retry | HTTP 503 |" in own
    assert "| median latency (s), 10 requests |" in own
    assert all(row["prompt_tokens"] and row["decode_ms"] for row in rows_of(tmp_path / "a"))
    cached = (tmp_path / "b" / "report.md").read_text()
    assert "| median latency (s), 0 requests | – |" in cached
    assert "| answers from the cache (not timed) | 10 |" in cached
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["latency_median_s"] is None


# -- 5. compare says everything that differs -------------------------------------------------
def test_compare_says_the_answer_mode_differs_how_many_images_are_shared_and_alarms(cli, tmp_path):
    root = tmp_path / "faces"
    truth = make_image_folder(root, per_label=2)
    answers = {sha: json.dumps({"label": "happy"}) for sha in truth}
    outs = [tmp_path / "text", tmp_path / "json"]
    with OllamaDouble(answer=answer_by_image(answers)) as double:
        for out, mode in zip(outs, ("text", "json"), strict=True):
            result = cli("run", root, "--host", double.url, "--out", out, "--answer", mode)
            assert result.exit_code == 0, result.output
    result = cli("compare", *outs, "--out", tmp_path / "cmp", "--resamples", 1000)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "- answer mode: text; json" in text
    assert "- images: 10 shared by every run (each run scored 10, 10)" in text
    assert "- **qwen2.5vl:7b (text)**: class collapse: *happy*" in text
    assert "](comparison_per_class_f1.png)" in text
    assert (tmp_path / "cmp" / "comparison_per_class_f1.png").read_bytes()[:4] == b"\x89PNG"


# -- 8. plots that read at a glance ---------------------------------------------------------
SIX = [
    "emoprobe-qwen2.5vl:7b-q4_K_M",
    "emoprobe-qwen2.5vl:7b-q8_0",
    "emoprobe-qwen2.5vl:7b-fp16 (a-rather-long-run-folder-name-here)",
    "emoprobe-llama3.2-vision:11b-q4_K_M",
    "emoprobe-llama3.2-vision:11b-q8_0",
    "emoprobe-llama3.2-vision:11b-fp16",
]


def overlapping_texts(figure) -> list[tuple[str, str]]:
    """Pairs of visible texts whose drawn boxes overlap."""
    from matplotlib.text import Text

    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    undrawn = set()  # tick labels of ticks outside the axes' view: matplotlib skips them
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    boxes = [
        (text.get_text(), text.get_window_extent(renderer))
        for text in figure.findobj(Text)
        if text.get_visible() and text.get_text().strip() and id(text) not in undrawn
    ]
    return [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]


def test_comparison_plot_with_six_runs_keys_every_run_and_no_text_overlaps():
    f1 = [0.51, 0.53, 0.55, 0.42, 0.44, 0.46]
    figure = plots.comparison_figure(
        SIX,
        f1,
        [(v - 0.03, v + 0.03) for v in f1],
        [6.0, 9.0, 17.0, 8.0, 12.0, 21.0],
        [3.1, 2.5, None, 1.9, 1.5, 1.0],
        subject="6 runs on 100 shared images of faces",
    )
    assert overlapping_texts(figure) == []
    texts = " ".join(t.get_text() for t in figure.legends[0].get_texts()).replace("\n", "")
    for key, name in zip(plots.run_keys(6), SIX, strict=True):
        assert f"{key}: " in texts and name.replace(" ", "") in texts.replace(" ", "")
    assert "(no images/s" in texts  # run C's speed was not measured: said, not drawn
    assert "faces" in figure.get_suptitle()


def test_per_class_comparison_plot_names_runs_and_dataset_without_overlaps():
    labels = ["confused", "distracted", "happy", "tired", "neutral"]
    figure = plots.per_class_f1_comparison_figure(
        SIX, labels, [[0.6, 0.1, 0.8, 0.5, 0.4]] * 6, subject="6 runs on faces"
    )
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert len(legend) == 6 and legend[0].startswith("A: emoprobe-qwen2.5vl")
    assert "faces" in figure.axes[0].get_title()
    bars = [t for t in overlapping_texts(figure) if not (len(t[0]) == 1 and len(t[1]) == 1)]
    assert bars == []  # bar keys (single letters) may touch their neighbours, no other text


def test_run_plots_name_the_model_and_the_dataset(cli, tricky, tmp_path, monkeypatch):
    root, answers, _ = tricky
    out = tmp_path / "out"
    with OllamaDouble(answer=answer_by_image(answers)) as double:
        result = cli("run", root, "--host", double.url, "--out", out, "--answer", "logprobs")
        assert result.exit_code == 0, result.output
    drawn = []
    monkeypatch.setattr(plots, "_png", lambda figure: drawn.append(figure) or b"png")
    from emoprobe.reporting.markdown import rebuild_report

    rebuild_report(out)
    titles = [axes.get_title() for figure in drawn for axes in figure.axes if axes.get_title()]
    assert len(drawn) == 3  # confusion matrix, per-class F1, reliability
    assert len(titles) == 3 and all("qwen2.5vl:7b on faces" in title for title in titles)

"""Answer modes: how a request asks for its label and how the answer is read back.

    text      the paper's free-text answer, read by the parser (`emoprobe.parse`)
    json      the request's `format` is a JSON schema whose one property is an `enum` of
              the labels: the answer is a label by construction (when the server obeys)
    logprobs  the free-text answer, plus the top log-probabilities of the token where
              the answer names the label the parser chose, turned into a probability
              per label (version 1 took the first label-like token, whatever the
              parser chose)

Pure functions: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from emoprobe.backends.server_support import LOGPROBS_SINCE, has_logprobs
from emoprobe.task.parse import label_forms

ANSWER_MODES = ("text", "json", "logprobs")
TOP_LOGPROBS = 20  # the most Ollama returns per token
SCORING_VERSION = 2  # bump when `label_scores` changes: it is part of the cache key

_TOKEN_TRIM = re.compile(r"^[\s\"'*`#_.:\-{}\[\]]+|[\s\"'*`.,:;!]+$")
_WORD = re.compile(r"[\s\"'*`#_.:\-{}\[\]]*([^\W_]+(?:[-'][^\W_]+)*)")


def json_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The `format` of a json-mode request: {"label": one of the labels}."""
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
    }


def json_label(raw: str, labels: Sequence[str]) -> str | None:
    """The label of a json-mode answer that validates against the schema, else None."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    label = value.get("label") if isinstance(value, dict) else None
    return label if isinstance(label, str) and label in labels else None


LabelPosition = tuple[tuple[str, ...], Mapping[str, float]]  # (labels the word names, scores)


def label_positions(
    logprobs: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> tuple[LabelPosition, ...]:
    """Where an answer names a label, and the label probabilities there.

    One entry per word of the answer that is a label (or a synonym or inflection the
    parser reads as one), in answer order: the labels the word names, and a probability
    per label from the top alternatives of the word's first token — each alternative's
    probability goes to the labels it begins (shared equally where it begins several),
    normalised over the labels. `scores_for` picks the entry of the parsed label.
    """
    forms = label_forms(labels, synonyms)
    tokens = [str(position.get("token", "")) for position in logprobs]
    found: list[LabelPosition] = []
    previous = ""
    for index, position in enumerate(logprobs):
        token = tokens[index]
        word_start = not previous or not previous[-1].isalnum() or not token[:1].isalnum()
        previous += token
        if not word_start:
            continue
        named = _named_labels("".join(tokens[index : index + 8]), forms)
        if not named:
            continue
        scores = _position_scores(position, labels, forms)
        if scores is not None:
            found.append((named, scores))
    return tuple(found)


def scores_for(positions: Sequence[LabelPosition], label: str) -> dict[str, float] | None:
    """The scores where the answer first names `label` (the parser's choice), else None."""
    for named, scores in positions:
        if label in named:
            return dict(scores)
    return None


def _named_labels(text: str, forms: Mapping[str, str]) -> tuple[str, ...]:
    """The labels the word at the start of `text` names (a whole word, or the first
    words of a label of several words); () for any other word."""
    match = _WORD.match(text)
    if not match:
        return ()
    word = match.group(1).casefold().replace("_", " ")
    rest = text[match.end() :].casefold().replace("_", " ")
    named = {
        label
        for form, label in forms.items()
        if form == word or (form.startswith(word + " ") and (word + rest).startswith(form))
    }
    return tuple(sorted(named))


def _position_scores(
    position: Mapping[str, Any], labels: Sequence[str], forms: Mapping[str, str]
) -> dict[str, float] | None:
    alternatives = list(position.get("top_logprobs") or [])
    if all(a.get("token") != position.get("token") for a in alternatives):
        alternatives.append(position)  # the emitted token always counts
    mass = dict.fromkeys(labels, 0.0)
    for candidate in alternatives:
        alternative = str(candidate.get("token", ""))
        matched = {label for form, label in forms.items() if _begins(alternative, form)}
        probability = math.exp(float(candidate.get("logprob", -math.inf)))
        for label in matched:
            mass[label] += probability / len(matched)
    total = sum(mass.values())
    return {label: value / total for label, value in mass.items()} if total > 0 else None


def _begins(token: str, form: str) -> bool:
    piece = _TOKEN_TRIM.sub("", token).casefold()
    return bool(piece) and form.startswith(piece)


def unsupported(mode: str, backend: str, server_version: str) -> str:
    """Why a server cannot serve an answer mode ('' when it can)."""
    if mode not in ANSWER_MODES:
        return f"answer {mode}: choose one of {', '.join(ANSWER_MODES)}"
    if mode != "logprobs" or has_logprobs(backend, server_version):
        return ""
    return (
        f"answer logprobs needs Ollama {LOGPROBS_SINCE} or newer (this server: "
        f"{server_version or 'unknown'}); upgrade Ollama or answer in text or json"
    )


def cache_mode(mode: str) -> str:
    """The answer mode as it goes into cache keys (scoring changes make new keys)."""
    return f"logprobs-v{SCORING_VERSION}" if mode == "logprobs" else mode

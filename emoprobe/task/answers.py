"""Answer modes: how a request asks for its label and how the answer is read back.

    text      the paper's free-text answer, read by the parser (`emoprobe.parse`)
    json      the request's `format` is a JSON schema whose one property is an `enum` of
              the labels: the answer is a label by construction (when the server obeys)
    logprobs  the free-text answer, plus the first answer token's top log-probabilities
              turned into a probability per label

Pure functions: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from emoprobe.backends.server_support import LOGPROBS_SINCE, has_logprobs

ANSWER_MODES = ("text", "json", "logprobs")
TOP_LOGPROBS = 20  # the most Ollama returns per token
SCORING_VERSION = 1  # bump when `label_scores` changes: it is part of the cache key

_TOKEN_TRIM = re.compile(r"^[\s\"'*`#_.:\-{}\[\]]+|[\s\"'*`.,:;!]+$")


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


def label_scores(
    logprobs: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float] | None:
    """A probability per label from an answer's token log-probabilities.

    Takes the first answer position where the model emitted the beginning of a label (or
    a synonym) — where it committed to a label — gives each label the probability of the
    alternatives there that begin it (one that begins several labels is shared equally)
    and normalises over the labels. None when the answer never names a label.
    """
    forms = _label_forms(labels, synonyms)
    previous = ""
    for position in logprobs:
        token = str(position.get("token", ""))
        word_start = not previous or not previous[-1].isalnum() or not token[:1].isalnum()
        previous += token
        if not (word_start and _begins_label(token, forms)):
            continue  # the model has not committed to a label here (yet)
        mass = dict.fromkeys(labels, 0.0)
        for candidate in position.get("top_logprobs") or [position]:
            alternative = str(candidate.get("token", ""))
            matched = {label for form, label in forms if _begins(alternative, form)}
            probability = math.exp(float(candidate.get("logprob", -math.inf)))
            for label in matched:
                mass[label] += probability / len(matched)
        total = sum(mass.values())
        if total > 0:
            return {label: value / total for label, value in mass.items()}
    return None


def _begins(token: str, form: str) -> bool:
    piece = _TOKEN_TRIM.sub("", token).casefold()
    return bool(piece) and form.startswith(piece)


def _begins_label(token: str, forms: list[tuple[str, str]]) -> bool:
    return any(_begins(token, form) for form, _ in forms)


def _label_forms(
    labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None
) -> list[tuple[str, str]]:
    forms = [(label.casefold(), label) for label in labels]
    for label, words in (synonyms or {}).items():
        forms += [(word.casefold(), label) for word in words]
    return forms


def unsupported(mode: str, backend: str, server_version: str) -> str:
    """Why a server cannot serve an answer mode ('' when it can)."""
    if mode not in ANSWER_MODES:
        return f"--answer {mode}: choose one of {', '.join(ANSWER_MODES)}"
    if mode != "logprobs" or has_logprobs(backend, server_version):
        return ""
    return (
        f"--answer logprobs needs Ollama {LOGPROBS_SINCE} or newer (this server: "
        f"{server_version or 'unknown'}); upgrade Ollama or use --answer text or json"
    )


def cache_mode(mode: str) -> str:
    """The answer mode as it goes into cache keys (scoring changes make new keys)."""
    return f"logprobs-v{SCORING_VERSION}" if mode == "logprobs" else mode

"""What form the answers took, per answer mode: text answers that were exactly one label;
json answers valid per the schema, repaired by the parser, or invalid.

Pure: the predictions table in, a record out (metrics.json's `answer_forms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emoprobe.results.predictions import OK, SCORED_STATUSES
from emoprobe.task.answers import json_label

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class AnswerForms:
    """Counts over the `answered` rows; the fields of the other mode are None."""

    mode: str
    answered: int
    exactly_one_label: int | None = None  # text and logprobs: the prompt's "only the label"
    json_valid: int | None = None  # json: an object whose `label` is one of the labels
    json_repaired: int | None = None  # json: not valid, but the parser read a label
    json_invalid: int | None = None  # json: neither


def answer_forms(frame: pd.DataFrame, labels: Sequence[str], mode: str) -> AnswerForms:
    """How the answered rows' raw answers were formed, for `mode`; each distinct answer
    is read once (a run has few), weighed by how many rows gave it."""
    answered = frame[frame["status"].isin(SCORED_STATUSES)]
    counts = answered["raw"].value_counts(dropna=False)
    distinct = [str(text) for text in counts.index]
    if mode == "json":
        is_valid = {text: json_label(text, labels) is not None for text in distinct}
        valid = sum(int(n) for text, n in zip(distinct, counts, strict=True) if is_valid[text])
        ok = answered["raw"][(answered["status"] == OK).to_numpy()]
        ok_counts = ok.value_counts(dropna=False)
        repaired = sum(int(n) for text, n in ok_counts.items() if not is_valid[str(text)])
        return AnswerForms(
            mode,
            len(answered),
            json_valid=valid,
            json_repaired=repaired,
            json_invalid=len(answered) - valid - repaired,
        )
    names = {label.casefold() for label in labels}
    bare = sum(
        int(n)
        for text, n in zip(distinct, counts, strict=True)
        if text.strip().rstrip(".!").strip().casefold() in names
    )
    return AnswerForms(mode, len(answered), exactly_one_label=bare)

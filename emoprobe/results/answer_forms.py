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
    """How the answered rows' raw answers were formed, for `mode`."""
    answered = frame[frame["status"].isin(SCORED_STATUSES)]
    raw = [str(text) for text in answered["raw"]]
    if mode == "json":
        valid = [json_label(text, labels) is not None for text in raw]
        ok = (answered["status"] == OK).to_numpy()
        repaired = sum(bool(o) and not v for o, v in zip(ok, valid, strict=True))
        return AnswerForms(
            mode,
            len(answered),
            json_valid=sum(valid),
            json_repaired=repaired,
            json_invalid=len(raw) - sum(valid) - repaired,
        )
    names = {label.casefold() for label in labels}
    bare = sum(text.strip().rstrip(".!").strip().casefold() in names for text in raw)
    return AnswerForms(mode, len(answered), exactly_one_label=bare)

"""Turn a vision-language model's free-text answer into one label of a closed set.

``parse_answer`` is pure and conservative: it returns one of the given labels only when the
answer clearly chooses exactly one of them, and ``UNPARSED`` otherwise (refusals, answers cut
short, several labels without a choice, only negated labels, text that names no label).
A wrong label is worse than ``UNPARSED``.

The answer is read in this order:

1. JSON (bare, fenced or embedded): the value of a key such as ``label``/``category``/
   ``emotion`` must itself be a label.
2. Explicit choices: a line that is only a label (``**Happy**``, ``Answer: tired``,
   ``The category is neutral.``), or a label standing alone as the first piece of a line
   (``Tired. The student is yawning``) when that line affirms no other label.
   Lines choosing different labels make the answer ambiguous.
3. Refusals and answers cut off mid-sentence give ``UNPARSED``.
4. Mentions: whole-word mentions of labels (and their word forms and synonyms), minus those
   negated (``not``, ``no``, ``isn't``, ``neither``/``nor``, ``rather than``, ``instead of``,
   ``than`` ...) or questioned (``happy?``), minus an echo of the label list. Exactly one
   label left is the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emoprobe.task.definition import UNPARSED

__all__ = [
    "UNPARSED",
    "is_refusal",
    "label_forms",
    "parse_answer",
    "parse_json_answer",
    "synonym_used",
]

# Word forms that name the same thing: a label in a group is also matched by the group's
# other words (whole words only). Deliberately small: only clear inflections.
_VARIANT_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"happy", "happiness"}),
    frozenset({"tired", "tiredness"}),
    frozenset({"confused", "confusion"}),
    frozenset({"distracted", "distraction"}),
    frozenset({"neutral", "neutrality"}),
    frozenset({"sad", "sadness"}),
    frozenset({"angry", "anger"}),
    frozenset({"fear", "fearful"}),
    frozenset({"surprise", "surprised"}),
    frozenset({"disgust", "disgusted"}),
    frozenset({"contempt", "contemptuous"}),
    frozenset({"bored", "boredom"}),
    frozenset({"engaged", "engagement"}),
    frozenset({"frustrated", "frustration"}),
)

# JSON keys whose value is the answer, most specific first.
_JSON_KEYS: tuple[str, ...] = (
    "label", "category", "classification", "class", "emotion", "expression",
    "facial_expression", "emotional_state", "final_answer", "answer", "prediction",
    "predicted_label", "predicted_category", "predicted_class", "predicted_emotion",
    "result", "output", "response", "state", "mood",
)  # fmt: skip
_JSON_KEY_STEMS = re.compile(r"label|categor|class|emotion|expression|answer|predict")

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)
_TAG = re.compile(r"</?[a-z][a-z0-9_-]*>")
_FENCE = re.compile(r"```[a-z]*\s*(.*?)```", re.S)
_OBJECT = re.compile(r"\{[^{}]*\}")
_KEY_VALUE = re.compile(
    r"""["']?(label|category|classification|class|emotion|expression|answer|prediction)"""
    r"""["']?\s*[:=]\s*["']([^"'\n]*)["']"""
)
_WS = re.compile(r"\s+")
_BULLET = re.compile(r"^(?:[-+*•>#]+|\d+[.)])\s+")
_DECOR = " \t\"'.,;:!()[]{}<>-–—•#=|~"
_PREFIX = re.compile(
    r"^(?:"
    r"(?:(?:my|the|final|predicted|overall|student's|student)\s+)*"
    r"(?:answer|category|classification|class|label|emotion|facial expression|expression"
    r"|emotional state|prediction|result|output|response)"
    r"(?:\s+(?:of the student|for (?:this|the) image))?"
    r"\s*(?:is\s*:?|would be\s*:?|:|-+|–|—|=)\s*"
    r"|i(?:\s+would|'d)?\s+(?:classify|categori[sz]e|label)\s+"
    r"(?:it|this|this image|the image|the student|the student's expression|the expression)"
    r"\s+as(?:\s+being)?\s+"
    r")"
)
_PIECE = re.compile(r"([.!;:(\[\]{}—–]|\s-+\s)")
_LEADING_ENDS = frozenset({".", "!", ":", "-", "--", "—", "–"})  # "Label. Explanation"
_BOUNDARY = re.compile(
    r"[.;:!?\n()\[\]—–]|,|\s-+\s|\b(?:but|however|though|although|yet|whereas|while)\b"
)
_COORDINATION = re.compile(r"[\s,/&+]*(?:(?:and|or|nor)[\s,/&+]*)*")
_NEGATOR = re.compile(
    r"\b(?:not|no|never|neither|nor|without|hardly|barely|none|nothing|lacks?|lacking"
    r"|absence of|devoid of|free of|than|instead of|unlike|opposed to|cannot|rules? out"
    r"|ruled out|(?:is|are|was|were|does|do|did|has|have|had|ca|wo|could|would|should)n'?t)\b"
)
_NEGATION_WINDOW = 6  # words before a mention that a negator may stand in
_QUESTIONED = re.compile(r"[\s\"'*]*\?")
_REFUSAL = re.compile(
    r"\b(?:i'?m sorry|i am sorry|sorry, (?:but )?i|i apologi[sz]e|as an ai\b|as a language model"
    r"|i(?:'m| am)? (?:can ?not|can't|unable to|not able to|won't|will not)\s+"
    r"(?:help|assist|identify|determine|classify|analy[sz]e|tell|say|provide|make|recogni[sz]e"
    r"|detect|infer|judge|assess|see|view|access|process|interpret|comply|evaluate"
    r"|categori[sz]e|read|know|feel comfortable)"
    r"|i (?:do not|don't) (?:know|feel comfortable|have the ability)"
    r"|(?:unable|impossible|not possible) to (?:determine|identify|classify|analy[sz]e|tell"
    r"|assess|see|say)"
    r"|(?:cannot|can't|can not) be (?:determined|identified|classified|assessed))"
)
_TRUNCATED = re.compile(
    r"(?:\b(?:and|or|but|nor|a|an|the|to|be|of|with|is|are|was|were|very|slightly|somewhat"
    r"|quite|rather|more|less|than|not|as|which|that|either|neither|both|also|because|while"
    r"|like|being|bit|little|mostly|possibly|probably|maybe|perhaps|between|from|in|on|at"
    r"|by|for|its|their|his|her|this|these|some|appears|seems|looks)|[,:(\-–—])\s*\Z"
)


@dataclass(frozen=True)
class _Matcher:
    """The compiled view of one label set: word form -> label, and the mention regex."""

    forms: dict[str, str]
    mention: re.Pattern[str]
    echo_size: int  # a coordinated run naming this many labels is an echo of the list


def _norm(text: str) -> str:
    """Casefolded, underscores as spaces, single spaces, stripped."""
    return _WS.sub(" ", text.casefold().replace("_", " ")).strip()


def _claim_forms(tiers: Sequence[Sequence[tuple[str, str]]]) -> dict[str, str]:
    """Form -> label, higher tiers first; a form two labels claim in one tier is dropped."""
    taken: dict[str, str] = {}
    blocked: set[str] = set()
    for tier in tiers:
        claims: dict[str, set[str]] = {}
        for form, label in tier:
            if form:
                claims.setdefault(form, set()).add(label)
        for form, owners in claims.items():
            if form in taken or form in blocked:
                continue
            if len(owners) == 1:
                taken[form] = next(iter(owners))
            else:
                blocked.add(form)
    return taken


@lru_cache(maxsize=64)
def _compile(
    labels: tuple[str, ...], synonyms: tuple[tuple[str, tuple[str, ...]], ...]
) -> _Matcher:
    by_norm = {_norm(label): label for label in labels}
    exact = [(_norm(label), label) for label in labels]
    extra = [
        (_norm(word), by_norm[_norm(key)])
        for key, words in synonyms
        if _norm(key) in by_norm
        for word in words
    ]
    variants = [
        (word, label)
        for norm, label in by_norm.items()
        for group in _VARIANT_GROUPS
        if norm in group
        for word in group
    ]
    forms = _claim_forms([exact, extra, variants])
    alternatives = sorted(forms, key=lambda form: (-len(form), form))
    body = "|".join(r"\s+".join(map(re.escape, form.split())) for form in alternatives)
    mention = re.compile(rf"(?<![\w-])(?:{body})(?![\w-])" if body else r"(?!x)x")
    return _Matcher(forms, mention, max(3, len(labels) - 1))


def _freeze(
    synonyms: Mapping[str, Sequence[str]] | None,
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        sorted(
            (str(key), (words,) if isinstance(words, str) else tuple(map(str, words)))
            for key, words in (synonyms or {}).items()
        )
    )


def _matcher_for(labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None) -> _Matcher:
    return _compile(tuple(labels), _freeze(synonyms))


def _preclean(raw: str) -> str:
    """Casefold, straighten quotes, drop reasoning blocks (``<think>...</think>``)."""
    return _THINK.sub(" ", raw.casefold().translate(_QUOTES))


def _decorate(text: str) -> str:
    """Remove markdown emphasis, code ticks and XML-like tags; underscores become spaces."""
    text = _TAG.sub(" ", text)
    return text.replace("*", "").replace("`", "").replace("_", " ")


def _strip_line(line: str) -> str:
    """A line without bullets, surrounding punctuation/quotes and an answer prefix."""
    text = _BULLET.sub("", line.strip()).strip(_DECOR)
    text = _PREFIX.sub("", text, count=1).strip(_DECOR)
    return _WS.sub(" ", text)


def _exact(value: str, matcher: _Matcher) -> str | None:
    """The label that ``value`` is, ignoring decoration and an answer prefix, else None."""
    return matcher.forms.get(_strip_line(_decorate(_preclean(value))))


# ---------------------------------------------------------------------------------------
# JSON


def _from_json(value: Any, matcher: _Matcher, depth: int = 0) -> str:
    if depth > 3:
        return UNPARSED
    if isinstance(value, str):
        return _exact(value, matcher) or UNPARSED
    if isinstance(value, list):
        return _from_json(value[0], matcher, depth + 1) if len(value) == 1 else UNPARSED
    if not isinstance(value, dict):
        return UNPARSED
    keyed = {
        _WS.sub("_", str(key).strip().casefold()).replace("-", "_"): v for key, v in value.items()
    }
    for key in _JSON_KEYS:
        if key in keyed:
            return _from_json(keyed[key], matcher, depth + 1)
    for key, item in keyed.items():
        if _JSON_KEY_STEMS.search(key):
            return _from_json(item, matcher, depth + 1)
    strings = [item for item in keyed.values() if isinstance(item, str)]
    if len(strings) != 1:
        return UNPARSED
    return _exact(strings[0], matcher) or UNPARSED


def _json_choice(text: str, matcher: _Matcher) -> str | None:
    """The label a JSON answer gives, UNPARSED for JSON without one, None for non-JSON."""
    stripped = text.strip()
    candidates = []
    fence = _FENCE.search(stripped)
    if fence:
        candidates.append(fence.group(1).strip())
    if stripped[:1] in ("{", "["):
        candidates.append(stripped)
    obj = _OBJECT.search(stripped)
    if obj:
        candidates.append(obj.group(0))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, str):
            return None  # a quoted string is read as text
        return _from_json(value, matcher)
    if stripped.startswith('"') and stripped.endswith('"') and len(stripped) > 1:
        return None
    if obj or stripped.startswith("{"):  # Python-style dict or JSON cut short
        pair = _KEY_VALUE.search(stripped)
        if pair:
            return _exact(pair.group(2), matcher) or UNPARSED
    return None


def parse_json_answer(
    raw: str, labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None = None
) -> str | None:
    """The label a JSON answer names; ``UNPARSED`` if it names none; None if not JSON."""
    if not isinstance(raw, str):
        return None
    return _json_choice(_preclean(raw), _matcher_for(labels, synonyms))


# ---------------------------------------------------------------------------------------
# Text


@dataclass(frozen=True)
class _Mention:
    label: str
    negated: bool
    questioned: bool
    coordinated: bool  # joined to the previous mention only by "and", "or", ",", "/"


def _negates(gap: str) -> bool:
    """Whether the text between a clause start and a mention negates the mention."""
    tail = _BOUNDARY.split(gap)[-1]
    words = tail.split()[-_NEGATION_WINDOW:]
    return bool(_NEGATOR.search(" ".join(words)))


def _mentions(text: str, matcher: _Matcher) -> list[_Mention]:
    found: list[_Mention] = []
    prev_end = 0
    for match in matcher.mention.finditer(text):
        gap = text[prev_end : match.start()]
        coordinated = bool(found) and _COORDINATION.fullmatch(gap) is not None
        negated = found[-1].negated if coordinated else _negates(gap)
        questioned = _QUESTIONED.match(text, match.end()) is not None
        label = matcher.forms[_WS.sub(" ", match.group(0))]
        found.append(_Mention(label, negated, questioned, coordinated))
        prev_end = match.end()
    return found


def _affirmed(text: str, matcher: _Matcher) -> set[str]:
    """Labels mentioned neither negated, nor questioned, nor inside an echo of the list."""
    runs: list[list[_Mention]] = []
    for mention in _mentions(text, matcher):
        if mention.coordinated and runs:
            runs[-1].append(mention)
        else:
            runs.append([mention])
    affirmed: set[str] = set()
    for run in runs:
        if len({mention.label for mention in run}) >= matcher.echo_size:
            continue
        affirmed.update(m.label for m in run if not (m.negated or m.questioned))
    return affirmed


def _line_choice(line: str, matcher: _Matcher) -> str | None:
    """The label a line states on its own: the whole line, or one piece of it."""
    text = _strip_line(line)
    if not text:
        return None
    label = matcher.forms.get(text)
    if label is not None:
        return label
    parts = _PIECE.split(text)
    named = [matcher.forms.get(_WS.sub(" ", piece.strip(_DECOR))) for piece in parts[0::2]]
    distinct = set(named) - {None}
    if len(distinct) != 1:
        return None
    label = distinct.pop()
    if named[0] == label and len(parts) > 1 and parts[1].strip() in _LEADING_ENDS:
        return label  # a leading label, then its explanation
    return label if _affirmed(text, matcher) <= {label} else None


def _explicit_choice(text: str, matcher: _Matcher) -> str | None:
    """The label the answer's lines state on their own; UNPARSED if they disagree."""
    chosen = {_line_choice(line, matcher) for line in text.splitlines()}
    chosen.discard(None)
    if len(chosen) > 1:
        return UNPARSED
    return chosen.pop() if chosen else None


def parse_answer(
    raw: str, labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The one label of ``labels`` that the free-text answer ``raw`` chooses, else UNPARSED.

    ``synonyms`` maps a label to extra words that also name it. Labels are matched as
    whole words, case-insensitively; the label is returned as given in ``labels``.
    """
    if not isinstance(raw, str):
        return UNPARSED
    matcher = _matcher_for(labels, synonyms)
    text = _preclean(raw)
    if not text.strip():
        return UNPARSED
    from_json = _json_choice(text, matcher)
    if from_json is not None:
        return from_json
    text = _decorate(text)
    chosen = _explicit_choice(text, matcher)
    if chosen is not None:
        return chosen
    if _REFUSAL.search(text) or _TRUNCATED.search(text.rstrip()):
        return UNPARSED
    affirmed = _affirmed(text, matcher)
    return affirmed.pop() if len(affirmed) == 1 else UNPARSED


def is_refusal(raw: str) -> bool:
    """Whether a free-text answer declines the task ("I'm sorry, I can't …")."""
    if not isinstance(raw, str):
        return False
    return bool(_REFUSAL.search(_decorate(_preclean(raw))))


def label_forms(
    labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None = None
) -> dict[str, str]:
    """Every word form the parser reads as a label (casefolded) → that label: the labels,
    their synonyms and their inflections (`happiness` → `happy`)."""
    return dict(_matcher_for(labels, synonyms).forms)


def synonym_used(
    raw: str, labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None
) -> str | None:
    """The task-file synonym that made ``raw`` name its label (``Fatigued.`` -> tired), or
    None when the answer is read the same without the synonyms (or names no label)."""
    if not synonyms or not isinstance(raw, str):
        return None
    label = parse_answer(raw, labels, synonyms)
    if label == UNPARSED or parse_answer(raw, labels) == label:
        return None
    words = next((w for key, w in _freeze(synonyms) if _norm(key) == _norm(label)), ())
    text = _WS.sub(" ", _decorate(_preclean(raw)))
    for word in sorted(words, key=len, reverse=True):
        pattern = r"\s+".join(map(re.escape, _norm(word).split()))
        if re.search(rf"(?<![\w-]){pattern}(?![\w-])", text):
            return word
    return None

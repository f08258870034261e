"""The paper's prompt, pinned word for word."""

from __future__ import annotations

import hashlib

from emoprobe.task.definition import PAPER_TASK

PAPER_PROMPT = """\
The student in the attached image is watching a teaching video. Classify the student's \
expression into one of the following categories: confused, distracted, happy, tired, or \
neutral. Provide only the category as your answer, without any additional words.

The definitions of each category are as follows:

- Confused: The student appears confused, such as frowning or showing signs of puzzlement.
- Distracted: The student is not focused on the screen, such as looking away, turning in \
another direction, or engaging in other activities.
- Happy: The student is smiling, laughing, or showing signs of enjoyment.
- Tired: The student appears sleepy, yawning, or holding their face with their hand.
- Neutral: The student's expression does not fit into any of the above categories."""


def test_the_system_prompt_is_the_papers_word_for_word():
    assert PAPER_TASK.system_prompt == PAPER_PROMPT
    assert PAPER_TASK.prompt_sha256 == hashlib.sha256(PAPER_PROMPT.encode()).hexdigest()


def test_labels_keep_the_papers_order_and_match_any_case():
    assert PAPER_TASK.labels == ("confused", "distracted", "happy", "tired", "neutral")
    assert PAPER_TASK.canonical_label(" Happy ") == "happy"
    assert PAPER_TASK.canonical_label("TIRED") == "tired"
    assert PAPER_TASK.canonical_label("angry") is None

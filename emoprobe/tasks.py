"""The classification task: labels, their definitions, the instruction, the prompt.

The paper's task (Wang, Yang & Chen: five academic emotions) is the built-in default
and this module is the only place its prompt text lives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

UNPARSED = "unparsed"

CONTEXT_HEADER = "The definitions of each category are as follows:"


@dataclass(frozen=True)
class Task:
    """A closed-set image classification task put to a VLM as one system prompt."""

    name: str
    instruction: str
    definitions: dict[str, str]
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    user_text: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels in the order the definitions list them."""
        return tuple(self.definitions)

    @property
    def system_prompt(self) -> str:
        """Instruction, then the context header and one definition per label."""
        lines = [self.instruction, "", CONTEXT_HEADER, ""]
        lines += [f"- {label.capitalize()}: {text}" for label, text in self.definitions.items()]
        return "\n".join(lines)

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(self.system_prompt.encode("utf-8")).hexdigest()

    def messages(self, image: bytes) -> list[dict]:
        """The chat messages for one image: the prompt as system, the image as user."""
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.user_text, "images": [image]},
        ]

    def canonical_label(self, name: str) -> str | None:
        """The task's label for a dataset label, ignoring case and surrounding space."""
        wanted = name.strip().casefold()
        for label in self.labels:
            if label.casefold() == wanted:
                return label
        return None


PAPER_TASK = Task(
    name="academic-emotion",
    instruction=(
        "The student in the attached image is watching a teaching video. Classify the "
        "student's expression into one of the following categories: confused, distracted, "
        "happy, tired, or neutral. Provide only the category as your answer, without any "
        "additional words."
    ),
    definitions={
        "confused": (
            "The student appears confused, such as frowning or showing signs of puzzlement."
        ),
        "distracted": (
            "The student is not focused on the screen, such as looking away, turning in "
            "another direction, or engaging in other activities."
        ),
        "happy": "The student is smiling, laughing, or showing signs of enjoyment.",
        "tired": "The student appears sleepy, yawning, or holding their face with their hand.",
        "neutral": "The student's expression does not fit into any of the above categories.",
    },
)

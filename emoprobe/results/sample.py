"""The sample as asked for and as drawn: images per class requested, drawn, available.

Pure: a manifest and the predictions table in, a record out (metrics.json's `sample`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from emoprobe.results.manifest import Manifest


@dataclass(frozen=True)
class SampleCounts:
    """Per class: `requested` (None: every image), `drawn` and `available` (None where the
    run's manifest does not record it); `short`: classes drawn fewer than asked.
    `drawn_recorded` is False for a folder made before the manifest recorded the draw:
    `drawn` then counts the rows the folder holds (images still to do are missing)."""

    per_class: int | None
    seed: int | None
    requested: dict[str, int] | None
    drawn: dict[str, int]
    available: dict[str, int] | None
    drawn_recorded: bool
    short: list[str] = field(default_factory=list)

    @property
    def n_requested(self) -> int | None:
        return None if self.requested is None else sum(self.requested.values())

    @property
    def n_drawn(self) -> int:
        return sum(self.drawn.values())


def sample_counts(manifest: Manifest, frame: pd.DataFrame, labels: Sequence[str]) -> SampleCounts:
    """The sample of a run as its manifest records it (else as its rows show it)."""
    dataset = manifest.dataset
    recorded = dataset.drawn is not None
    counts = frame["label"].astype(str).value_counts() if dataset.drawn is None else dataset.drawn
    drawn = {label: int(counts.get(label, 0)) for label in labels}
    available = (
        {label: int(dataset.available.get(label, 0)) for label in labels}
        if dataset.available is not None
        else None
    )
    per_class = dataset.per_class
    requested = dict.fromkeys(labels, per_class) if per_class else available
    short = [label for label in labels if per_class and drawn[label] < per_class]
    return SampleCounts(per_class, dataset.seed, requested, drawn, available, recorded, short)

"""A stratified, seeded sample of a dataset's items: the same on every run and machine."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence

from emoprobe.data.records import Item
from emoprobe.errors import DatasetError


def _rng(seed: int, purpose: str) -> random.Random:
    """A generator that depends only on (seed, purpose): stable across runs and machines."""
    digest = hashlib.sha256(f"emoprobe-sample\0{seed}\0{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _shuffle(items: list[Item], rng: random.Random) -> None:
    """Fisher-Yates on `rng.random()` alone, whose sequence Python keeps stable across
    versions (unlike `shuffle`/`sample`, whose algorithms may change)."""
    for i in range(len(items) - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        items[i], items[j] = items[j], items[i]


def stratified_sample(
    items: Sequence[Item], per_class: int | None, seed: int
) -> tuple[list[Item], list[str]]:
    """Up to `per_class` items of each label, in a seeded shuffled order; and warnings.

    `per_class=None` keeps every item (still shuffled, so a run stopped early has a mix of
    classes). Each class is drawn with its own generator seeded from (seed, label), so adding
    or removing a class does not change the others' draws. A class with fewer items than
    asked gives all of them and a warning. The input order does not matter.
    """
    if per_class is not None and (
        isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1
    ):
        raise DatasetError(
            f"the per-class sample size must be a whole number >= 1 (got {per_class!r})",
            setting="per_class",
        )
    by_label: dict[str, list[Item]] = {}
    for item in items:
        by_label.setdefault(item.label, []).append(item)

    sample: list[Item] = []
    warnings: list[str] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda it: (it.relpath, os.fsencode(it.path)))
        if per_class is None:
            sample += group
        elif len(group) <= per_class:
            if len(group) < per_class:
                warnings.append(
                    f"class '{label}' has only {len(group)} images; using all {len(group)}"
                )
            sample += group
        else:
            _shuffle(group, _rng(seed, f"class\0{label}"))
            sample += group[:per_class]
    _shuffle(sample, _rng(seed, "order"))
    return sample, warnings

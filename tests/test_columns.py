"""Runs read as columns: the fast readers agree with the row readers on every file."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emoprobe.errors import ConfigError
from emoprobe.results import stats
from emoprobe.results.manifest import FileRecord, Manifest, _parse
from emoprobe.results.predictions import (
    PredictionWriter,
    Row,
    read_frame,
    read_rows,
    rows_of,
    to_frame,
)

LABELS = ["happy", "tired", "neutral"]


def rows(count: int = 12, scores: bool = False) -> list[Row]:
    made = []
    for i in range(count):
        label = LABELS[i % 3]
        status = ("ok", "unparsed", "error")[i % 3 if i % 4 == 0 else 0]
        made.append(
            Row(
                path=f"{label}/{i}.jpg",
                sha256=f"{i:064x}",
                label=label,
                prediction={"ok": LABELS[(i // 2) % 3], "unparsed": "unparsed", "error": ""}[
                    status
                ],
                raw=f'answer, "{i}"\nwith a line' if i % 5 == 0 else f"=looks {label}",
                status=status,
                error="truncated or corrupt image" if status == "error" else "",
                latency_s=None if status == "error" else 0.25 * i,
                cached=i % 2 == 0,
                prompt_tokens=None if status == "error" else 300 + i,
                output_tokens=None if status == "error" else 4,
                prefill_ms=None if status == "error" else 1.5 * i,
                decode_ms=None if i % 2 else 20.25,
                scores=({"happy": 0.5, "tired": 0.25} if i % 3 else {}) if scores else None,
            )
        )
    return made


def write(path, made, score_labels=()):
    with PredictionWriter(path, score_labels) as writer:
        for row in made:
            writer.write(row)


@pytest.mark.parametrize("scores", [False, True])
def test_read_frame_equals_the_rows_read_one_by_one(tmp_path, scores):
    path = tmp_path / "predictions.csv"
    write(path, rows(scores=scores), LABELS if scores else ())
    expected = to_frame(read_rows(path), LABELS)
    pd.testing.assert_frame_equal(read_frame(path, LABELS), expected)
    assert rows_of(read_frame(path, LABELS)) == read_rows(path)


@pytest.mark.parametrize(
    "tail",
    [
        b'happy/x.jpg,abc,happy,happy,"half an answer',  # a half-written last row
        b"happy/x.jpg,abc,happy\n",  # a short row
        b'happy/x.jpg,abc,happy,happy,"carriage\rreturn",ok,,0.1,false,12,3,1.5,\n',
        b"\n",  # a blank line
        b"happy/y.jpg,abd,happy,happy,odd,pending,,0.1,false,,,,\n",  # not a final status
    ],
)
def test_read_frame_agrees_on_damaged_files(tmp_path, tail):
    path = tmp_path / "predictions.csv"
    write(path, rows())
    with open(path, "ab") as handle:
        handle.write(tail)
    try:
        expected = to_frame(read_rows(path), LABELS)
    except ConfigError as error:  # a malformed row: the same one-line error
        with pytest.raises(ConfigError, match=re.escape(str(error))):
            read_frame(path, LABELS)
        return
    pd.testing.assert_frame_equal(read_frame(path, LABELS), expected)


def test_read_frame_names_a_bad_number(tmp_path):
    path = tmp_path / "predictions.csv"
    write(path, rows())
    with open(path, "ab") as handle:
        handle.write(b"happy/x.jpg,abc,happy,happy,happy,ok,,fast,false,,,,\n")
    with pytest.raises(ConfigError, match="no number"):
        read_frame(path, LABELS)


def test_manifest_files_fast_path_equals_pydantic():
    data = Manifest(files=[FileRecord(f"a/{i}.jpg", "happy", f"{i:064x}") for i in range(50)])
    parsed = Manifest.from_json(data.to_json())
    assert parsed == _parse(Manifest, json.loads(data.to_json()), "manifest")
    assert parsed.files[7] == FileRecord("a/7.jpg", "happy", f"{7:064x}")
    bad = json.loads(data.to_json())
    bad["files"][3]["label"] = 5
    with pytest.raises(ConfigError, match=r"files\.3\.label"):
        Manifest.from_dict(bad)


def test_bootstrap_of_many_runs_pairs_each_with_the_first():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, 400)
    first = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, 4, 400))
    other = np.where(rng.random(400) < 0.5, y_true, rng.integers(0, 4, 400))
    boot = stats.paired_bootstrap(y_true, [first, other, first.copy()], 3, 1000, seed=0)
    assert boot.f1_weighted.shape == (3, 1000)
    assert boot.difference_interval("f1_weighted", 2) == (0.0, 0.0)  # the same answers
    low, high = boot.difference_interval("accuracy", 1)
    assert low < float(np.mean(other == y_true) - np.mean(first == y_true)) < high
    two = stats.paired_bootstrap(y_true, [first, other], 3, 1000, seed=0)
    assert two.difference_interval("f1_weighted", 1) == boot.difference_interval("f1_weighted", 1)


@pytest.mark.parametrize(
    "code",
    [
        "import emoprobe",
        "import emoprobe.cli",
        "import emoprobe.results.metrics, emoprobe.results.stats, emoprobe.results.comparison",
    ],
)
def test_heavy_libraries_are_imported_only_where_used(code):
    heavy = ("sklearn", "scipy", "matplotlib", "pandas")
    check = f"{code}\nimport sys\nprint([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_imports_no_heavy_library():
    check = (
        "import sys\nfrom emoprobe.cli import main\nsys.argv = ['emoprobe', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('sklearn', 'scipy', 'matplotlib', 'pandas', 'numpy', 'PIL')"
        " if m in sys.modules], file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "[]"

"""DAiSEE: ``Labels/AllLabels.csv`` (else every ``Labels/*Labels.csv``) and extracted frames.

The label files have columns ``ClipID,Boredom,Engagement,Confusion,Frustration`` (header
cells stripped: some files have ``"Frustration "``), each level 0-3. The frames the user
extracted from the videos are images in clip folders
``DataSet/<split>/<subject>/<clip id without extension>/``. Every frame is an item labelled
with its clip's *dominant* state: the highest level, ties going to boredom, then confusion,
frustration, engagement (`DAISEE_TIE_ORDER`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from emoprobe.data.formats.common import Format, Labeller, LabelSpace, first, show
from emoprobe.data.formats.listing import child, read_labels, relpath, scandir_sorted
from emoprobe.data.records import Dataset, Item, is_image_name
from emoprobe.errors import DatasetError

EXPECTS = (
    "a DAiSEE folder with Labels/AllLabels.csv (or Labels/*Labels.csv) and "
    "DataSet/<split>/<subject>/<clip>/ folders of extracted frames"
)

DAISEE_STATES = ("boredom", "engagement", "confusion", "frustration")  # the CSV's order
DAISEE_TIE_ORDER = ("boredom", "confusion", "frustration", "engagement")
DAISEE_LEVELS = range(4)
_HINT = " (task examples/tasks/daisee-engagement.toml maps them)"


def dominant_state(levels: dict[str, int]) -> str:
    """The state with the highest level; ties go to the earliest in `DAISEE_TIE_ORDER`."""
    top = max(levels.values())
    return next(state for state in DAISEE_TIE_ORDER if levels[state] == top)


def _label_files(root: Path) -> list[Path]:
    folder = child(root, "Labels", want_dir=True)
    if folder is None:
        return []
    every = child(folder, "AllLabels.csv", want_dir=False)
    if every is not None:
        return [every]
    try:
        with os.scandir(folder) as it:
            return sorted(
                Path(e.path)
                for e in it
                if e.name.casefold().endswith("labels.csv") and not e.name.startswith(".")
            )
    except OSError:
        return []


def looks_like(root: Path, is_dir: bool) -> bool:
    """A folder with ``Labels/*Labels.csv`` and ``DataSet/``."""
    return is_dir and child(root, "DataSet", want_dir=True) is not None and bool(_label_files(root))


def _clip_states(files: list[Path], warnings: list[str]) -> dict[str, str]:
    """Clip id (without extension) -> dominant state, from the label CSVs in order."""
    states: dict[str, str] = {}
    conflicts: list[str] = []
    for file in files:
        shown = show(file)
        reader = csv.reader(io.StringIO(read_labels(file, f"DAiSEE labels {shown}"), newline=""))
        try:
            header = [cell.strip().casefold() for cell in next(reader, [])]
            wanted = ("clipid", *DAISEE_STATES)
            missing = [col for col in wanted if col not in header]
            if missing:
                raise DatasetError(
                    f"DAiSEE labels {shown} have no {', '.join(missing)} column(s): expected "
                    "ClipID,Boredom,Engagement,Confusion,Frustration",
                    path=file,
                )
            columns = {col: header.index(col) for col in wanted}
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                cells = {
                    col: (row[i].strip() if i < len(row) else "") for col, i in columns.items()
                }
                levels: dict[str, int] = {}
                for state in DAISEE_STATES:
                    try:
                        levels[state] = int(cells[state])
                    except ValueError:
                        levels[state] = -1
                    if levels[state] not in DAISEE_LEVELS:
                        raise DatasetError(
                            f"DAiSEE labels {shown} line {reader.line_num}: {state} must be a "
                            f"level 0-3 (got '{show(cells[state][:20])}')",
                            path=file,
                        )
                clip = os.path.splitext(cells["clipid"])[0]
                if not clip:
                    raise DatasetError(
                        f"DAiSEE labels {shown} line {reader.line_num}: no ClipID", path=file
                    )
                state = dominant_state(levels)
                if states.setdefault(clip, state) != state:
                    conflicts.append(clip)
        except csv.Error as exc:
            raise DatasetError(
                f"DAiSEE labels {shown} are malformed at line {reader.line_num}: {show(str(exc))}",
                path=file,
            ) from None
    if conflicts:
        warnings.append(
            f"{len(conflicts)} clip(s) are labelled differently in two label files; kept the "
            f"first ({first(conflicts)})"
        )
    return states


def load(root: Path, space: LabelSpace, cache_dir: Path | None = None) -> Dataset:
    """DAiSEE: Labels/*Labels.csv, and the frames extracted into DataSet/.../<clip>/."""
    warnings: list[str] = []
    files = _label_files(root)
    clips = _clip_states(files, warnings)
    dataset_dir = child(root, "DataSet", want_dir=True)
    assert dataset_dir is not None  # checked by looks_like
    labeller = Labeller(space, f"DAiSEE labels {show(files[0])}", _HINT)
    items: list[Item] = []
    no_frames: list[str] = []
    unlabelled: list[str] = []
    stack = [dataset_dir]
    while stack:
        folder = stack.pop()
        entries = [e for e in scandir_sorted(folder) if not e.name.startswith(".")]
        frames = [e for e in entries if is_image_name(e.name) and e.is_file()]
        state = clips.get(folder.name) if folder != dataset_dir else None
        if state is not None:
            label = labeller.label(state, None, f"clip {folder.name}")
            if not frames:
                no_frames.append(folder.name)
            if label is not None:
                for frame in frames:
                    path = Path(frame.path)
                    items.append(Item(path, relpath(path, root), label))
            continue  # a clip folder: its subfolders are not clips
        if frames:
            unlabelled.append(relpath(folder, root))
        stack += reversed([Path(e.path) for e in entries if e.is_dir()])

    if not items and not labeller.failed and not labeller.skipped and not unlabelled:
        raise DatasetError(
            f"no extracted frames found under {show(dataset_dir)}: emoprobe reads images, "
            "not videos; extract frames into each clip's folder first (e.g. ffmpeg -i "
            "1100011002.avi -vf fps=1 1100011002/%03d.jpg)",
            path=dataset_dir,
        )
    if no_frames:
        warnings.append(
            f"{len(no_frames)} labelled clip folder(s) hold no extracted frames "
            f"({first(no_frames)}); extract frames to use them"
        )
    if unlabelled:
        warnings.append(
            f"left out the frames of {len(unlabelled)} folder(s) that are not a labelled clip "
            f"({first(unlabelled)})"
        )
    return labeller.finish(root, FORMAT, items, warnings)


FORMAT = Format("daisee", EXPECTS, looks_like, load)

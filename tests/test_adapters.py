"""Dataset adapters: tiny replicas of FER2013, RAF-DB, AffectNet and DAiSEE, in their layouts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from factories import daisee, fer_csv, pixels, write_image
from PIL import Image

from emoprobe.data.dataset import DATASET_FORMATS, detect_format, load_dataset
from emoprobe.data.formats.daisee import DAISEE_TIE_ORDER, dominant_state
from emoprobe.data.images import prepare_image
from emoprobe.errors import ConfigError, DatasetError
from emoprobe.task.definition import PAPER_TASK, load_task

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"
BASIC = load_task(EXAMPLES / "basic-emotions.toml")
DAISEE = load_task(EXAMPLES / "daisee-engagement.toml")


def one_line(exc: pytest.ExceptionInfo[Exception]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def labels_of(dataset) -> list[tuple[str, str]]:
    return [(item.relpath, item.label) for item in dataset.items]


# ---------------------------------------------------------------------------------------
# FER2013


def fer_folder(cache: Path, csv_path: Path) -> Path:
    sha = hashlib.sha256(csv_path.read_bytes()).hexdigest()[:12]
    return cache / "datasets" / f"fer2013-{sha}"


def test_fer2013_is_detected_materialised_and_mapped(tmp_path: Path) -> None:
    csv_path = fer_csv(tmp_path / "fer2013.csv")
    cache = tmp_path / "mycache"
    assert detect_format(csv_path) == "fer2013"
    dataset = load_dataset(csv_path, BASIC, cache_dir=cache)
    assert dataset.format == "fer2013"
    assert dataset.root == csv_path
    folder = fer_folder(cache, csv_path)
    assert labels_of(dataset) == [
        ("00000.png", "anger"),
        ("00001.png", "happiness"),
        ("00002.png", "neutral"),
    ]
    assert [item.path for item in dataset.items] == [folder / f"{i:05d}.png" for i in range(3)]
    with Image.open(dataset.items[1].path) as image:
        assert (image.size, image.mode) == ((48, 48), "L")
        assert [image.getpixel((x, 0)) for x in range(3)] == [37, 38, 39]
    assert prepare_image(dataset.items[0].path).error is None
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert dataset.warnings == [
        "no images for label(s): disgust, fear, sadness, surprise; scores for them will be empty"
    ]


def test_fer2013_images_are_reused_on_the_next_load(tmp_path: Path) -> None:
    csv_path = fer_csv(tmp_path / "fer2013.csv")
    first = load_dataset(csv_path, BASIC, cache_dir=tmp_path / "cache")
    stamps = {item.path: item.path.stat().st_mtime_ns for item in first.items}
    again = load_dataset(csv_path, BASIC, cache_dir=tmp_path / "cache")
    assert again.items == first.items
    assert {item.path: item.path.stat().st_mtime_ns for item in again.items} == stamps


def test_fer2013_icml_variant_with_spaced_column_names(tmp_path: Path) -> None:
    csv_path = fer_csv(tmp_path / "icml_face_data.csv", header="emotion, Usage, pixels")
    assert detect_format(csv_path) == "fer2013"
    dataset = load_dataset(csv_path, BASIC, cache_dir=tmp_path / "cache")
    assert [item.label for item in dataset.items] == ["anger", "happiness", "neutral"]


def test_fer2013_default_cache_dir_and_named_format(tmp_path: Path, isolated_env: Path) -> None:
    csv_path = fer_csv(tmp_path / "train.csv", header="emotion,pixels", codes=(4, 5))
    dataset = load_dataset(csv_path, BASIC, format="fer2013")
    assert [item.label for item in dataset.items] == ["sadness", "surprise"]
    assert dataset.items[0].path.parent == fer_folder(isolated_env, csv_path)


def test_fer2013_codes_unknown_to_the_task_write_nothing(tmp_path: Path) -> None:
    csv_path = fer_csv(tmp_path / "fer2013.csv")
    with pytest.raises(DatasetError) as exc:
        load_dataset(csv_path, PAPER_TASK, cache_dir=tmp_path / "cache")
    assert one_line(exc) == (
        f"FER2013 CSV {csv_path} has unknown label(s) 'Angry (0)' (first: line 2): the allowed "
        "labels are confused, distracted, happy, tired, neutral "
        "(task examples/tasks/basic-emotions.toml maps them)"
    )
    assert not any(fer_folder(tmp_path / "cache", csv_path).iterdir())


def test_fer2013_bad_pixel_rows_are_left_out_with_a_warning(tmp_path: Path) -> None:
    csv_path = tmp_path / "fer2013.csv"
    csv_path.write_text(
        f"emotion,pixels,Usage\n3,{pixels(0)},Training\n3,1 2 3,Training\n4,{pixels(1)},x\n"
    )
    dataset = load_dataset(csv_path, BASIC, cache_dir=tmp_path / "cache")
    assert labels_of(dataset) == [("00000.png", "happiness"), ("00002.png", "sadness")]
    assert dataset.warnings[0] == (
        f"left out 1 row(s) of FER2013 CSV {csv_path} whose pixels are not a square grayscale "
        "image of numbers 0-255 (first: line 3)"
    )


def test_fer2013_unwritable_cache_is_a_cache_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # write_atomic raises WriteError, not OSError: it must still become a CacheError.
    from emoprobe.data.formats import fer2013
    from emoprobe.errors import CacheError, WriteError

    def full_disk(path: Path, content: object) -> None:
        raise WriteError(f"cannot write {path}: No space left on device", path=path)

    monkeypatch.setattr(fer2013, "write_atomic", full_disk)
    csv_path = fer_csv(tmp_path / "fer2013.csv")
    with pytest.raises(CacheError) as exc:
        load_dataset(csv_path, BASIC, cache_dir=tmp_path / "cache")
    assert "No space left on device" in one_line(exc)
    assert exc.value.setting == "cache_dir"
    assert exc.value.path == fer_folder(tmp_path / "cache", csv_path)


def test_fer2013_named_on_a_csv_without_pixels(tmp_path: Path) -> None:
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\na.jpg,happy\n")
    assert detect_format(manifest) == "csv"
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest, format="fer2013", cache_dir=tmp_path / "cache")
    assert one_line(exc).startswith(f"{manifest} is not a fer2013 dataset (a file): format ")


# ---------------------------------------------------------------------------------------
# RAF-DB


def rafdb(root: Path, aligned: bool = True) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\ntrain_00002.jpg 1\n\ntest_0001.jpg 4\n"
    )
    for name in ("train_00001", "train_00002", "test_0001"):
        if aligned:
            write_image(root / "Image" / "aligned" / f"{name}_aligned.jpg")
        write_image(root / "Image" / "original" / f"{name}.jpg")
    return root


def test_rafdb_aligned_images_are_detected_and_mapped(tmp_path: Path) -> None:
    root = rafdb(tmp_path / "basic")
    assert detect_format(root) == "rafdb"
    dataset = load_dataset(root, BASIC)
    assert dataset.format == "rafdb"
    assert labels_of(dataset) == [
        ("Image/aligned/test_0001_aligned.jpg", "happiness"),
        ("Image/aligned/train_00001_aligned.jpg", "sadness"),
        ("Image/aligned/train_00002_aligned.jpg", "surprise"),
    ]
    assert all(item.path.is_file() for item in dataset.items)


def test_rafdb_without_aligned_uses_original(tmp_path: Path) -> None:
    root = rafdb(tmp_path / "basic", aligned=False)
    dataset = load_dataset(root, BASIC, format="rafdb")
    assert labels_of(dataset)[0] == ("Image/original/test_0001.jpg", "happiness")


def test_rafdb_missing_images_warn_and_bad_lines_fail(tmp_path: Path) -> None:
    root = rafdb(tmp_path / "basic")
    (root / "Image" / "aligned" / "test_0001_aligned.jpg").unlink()
    dataset = load_dataset(root, BASIC)
    assert len(dataset.items) == 3
    assert "1 image(s) listed in" in dataset.warnings[0]
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(root, BASIC)
    assert "line 1: expected '<image> <code>'" in one_line(exc)


def test_rafdb_codes_unknown_to_the_paper_task(tmp_path: Path) -> None:
    root = rafdb(tmp_path / "basic")
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert "has unknown label(s) 'Sadness (5)', 'Surprise (1)', 'Happiness (4)'" in one_line(exc)


# ---------------------------------------------------------------------------------------
# AffectNet


def affectnet(split: Path, codes: dict[str, object]) -> Path:
    (split / "annotations").mkdir(parents=True)
    for image_id, code in codes.items():
        write_image(split / "images" / f"{image_id}.jpg")
        np.save(split / "annotations" / f"{image_id}_exp.npy", np.array(code))
        np.save(split / "annotations" / f"{image_id}_val.npy", np.array("0.5"))
    return split


def test_affectnet_is_detected_and_contempt_is_left_out(tmp_path: Path) -> None:
    root = affectnet(tmp_path / "val_set", {"10": "1", "11": 6, "12": "7", "13": np.int64(0)})
    assert detect_format(root) == "affectnet"
    dataset = load_dataset(root, BASIC)
    assert dataset.format == "affectnet"
    assert labels_of(dataset) == [
        ("images/11.jpg", "anger"),
        ("images/10.jpg", "happiness"),
        ("images/13.jpg", "neutral"),
    ]
    assert dataset.warnings[0] == (
        f"left out 1 image(s) of AffectNet folder {root} whose labels the task ignores: "
        "1 'Contempt'"
    )


def test_affectnet_splits_in_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "AffectNet"
    affectnet(root / "train_set", {"0": "2"})
    affectnet(root / "val_set", {"0": "3"})
    write_image(root / "val_set" / "images" / "99.jpg")  # no annotation
    dataset = load_dataset(root, BASIC, format="affectnet")
    assert labels_of(dataset) == [
        ("train_set/images/0.jpg", "sadness"),
        ("val_set/images/0.jpg", "surprise"),
    ]
    assert any("1 image(s) without an annotations/<id>_exp.npy" in w for w in dataset.warnings)


def test_affectnet_happy_matches_the_papers_happy(tmp_path: Path) -> None:
    root = affectnet(tmp_path / "val_set", {"0": "1"})
    assert labels_of(load_dataset(root, PAPER_TASK)) == [("images/0.jpg", "happy")]


def test_kaggle_affectnet_class_folders_are_an_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "affectnet"
    for name in ("anger", "contempt", "happy", "sad"):
        write_image(root / name / "a.jpg")
    assert detect_format(root) == "imagefolder"
    dataset = load_dataset(root, BASIC)
    assert [item.label for item in dataset.items] == ["anger", "happiness", "sadness"]
    assert dataset.warnings[0] == (
        f"left out label folder(s) 'contempt' in {root}: the task ignores those labels"
    )


# ---------------------------------------------------------------------------------------
# DAiSEE


def test_daisee_frames_get_their_clips_dominant_state(tmp_path: Path) -> None:
    root = daisee(tmp_path / "DAiSEE")
    assert detect_format(root) == "daisee"
    dataset = load_dataset(root, DAISEE)
    assert dataset.format == "daisee"
    base = "DataSet/Train/110001"
    assert labels_of(dataset) == [
        (f"{base}/1100011003/11000110031.jpg", "boredom"),
        (f"{base}/1100011004/11000110041.jpg", "confusion"),
        (f"{base}/1100011002/11000110021.jpg", "engagement"),
        (f"{base}/1100011002/11000110022.jpg", "engagement"),
    ]
    assert dataset.warnings[0].startswith("1 labelled clip folder(s) hold no extracted frames")


def test_daisee_split_label_files_and_unknown_states(tmp_path: Path) -> None:
    root = daisee(tmp_path / "DAiSEE")
    all_labels = (root / "Labels" / "AllLabels.csv").read_text()
    (root / "Labels" / "AllLabels.csv").unlink()
    (root / "Labels" / "TrainLabels.csv").write_text(all_labels)
    assert len(load_dataset(root, DAISEE, format="daisee").items) == 4
    with pytest.raises(DatasetError) as exc:
        load_dataset(root, PAPER_TASK)
    assert one_line(exc).startswith(
        f"DAiSEE labels {root / 'Labels' / 'TrainLabels.csv'} has unknown label(s) "
    )
    assert "(task examples/tasks/daisee-engagement.toml maps them)" in one_line(exc)
    assert exc.value.setting == "task"  # the CLI names --task there


def test_daisee_without_extracted_frames(tmp_path: Path) -> None:
    root = tmp_path / "DAiSEE"
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "AllLabels.csv").write_text(
        "ClipID,Boredom,Engagement,Confusion,Frustration\n1100011002.avi,0,3,0,0\n"
    )
    (root / "DataSet" / "Test" / "110001" / "1100011002").mkdir(parents=True)
    with pytest.raises(DatasetError) as exc:
        load_dataset(root, DAISEE)
    assert "no extracted frames found under" in one_line(exc)


def test_daisee_bad_level(tmp_path: Path) -> None:
    root = daisee(tmp_path / "DAiSEE")
    (root / "Labels" / "AllLabels.csv").write_text(
        "ClipID,Boredom,Engagement,Confusion,Frustration\n1100011002.avi,0,5,0,0\n"
    )
    with pytest.raises(DatasetError) as exc:
        load_dataset(root, DAISEE)
    assert "line 2: engagement must be a level 0-3 (got '5')" in one_line(exc)


def test_dominant_state_ties_follow_the_documented_order() -> None:
    assert DAISEE_TIE_ORDER == ("boredom", "confusion", "frustration", "engagement")
    levels = {"boredom": 0, "engagement": 0, "confusion": 0, "frustration": 0}
    assert dominant_state(levels) == "boredom"
    assert dominant_state({**levels, "engagement": 2, "frustration": 2}) == "frustration"
    assert dominant_state({**levels, "engagement": 3, "confusion": 2}) == "engagement"


# ---------------------------------------------------------------------------------------
# Formats named on the wrong path


def test_wrong_format_is_one_line(tmp_path: Path) -> None:
    csv_path = fer_csv(tmp_path / "fer2013.csv")
    raf = rafdb(tmp_path / "raf")
    folder = tmp_path / "plain"
    write_image(folder / "happy" / "a.jpg")
    cases = [
        (csv_path, "rafdb", "a file", "EmoLabel/list_patition_label.txt"),
        (raf, "fer2013", "a folder", "emotion and pixels columns"),
        (folder, "affectnet", "a folder", "annotations/<id>_exp.npy"),
        (folder, "daisee", "a folder", "Labels/AllLabels.csv"),
        (folder, "csv", "a folder", "a CSV file with path,label columns"),
        (csv_path, "imagefolder", "a file", "a folder ROOT/<label>/<image>"),
    ]
    for path, format, what, expects in cases:
        with pytest.raises(DatasetError) as exc:
            load_dataset(path, BASIC, format=format, cache_dir=tmp_path / "cache")
        message = one_line(exc)
        assert message.startswith(f"{path} is not a {format} dataset ({what}): format {format}")
        assert expects in message


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_dataset(tmp_path, format="kdef")
    assert one_line(exc) == (
        "unknown dataset format 'kdef': expected one of " + ", ".join(DATASET_FORMATS)
    )


def test_named_formats_for_plain_layouts(tmp_path: Path) -> None:
    write_image(tmp_path / "ds" / "Happy" / "a.jpg")
    assert load_dataset(tmp_path / "ds", BASIC, format="imagefolder").items[0].label == (
        "happiness"
    )
    manifest = tmp_path / "ds" / "list.txt"
    manifest.write_text("path,label\nHappy/a.jpg,angry\nb.jpg,Contempt\n")
    dataset = load_dataset(manifest, BASIC, format="csv")
    assert dataset.format == "csv"
    assert [item.label for item in dataset.items] == ["anger"]
    assert any("1 'Contempt'" in warning for warning in dataset.warnings)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_csv_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "fer2013.csv"
    os.mkfifo(fifo)
    assert detect_format(fifo) == "csv"
    with pytest.raises(DatasetError, match="is not a regular file"):
        load_dataset(fifo)
    with pytest.raises(DatasetError, match="is not a fer2013 dataset"):
        load_dataset(fifo, format="fer2013")


def test_fer2013_named_on_a_file_without_the_csv_suffix(tmp_path: Path) -> None:
    data = fer_csv(tmp_path / "fer2013.txt")
    assert detect_format(data) == "csv"
    dataset = load_dataset(data, BASIC, format="fer2013", cache_dir=tmp_path / "cache")
    assert dataset.format == "fer2013" and len(dataset.items) == 3

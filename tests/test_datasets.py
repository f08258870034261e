"""Tests for emoprobe.data: ImageFolder and CSV loading, bad inputs, stratified sampling."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from emoprobe.data.dataset import load_dataset
from emoprobe.data.formats import common
from emoprobe.data.images import prepare_image
from emoprobe.data.records import IMAGE_SUFFIXES, Item
from emoprobe.data.sampling import stratified_sample
from emoprobe.errors import DatasetError
from emoprobe.task.definition import PAPER_TASK

LABELS = PAPER_TASK.labels


def write_image(path: Path, color: tuple[int, int, int] = (120, 60, 30)) -> Path:
    """A tiny real JPEG (or PNG, by suffix) at `path`, creating folders as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.new("RGB", (32, 24), color).save(path, fmt)
    return path


def image_folder(root: Path, layout: dict[str, int]) -> Path:
    """ROOT/<label>/img<i>.jpg for each label: count."""
    for label, count in layout.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_image(root / label / f"img{i:02d}.jpg")
    return root


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def one_line(exc: pytest.ExceptionInfo[DatasetError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------
# ImageFolder: the good cases


def test_image_folder_lists_items_sorted_by_label_then_relpath(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"tired": 2, "happy": 2, "confused": 1})
    ds = load_dataset(root, PAPER_TASK)
    assert ds.format == "imagefolder"
    assert ds.root == root
    assert [(it.label, it.relpath) for it in ds.items] == [
        ("confused", "confused/img00.jpg"),
        ("happy", "happy/img00.jpg"),
        ("happy", "happy/img01.jpg"),
        ("tired", "tired/img00.jpg"),
        ("tired", "tired/img01.jpg"),
    ]
    assert all(it.path.is_absolute() and it.path.is_file() for it in ds.items)
    assert ds.warnings == [
        "no images for label(s): distracted, neutral; scores for them will be empty"
    ]


def test_image_folder_accepts_a_plain_label_list_and_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image_folder(tmp_path / "ds", {"cat": 1, "dog": 1})
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("ds", ["cat", "dog"])
    assert [it.label for it in ds.items] == ["cat", "dog"]
    assert ds.root == tmp_path / "ds"
    assert ds.warnings == []


def test_image_suffixes_are_case_insensitive(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for name in ("a.JPG", "b.Jpeg", "c.PNG", "d.txt", "e.heic"):
        write_image(root / "happy" / name)
    ds = load_dataset(root, ["happy"])
    assert [it.relpath for it in ds.items] == ["happy/a.JPG", "happy/b.Jpeg", "happy/c.PNG"]
    assert ds.warnings == [
        "ignored 2 file(s) without an image suffix (.heic x1, .txt x1; first: 'happy/d.txt'); "
        "images need one of " + " ".join(sorted(IMAGE_SUFFIXES))
    ]


def test_nested_folders_below_a_label_are_walked(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "happy" / "s1" / "a.jpg")
    write_image(root / "happy" / "s1" / "deep" / "b.jpg")
    write_image(root / "happy" / "c.jpg")
    write_image(root / "tired" / "x" / "y" / "z" / "d.png")
    ds = load_dataset(root)
    assert [(it.label, it.relpath) for it in ds.items] == [
        ("happy", "happy/c.jpg"),
        ("happy", "happy/s1/a.jpg"),
        ("happy", "happy/s1/deep/b.jpg"),
        ("tired", "tired/x/y/z/d.png"),
    ]


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    write_image(root / "happy" / ".hidden.jpg")
    write_image(root / "happy" / "._img00.jpg")  # macOS AppleDouble
    write_image(root / "happy" / ".cache" / "x.jpg")
    write_image(root / ".trash" / "y.jpg")  # hidden folder at the top: not a label
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "happy" / "Thumbs.db").write_bytes(b"junk")
    ds = load_dataset(root, ["happy"])
    assert [it.relpath for it in ds.items] == ["happy/img00.jpg"]
    assert ds.warnings == []


def test_images_in_the_root_itself_are_ignored_with_a_warning(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    write_image(root / "stray.jpg")
    (root / "README.txt").write_text("about this dataset")
    ds = load_dataset(root, ["happy"])
    assert [it.relpath for it in ds.items] == ["happy/img00.jpg"]
    assert len(ds.warnings) == 1
    assert "ignored 1 image(s) directly in" in ds.warnings[0]
    assert "'stray.jpg'" in ds.warnings[0]


def test_labels_differing_in_case_are_merged_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "Happy" / "a.jpg")
    write_image(root / "happy" / "b.jpg")
    write_image(root / "TIRED" / "c.jpg")
    if len(os.listdir(root)) < 3:
        pytest.skip("case-insensitive file system")
    ds = load_dataset(root)
    assert [(it.label, it.relpath) for it in ds.items] == [
        ("happy", "Happy/a.jpg"),
        ("happy", "happy/b.jpg"),
        ("tired", "TIRED/c.jpg"),
    ]
    merged = [w for w in ds.warnings if "all map to label" in w]
    assert merged == [
        f"folders 'Happy', 'happy' in {root} all map to label 'happy'; their images are merged"
    ]


def test_empty_label_folder_gives_a_warning(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    (root / "tired").mkdir()
    ds = load_dataset(root, ["happy", "tired"])
    assert ds.warnings == [
        "label folder 'tired' has no images",
        "no images for label(s): tired; scores for them will be empty",
    ]


def test_image_with_bad_content_is_still_listed(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    (root / "happy" / "broken.jpg").write_text("not really a jpeg")
    ds = load_dataset(root, ["happy"])
    assert [it.relpath for it in ds.items] == ["happy/broken.jpg", "happy/img00.jpg"]


# ---------------------------------------------------------------------------------------
# ImageFolder: bad inputs


def test_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as exc:
        load_dataset(tmp_path / "nope")
    assert one_line(exc) == (
        f"dataset not found: {tmp_path / 'nope'} does not exist "
        "(pass an image folder or a CSV manifest)"
    )


def test_a_file_that_is_not_a_csv_as_dataset(tmp_path: Path) -> None:
    path = write_image(tmp_path / "face.jpg")
    with pytest.raises(DatasetError) as exc:
        load_dataset(path)
    message = one_line(exc)
    assert message.startswith(f"dataset {path} is a file but not a .csv manifest")
    assert "confused, distracted, happy, tired, neutral" in message


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetError, match=r"dataset folder .*ds is empty: expected") as exc:
        load_dataset(tmp_path / "ds")
    one_line(exc)


def test_folder_with_only_hidden_files_counts_as_empty(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(DatasetError, match="is empty"):
        load_dataset(tmp_path / "ds")


def test_folders_but_no_images(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "happy").mkdir(parents=True)
    (root / "tired" / "sub").mkdir(parents=True)
    (root / "tired" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc) == (
        f"no images found under {root}: expected {root}/<label>/<image> with one folder per "
        "label (confused, distracted, happy, tired, neutral)"
    )


def test_images_only_in_the_root_is_no_images_with_a_hint(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "a.jpg")
    write_image(root / "b.jpg")
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc).endswith("(found 2 image(s) directly in it: move them into label folders)")


def test_unknown_label_folder(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1, "sad": 1, "angry": 1})
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc) == (
        f"unknown label folder(s) 'angry', 'sad' in {root}: the allowed labels are "
        "confused, distracted, happy, tired, neutral (rename or remove those folders)"
    )


def test_folder_holding_a_manifest_says_to_pass_the_manifest(tmp_path: Path) -> None:
    # #16 item 16: images/ plus labels.csv is a CSV dataset given by its folder.
    root = tmp_path / "ds"
    write_image(root / "images" / "a.jpg")
    (root / "labels.csv").write_text("path,label\nimages/a.jpg,happy\n", encoding="utf-8")
    (root / "notes.csv").write_text("x\n", encoding="utf-8")
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc) == (
        f"unknown label folder(s) 'images' in {root}, which holds labels.csv: pass that "
        f"file as the dataset ({root / 'labels.csv'})"
    )
    assert exc.value.path == root / "labels.csv"
    assert [it.relpath for it in load_dataset(root / "labels.csv").items] == ["images/a.jpg"]


def test_unknown_label_folder_hints_at_labels_one_level_down(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    image_folder(root / "train", {"happy": 1})
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc).endswith(
        f"; the label folders seem to be one level down: try {root / 'train'}"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names")
def test_non_utf8_file_names(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    raw = os.path.join(os.fsencode(root), b"happy", b"caf\xe9.jpg")
    try:
        with open(raw, "wb") as f:
            f.write((root / "happy" / "img00.jpg").read_bytes())
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    ds = load_dataset(root)
    relpaths = [it.relpath for it in ds.items]
    assert relpaths == ["happy/caf\\xe9.jpg", "happy/img00.jpg"]
    for relpath in relpaths:
        relpath.encode("utf-8")  # always valid UTF-8
    odd = ds.items[0]
    assert os.fsencode(odd.path) == raw  # the path still opens the real file
    assert prepare_image(odd.path).error is None
    assert load_dataset(root).items == ds.items  # stable between runs


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_folder_loop_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1, "tired": 1})
    os.symlink(".", root / "happy" / "back")  # happy/back -> happy
    os.symlink("..", root / "tired" / "up")  # tired/up -> the dataset root
    ds = load_dataset(root)
    assert [it.relpath for it in ds.items] == ["happy/img00.jpg", "tired/img00.jpg"]
    loop = [w for w in ds.warnings if "symlink loop" in w]
    assert loop == [
        "skipped 2 folder link(s) leading back to a folder already listed (symlink loop or "
        "duplicate link): 'happy/back', 'tired/up'"
    ]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_self_symlinks_are_listed_if_images_else_skipped(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    os.symlink("self.jpg", root / "happy" / "self.jpg")  # points at itself
    os.symlink("selfdir", root / "happy" / "selfdir")
    os.symlink("gone.jpg", root / "happy" / "dangling.jpg")
    ds = load_dataset(root, ["happy"])
    by_rel = {it.relpath: it for it in ds.items}
    assert sorted(by_rel) == ["happy/dangling.jpg", "happy/img00.jpg", "happy/self.jpg"]
    assert prepare_image(by_rel["happy/self.jpg"].path).error == "symlink loop or unreadable path"
    assert prepare_image(by_rel["happy/dangling.jpg"].path).error == "file not found"
    assert ds.warnings == [
        "skipped 1 entry(ies) that cannot be read (symlink loop or broken link): 'happy/selfdir'"
    ]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_label_folder_that_is_a_symlink_loop(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    os.symlink("tired", root / "tired")
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc) == (
        f"label folder {root / 'tired'} is a broken symlink or a symlink loop: fix or remove it"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_like_an_image_is_skipped(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    os.mkfifo(root / "happy" / "pipe.jpg")
    ds = load_dataset(root, ["happy"])
    assert [it.relpath for it in ds.items] == ["happy/img00.jpg"]
    assert ds.warnings == [
        "skipped 1 image name(s) that are not regular files (FIFO, socket or device): "
        "'happy/pipe.jpg'"
    ]


def test_unreadable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 000 does not stop root, so the refusal is simulated where scandir meets it.
    root = image_folder(tmp_path / "ds", {"happy": 1, "tired": 1})
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if os.path.basename(path) == "tired":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(common.os, "scandir", scandir)
    with pytest.raises(DatasetError) as exc:
        load_dataset(root)
    assert one_line(exc) == (
        f"cannot read folder {root / 'tired'}: permission denied "
        "(fix its permissions or remove it from the dataset)"
    )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores chmod 000"
)
def test_unreadable_folder_for_real(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 1})
    (root / "happy").chmod(0)
    try:
        with pytest.raises(DatasetError, match="permission denied"):
            load_dataset(root)
    finally:
        (root / "happy").chmod(0o755)


def test_listing_does_not_open_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = image_folder(tmp_path / "ds", {"happy": 3})

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("images must not be opened while listing")

    monkeypatch.setattr(Image, "open", no_open)
    assert len(load_dataset(root).items) == 3


# ---------------------------------------------------------------------------------------
# CSV manifests


def test_csv_manifest_with_bom_case_insensitive_header_and_extra_columns(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "a.jpg")
    write_image(tmp_path / "imgs" / "b.jpg")
    write_image(tmp_path / "c.png")
    manifest = write_csv(
        tmp_path / "list.csv",
        "\ufeffid,Label , PATH\r\n"
        "1,Tired,imgs/b.jpg\r\n"
        "2, happy ,./imgs/a.jpg\r\n"
        "\r\n"
        "3,happy,c.png\r\n",
    )
    ds = load_dataset(manifest)
    assert ds.format == "csv"
    assert ds.root == tmp_path
    assert ds.items == [
        Item(tmp_path / "c.png", "c.png", "happy"),
        Item(tmp_path / "imgs" / "a.jpg", "imgs/a.jpg", "happy"),
        Item(tmp_path / "imgs" / "b.jpg", "imgs/b.jpg", "tired"),
    ]
    assert ds.warnings == [
        "no images for label(s): confused, distracted, neutral; scores for them will be empty"
    ]


def test_csv_with_uppercase_suffix_is_a_csv(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    manifest = write_csv(tmp_path / "LIST.CSV", "path,label\na.jpg,happy\n")
    assert load_dataset(manifest, ["happy"]).items[0].relpath == "a.jpg"


def test_csv_without_path_or_label_columns(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "file,class\na.jpg,happy\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc) == (
        f"CSV manifest {manifest} has no 'path' or 'label' column (its columns: 'file', "
        "'class'): the first line must be a header naming 'path' and 'label' columns"
    )


def test_csv_separated_by_semicolons_gets_a_hint(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "path;label\na.jpg;happy\n")
    with pytest.raises(DatasetError, match=r"it looks separated by ';': use commas"):
        load_dataset(manifest)


def test_csv_with_no_rows(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "path,label\n\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc) == (
        f"CSV manifest {manifest} has a header but no rows: expected a header line "
        "path,label and one row per image"
    )


def test_empty_csv_file(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "")
    with pytest.raises(DatasetError, match=r"CSV manifest .* is empty"):
        load_dataset(manifest)


def test_csv_that_is_not_utf8_text(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "path,label\ncafé.jpg,happy\n", "latin-1")
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc) == (
        f"CSV manifest {manifest} is not UTF-8 text (undecodable byte at offset 14): "
        "save it as UTF-8 CSV"
    )


def test_binary_file_named_csv(tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(b"path,label\x00\x00\x00\x01")
    with pytest.raises(DatasetError, match="is not a text file"):
        load_dataset(manifest)


def test_malformed_csv_names_the_line(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", 'path,label\na.jpg,happy\n"b.jpg,happy\n')
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc).startswith(f"CSV manifest {manifest} is malformed at line 3: ")


def test_csv_unknown_label(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "path,label\na.jpg,happy\nb.jpg,sad\nc.jpg,Sad\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc) == (
        f"CSV manifest {manifest} has unknown label(s) 'sad', 'Sad' (first on line 3): the "
        "allowed labels are confused, distracted, happy, tired, neutral"
    )


@pytest.mark.parametrize(
    ("row", "what"), [(",happy", "path"), ("a.jpg,", "label"), ("a.jpg", "label")]
)
def test_csv_empty_cell_names_the_line(tmp_path: Path, row: str, what: str) -> None:
    write_image(tmp_path / "b.jpg")
    manifest = write_csv(tmp_path / "list.csv", f"path,label\nb.jpg,happy\n{row}\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc) == (
        f"CSV manifest {manifest} line 3: empty {what} cell (every row needs a path and a label)"
    )


def test_csv_rows_pointing_at_missing_files(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    manifest = write_csv(
        tmp_path / "list.csv", "path,label\na.jpg,happy\nmissing1.jpg,tired\nsub/m2.jpg,happy\n"
    )
    ds = load_dataset(manifest, ["happy", "tired"])
    assert [it.relpath for it in ds.items] == ["a.jpg", "sub/m2.jpg", "missing1.jpg"]
    assert ds.warnings == [
        f"2 row(s) of {manifest} point at files that do not exist (first: line 3 "
        "'missing1.jpg'); they will be reported as errors"
    ]
    assert prepare_image(ds.items[2].path).error == "file not found"


def test_csv_where_no_file_exists_is_an_error(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "list.csv", "path,label\nx.jpg,happy\ny.jpg,tired\n")
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert one_line(exc) == (
        f"none of the 2 files listed in CSV manifest {manifest} exist (first: line 2 'x.jpg'): "
        f"paths must be relative to the CSV's folder {tmp_path}"
    )


def test_csv_duplicate_rows(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / name)
    manifest = write_csv(
        tmp_path / "list.csv",
        "path,label\na.jpg,happy\nb.jpg,tired\n./a.jpg,Happy\nb.jpg,happy\nc.jpg,happy\n",
    )
    ds = load_dataset(manifest, ["happy", "tired"])
    assert [(it.relpath, it.label) for it in ds.items] == [
        ("a.jpg", "happy"),
        ("c.jpg", "happy"),
        ("b.jpg", "tired"),
    ]
    assert ds.warnings == [
        f"1 path(s) listed twice with the same label in {manifest}; kept one of each: "
        "'a.jpg' (lines 2 and 4)",
        f"1 path(s) listed twice with different labels in {manifest}; kept the first label of "
        "each: 'b.jpg' (line 3 'tired', line 5 'happy')",
    ]


def test_csv_absolute_paths_inside_and_outside_the_root(tmp_path: Path) -> None:
    inside = write_image(tmp_path / "ds" / "a.jpg")
    outside = write_image(tmp_path / "elsewhere" / "b.jpg")
    manifest = write_csv(
        tmp_path / "ds" / "list.csv", f"path,label\n{inside},happy\n{outside},happy\n"
    )
    ds = load_dataset(manifest, ["happy"])
    assert sorted((it.path, it.relpath) for it in ds.items) == [
        (inside, "a.jpg"),
        (outside, outside.as_posix()),
    ]


# ---------------------------------------------------------------------------------------
# Stratified sampling


def make_items(counts: dict[str, int]) -> list[Item]:
    return [
        Item(Path(f"/data/{label}/{i:03d}.jpg"), f"{label}/{i:03d}.jpg", label)
        for label, n in counts.items()
        for i in range(n)
    ]


def test_sample_is_stable_across_calls_and_input_order() -> None:
    items = make_items({"happy": 30, "tired": 30, "neutral": 30})
    first, _ = stratified_sample(items, 5, seed=7)
    again, _ = stratified_sample(items, 5, seed=7)
    reversed_input, _ = stratified_sample(list(reversed(items)), 5, seed=7)
    assert first == again == reversed_input
    other_seed, _ = stratified_sample(items, 5, seed=8)
    assert set(other_seed) != set(first)


def test_sample_is_the_same_on_every_machine() -> None:
    # Pinned: the draw depends on nothing but (seed, label), never on hash randomisation.
    sample, _ = stratified_sample(make_items({"happy": 10, "tired": 10}), 2, seed=0)
    assert [it.relpath for it in sample] == GOLDEN_SAMPLE


GOLDEN_SAMPLE = ["happy/001.jpg", "happy/000.jpg", "tired/001.jpg", "tired/008.jpg"]


def test_sample_per_class_counts() -> None:
    items = make_items({"happy": 20, "tired": 12, "neutral": 50})
    sample, warnings = stratified_sample(items, 10, seed=1)
    assert Counter(it.label for it in sample) == {"happy": 10, "tired": 10, "neutral": 10}
    assert len(set(sample)) == 30  # without replacement
    assert warnings == []


def test_sample_order_is_a_shuffled_mix_of_classes() -> None:
    items = make_items({"confused": 20, "happy": 20, "tired": 20})
    sample, _ = stratified_sample(items, 20, seed=3)
    assert sample != sorted(sample, key=lambda it: (it.label, it.relpath))
    assert len({it.label for it in sample[:10]}) == 3  # an early stop still sees every class


def test_sample_class_with_fewer_items_than_asked_takes_all_with_warning() -> None:
    items = make_items({"happy": 100, "tired": 40})
    sample, warnings = stratified_sample(items, 50, seed=0)
    assert Counter(it.label for it in sample) == {"happy": 50, "tired": 40}
    assert warnings == ["class 'tired' has only 40 images; using all 40"]


def test_sample_adding_a_class_does_not_change_the_other_draws() -> None:
    base = make_items({"happy": 40, "tired": 40})
    more = base + make_items({"neutral": 40})
    before, _ = stratified_sample(base, 5, seed=11)
    after, _ = stratified_sample(more, 5, seed=11)
    for label in ("happy", "tired"):
        assert {it for it in before if it.label == label} == {
            it for it in after if it.label == label
        }


def test_sample_none_keeps_every_item_shuffled() -> None:
    items = make_items({"happy": 10, "tired": 10})
    sample, warnings = stratified_sample(items, None, seed=0)
    assert sorted(sample, key=lambda it: it.relpath) == sorted(items, key=lambda it: it.relpath)
    assert sample != items
    assert warnings == []


@pytest.mark.parametrize("bad", [0, -3])
def test_sample_per_class_below_one_is_an_error(bad: int) -> None:
    with pytest.raises(DatasetError, match="must be a whole number >= 1"):
        stratified_sample(make_items({"happy": 3}), bad, seed=0)

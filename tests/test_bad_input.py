"""Bad input, through `emoprobe run` as a user meets it.

Each case is handled as a user would expect: accepted where sensible, a warning where
suspicious, an `error` row while the run goes on (a bad image), else one line and a
non-zero exit — never a traceback, and nothing already written lost.
"""

from __future__ import annotations

import csv
import errno
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from factories import fer_csv, make_image_folder, png_with_header
from ollama_double import OllamaDouble
from PIL import Image

from emoprobe.data import images as images_module
from emoprobe.results import predictions as predictions_module


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def assert_one_line_error(result: Result, message: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output


# -- datasets that cannot be run: one line, exit 1 -----------------------------------------
def _missing(tmp: Path) -> Path:
    return tmp / "nowhere"


def _a_file(tmp: Path) -> Path:
    (tmp / "faces.txt").write_text("hello")
    return tmp / "faces.txt"


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _no_images(tmp: Path) -> Path:
    for label in ("happy", "tired"):
        (tmp / "d" / label).mkdir(parents=True)
        (tmp / "d" / label / "notes.txt").write_text("x")
    return tmp / "d"


def _unknown_label(tmp: Path) -> Path:
    make_image_folder(tmp / "d", per_label=1, labels=("happy", "angry"))
    return tmp / "d"


def _csv_without_columns(tmp: Path) -> Path:
    (tmp / "m.csv").write_text("file,class\na.png,happy\n")
    return tmp / "m.csv"


def _csv_unknown_label(tmp: Path) -> Path:
    make_image_folder(tmp, per_label=1, labels=("happy",))
    (tmp / "m.csv").write_text("path,label\nhappy/000.png,ecstatic\n")
    return tmp / "m.csv"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, "does not exist"),
        (_a_file, "is a file but not a .csv manifest"),
        (_empty, "is empty"),
        (_no_images, "no images found"),
        (_unknown_label, "'angry'"),
        (_csv_without_columns, "has no 'path' or 'label' column"),
        (_csv_unknown_label, "'ecstatic'"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_datasets_that_cannot_run(cli, ollama_double, tmp_path, make: Callable, message: str):
    result = cli("run", make(tmp_path), "--host", ollama_double.url, "--out", tmp_path / "out")
    assert_one_line_error(result, message)
    assert ollama_double.chat_requests == []


# -- arguments, servers and models: one line, exit 1, no image sent --------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--per-class", "0"], "--per-class must be at least 1"),
        (["--per-class", "-3"], "--per-class must be at least 1"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--retries", "-1"], "--retries must be 0 or more"),
        (["--timeout", "0"], "--timeout must be more than 0"),
        (["--option", "warmth=1"], "--option warmth: unknown option"),
        (["--option", "temperature=hot"], "--option temperature='hot': temperature must be float"),
        (["--option", "top_p=2"], "--option top_p=2: top_p must be between 0 and 1"),
        (["--host", "http://[::1"], "malformed host"),
        (["--host", "localhost:abc"], "the port must be a number"),
        (["--host", "http://192.0.2.7:11434"], "--allow-remote"),
        (["--model", "llama3.2:3b"], "cannot read images"),
        (["--model", "nosuch:1b"], "ollama pull nosuch:1b"),
    ],
)
def test_bad_arguments(cli, ollama_double, tmp_path, args, message):
    make_image_folder(tmp_path / "d", per_label=1)
    result = cli(
        "run", tmp_path / "d", "--host", ollama_double.url, "--out", tmp_path / "out", *args
    )
    assert_one_line_error(result, message)
    assert [body for body in ollama_double.chat_requests if body.get("messages")] == []


def test_a_dataset_error_names_the_flag_that_fixes_it(cli, ollama_double, tmp_path):
    csv_path = fer_csv(tmp_path / "fer2013.csv")  # FER2013's codes: not the paper's labels
    result = cli("run", csv_path, "--host", ollama_double.url, "--out", tmp_path / "out")
    assert_one_line_error(result, "(--task examples/tasks/basic-emotions.toml maps them)")


def test_per_class_larger_than_a_class_warns_and_uses_all(cli, ollama_double, tmp_path):
    make_image_folder(tmp_path / "d", per_label=2)
    out = tmp_path / "out"
    result = cli(
        "run",
        tmp_path / "d",
        "--host",
        ollama_double.url,
        "--out",
        out,
        "--per-class",
        "5",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert "warning: class 'happy' has only 2 images; using all 2" in result.stderr
    assert len(rows(out)) == 10


def test_server_down_and_wrong_port(cli, tmp_path):
    make_image_folder(tmp_path / "d", per_label=1)
    with OllamaDouble() as double:
        url = double.url
    result = cli("run", tmp_path / "d", "--host", url, "--out", tmp_path / "out")
    assert_one_line_error(result, "cannot reach Ollama")


def test_out_not_writable(cli, ollama_double, tmp_path):
    make_image_folder(tmp_path / "d", per_label=1)
    (tmp_path / "file").write_text("x")
    result = cli(
        "run", tmp_path / "d", "--host", ollama_double.url, "--out", tmp_path / "file" / "out"
    )
    assert_one_line_error(result, "cannot write to ")
    assert f"{tmp_path / 'file' / 'out'}: Not a directory (--out)" in result.stderr


def test_corrupt_cache_directory(cli, ollama_double, tmp_path):
    make_image_folder(tmp_path / "d", per_label=1)
    (tmp_path / "cache" / "responses").mkdir(parents=True)
    (tmp_path / "cache" / "responses" / "cache.db").write_bytes(b"garbage" * 300)
    result = cli(
        "run",
        tmp_path / "d",
        "--host",
        ollama_double.url,
        "--out",
        tmp_path / "out",
        "--cache-dir",
        tmp_path / "cache",
    )
    assert_one_line_error(result, "delete it or choose another cache folder (--cache-dir)")


class FillingDisk:
    """A file whose writes fail with ENOSPC after `room` of them, like a full disk."""

    def __init__(self, handle, room: int) -> None:
        self._handle, self._room = handle, room

    def write(self, text: str) -> int:
        self._room -= 1
        if self._room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._handle.write(text)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def test_disk_full_while_writing_keeps_what_was_written_and_resumes(
    cli, ollama_double, tmp_path, monkeypatch
):
    make_image_folder(tmp_path / "d", per_label=2)
    out = tmp_path / "out"

    def open_on_a_filling_disk(file, mode="r", *args, **kwargs):
        handle = open(file, mode, *args, **kwargs)
        return FillingDisk(handle, room=5) if "a" in mode else handle  # header + 4 rows

    monkeypatch.setattr(predictions_module, "open", open_on_a_filling_disk, raising=False)
    result = cli("run", tmp_path / "d", "--host", ollama_double.url, "--out", out, "--quiet")
    assert_one_line_error(result, "No space left on device")
    assert "run the same command again to resume" in result.stderr
    assert len(rows(out)) == 4

    monkeypatch.undo()
    again = cli("run", tmp_path / "d", "--host", ollama_double.url, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output
    assert len(rows(out)) == 10


# -- images: odd ones are used, broken ones are error rows, the run goes on -----------------
def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _face(mode: str = "RGB", size=(20, 30)) -> Image.Image:
    image = Image.new("RGB", size, (200, 120, 90))
    image.paste((20, 20, 20), (2, 2, 8, 6))
    return image.convert(mode)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_face(), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [_face("P"), _face("P", (20, 30)).rotate(90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


ODD_BUT_USABLE = {
    "happy/cmyk.jpg": lambda: _save(_face("CMYK"), "JPEG"),
    "happy/deep.png": lambda: _save(_face("I;16"), "PNG"),
    "tired/alpha.png": lambda: _save(_face("RGBA"), "PNG"),
    "tired/rotated.jpg": _exif_rotated,
    "neutral/moving.gif": _animated_gif,
    "neutral/caf\udce9.png": lambda: _save(_face(), "PNG"),  # a non-UTF-8 byte in the name
}
BROKEN = {
    "happy/zero.jpg": (lambda: b"", "empty file (0 bytes)"),
    "happy/cut.jpg": (lambda: _save(_face(), "JPEG")[:200], "truncated or corrupt image"),
    "tired/text.jpg": (lambda: b"just some notes", "not an image: cannot identify image file"),
    "tired/bomb.png": (lambda: png_with_header(40000, 40000), "image too large: 40000x40000"),
}


def test_odd_images_are_used_and_broken_ones_become_error_rows(
    cli, ollama_double, tmp_path, monkeypatch
):
    root = tmp_path / "d"
    make_image_folder(root, per_label=1)
    for name, make in ODD_BUT_USABLE.items():
        (root / name).write_bytes(make())
    for name, (make, _) in BROKEN.items():
        (root / name).write_bytes(make())
    os.symlink("loop.jpg", root / "happy" / "loop.jpg")
    (root / "neutral" / "secret.jpg").write_bytes(_save(_face(), "JPEG"))
    real_open = open

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith("secret.jpg"):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(images_module, "open", guarded_open, raising=False)
    out = tmp_path / "out"
    result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    found = rows(out)
    for name in ODD_BUT_USABLE:
        shown = name.replace("\udce9", "\\xe9")
        assert found[shown]["status"] == "ok", (shown, found[shown])
    for name, (_, error) in BROKEN.items():
        assert found[name]["status"] == "unreadable" and error in found[name]["error"], found[name]
    assert found["happy/loop.jpg"]["error"] == "symlink loop or unreadable path"
    assert found["neutral/secret.jpg"]["error"] == "permission denied"
    sent = [body for body in ollama_double.chat_requests if body.get("messages")]
    assert len(sent) == 5 + len(ODD_BUT_USABLE)


def test_labels_differing_in_case_are_merged_with_a_warning(cli, ollama_double, tmp_path):
    root = tmp_path / "d"
    make_image_folder(root, per_label=1, labels=("happy", "tired"))
    (root / "Happy").mkdir()
    (root / "Happy" / "x.png").write_bytes(_save(_face(), "PNG"))
    out = tmp_path / "out"
    result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "map to label 'happy'" in result.stderr
    assert rows(out)["Happy/x.png"]["label"] == "happy"


def test_csv_rows_pointing_at_missing_files_become_error_rows(cli, ollama_double, tmp_path):
    make_image_folder(tmp_path, per_label=1, labels=("happy", "tired"))
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\nhappy/000.png,HAPPY\ntired/000.png,tired\ngone.png,tired\n")
    out = tmp_path / "out"
    result = cli("run", manifest, "--host", ollama_double.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "point at files that do not exist" in result.stderr
    found = rows(out)
    assert found["gone.png"]["error"] == "file not found"
    assert found["happy/000.png"]["label"] == "happy"


def test_the_same_image_under_two_labels_warns(cli, ollama_double, tmp_path):
    root = tmp_path / "d"
    make_image_folder(root, per_label=1, labels=("happy", "tired"))
    (root / "tired" / "copy.png").write_bytes((root / "happy" / "000.png").read_bytes())
    out = tmp_path / "out"
    result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "the same image also appears labelled" in result.stderr
    assert len(rows(out)) == 3


# -- the command line itself -------------------------------------------------------------
@pytest.mark.parametrize("group", [(), ("models",), ("cache",)], ids=["bare", "models", "cache"])
def test_a_bare_group_prints_its_help(cli, group):
    result = cli(*group)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith("Usage: ")
    assert "\nCommands:\n" in result.stdout and "--help  Show this message" in result.stdout


def test_cache_clear_without_a_terminal_needs_yes(cli, tmp_path):
    result = cli("cache", "clear", "--cache-dir", tmp_path / "cache")
    assert_one_line_error(result, "pass --yes when not at a terminal", code=2)
    assert "interrupted" not in result.stderr
    assert not (tmp_path / "cache").exists()  # nothing opened, nothing removed


def test_errors_get_the_flag_of_their_setting():
    from emoprobe.cli.params import with_flag_hint
    from emoprobe.errors import ConfigError

    assert with_flag_hint(ConfigError("choose another output folder", setting="out")) == (
        "choose another output folder (--out)"
    )
    assert with_flag_hint(ConfigError("a cache folder", setting="cache_dir")).endswith(
        "(--cache-dir)"
    )
    assert with_flag_hint(ConfigError("pass another --out", setting="out")) == "pass another --out"
    assert with_flag_hint(ConfigError("no setting")) == "no setting"

"""Small datasets made on the fly: distinct images, and what a model "answers" for each."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

from PIL import Image

LABELS = ("confused", "distracted", "happy", "tired", "neutral")


def make_image_folder(root: Path, per_label: int = 4, labels=LABELS) -> dict[str, str]:
    """ROOT/<label>/<n>.png with distinct pixels; returns {sha256: true label}."""
    truth: dict[str, str] = {}
    for index, label in enumerate(labels):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(per_label):
            image = Image.new("RGB", (24, 16), (index * 50, number * 7 % 256, number // 36))
            path = folder / f"{number:03d}.png"
            image.save(path)
            truth[hashlib.sha256(path.read_bytes()).hexdigest()] = label
    return truth


def scripted_answers(truth: dict[str, str]) -> dict[str, str]:
    """A plausible model: right on most images, chatty on some, wrong or evasive on others."""
    answers = {}
    for number, (sha, label) in enumerate(sorted(truth.items())):
        kind = number % 5
        if kind == 0:
            answers[sha] = "I'm sorry, I can't determine emotions from this image."
        elif kind == 1:
            answers[sha] = "neutral" if label != "neutral" else "happy"
        elif kind == 2:
            answers[sha] = f"The student appears {label}."
        else:
            answers[sha] = label.capitalize()
    return answers


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit gray pixels, in a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def write_image(path: Path, shade: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (shade, 80, 40)).save(path, "JPEG")
    return path


# FER2013 and DAiSEE as their authors lay them out
def pixels(seed: int) -> str:
    return " ".join(str((seed * 37 + i) % 256) for i in range(48 * 48))


def fer_csv(path: Path, header: str = "emotion,pixels,Usage", codes=(0, 3, 6)) -> Path:
    columns = [cell.strip() for cell in header.split(",")]
    lines = [header]
    usages = ["Training", "PublicTest", "PrivateTest"]
    for row, code in enumerate(codes):
        cells = {"emotion": str(code), "pixels": pixels(row), "Usage": usages[row % 3]}
        lines.append(",".join(cells[column] for column in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def daisee(root: Path) -> Path:
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "AllLabels.csv").write_text(
        "ClipID,Boredom,Engagement,Confusion,Frustration \n"
        "1100011002.avi,0,3,0,0\n"  # engagement
        "1100011003.avi,2,2,1,0\n"  # tie boredom/engagement -> boredom
        "1100011004.mp4,0,2,2,2\n"  # tie of three -> confusion
        "1100011005.avi,0,1,0,3\n"  # frustration, but no frames extracted
    )
    subject = root / "DataSet" / "Train" / "110001"
    for clip, frames in (("1100011002", 2), ("1100011003", 1), ("1100011004", 1)):
        for number in range(frames):
            write_image(subject / clip / f"{clip}{number + 1}.jpg")
    (subject / "1100011005").mkdir()
    (subject / "1100011005" / "1100011005.avi").write_bytes(b"video")
    return root

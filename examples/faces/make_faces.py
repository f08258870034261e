"""Rebuild examples/faces/ from the Face Research Lab London Set (CC BY 4.0).

    git clone https://github.com/debruine/webmorphR.stim
    python examples/faces/make_faces.py webmorphR.stim [OUT_DIR]

SOURCE is a checkout of github.com/debruine/webmorphR.stim (or its bare git directory).
Ten people, five women and five men of several ethnic backgrounds, each once neutral
(inst/neutral_front/<id>_03.jpg) and once smiling (inst/smiling_front/<id>_08.jpg),
downscaled to 256 × 256 and re-encoded as JPEG with no EXIF or other metadata.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

PEOPLE = ("001", "002", "006", "025", "030", "004", "005", "008", "012", "042")
SOURCES = {"neutral": "inst/neutral_front/{id}_03.jpg", "happy": "inst/smiling_front/{id}_08.jpg"}
SIDE = 256
QUALITY = 85


def read_source(source: Path, name: str) -> bytes:
    """One file of the checkout, or of the bare git directory `source`."""
    if (source / "objects").is_dir() and (source / "HEAD").is_file():
        command = ["git", f"--git-dir={source}", "show", f"HEAD:{name}"]
        return subprocess.run(command, capture_output=True, check=True).stdout
    return (source / name).read_bytes()


def downscaled_jpeg(data: bytes) -> bytes:
    """SIDE × SIDE RGB JPEG, no EXIF, ICC profile or comment."""
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    small.info.clear()  # no comment, EXIF or ICC profile carried over from the source
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=QUALITY, optimize=True)
    return buffer.getvalue()


def main(source: Path, out: Path) -> None:
    lines = ["path,label"]
    for label in ("happy", "neutral"):
        (out / label).mkdir(parents=True, exist_ok=True)
        for person in PEOPLE:
            relpath = f"{label}/{person}.jpg"
            data = read_source(source, SOURCES[label].format(id=person))
            (out / relpath).write_bytes(downscaled_jpeg(data))
            lines.append(f"{relpath},{label}")
    (out / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines) - 1} faces to {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: make_faces.py WEBMORPHR_STIM_CHECKOUT [OUT_DIR]")
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).parent)

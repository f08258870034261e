"""The demo set: cartoon faces, 5 per class, drawn with Pillow — no real person's face.

`make_demo(out)` writes OUT/<label>/<label>-<n>.png and OUT/labels.csv; the drawing is
deterministic (seeded per face). `emoprobe run` with no DATASET draws it into the cache
folder once and runs it; `examples/demo/` holds a copy and the script that redraws it.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from emoprobe.settings import default_cache_dir

SIZE = 256
PER_CLASS = 5
SKIN = [(255, 224, 189), (234, 192, 134), (198, 134, 66), (141, 85, 36), (241, 194, 125)]
BACKGROUNDS = [(225, 235, 245), (240, 240, 225), (230, 245, 230), (245, 230, 235), (235, 235, 235)]
INK = (40, 30, 30)


class Face:
    """One face on a canvas; each expression moves eyes, brows and mouth."""

    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng = rng
        self.image = Image.new("RGB", (SIZE, SIZE), BACKGROUNDS[number % len(BACKGROUNDS)])
        self.draw = ImageDraw.Draw(self.image)
        self.cx = SIZE // 2 + rng.randint(-12, 12)
        self.cy = SIZE // 2 + rng.randint(-8, 8)
        self.r = rng.randint(78, 92)
        self.skin = SKIN[number % len(SKIN)]
        self.eye_dx = self.r * 0.38
        self.eye_y = self.cy - self.r * 0.18

    def head(self, turn: float = 0.0) -> None:
        """The head, hair and ears; `turn` shifts the features sideways (looking away)."""
        cx, cy, r = self.cx, self.cy, self.r
        hair = (60 + self.rng.randint(0, 60), 40, 30)
        self.draw.ellipse((cx - r - 6, cy - r - 14, cx + r + 6, cy + r * 0.4), fill=hair)
        for side in (-1, 1):
            ex = cx + side * (r - 4) - turn * 0.3
            self.draw.ellipse((ex - 14, cy - 16, ex + 14, cy + 18), fill=self.skin, outline=INK)
        self.draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.skin, outline=INK, width=2)
        self.cx_features = cx + turn

    def eyes(self, pupil_dx: float = 0.0, pupil_dy: float = 0.0, closed: bool = False) -> None:
        for side in (-1, 1):
            x, y = self.cx_features + side * self.eye_dx, self.eye_y
            if closed:
                self.draw.arc((x - 13, y - 8, x + 13, y + 10), 20, 160, fill=INK, width=3)
                continue
            self.draw.ellipse((x - 14, y - 10, x + 14, y + 10), fill="white", outline=INK)
            px, py = x + pupil_dx, y + pupil_dy
            self.draw.ellipse((px - 5, py - 5, px + 5, py + 5), fill=INK)

    def brows(self, inner_lift: float = 0.0, outer_lift: float = 0.0, tilt: float = 0.0) -> None:
        for side in (-1, 1):
            x, y = self.cx_features + side * self.eye_dx, self.eye_y - 22
            inner = (x - side * 14, y - inner_lift + side * tilt)
            outer = (x + side * 14, y - outer_lift)
            self.draw.line((inner, outer), fill=INK, width=4)

    def mouth(self, kind: str) -> None:
        x, y = self.cx_features, self.cy + self.r * 0.45
        if kind == "smile":
            self.draw.chord(
                (x - 32, y - 22, x + 32, y + 22), 0, 180, fill=(150, 40, 50), outline=INK, width=2
            )
        elif kind == "frown":
            self.draw.arc((x - 26, y, x + 26, y + 28), 200, 340, fill=INK, width=4)
        elif kind == "yawn":
            self.draw.ellipse((x - 14, y - 16, x + 14, y + 22), fill=(90, 20, 30), outline=INK)
        elif kind == "wavy":
            points = [(x - 24 + i * 8, y + (4 if i % 2 else -4)) for i in range(7)]
            self.draw.line(points, fill=INK, width=3)
        else:
            self.draw.line((x - 22, y, x + 22, y), fill=INK, width=4)

    def hand_on_cheek(self) -> None:
        x, y = self.cx + self.r * 0.75, self.cy + self.r * 0.55
        self.draw.rounded_rectangle(
            (x - 26, y - 18, x + 26, y + 50), radius=18, fill=self.skin, outline=INK, width=2
        )

    def question_mark(self) -> None:
        x, y = self.cx + self.r + 16, self.cy - self.r
        self.draw.text((x, y), "?", fill=(200, 40, 40), font_size=48)

    def zzz(self) -> None:
        x, y = self.cx + self.r, self.cy - self.r - 6
        self.draw.text((x, y), "z z", fill=(60, 60, 160), font_size=28)


def confused(face: Face) -> None:
    face.head()
    face.eyes(pupil_dy=-3)
    face.brows(inner_lift=-6, outer_lift=4, tilt=6)
    face.mouth(face.rng.choice(["frown", "wavy"]))
    if face.rng.random() < 0.6:
        face.question_mark()


def distracted(face: Face) -> None:
    turn = face.rng.choice([-1, 1]) * face.rng.randint(22, 34)
    face.head(turn=turn)
    face.eyes(pupil_dx=8 if turn > 0 else -8)
    face.brows()
    face.mouth("flat")


def happy(face: Face) -> None:
    face.head()
    face.eyes(closed=face.rng.random() < 0.4)
    face.brows(inner_lift=4, outer_lift=4)
    face.mouth("smile")


def tired(face: Face) -> None:
    face.head()
    face.eyes(closed=True)
    face.brows(outer_lift=-4)
    face.mouth(face.rng.choice(["yawn", "flat"]))
    if face.rng.random() < 0.5:
        face.hand_on_cheek()
    else:
        face.zzz()


def neutral(face: Face) -> None:
    face.head()
    face.eyes()
    face.brows()
    face.mouth("flat")


EXPRESSIONS: dict[str, Callable[[Face], None]] = {
    draw.__name__: draw for draw in (confused, distracted, happy, tired, neutral)
}


def make_demo(out: Path) -> list[tuple[str, str]]:
    """Draw every face into `out`; returns the (path, label) rows of labels.csv."""
    rows = []
    for label, draw in EXPRESSIONS.items():
        (out / label).mkdir(parents=True, exist_ok=True)
        for number in range(PER_CLASS):
            face = Face(random.Random(f"{label}-{number}"), number)
            draw(face)
            relpath = f"{label}/{label}-{number + 1}.png"
            face.image.save(out / relpath, optimize=True)
            rows.append((relpath, label))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return rows


REPO_DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def demo_dataset(cache_dir: Path | str | None = None) -> Path:
    """The demo set's labels.csv: the repository's copy, else drawn under `cache_dir` (None:
    the default cache folder) once.

    The repository's files are the same bytes on every machine, so answers cached (and
    exported in a bundle) on one replay on another; a drawn copy matches them when Pillow
    draws and compresses the same way.
    """
    if (REPO_DEMO / "labels.csv").exists():
        return REPO_DEMO / "labels.csv"
    folder = Path(cache_dir or default_cache_dir()) / "demo-set"
    manifest = folder / "labels.csv"
    if not manifest.exists():
        make_demo(folder)
    return manifest

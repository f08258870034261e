"""Benchmark inputs, made deterministically: photo-like JPEGs in an ImageFolder, run folders.

`make_jpeg_folder` writes ROOT/<label>/<n>.jpg, 1280×720 by default: a colour gradient,
shapes and grain, so each JPEG is distinct and about the size of a webcam frame
(~100–200 KB at quality 90). `make_run_folders` writes predictions.csv and manifest.json
of many rows in the format a real run wrote (copied from a template run folder).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

LABELS = ("confused", "distracted", "happy", "tired", "neutral")
WEBCAM = (1280, 720)
QUALITY = 90


def make_jpeg(seed: int, size: tuple[int, int] = WEBCAM) -> Image.Image:
    """One photo-like picture: smooth light, a few soft shapes and sensor grain."""
    rng = random.Random(seed)
    width, height = size
    small = Image.new("RGB", (16, 9))
    small.putdata([tuple(rng.randrange(40, 230) for _ in range(3)) for _ in range(16 * 9)])
    image = small.resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(6, 12)):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(width // 16, width // 3), rng.randrange(height // 16, height // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = draw.ellipse if rng.random() < 0.6 else draw.rectangle
        shape((x - w // 2, y - h // 2, x + w // 2, y + h // 2), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(2, 5)))
    grain = Image.effect_noise(size, rng.uniform(18, 26)).convert("RGB")
    return Image.blend(image, grain, 0.12)


def make_jpeg_folder(
    root: Path, count: int, size: tuple[int, int] = WEBCAM, seed: int = 0
) -> list[Path]:
    """ROOT/<label>/<n>.jpg, `count` distinct images spread over the five labels."""
    paths = []
    for number in range(count):
        folder = root / LABELS[number % len(LABELS)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{number:05d}.jpg"
        make_jpeg(seed * 1_000_003 + number, size).save(path, "JPEG", quality=QUALITY)
        paths.append(path)
    return paths


def make_run_folders(template: Path, root: Path, runs: int, rows: int) -> list[Path]:
    """`runs` run folders of `rows` predictions each, in the template run's format.

    The rows share images (same paths and sha256s) and differ in their answers, as runs
    of several models over one dataset do.
    """
    manifest = json.loads((template / "manifest.json").read_text())
    with open(template / "predictions.csv", newline="") as handle:
        header = next(csv.reader(handle))
    labels = manifest["task"]["labels"]
    items = [
        (
            f"{labels[i % len(labels)]}/{i:05d}.jpg",
            hashlib.sha256(str(i).encode()).hexdigest(),
            labels[i % len(labels)],
        )
        for i in range(rows)
    ]
    folders = []
    for number in range(runs):
        rng, out = random.Random(number), root / f"run{number}"
        out.mkdir(parents=True)
        with open(out / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for path, sha, label in items:
                writer.writerow(_row(header, rng, labels, path, sha, label))
        folder_manifest = dict(
            manifest,
            files=[{"path": path, "label": label, "sha256": sha} for path, sha, label in items],
        )
        folder_manifest["model"] = dict(manifest["model"], name=f"model-{number}")
        (out / "manifest.json").write_text(json.dumps(folder_manifest))
        folders.append(out)
    return folders


def _row(
    header: list[str], rng: random.Random, labels: list[str], path: str, sha: str, label: str
) -> list[str]:
    roll = rng.random()
    guess = label if roll < 0.55 else rng.choice(labels)
    unparsed = roll > 0.97
    values = {
        "path": path,
        "sha256": sha,
        "label": label,
        "prediction": "unparsed" if unparsed else guess,
        "raw": f"The student looks {guess}." if not unparsed else "I cannot tell.",
        "status": "unparsed" if unparsed else "ok",
        "error": "",
        "latency_s": f"{rng.uniform(0.3, 2):.4f}",
        "cached": "false",
        "prompt_tokens": str(rng.randint(700, 900)),
        "output_tokens": str(rng.randint(1, 12)),
        "prefill_ms": f"{rng.uniform(80, 300):.3f}",
        "decode_ms": f"{rng.uniform(20, 200):.3f}",
    }
    missing = [name for name in header if name not in values]
    if missing:
        raise SystemExit(f"predictions.csv has columns this benchmark does not know: {missing}")
    return [values[name] for name in header]

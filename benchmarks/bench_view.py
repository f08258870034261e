"""Benchmark of `emoprobe view` at the paper's scale: 31,115 images × 6 runs (on demand).

    python benchmarks/bench_view.py [--images 31115] [--runs 6] [--screenshot docs/view.png]

Writes six synthetic run folders (predictions.csv and manifest.json as a run writes them;
chatty, wrong, unparsed and error answers mixed in, logprobs scores on two runs), then
times: reading the runs, building the page, and in headless Chromium (tests/browser.py)
opening it until its first rows are drawn, and each filter as the page runs it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import Chromium, find_chromium  # noqa: E402

from emoprobe.files import write_atomic  # noqa: E402
from emoprobe.reporting.view_images import image_file, image_link  # noqa: E402
from emoprobe.reporting.viewer import share_images, view_html  # noqa: E402
from emoprobe.results.index import read_run  # noqa: E402
from emoprobe.results.predictions import PredictionWriter, Row  # noqa: E402

LABELS = ("confused", "distracted", "happy", "tired", "neutral")
CHATTY = (
    "The student appears {label}.",
    "{Label}",
    "I'm sorry, I can't determine emotions from this image.",
    "Based on the furrowed brow, the person looks {label}, though it is hard to be sure.",
)


def write_runs(base: Path, images: int, runs: int) -> list[Path]:
    rng = random.Random(0)
    truth = [LABELS[i % len(LABELS)] for i in range(images)]
    folders = []
    for r in range(runs):
        folder = base / f"run{r + 1}"
        folder.mkdir(parents=True)
        scored = r % 3 == 2
        labels = LABELS if scored else ()
        with PredictionWriter(folder / "predictions.csv", labels) as writer:
            for i, label in enumerate(truth):
                guess = label if rng.random() < 0.55 + 0.05 * r else rng.choice(LABELS)
                template = rng.choice(CHATTY)
                raw = template.format(label=guess, Label=guess.capitalize())
                status = "unparsed" if "sorry" in raw else "ok"
                error = ""
                if rng.random() < 0.002:
                    status, raw, guess, error = "error", "", "", "truncated or corrupt image"
                scores: tuple[str, ...] = ("",) * len(labels)  # a run writes empty cells
                if scored and status != "error":
                    weights = [rng.random() + (3 if name == guess else 0) for name in LABELS]
                    scores = tuple(f"{w / sum(weights):.6f}" for w in weights)
                writer.write(
                    Row(
                        path=f"{label}/{i:06d}.jpg",
                        sha256=f"{i:064x}",
                        label=label,
                        prediction="unparsed" if status == "unparsed" else guess,
                        raw=raw,
                        status=status,
                        error=error,
                        latency_s=f"{rng.uniform(0.2, 3):.4f}",
                        cached="false",
                        scores=scores,
                    )
                )
        manifest = {
            "model": {"name": f"model-{r + 1}:7b", "quantization": ["Q4_K_M", "Q8_0"][r % 2]},
            "task": {"name": "academic-emotion", "labels": list(LABELS)},
            "answer_mode": "logprobs" if scored else "text",
            "dataset": {"root": str(base / "faces"), "n_items": images},
            "sessions": [],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        folders.append(folder)
    return folders


def timed(action):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start


IN_PAGE = """(() => {{ const t = performance.now(); {action}; drawRows();
  return [performance.now() - t, document.getElementById('count').textContent]; }})()"""
FILTERS = {
    "click a confusion-matrix cell": "document.querySelector("
    '\'#matrix td.cell[data-t="1"][data-p="4"]\').click()',
    "status: unparsed": "state.cell = null; state.status = 'unparsed'; apply()",
    "text in answers ('furrowed')": "state.status = ''; state.text = 'furrowed'; apply()",
    "runs disagree": "state.text = ''; state.disagree = true; apply()",
    "sort by confidence (run 3)": "state.disagree = false; state.run = 2;"
    " state.sort = 'conf-desc'; apply()",
    "clear every filter": "document.getElementById('clear').click()",
    "scroll to the middle": "document.getElementById('viewport').scrollTop ="
    " document.getElementById('spacer').offsetHeight / 2",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=31_115)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--screenshot", type=Path, help="Save the opened page as a PNG.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(temporary)
        folders, seconds = timed(lambda: write_runs(base, args.images, args.runs))
        print(f"{args.images} images × {args.runs} runs written in {seconds:.1f} s")
        runs, read_s = timed(lambda: [read_run(folder) for folder in folders])
        out = base / "view.html"

        def build() -> str:
            shared = share_images(runs)
            images = [image_link(image_file(runs[0], row), base) for row in shared.rows[0]]
            return view_html(runs, shared, images, embedded=False)

        page, build_s = timed(build)
        write_atomic(out, page)
        print(
            f"read the runs: {read_s:.2f} s; build the page: {build_s:.2f} s; "
            f"page size: {len(page.encode()) / 1e6:.1f} MB"
        )
        if find_chromium() is None:
            print("chromium is not installed: no browser timings")
            return
        with Chromium() as browser:
            _, open_s = timed(
                lambda: browser.open(out.as_uri(), ready="document.body.dataset.ready === '1'")
            )
            print(f"open in headless Chromium until the first rows are drawn: {open_s:.2f} s")
            for name, action in FILTERS.items():
                ms, count = browser.evaluate(IN_PAGE.format(action=action))
                print(f"  {name}: {ms:.0f} ms in the page ({count})")
            drawn = browser.evaluate("document.querySelectorAll('#rows .row').length")
            print(f"rows in the DOM at any time: {drawn}")
            if args.screenshot:
                print(f"screenshot: {browser.screenshot(args.screenshot)}")


if __name__ == "__main__":
    main()

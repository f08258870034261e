"""Benchmarks of emoprobe against an Ollama emulator that costs what a real server costs.

    python benchmarks/bench_pipeline.py            # the full run, ~5–8 minutes on 2 cores
    python benchmarks/bench_pipeline.py --quick    # smaller counts, ~1–2 minutes

One run measures, and prints as Markdown tables with ratios:

- `emoprobe run --concurrency S+1` (the installed console script, a subprocess) and a plain
  sequential `ollama.chat` loop (benchmarks/baseline_loop.py), each against
  benchmarks/emulator.py with S = 1 and S = 4 slots and 100 ms service, on 1280×720 JPEGs:
  the server's busy share, connections opened, turnaround, client CPU per image (that
  child's own rusage, less the same command's cost on a few images), each child's own peak
  memory (`os.wait4`);
- the client's CPU per image by stage (emoprobe's pipeline objects in this process);
- fixed costs as whole commands: a warm re-run of cached images, `emoprobe report` and
  `emoprobe compare` of six 31,115-row run folders, and the imports behind them.

Timings on a shared 2-core machine are noisy: compare figures inside one table.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # this checkout's emoprobe, for the stage split

from inputs import make_jpeg_folder, make_run_folders  # noqa: E402
from measure import ChildUsage, emulator, run_child, server_figures  # noqa: E402
from stages import STAGE_PASSES, STAGES, median_split, stage_split  # noqa: E402

SERVICE_S = 0.1
EMOPROBE = str(Path(sys.executable).parent / "emoprobe")
HEAVY = (
    "sklearn",
    "scipy",
    "matplotlib",
    "numpy",
    "pandas",
    "PIL",
    "httpx",
    "ollama",
    "pydantic",
    "diskcache",
    "click",
    "rich",
    "emoprobe",
)


@dataclass(frozen=True)
class Sizes:
    images: int  # per throughput measurement
    few: int  # the same command on a few images: its fixed cost
    stage_images: int
    warm_images: int
    report_rows: int


FULL = Sizes(images=200, few=10, stage_images=60, warm_images=5000, report_rows=31115)
QUICK = Sizes(images=60, few=5, stage_images=20, warm_images=1000, report_rows=31115)


def emoprobe_run(dataset: Path, url: str, out: Path, cache: Path, *extra: str) -> ChildUsage:
    return run_child(
        [
            EMOPROBE,
            "run",
            str(dataset),
            "--host",
            url,
            "--out",
            str(out),
            "--cache-dir",
            str(cache),
            "--quiet",
            *extra,
        ]
    )


def baseline_run(dataset: Path, url: str, *flags: str) -> ChildUsage:
    return run_child([sys.executable, str(HERE / "baseline_loop.py"), url, str(dataset), *flags])


# -- the measurements ---------------------------------------------------------------------
CLIENTS = {
    "emoprobe": "emoprobe run",
    "loop": "sequential loop",
    "loop-stream": "loop, streamed, left at done",
}


def throughput(
    work: Path, sizes: Sizes, slots: int, clients: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """emoprobe and the loop on `sizes.images`; their fixed cost from runs on a few images.

    A client's CPU per image is (CPU on many − CPU on a few) ÷ (many − few); the run on a
    few images is done twice and the cheaper kept, so a cold disk cache costs nothing.
    """
    results: dict[str, dict[str, Any]] = {}
    with emulator(slots, SERVICE_S) as server:
        for client in clients:
            few = []
            for attempt, dataset in enumerate((work / "few", work / "few", work / "many")):
                tag = f"{client}-s{slots}-{attempt}"
                server.reset()
                if client == "emoprobe":
                    usage = emoprobe_run(
                        dataset,
                        server.url,
                        work / tag,
                        work / f"cache-{tag}",
                        "--concurrency",
                        str(slots + 1),
                    )
                else:
                    usage = baseline_run(
                        dataset, server.url, *(["--stream"] if client == "loop-stream" else [])
                    )
                few.append(usage)
            many = few.pop()
            figures = server_figures(server.stats())
            fixed = min(usage.cpu_s for usage in few)
            cpu_per_image = (many.cpu_s - fixed) / (sizes.images - sizes.few)
            results[client] = {
                **figures,
                "cpu_ms_per_image": cpu_per_image * 1000,
                "fixed_cpu_s": fixed - cpu_per_image * sizes.few,
                "wall_s": many.wall_s,
                "peak_rss_mb": many.peak_rss_mb,
                "images_per_s": figures["requests"] / figures["span_s"],
            }
    return results


def warm_rerun(work: Path, sizes: Sizes) -> dict[str, Any]:
    """`emoprobe run` of images that are all cached, as a whole command."""
    dataset = work / "warm"
    make_jpeg_folder(dataset, sizes.warm_images, size=(160, 90), seed=7)
    with emulator(8, 0.0) as server:
        cold = emoprobe_run(
            dataset, server.url, work / "warm-a", work / "cache-warm", "--concurrency", "8"
        )
        server.reset()
        warm = emoprobe_run(dataset, server.url, work / "warm-b", work / "cache-warm")
        asked = len(server.stats()["chats"])
    if asked:
        raise SystemExit(f"the warm re-run sent {asked} images to the server")
    return {"cold": cold, "warm": warm}


def fixed_commands(work: Path, sizes: Sizes, template: Path) -> dict[str, ChildUsage]:
    """`emoprobe report` and `emoprobe compare` of six run folders, one command each."""
    folders = [
        str(path) for path in make_run_folders(template, work / "runs", 6, sizes.report_rows)
    ]
    return {
        "report": run_child([EMOPROBE, "report", *folders]),
        "compare": run_child([EMOPROBE, "compare", *folders, "--out", str(work / "cmp")]),
    }


def import_costs(work: Path, url_dataset: tuple[str, Path]) -> dict[str, dict[str, float]]:
    """Seconds of import per library (its modules' own times summed), `-X importtime`."""
    url, dataset = url_dataset
    cli = run_child([sys.executable, "-X", "importtime", "-c", "import emoprobe.cli"])
    run = run_child(
        [
            sys.executable,
            "-X",
            "importtime",
            EMOPROBE,
            "run",
            str(dataset),
            "--host",
            url,
            "--out",
            str(work / "imports-run"),
            "--cache-dir",
            str(work / "cache-emoprobe-s1-0"),
            "--quiet",
        ]
    )
    return {
        "import emoprobe.cli": _by_library(cli.stderr),
        "emoprobe run (cached)": _by_library(run.stderr),
    }


def _by_library(log: str) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    total = 0.0
    for match in re.finditer(r"^import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", log, re.M):
        own, module = int(match.group(1)) / 1e6, match.group(2)
        total += own
        top = module.split(".")[0]
        seconds[top if top in HEAVY else "other"] += own
    seconds["all"] = total
    return dict(seconds)


# -- the tables -----------------------------------------------------------------------------
def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs else "–"


def print_tables(
    sizes: Sizes,
    runs: dict[int, dict[str, dict[str, Any]]],
    split: dict[str, dict[str, float]],
    warm: dict[str, Any],
    fixed: dict[str, ChildUsage],
    imports: dict[str, dict[str, float]],
) -> None:
    out = []
    out.append(
        f"### Keeping the server busy ({sizes.images} images of 1280×720, "
        f"{SERVICE_S * 1000:.0f} ms service, `--concurrency S+1`)\n"
    )
    rows = []
    for slots, clients in runs.items():
        loop = clients["loop"]
        for client, figures in clients.items():
            rows.append(
                [
                    slots,
                    CLIENTS[client],
                    figures["busy_share"],
                    figures["connections"],
                    figures["turnaround_median_ms"],
                    figures["turnaround_p90_ms"],
                    figures["slot_idle_median_ms"],
                    figures["images_per_s"],
                    _ratio(figures["images_per_s"], loop["images_per_s"]),
                ]
            )
    out.append(
        table(
            [
                "S",
                "client",
                "busy share",
                "connections",
                "turnaround median ms",
                "turnaround p90 ms",
                "slot idle median ms",
                "images/s (server span)",
                "× loop",
            ],
            rows,
        )
    )

    out.append("### Client cost per image (each child's own rusage; fixed costs taken out)\n")
    rows = []
    for slots, clients in runs.items():
        loop = clients["loop"]
        for client, figures in clients.items():
            rows.append(
                [
                    slots,
                    CLIENTS[client],
                    figures["cpu_ms_per_image"],
                    _ratio(figures["cpu_ms_per_image"], loop["cpu_ms_per_image"]),
                    figures["fixed_cpu_s"],
                    figures["wall_s"],
                    figures["peak_rss_mb"],
                    _ratio(figures["peak_rss_mb"], loop["peak_rss_mb"]),
                ]
            )
    out.append(
        table(
            [
                "S",
                "client",
                "CPU ms/image",
                "× loop",
                "fixed CPU s",
                "whole command s",
                "peak RSS MB",
                "× loop",
            ],
            rows,
        )
    )

    out.append(
        f"### emoprobe's client CPU per image by stage ({sizes.stage_images - 1} "
        f"images, one at a time, ms; the median of {STAGE_PASSES} passes)\n"
    )
    cold, hot = split["cold"], split["warm"]
    rows = [[stage, cold[stage], hot[stage]] for stage in STAGES]
    rows.append(["**total**", sum(cold[s] for s in STAGES), sum(hot[s] for s in STAGES)])
    rows.append(["(Pillow decode alone)", cold["of which decode"], "–"])
    rows.append(["(base64 of the file alone)", cold["of which base64"], "–"])
    out.append(table(["stage", "asked (cold)", "cached (warm)"], rows))

    count = sizes.warm_images
    out.append("### Fixed costs, as whole commands\n")
    rows = []
    for name, usage, images in (
        (f"`run`, {count:,} images, cold (server answers at once)", warm["cold"], count),
        (f"`run`, {count:,} images, all cached", warm["warm"], count),
        (f"`report` of six {sizes.report_rows:,}-row folders", fixed["report"], None),
        ("`compare` of those six", fixed["compare"], None),
    ):
        rate = f"{images / usage.wall_s:.0f}" if images else "–"
        rows.append([name, usage.wall_s, usage.cpu_s, usage.peak_rss_mb, rate])
    out.append(table(["command", "wall s", "CPU s", "peak RSS MB", "images/s"], rows))

    out.append("### Imports (`-X importtime`, each library's own modules, seconds)\n")
    names = sorted(
        {n for costs in imports.values() for n in costs} - {"all"},
        key=lambda n: -max(costs.get(n, 0.0) for costs in imports.values()),
    )
    header = ["library", *imports]
    rows = [[name, *(costs.get(name, 0.0) for costs in imports.values())] for name in names]
    rows.append(["**all**", *(costs["all"] for costs in imports.values())])
    out.append(table(header, rows))
    print("\n".join(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (~1–2 minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    arguments = parser.parse_args()
    sizes = QUICK if arguments.quick else FULL
    if not Path(EMOPROBE).exists():
        raise SystemExit(f"no emoprobe console script at {EMOPROBE}: pip install -e . first")
    work = Path(tempfile.mkdtemp(prefix="emoprobe-bench-"))
    started = time.perf_counter()
    print(
        f"{time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, {'quick' if arguments.quick else 'full'} run\n"
    )
    # Bytecode compiled ahead, as pip leaves an installed package: where the environment
    # sets PYTHONDONTWRITEBYTECODE, every child would compile emoprobe afresh otherwise.
    compileall.compile_dir(HERE.parent / "emoprobe", quiet=1)
    try:
        make_jpeg_folder(work / "many", sizes.images, seed=1)
        make_jpeg_folder(work / "few", sizes.few, seed=2)
        stage_images = make_jpeg_folder(work / "stages", sizes.stage_images, seed=3)
        runs = {
            1: throughput(work, sizes, 1, ("emoprobe", "loop", "loop-stream")),
            4: throughput(work, sizes, 4, ("emoprobe", "loop")),
        }
        with emulator(1, SERVICE_S) as server:
            split = median_split(
                [
                    stage_split(stage_images, server.url, work / f"cache-stages-{n}")
                    for n in range(STAGE_PASSES)
                ]
            )
            imports = import_costs(work, (server.url, work / "few"))
        warm = warm_rerun(work, sizes)
        fixed = fixed_commands(work, sizes, template=work / "emoprobe-s1-0")
        print_tables(sizes, runs, split, warm, fixed, imports)
        print(f"(benchmark took {time.perf_counter() - started:.0f} s)")
    finally:
        if arguments.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

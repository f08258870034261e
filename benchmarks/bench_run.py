"""Benchmarks of `emoprobe run` against the Ollama test double (run on demand).

    python benchmarks/bench_run.py            # every benchmark
    python benchmarks/bench_run.py efficiency warm startup

The double runs in this process with a set service time and S parallel slots; the
client is `python -m emoprobe run` in a subprocess, so its CPU time and peak memory are
its own. Efficiency is measured on the server's side:

    efficiency = (images × service time ÷ S) ÷ (first request's arrival → last reply)

Timings on a shared 2-core machine are noisy: compare the ratios printed in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ollama

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from factories import make_image_folder  # noqa: E402
from ollama_double import OllamaDouble  # noqa: E402

SERVICE_S = 0.1


def emoprobe_run(dataset: Path, url: str, out: Path, cache: Path, *extra: str) -> dict:
    """Run the CLI in a subprocess; its wall time, CPU time and peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-m", "emoprobe", "run", str(dataset), "--host", url,
               "--out", str(out), "--cache-dir", str(cache), "--quiet", *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"emoprobe run failed: {done.stderr.strip()}")
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "max_rss_mb": after.ru_maxrss / 1024,
        "summary": done.stdout.strip().splitlines(),
    }


def table(header: list[str], rows: list[list[object]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row)
              + " |")
    print()


def efficiency(work: Path) -> None:
    """Keep S slots busy with no more than S + 2 requests at the server; vs a plain loop."""
    rows = []
    for slots, images in ((1, 60), (4, 160)):
        dataset = work / f"eff{slots}"
        make_image_folder(dataset, per_label=images // 5)
        with OllamaDouble(latency=SERVICE_S, parallel=slots) as double:
            emoprobe_run(dataset, double.url, work / f"eff-out{slots}", work / f"eff-c{slots}",
                         "--concurrency", str(slots + 1))
            span = double.last_reply - double.first_arrival
            ideal = images * SERVICE_S / slots
            rows.append([slots, slots + 1, images, ideal, span, ideal / span,
                         double.max_in_flight, double.max_queued])
    print("Efficiency (service time 0.1 s; server-side span)")
    table(["S", "concurrency", "images", "ideal s", "span s", "efficiency", "max in flight",
           "max queued"], rows)

    dataset = work / "eff4"
    images = sorted(dataset.rglob("*.png"))
    with OllamaDouble(latency=SERVICE_S, parallel=4) as double:
        client = ollama.Client(host=double.url, timeout=30)
        started = time.perf_counter()
        for path in images:
            client.chat(model="qwen2.5vl:7b", messages=[
                {"role": "user", "content": "", "images": [path.read_bytes()]}])
        loop_s = time.perf_counter() - started
    with OllamaDouble(latency=SERVICE_S, parallel=4) as double:
        ours = emoprobe_run(dataset, double.url, work / "eff-out4b", work / "eff-c4b",
                            "--concurrency", "5")
        span = double.last_reply - double.first_arrival
    print("Against a plain sequential loop over ollama.chat (S = 4)")
    table(["client", "images/s (server span)", "speed-up"], [
        ["sequential loop", len(images) / loop_s, 1.0],
        ["emoprobe run --concurrency 5", len(images) / span, loop_s / span],
    ])
    print(f"(emoprobe's whole command incl. start-up and report: {ours['wall_s']:.2f} s)\n")


def warm(work: Path) -> None:
    """A re-run where every answer is cached: no decode, each file hashed once."""
    dataset = work / "warm"
    make_image_folder(dataset, per_label=400)
    with OllamaDouble(latency=0.0, parallel=4) as double:
        cold = emoprobe_run(dataset, double.url, work / "warm-a", work / "warm-c",
                            "--concurrency", "8")
        sent = len(double.chat_requests)
        hot = emoprobe_run(dataset, double.url, work / "warm-b", work / "warm-c")
        assert len(double.chat_requests) == sent, "the warm run sent requests"
    pipeline = hot["summary"][1].split()[-2]
    print("Warm re-run of 2,000 cached images (new --out, same cache)")
    table(["run", "wall s", "client CPU s", "CPU ms/image", "pipeline images/s"], [
        ["cold (double answers at once)", cold["wall_s"], cold["cpu_s"],
         cold["cpu_s"] / 2 , cold["summary"][1].split()[-2]],
        ["warm", hot["wall_s"], hot["cpu_s"], hot["cpu_s"] / 2, pipeline],
    ])


def memory(work: Path) -> None:
    """Peak memory on a 31,115-image dataset (all cached after the first pass)."""
    dataset = work / "big"
    make_image_folder(dataset, per_label=6223)
    with OllamaDouble(latency=0.0, parallel=8) as double:
        first = emoprobe_run(dataset, double.url, work / "big-a", work / "big-c",
                             "--concurrency", "8")
        second = emoprobe_run(dataset, double.url, work / "big-b", work / "big-c")
    print("31,115 images")
    table(["run", "wall s", "client CPU ms/image", "peak RSS MB"], [
        ["cold", first["wall_s"], first["cpu_s"] / 31.115, first["max_rss_mb"]],
        ["warm", second["wall_s"], second["cpu_s"] / 31.115, second["max_rss_mb"]],
    ])


def startup(work: Path) -> None:
    """`emoprobe --help` wall time, best of 5."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emoprobe", "--help"], capture_output=True,
                       check=True)
        times.append(time.perf_counter() - started)
    print(f"emoprobe --help: best {min(times):.3f} s of 5\n")


def hosts(work: Path) -> None:
    """One dataset on one host vs two hosts (each S = 1, service time 0.1 s)."""
    dataset = work / "hosts"
    make_image_folder(dataset, per_label=16)
    rows = []
    for count in (1, 2):
        doubles = [OllamaDouble(latency=SERVICE_S, parallel=1).start() for _ in range(count)]
        try:
            extra = [arg for double in doubles for arg in ("--host", double.url)]
            started = time.perf_counter()
            emoprobe_run(dataset, doubles[0].url, work / f"hosts-out{count}",
                         work / f"hosts-c{count}", *extra[2:])
            wall = time.perf_counter() - started
            span = max(d.last_reply for d in doubles) - min(d.first_arrival for d in doubles)
            split = " / ".join(
                str(len([b for b in d.chat_requests if b.get("messages")])) for d in doubles
            )
        finally:
            for double in doubles:
                double.stop()
        rows.append([count, split, span, wall])
    print("80 images over one and two hosts (S = 1 each, 0.1 s service time)")
    table(["hosts", "images per host", "server span s", "whole command s"], rows)
    print(f"speed-up of the span with two hosts: {rows[0][2] / rows[1][2]:.2f}x\n")


def report(work: Path) -> None:
    """`emoprobe report` on 31,115 predictions × 6 builds (synthetic rows, real manifests)."""
    import csv
    import hashlib
    import json
    import random

    from emoprobe.results.predictions import COLUMNS

    dataset = work / "report-seed"
    make_image_folder(dataset, per_label=1)
    with OllamaDouble() as double:
        emoprobe_run(dataset, double.url, work / "report-template", work / "report-c")
    template = json.loads((work / "report-template" / "manifest.json").read_text())
    labels = template["task"]["labels"]
    items = [(f"{labels[i % 5]}/{i:05d}.jpg", hashlib.sha256(str(i).encode()).hexdigest(),
              labels[i % 5]) for i in range(31115)]
    timings = []
    for number in range(6):
        rng, out = random.Random(number), work / f"report-run{number}"
        out.mkdir()
        with open(out / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for path, sha, label in items:
                roll = rng.random()
                guess = label if roll < 0.55 else rng.choice(labels)
                status = "unparsed" if roll > 0.97 else "ok"
                writer.writerow([path, sha, label, guess if status == "ok" else "unparsed",
                                 guess, status, "", f"{rng.uniform(0.3, 2):.4f}", "false"])
        manifest = dict(template, files=[{"path": p, "label": lab, "sha256": sha}
                                         for p, sha, lab in items])
        (out / "manifest.json").write_text(json.dumps(manifest))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emoprobe", "report", str(out)], check=True,
                       capture_output=True)
        timings.append(time.perf_counter() - started)
    print("emoprobe report on 31,115 predictions, six run folders (each a fresh process)")
    table(["run", "seconds"], [[f"run{i}", t] for i, t in enumerate(timings)])


BENCHMARKS = {
    "efficiency": efficiency,
    "warm": warm,
    "hosts": hosts,
    "report": report,
    "memory": memory,
    "startup": startup,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], default=[])
    names = parser.parse_args().names or list(BENCHMARKS)
    work = Path(tempfile.mkdtemp(prefix="emoprobe-bench-"))
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    try:
        for name in names:
            BENCHMARKS[name](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

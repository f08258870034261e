"""Measuring tools: the emulator in its own process, a child's own rusage, server-side figures."""

from __future__ import annotations

import bisect
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class ChildUsage:
    """One child process's own wall time, CPU time and peak memory (`os.wait4`)."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_child(command: list[str], cwd: Path | None = None) -> ChildUsage:
    """Run `command` and wait for it with `os.wait4`: this child's rusage only."""
    started = time.perf_counter()
    # The checkout these benchmarks sit in is what runs, whatever `pip install -e` named.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    stdout, stderr = _drain(process)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        raise SystemExit(
            f"{' '.join(command[:3])} … failed ({process.returncode}): " + " / ".join(tail)
        )
    return ChildUsage(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout, stderr)


def _drain(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Read both pipes to their end without reaping the child (wait4 does that)."""
    chunks: dict[str, str] = {}

    def read(name: str, stream: Any) -> None:
        chunks[name] = stream.read()
        stream.close()

    readers = [
        threading.Thread(target=read, args=(name, stream))
        for name, stream in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return chunks["out"], chunks["err"]


class EmulatorStats:
    """Reads and resets the records of an emulator at `url`."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_stats", timeout=30) as reply:
            return dict(json.load(reply))

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/_reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()


class Emulator(EmulatorStats):
    """benchmarks/emulator.py in its own process, so its CPU never counts as the client's."""

    def __init__(self, slots: int, service: float) -> None:
        self.slots, self.service = slots, service
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "emulator.py"),
                "--slots",
                str(slots),
                "--service",
                str(service),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        url = self._process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit("the emulator did not start")
        super().__init__(url)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


@contextmanager
def emulator(slots: int, service: float) -> Iterator[Emulator]:
    server = Emulator(slots, service)
    try:
        yield server
    finally:
        server.stop()


def server_figures(stats: dict[str, Any]) -> dict[str, float]:
    """Busy share, connections and turnaround from the emulator's records.

    busy share: seconds requests held a slot ÷ (slots × first arrival → last slot freed).
    slot idle: from each slot freed until the next request takes a slot (0 while one
    waits in the queue).
    turnaround: after each answer ends, how long until the next request arrives (a client
    with S + 1 requests out has only the one just answered free to send, so this is that
    client's turnaround; for a sequential loop it is exactly so).
    """
    chats = sorted(stats["chats"], key=lambda chat: chat["arrived"])
    if not chats:
        raise SystemExit("the emulator saw no chat requests")
    held = sum(chat["slot_end"] - chat["slot_start"] for chat in chats)
    span = max(chat["slot_end"] for chat in chats) - chats[0]["arrived"]
    arrivals = [chat["arrived"] for chat in chats]
    gaps = []
    for chat in chats:
        if not chat["answer_end"]:  # its last bytes were still being written
            continue
        following = bisect.bisect_left(arrivals, chat["answer_end"])
        if following < len(arrivals):
            gaps.append(arrivals[following] - chat["answer_end"])
    # server idle: from each slot freed until a request takes a slot again
    starts = sorted(chat["slot_start"] for chat in chats)
    idle = []
    for chat in chats:
        following = bisect.bisect_left(starts, chat["slot_end"])
        if following < len(starts):
            idle.append(starts[following] - chat["slot_end"])
    ports = {chat["port"] for chat in chats}
    return {
        "requests": len(chats),
        "busy_share": held / (stats["slots"] * span),
        "span_s": span,
        "connections": stats["connections"],
        "chat_ports": len(ports),
        "turnaround_median_ms": statistics.median(gaps) * 1000 if gaps else float("nan"),
        "turnaround_p90_ms": _quantile(gaps, 0.9) * 1000 if gaps else float("nan"),
        "slot_idle_median_ms": statistics.median(idle) * 1000 if idle else float("nan"),
        "server_cpu_s": stats["server_cpu_s"],
    }


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

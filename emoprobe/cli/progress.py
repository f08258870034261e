"""Progress on stderr, drawn by `rich` on a terminal and written as plain lines elsewhere.

`RunProgress` follows a run (one line: bar, images, rate, ETA and the counts of cached,
unreadable, retried and failed images); `PullProgress` follows a model's pull or create
(one bar over all layers, and a line per finished layer). Messages are printed above a
live bar, never through it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from emoprobe.errors import printable
from emoprobe.pipeline.runner import RunEvents
from emoprobe.results.predictions import OK, STATUSES, Row, current_status

if TYPE_CHECKING:
    from emoprobe.ollama_admin.admin import Progress as Step

PLAIN_EVERY_S = 30.0
BAR_WIDTH = 24
# Statuses of /api/create that say nothing a person needs.
QUIET_STATUSES = (
    "using existing layer",
    "using already created layer",
    "creating new layer",
    "writing layer",
    "reading model metadata",
    "creating system layer",
)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def status_name(status: str) -> str:
    """A status as lines show it: `not in cache`, `empty after thinking`."""
    return status.replace("_", " ")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0.0:.1f} img/s")


class _Lines:
    """Text lines on the console's stream, above a live bar when one is drawn."""

    def __init__(self, console: Console | None) -> None:
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None

    def say(self, text: str) -> None:
        text = printable(text)
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.console.file.write(f"{text}\n")
            self.console.file.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class RunProgress(_Lines, RunEvents):
    """A run's progress: a live line on a terminal; elsewhere a line every half minute."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        super().__init__(console)
        self.quiet = quiet
        self.live = not quiet and self.console.is_terminal
        self.total = self.done = self.start_done = 0
        row_statuses = [status_name(status) for status in STATUSES if status != OK]
        self.counts = dict.fromkeys(("cached", *row_statuses[:-1], "retries", "failed"), 0)
        self.started_at = time.monotonic()
        self._last_line = -math.inf
        self._task = TaskID(0)

    def warning(self, message: str) -> None:
        self._say(f"warning: {message}")

    def started(self, total: int, already_done: int, out: Path) -> None:
        self.total, self.done, self.start_done = total, already_done, already_done
        self.started_at = time.monotonic()
        if already_done:
            self._say(f"resuming in {out}: {already_done} of {total} images already done")
        if self.live:
            self.bar = Progress(
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(),
                _Rate(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[counts]}"),
                console=self.console,
            )
            self._task = self.bar.add_task(
                "images", total=total, completed=already_done, counts=self.counts_text()
            )
            self.bar.start()

    def row_written(self, row: Row) -> None:
        self.done += 1
        self.counts["cached"] += row.cached
        status = current_status(row.status, getattr(row, "error", ""))
        if status != OK:
            self.counts[status_name(status)] += 1
        self._draw()

    def request_failed(self, path: str, error: str) -> None:
        self.counts["failed"] += 1
        self._say(f"failed: {path}: {error}")
        self._draw()

    def retrying(self, path: str, error: str, attempt: int, delay: float) -> None:
        self.counts["retries"] += 1
        self._draw()

    def counts_text(self) -> str:
        shown = {name: n for name, n in self.counts.items() if n or name == "cached"}
        return "  ".join(f"{name} {n}" for name, n in shown.items())

    def line(self) -> str:
        """The plain progress line: images, rate, ETA and the counts."""
        elapsed = time.monotonic() - self.started_at
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "–"
        return f"{self.done}/{self.total}  {rate:.1f} img/s  ETA {eta}  {self.counts_text()}"

    def _draw(self) -> None:
        if self.bar is not None:
            self.bar.update(self._task, completed=self.done, counts=self.counts_text())
            return
        now = time.monotonic()
        due = now - self._last_line >= PLAIN_EVERY_S or self.done >= self.total
        if not self.quiet and self.done and due:
            self._last_line = now
            self.say(self.line())

    def _say(self, text: str) -> None:
        if self.quiet and not text.startswith(("warning", "failed")):
            return
        self.say(text)
        self._last_line = -math.inf


class PullProgress(_Lines):
    """Ollama's streamed pull or create progress: off a terminal, only the plain lines (one
    per layer, and the server's other statuses: `pulling manifest`, …)."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.live = self.console.is_terminal
        self.layers: dict[str, list[int]] = {}  # digest: [total, completed, finished]
        self.last_status = ""
        self._task = TaskID(0)

    def start(self, model: str, *, creating: bool = False) -> Callable[[Step], None]:
        """Begin a model's progress; returns the callback for its lines."""
        self.close()
        self.layers, self.last_status = {}, ""
        self.say(f"{'creating' if creating else 'pulling'} {model}")
        return self.update

    def update(self, part: Step) -> None:
        from emoprobe.ollama_admin.admin import human_size, short_digest

        if part.digest and part.total:
            layer = self.layers.setdefault(part.digest, [part.total, 0, 0])
            layer[0], layer[1] = part.total, max(layer[1], part.completed)
            finished = layer[1] >= layer[0] and not layer[2]
            layer[2] |= finished
            self._draw(refresh=finished)
            if finished:
                what = part.status or f"pulling {short_digest(part.digest)}"
                self.say(f"  {what}  {human_size(part.total)}")
            return
        status = part.status.strip()
        if status and status != self.last_status:
            self.last_status = status
            if not status.startswith(QUIET_STATUSES):
                self.say(f"  {status}")

    def _draw(self, refresh: bool = False) -> None:
        if not self.live:
            return
        new = self.bar is None
        if self.bar is None:
            self.bar = Progress(
                TextColumn(" "),
                BarColumn(bar_width=BAR_WIDTH),
                TaskProgressColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[layers]}"),
                console=self.console,
                transient=True,
            )
            self._task = self.bar.add_task("layers", layers="")
        layers = self.layers.values()
        self.bar.update(
            self._task,
            total=sum(layer[0] for layer in layers),
            completed=sum(min(layer[1], layer[0]) for layer in layers),
            layers=f"{sum(layer[2] for layer in layers)}/{len(self.layers)} layers",
        )
        if new:
            self.bar.start()
        elif refresh:
            self.bar.refresh()

"""A progress bar with rate and ETA on stderr, and warnings that don't garble it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from emoprobe.pipeline.runner import RunEvents
from emoprobe.results.predictions import Row

REDRAW_S = 0.2
PLAIN_EVERY_S = 30.0
BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressBar(RunEvents):
    """Redraws one line on a terminal; elsewhere prints a line every half minute."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = not quiet and self.stream.isatty()
        self.total = self.done = self.cached = self.errors = self.failed = self.retries = 0
        self.start_done = 0
        self.started_at = time.monotonic()
        self._last_draw = 0.0

    def warning(self, message: str) -> None:
        self._say(f"warning: {message}")

    def started(self, total: int, already_done: int, out: Path) -> None:
        self.total, self.done, self.start_done = total, already_done, already_done
        self.started_at = time.monotonic()
        if already_done:
            self._say(f"resuming in {out}: {already_done} of {total} images already done")
        if self.live:
            self._draw(force=True)

    def row_written(self, row: Row) -> None:
        self.done += 1
        self.cached += row.cached
        self.errors += row.status == "error"
        self._draw()

    def request_failed(self, path: str, error: str) -> None:
        self.failed += 1
        self._say(f"failed: {path}: {error}")

    def retrying(self, path: str, error: str, attempt: int, delay: float) -> None:
        self.retries += 1
        self._draw()

    def close(self) -> None:
        if self.live:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started_at
        fresh = self.done - self.start_done
        rate = fresh / elapsed if elapsed > 0 else 0.0
        share = self.done / self.total if self.total else 1.0
        filled = int(share * BAR_WIDTH)
        eta = (self.total - self.done) / rate if rate > 0 else None
        parts = [
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total}",
            f"{rate:.1f} img/s",
            f"ETA {format_duration(eta)}" if eta is not None else "ETA –",
            f"cached {self.cached}",
        ]
        if self.errors:
            parts.append(f"unreadable {self.errors}")
        if self.retries:
            parts.append(f"retries {self.retries}")
        if self.failed:
            parts.append(f"failed {self.failed}")
        return "  ".join(parts)

    def _draw(self, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        interval = REDRAW_S if self.live else PLAIN_EVERY_S
        if not force and now - self._last_draw < interval and self.done < self.total:
            return
        self._last_draw = now
        if self.live:
            self.stream.write("\r\x1b[2K" + self.line())
        elif force or self.done:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def _say(self, text: str) -> None:
        if self.quiet and not text.startswith(("warning", "failed")):
            return
        prefix = "\r\x1b[2K" if self.live else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()
        self._last_draw = 0.0

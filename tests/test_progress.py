"""The run's progress (emoprobe.cli.progress.RunProgress): rich on a terminal, else plain."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from emoprobe.cli.progress import RunProgress, format_duration


def row(status: str = "ok", cached: bool = False) -> SimpleNamespace:
    """What the progress reads of a written row (its status, and whether it was cached)."""
    return SimpleNamespace(status=status, cached=cached)


def feed(progress: RunProgress) -> None:
    progress.started(4, 1, Path("out"))
    progress.row_written(row(cached=True))
    progress.retrying("b.png", "busy", 1, 0.1)
    progress.request_failed("b.png", "HTTP 500")
    progress.row_written(row(status="unreadable"))
    progress.row_written(row(cached=False))
    progress.warning("the disk is nearly full")
    progress.close()


def test_on_a_terminal_one_live_line_with_rate_eta_and_counts() -> None:
    stream = io.StringIO()
    feed(RunProgress(console=Console(file=stream, force_terminal=True, width=160)))
    text = stream.getvalue()
    assert "\r\x1b[2K" in text  # redrawn in place
    last = text.rsplit("\r", 1)[-1]
    assert "4/4" in last and "img/s" in last and "ETA" in last
    assert "cached 1  unreadable 1  retries 1  failed 1" in last
    for message in (
        "resuming in out: 1 of 4 images already done",
        "failed: b.png: HTTP 500",
        "warning: the disk is nearly full",
    ):
        assert message in text


def test_elsewhere_plain_lines_without_control_characters() -> None:
    stream = io.StringIO()
    feed(RunProgress(console=Console(file=stream)))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "resuming in out: 1 of 4 images already done"
    assert lines[1].startswith("2/4  ") and lines[1].endswith("  cached 1")
    assert "failed: b.png: HTTP 500" in lines
    assert lines[-2].startswith("4/4  ")
    assert lines[-2].endswith("cached 1  unreadable 1  retries 1  failed 1")
    assert lines[-1] == "warning: the disk is nearly full"
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_quiet_keeps_only_warnings_and_failures() -> None:
    stream = io.StringIO()
    feed(RunProgress(quiet=True, console=Console(file=stream, force_terminal=True)))
    assert stream.getvalue() == "failed: b.png: HTTP 500\nwarning: the disk is nearly full\n"


def test_durations() -> None:
    assert [format_duration(s) for s in (0, 59, 61, 3600 * 2 + 120)] == [
        "0s",
        "59s",
        "1m01s",
        "2h02m",
    ]


def test_every_status_is_counted_in_the_progress_line() -> None:
    progress = RunProgress(console=Console(file=io.StringIO()))
    progress.started(9, 0, Path("out"))
    for status in ("ok", "unparsed", "refused", "refused", "truncated"):
        progress.row_written(row(status=status))
    for status in ("empty_after_thinking", "unreadable", "not_in_cache", "error"):
        progress.row_written(row(status=status))  # "error": an older run's unreadable row
    assert progress.counts_text() == (
        "cached 0  unparsed 1  refused 2  truncated 1  empty after thinking 1  "
        "unreadable 2  not in cache 1"
    )

"""Writing files so that readers never see half of one, and OS errors in words.

Every file emoprobe writes goes through `write_atomic`: written beside its target, synced,
then renamed over it, with the permissions the user's umask gives a new file (so a run
folder can be shared), never the 0600 of a temporary file.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from emoprobe.errors import WriteError

Content = str | bytes | Callable[[IO[Any]], object]
_LONE_SURROGATE = re.compile("[\x00\ud800-\udfff]")
_NOT_IN_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, strip: str = "-") -> str:
    """`text` as part of a file name: each run of other characters than letters, digits,
    `.`, `_` and `-` becomes one `-`; `strip`'s characters are taken off both ends."""
    return _NOT_IN_SLUG.sub("-", text).strip(strip)


def writable_text(text: str) -> str:
    """`text` with lone surrogates (valid JSON escapes, but no UTF-8) and NUL (which
    Python 3.10's csv cannot read back) as U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, content: Content, *, binary: bool = False) -> None:
    """Replace `path` with `content` (text, bytes, or what a writer function writes).

    A writer function gets a text handle, or a binary one with `binary=True`; it streams
    large output without building it as one string first. Raises `WriteError`.
    """
    binary = binary or isinstance(content, bytes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise write_error(path, error) from None
    try:
        handle = cast(
            IO[Any],
            os.fdopen(descriptor, "wb")
            if binary
            # a lone surrogate (text from a server) becomes "?" rather than a failed write
            else os.fdopen(descriptor, "w", encoding="utf-8", errors="replace", newline="\n"),
        )
        with handle:
            if callable(content):
                content(handle)
            else:
                handle.write(writable_text(content) if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, _umask_mode())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise write_error(path, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_error(path: Path, error: OSError) -> WriteError:
    """A failed write as an error carrying the path; rows already written stay."""
    return WriteError(
        f"cannot write {path}: {error.strerror or error}; free some space or fix the "
        "permissions, then run the same command again to resume",
        path=path,
    )


def os_error_text(error: OSError) -> str:
    """A short reason a file could not be used, without the file's name."""
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if error.errno == errno.ENAMETOOLONG:
        return "path too long"
    if error.errno == errno.ELOOP:
        return "symlink loop or unreadable path"
    return f"unreadable: {error.strerror or type(error).__name__}"

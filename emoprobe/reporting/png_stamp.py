"""What a plot was drawn from, kept in its PNG, so that an unchanged plot is not redrawn.

The stamp is a `tEXt` chunk right after `IHDR`: the sha256 of the plot's inputs, of the
plotting code and of matplotlib's version. Reading it takes the file's first bytes only
(no matplotlib, no decoding).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from functools import cache
from importlib import metadata
from pathlib import Path

from emoprobe._version import __version__

KEYWORD = b"emoprobe-inputs"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_AFTER_IHDR = len(_SIGNATURE) + 4 + 4 + 13 + 4  # IHDR: length, type, 13 bytes, CRC
_STAMP_AT = _AFTER_IHDR + 4 + 4 + len(KEYWORD) + 1  # the chunk's length, type, keyword, NUL
_STAMP_SIZE = 64  # a sha256 in hex


def plot_stamp(*inputs: str) -> str:
    """The stamp of a plot drawn from `inputs` by this emoprobe and matplotlib."""
    digest = hashlib.sha256()
    for part in (*(text.encode() for text in inputs), _drawing()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


@cache
def _drawing() -> bytes:
    """What draws the plots: the plotting code, matplotlib's version and emoprobe's."""
    try:
        code = Path(__file__).with_name("plots.py").read_bytes()
        drawer = metadata.version("matplotlib")
    except (OSError, metadata.PackageNotFoundError):
        code, drawer = b"", ""  # no stamp can match one made elsewhere
    return hashlib.sha256(code).digest() + f"{drawer}\0{__version__}".encode()


def stamped(png: bytes, stamp: str) -> bytes:
    """`png` with `stamp` in a tEXt chunk after its header."""
    return png[:_AFTER_IHDR] + _chunk(stamp.encode("ascii")) + png[_AFTER_IHDR:]


def stamp_of(path: Path) -> str | None:
    """The stamp `stamped` put into the PNG at `path`; None for any other file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_STAMP_AT + _STAMP_SIZE + 4)
    except OSError:
        return None
    value = head[_STAMP_AT : _STAMP_AT + _STAMP_SIZE]
    if not head.startswith(_SIGNATURE) or head[_AFTER_IHDR:] != _chunk(value):
        return None  # another file, no stamp of ours there, or a damaged one (the CRC)
    return value.decode("ascii", "replace")


def _chunk(value: bytes) -> bytes:
    """The tEXt chunk holding the stamp `value`: length, type, data, CRC."""
    data = KEYWORD + b"\0" + value
    return (
        struct.pack(">I", len(data))
        + b"tEXt"
        + data
        + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    )

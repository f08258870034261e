"""What a plot was drawn from, kept in its PNG, so that an unchanged plot is not redrawn.

The stamp is a `tEXt` chunk right after `IHDR`: the sha256 of the plot's inputs, of the
plotting code and of matplotlib's version. Reading it takes the file's first bytes only
(no matplotlib, no decoding).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from importlib import metadata
from pathlib import Path

from emoprobe._version import __version__

KEYWORD = b"emoprobe-inputs"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_AFTER_IHDR = len(_SIGNATURE) + 4 + 4 + 13 + 4  # IHDR: length, type, 13 bytes, CRC
_CODE = Path(__file__).with_name("plots.py")


def plot_stamp(*inputs: str) -> str:
    """The stamp of a plot drawn from `inputs` by this emoprobe and matplotlib."""
    digest = hashlib.sha256()
    try:
        code = _CODE.read_bytes()
        drawer = metadata.version("matplotlib")
    except (OSError, metadata.PackageNotFoundError):
        code, drawer = __version__.encode(), ""  # no stamp can match one made elsewhere
    for part in (*(text.encode() for text in inputs), code, drawer.encode(), __version__.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def stamped(png: bytes, stamp: str) -> bytes:
    """`png` with `stamp` in a tEXt chunk after its header."""
    data = KEYWORD + b"\0" + stamp.encode("ascii")
    crc = zlib.crc32(b"tEXt" + data)
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", crc)
    return png[:_AFTER_IHDR] + chunk + png[_AFTER_IHDR:]


def stamp_of(path: Path) -> str | None:
    """The stamp `stamped` put into the PNG at `path`; None for any other file."""
    size = 4 + 4 + len(KEYWORD) + 1 + 64 + 4
    try:
        with open(path, "rb") as handle:
            head = handle.read(_AFTER_IHDR + size)
    except OSError:
        return None
    chunk = head[_AFTER_IHDR:]
    if not head.startswith(_SIGNATURE) or len(chunk) != size or chunk[4:8] != b"tEXt":
        return None
    data = chunk[8:-4]
    if chunk[:4] != struct.pack(">I", len(data)) or chunk[-4:] != struct.pack(
        ">I", zlib.crc32(b"tEXt" + data)
    ):
        return None
    keyword, _, value = data.partition(b"\0")
    return value.decode("ascii", "replace") if keyword == KEYWORD else None

"""Images: read one file, check it really is a usable image, and make the model's payload.

`prepare_image` never raises for a bad file: it returns a `PreparedImage` whose `error` is a
short one-line reason ("file not found", "truncated or corrupt image", ...), which the run
records as an error row. It never logs or prints (Pillow's warnings are silenced while it
works), and no message ever holds image bytes.

The payload is the file's own bytes in the common case (a baseline JPEG in RGB/L mode with
no EXIF rotation, or an 8-bit RGB/L PNG without transparency), so most images cost no
re-encode. Anything else is converted to 8-bit RGB or L and re-encoded: as JPEG (quality 95)
when the source was a JPEG photo, as PNG otherwise. `note` says what was done.

Only JPEG (and MPO), PNG, GIF, BMP, WebP and TIFF content is decoded, whatever the file's
suffix; other formats Pillow knows (EPS would run Ghostscript) count as "not an image".
`Image.MAX_IMAGE_PIXELS` is left alone: the size is checked against `MAX_PIXELS` before the
pixels are decoded, and Pillow's own bomb error is caught too.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from emoprobe.files import os_error_text

PREPARE_VERSION = "1"  # bump when the payload conversion changes; it goes into cache keys
MAX_PIXELS = 50_000_000  # larger images are refused ("image too large: WxH pixels")
MAX_FILE_BYTES = 256 * 1024 * 1024  # larger files are refused without being read
JPEG_QUALITY = 95

# The formats decoded; a multi-picture JPEG (MPO) comes through the JPEG opener.
_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}  # the payload is always one of these
_ORIENTATION = 0x0112
_CORRUPT = (OSError, EOFError, SyntaxError, struct.error, zlib.error)

# `warnings.catch_warnings` swaps the process-wide filter list; two threads doing it at once
# could leave Pillow's warnings silenced for good, so decoding is serialised. Decoding takes
# milliseconds next to the model's seconds.
_DECODE_LOCK = threading.Lock()


@dataclass(frozen=True)
class PreparedImage:
    """One image made ready for the model, or the reason it cannot be used."""

    sha256: str  # of the file's bytes as on disk ("" when the file could not be read)
    payload: bytes | None  # what to send to the model (None when error)
    width: int | None  # of the payload
    height: int | None
    note: str  # "" or what was done, e.g. "rotated per EXIF"
    error: str | None  # one-line reason the image can't be used, else None
    source_pixels: int = 0  # width x height of the image as decoded, before any change
    mime: str = ""  # the payload's media type, "image/jpeg" or "image/png" ("" when error)


class _Unusable(Exception):
    """Internal: the image cannot be used; the message is the error string."""


def sha256_bytes(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def prepare_image(
    path: Path | str, *, max_side: int | None = None, data: bytes | None = None
) -> PreparedImage:
    """Read `path` (or use `data`, its bytes already read), check it and build the payload.

    `max_side` downscales (LANCZOS, aspect kept) so the longer side is at most `max_side`;
    None keeps the size. Never raises for a bad file; raises ValueError for a bad `max_side`.
    """
    if max_side is not None and (
        isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1
    ):
        raise ValueError(f"max_side must be a whole number >= 1 or None, not {max_side!r}")
    if data is None:
        read = _read_file(Path(path))
        if isinstance(read, str):
            return _failed("", read)
        data = read
    digest = sha256_bytes(data)
    if not data:
        return _failed(digest, "empty file (0 bytes)")
    try:
        with _DECODE_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _prepare(data, digest, max_side)
    except _Unusable as exc:
        return _failed(digest, str(exc))
    except Image.DecompressionBombError as exc:
        return _failed(digest, _too_large(_peek_size(data), str(exc)))
    except UnidentifiedImageError:
        return _failed(digest, "not an image: cannot identify image file")
    except _CORRUPT:
        return _failed(digest, "truncated or corrupt image")
    except Exception as exc:  # anything else Pillow may throw for a hostile file
        return _failed(digest, f"cannot decode image: {type(exc).__name__}")


def _failed(digest: str, error: str) -> PreparedImage:
    return PreparedImage(digest, None, None, None, "", error)


# ---------------------------------------------------------------------------------------
# Reading


def _read_file(path: Path) -> bytes | str:
    """The file's bytes, or the error string saying why they cannot be read."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return "is a directory"
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block forever
            return "not a regular file"
        if st.st_size > MAX_FILE_BYTES:
            return _file_too_large(st.st_size)
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return os_error_text(exc)
    except ValueError:  # e.g. a NUL character in the path
        return "symlink loop or unreadable path"
    if len(data) > MAX_FILE_BYTES:
        return _file_too_large(len(data))
    return data


def _file_too_large(size: int) -> str:
    return f"file too large: {size // 2**20} MB (limit {MAX_FILE_BYTES // 2**20} MB)"


# ---------------------------------------------------------------------------------------
# Decoding and conversion


def _prepare(data: bytes, digest: str, max_side: int | None) -> PreparedImage:
    with Image.open(io.BytesIO(data), formats=_open_formats()) as img:
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise _Unusable(_too_large((width, height)))
        if width < 1 or height < 1:
            raise _Unusable("truncated or corrupt image")
        fmt = img.format or "image"
        animated = bool(getattr(img, "is_animated", False))
        orientation = _orientation(img)
        rotate = orientation in range(2, 9)
        too_big = max_side is not None and max(width, height) > max_side
        sent_as_is = not (animated or rotate or too_big) and _passes_through(img, data)
        if sent_as_is and fmt == "JPEG":
            # The file's own bytes are sent: the check needs every scan's entropy-coded
            # data decoded (truncation and corrupt data show up there), not full-size
            # pixels, so libjpeg decodes at 1/8 scale (DCT scaling): the same errors as
            # a full decode in under half the time.
            img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
        img.load()  # decodes every pixel of the first frame: truncation shows up here

        if sent_as_is:
            return PreparedImage(digest, data, width, height, "", None, width * height, _MIME[fmt])

        steps: list[str] = []
        out: Image.Image = img
        if animated:
            steps.append(
                "used the first image of a multi-picture JPEG"
                if fmt == "MPO"
                else f"used the first frame of animated {fmt}"
            )
        if rotate:
            out = ImageOps.exif_transpose(out)
            steps.append("rotated per EXIF")
        out_format = "JPEG" if fmt in _JPEG_FORMATS else "PNG"
        out, converted, composited = _to_8bit_rgb_or_l(out, data)
        if converted:
            steps.append(f"converted {converted} {fmt} to {_describe(out.mode)} {out_format}")
        if composited:
            steps.append("composited transparency on white")
        if max_side is not None and max(out.size) > max_side:
            before = out.size
            scale = max_side / max(before)
            size = (max(1, round(before[0] * scale)), max(1, round(before[1] * scale)))
            out = out.resize(size, Image.Resampling.LANCZOS)
            steps.append(f"downscaled {before[0]}x{before[1]} to {size[0]}x{size[1]}")
        same_format = fmt == out_format or (fmt in _JPEG_FORMATS and out_format == "JPEG")
        if not steps or (not same_format and not converted):
            progressive = " progressive" if _is_progressive(img) else ""
            steps.append(f"re-encoded{progressive} {fmt} as {out_format}")

        buf = io.BytesIO()
        if out_format == "JPEG":
            out.save(buf, "JPEG", quality=JPEG_QUALITY)
        else:
            out.save(buf, "PNG")
        note = "; ".join(steps)
        return PreparedImage(
            digest, buf.getvalue(), *out.size, note, None, width * height, _MIME[out_format]
        )


def _open_formats() -> tuple[str, ...]:
    """`_FORMATS` less any this Pillow build cannot open (Image.open fails on unknown ones)."""
    Image.init()
    return tuple(fmt for fmt in _FORMATS if fmt in Image.OPEN)


def _passes_through(img: Image.Image, data: bytes) -> bool:
    """Whether the file's own bytes can be sent: baseline RGB/L JPEG or 8-bit RGB/L PNG."""
    if img.mode not in ("RGB", "L") or "transparency" in img.info:
        return False
    if img.format == "JPEG":
        return not _is_progressive(img)
    if img.format == "PNG":
        return _png_header(data) in ((8, 0), (8, 2))  # 8-bit gray or RGB
    return False


def _is_progressive(img: Image.Image) -> bool:
    return bool(img.info.get("progressive") or img.info.get("progression"))


def _png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None if not a PNG."""
    if len(data) >= 26 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return data[24], data[25]
    return None


def _orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(_ORIENTATION)
    except Exception:  # corrupt EXIF: treat as unrotated
        return None
    return value if isinstance(value, int) else None


def _to_8bit_rgb_or_l(img: Image.Image, data: bytes) -> tuple[Image.Image, str, bool]:
    """`img` as 8-bit RGB or L, any transparency composited on white.

    Returns the image, a description of what it was ("" when it already was 8-bit RGB/L),
    and whether transparency was composited.
    """
    mode = img.mode
    header = _png_header(data)
    sixteen = header is not None and header[0] == 16
    what = "16-bit " if sixteen and not mode.startswith("I") else ""
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB"), what + _describe(mode), True
    if mode in ("RGB", "L"):
        return img, ("16-bit" if sixteen else ""), False
    if mode.startswith("I") or mode == "F":
        return _scale_to_l(img, sixteen or mode.startswith("I;16")), _describe(mode), False
    if mode == "1":
        return img.convert("L"), _describe(mode), False
    return img.convert("RGB"), _describe(mode), False


def _describe(mode: str) -> str:
    """A mode as a user would say it."""
    if mode.startswith("I;16") or mode == "I":
        return "16-bit"
    return {
        "F": "32-bit float",
        "P": "palette",
        "PA": "palette",
        "1": "1-bit",
        "L": "8-bit gray",
        "LA": "gray",
        "La": "gray",
        "RGBa": "RGBA",
    }.get(mode, mode)


def _scale_to_l(img: Image.Image, sixteen_bit: bool) -> Image.Image:
    """A 16/32-bit single-channel image as 8-bit L, scaled rather than clipped."""
    wide = img.convert("F")
    extrema = wide.getextrema()[1]
    high = float(extrema) if isinstance(extrema, (int, float)) else 0.0
    if sixteen_bit or high > 255:
        factor = 255 / 65535 if sixteen_bit or high <= 65535 else 255 / high
        wide = wide.point(lambda v: v * factor)
    return wide.convert("L")


def _too_large(size: tuple[int, int] | None, message: str = "") -> str:
    if size is not None:
        return f"image too large: {size[0]}x{size[1]} pixels"
    match = re.search(r"\((\d+) pixels\)", message)
    return f"image too large: {match.group(1)} pixels" if match else "image too large"


def _peek_size(data: bytes) -> tuple[int, int] | None:
    """The declared size of an image Pillow refused as a decompression bomb.

    `Image.open` checks the size right after reading the header; the format plugins
    themselves do not, so asking them directly gives the size without touching the global
    `Image.MAX_IMAGE_PIXELS`. Best effort: None when it cannot be told.
    """
    prefix = data[:16]
    for fmt in _open_formats():
        try:
            factory, accept = Image.OPEN[fmt]
            accepted = accept is None or accept(prefix)
            if not accepted or isinstance(accepted, str):
                continue
            with factory(io.BytesIO(data), "") as img:
                width, height = img.size
                return int(width), int(height)
        except Exception:
            continue
    return None

"""Where `emoprobe view` finds each image: a link by path (the default), or a thumbnail.

A link is relative to the page where it can be (the page and the images move together,
e.g. on a USB stick), else an absolute file: URL. A thumbnail is re-encoded from the
decoded pixels with no EXIF or other metadata: the explicit opt-in to a page that holds
faces.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from PIL import Image

from emoprobe.data.images import prepare_image
from emoprobe.results.load import RunRecord
from emoprobe.results.predictions import Row

THUMBNAIL_SIDE = 96
THUMBNAIL_QUALITY = 70


def image_file(run: RunRecord, row: Row) -> Path:
    """The image's file: the row's path, under the dataset root the manifest records."""
    path = Path(row.path)
    if path.is_absolute():
        return path
    fingerprint = run.manifest.fingerprint
    root = run.manifest.dataset.root or (fingerprint.dataset_root if fingerprint else "") or ""
    return Path(root) / PurePosixPath(row.path)


def image_link(file: Path, page_folder: Path) -> str:
    """A URL for `file` from a page in `page_folder`: relative where possible."""
    file = Path(os.path.abspath(file))
    try:
        relative = os.path.relpath(file, os.path.abspath(page_folder))
    except ValueError:  # another drive (Windows): no relative path exists
        return file.as_uri()
    return quote(Path(relative).as_posix())


def thumbnail_data_uri(file: Path, side: int = THUMBNAIL_SIDE) -> str:
    """A small JPEG of the image as a data: URI, or "" when the file cannot be used."""
    prepared = prepare_image(file, max_side=side)
    if prepared.payload is None:
        return ""
    try:
        with Image.open(io.BytesIO(prepared.payload)) as image:
            small = image.convert("RGB")
    except Exception:  # a file prepare_image passed but Pillow cannot reopen
        return ""
    small.thumbnail((side, side))
    small.info.clear()
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

"""Write the page of `emoprobe view` for some runs: image sources, the HTML, the file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emoprobe.files import write_atomic
from emoprobe.reporting.view_images import image_file, image_link, thumbnail_data_uri
from emoprobe.reporting.viewer import SharedImages, share_images, view_html
from emoprobe.results.load import RunRecord


@dataclass(frozen=True)
class ViewPage:
    path: Path
    shared: SharedImages


def write_view(
    runs: Sequence[RunRecord],
    out: Path,
    *,
    embed_thumbnails: bool = False,
    title: str,
    names: Sequence[str] | None = None,
) -> ViewPage:
    """One self-contained HTML file at `out` over the images every run has: linked by
    path (no image data in the page) unless `embed_thumbnails`; `names` the runs'
    names as shown (their folders' where not given)."""
    shared = share_images(runs)
    files = [image_file(runs[0], row) for row in shared.rows[0]]
    images = [
        thumbnail_data_uri(file) if embed_thumbnails else image_link(file, out.parent)
        for file in files
    ]
    page = view_html(runs, shared, images, embedded=embed_thumbnails, title=title, names=names)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page)
    return ViewPage(out, shared)

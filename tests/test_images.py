"""Tests for emoprobe.images: reading, validating and converting one image file."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from factories import png_with_header
from PIL import Image

from emoprobe.data import images
from emoprobe.data.images import MAX_PIXELS, PreparedImage, prepare_image, sha256_bytes

SIZE = (32, 24)


def save(path: Path, img: Image.Image, fmt: str | None = None, **params: object) -> Path:
    img.save(path, fmt, **params)
    return path


def photo(mode: str = "RGB", size: tuple[int, int] = SIZE) -> Image.Image:
    """A small image with some structure, so orientation and scaling can be checked."""
    img = Image.new("RGB", size, (200, 40, 40))
    img.paste((30, 30, 220), (0, 0, size[0] // 2, size[1] // 2))
    return img.convert(mode)


def decode(prepared: PreparedImage) -> Image.Image:
    assert prepared.payload is not None
    img = Image.open(io.BytesIO(prepared.payload))
    img.load()
    assert img.size == (prepared.width, prepared.height)
    return img


def assert_failed(prepared: PreparedImage, error: str) -> None:
    assert prepared.error == error
    assert prepared.payload is None
    assert prepared.width is None and prepared.height is None
    assert prepared.note == ""


# ---------------------------------------------------------------------------------------
# Pass-through


def test_plain_rgb_jpeg_passes_through_unchanged(tmp_path: Path) -> None:
    path = save(tmp_path / "a.jpg", photo(), "JPEG")
    data = path.read_bytes()
    prepared = prepare_image(path)
    assert prepared == PreparedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        payload=data,
        width=32,
        height=24,
        note="",
        error=None,
        source_pixels=32 * 24,
        mime="image/jpeg",
    )


def test_grayscale_jpeg_and_8bit_png_pass_through(tmp_path: Path) -> None:
    for path in (
        save(tmp_path / "gray.jpg", photo("L"), "JPEG"),
        save(tmp_path / "rgb.png", photo(), "PNG"),
        save(tmp_path / "gray.png", photo("L"), "PNG"),
    ):
        prepared = prepare_image(path)
        assert prepared.payload == path.read_bytes(), path.name
        assert prepared.note == ""


def test_data_argument_is_used_instead_of_reading(tmp_path: Path) -> None:
    data = save(tmp_path / "a.jpg", photo(), "JPEG").read_bytes()
    prepared = prepare_image(tmp_path / "not-there.jpg", data=data)
    assert prepared.error is None
    assert prepared.payload == data
    assert prepared.sha256 == sha256_bytes(data)


def test_sha256_bytes() -> None:
    assert sha256_bytes(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# ---------------------------------------------------------------------------------------
# Conversions


def test_animated_gif_uses_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", SIZE, color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)
    prepared = prepare_image(path)
    assert prepared.error is None
    assert prepared.note == (
        "used the first frame of animated GIF; converted palette GIF to RGB PNG"
    )
    img = decode(prepared)
    assert img.format == "PNG" and img.mode == "RGB"
    assert img.getpixel((5, 5)) == (255, 0, 0)


def test_multi_picture_jpeg_uses_the_first_image(tmp_path: Path) -> None:
    path = tmp_path / "stereo.jpg"
    photo().save(path, "MPO", save_all=True, append_images=[Image.new("RGB", SIZE, "green")])
    prepared = prepare_image(path)
    assert prepared.error is None
    assert prepared.note == "used the first image of a multi-picture JPEG"
    img = decode(prepared)
    assert img.format == "JPEG"
    assert img.getpixel((25, 20))[2] < 100  # the first (red) image, not the green one


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    path = save(tmp_path / "cmyk.jpg", photo("CMYK"), "JPEG")
    prepared = prepare_image(path)
    assert prepared.error is None
    assert prepared.note == "converted CMYK JPEG to RGB JPEG"
    img = decode(prepared)
    assert img.format == "JPEG" and img.mode == "RGB"


def test_16bit_png_is_scaled_to_8bit(tmp_path: Path) -> None:
    path = save(tmp_path / "deep.png", Image.new("I;16", SIZE, 40000), "PNG")
    prepared = prepare_image(path)
    assert prepared.error is None
    assert prepared.note == "converted 16-bit PNG to 8-bit gray PNG"
    img = decode(prepared)
    assert img.mode == "L"
    assert img.getpixel((0, 0)) in (155, 156)  # 40000 / 65535 * 255, scaled not clipped


def test_alpha_png_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 8, 8))
    path = save(tmp_path / "alpha.png", img, "PNG")
    prepared = prepare_image(path)
    assert prepared.error is None
    assert prepared.note == ("converted RGBA PNG to RGB PNG; composited transparency on white")
    out = decode(prepared)
    assert out.mode == "RGB"
    assert out.getpixel((20, 20)) == (255, 255, 255)
    assert out.getpixel((2, 2)) == (0, 0, 255)


def test_palette_png_with_transparency_is_composited(tmp_path: Path) -> None:
    img = Image.new("P", SIZE, 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 8, 8))
    path = save(tmp_path / "p.png", img, "PNG", transparency=0)
    out = decode(prepare_image(path))
    assert out.getpixel((20, 20)) == (255, 255, 255)
    assert out.getpixel((2, 2)) == (255, 0, 0)


def test_exif_rotated_jpeg_is_transposed(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path / "rot.jpg", photo(), "JPEG", exif=exif)
    prepared = prepare_image(path)
    assert prepared.error is None
    assert prepared.note == "rotated per EXIF"
    assert (prepared.width, prepared.height) == (24, 32)  # swapped
    img = decode(prepared)
    assert img.format == "JPEG"
    assert img.getexif().get(0x0112) in (None, 1)


def test_bmp_tiff_and_webp_become_png(tmp_path: Path) -> None:
    for name, fmt in (("a.bmp", "BMP"), ("a.tif", "TIFF"), ("a.webp", "WEBP")):
        path = save(tmp_path / name, photo(), fmt)
        prepared = prepare_image(path)
        assert prepared.error is None, name
        assert prepared.note == f"re-encoded {fmt} as PNG"
        assert decode(prepared).format == "PNG"


def test_progressive_jpeg_is_reencoded(tmp_path: Path) -> None:
    path = save(tmp_path / "prog.jpg", photo(), "JPEG", progressive=True)
    prepared = prepare_image(path)
    assert prepared.note == "re-encoded progressive JPEG as JPEG"
    assert prepared.payload != path.read_bytes()


def test_max_side_downscales_keeping_aspect(tmp_path: Path) -> None:
    path = save(tmp_path / "big.jpg", photo(size=(1280, 720)), "JPEG")
    prepared = prepare_image(path, max_side=640)
    assert prepared.error is None
    assert prepared.note == "downscaled 1280x720 to 640x360"
    assert (prepared.width, prepared.height) == (640, 360)
    assert decode(prepared).format == "JPEG"
    assert prepared.sha256 == sha256_bytes(path.read_bytes())  # of the file, not the payload


def test_max_side_none_or_larger_keeps_the_file(tmp_path: Path) -> None:
    path = save(tmp_path / "a.jpg", photo(size=(100, 50)), "JPEG")
    assert prepare_image(path).payload == path.read_bytes()
    assert prepare_image(path, max_side=100).payload == path.read_bytes()


def test_rotation_and_downscale_notes_combine(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    path = save(tmp_path / "a.jpg", photo(size=(200, 100)), "JPEG", exif=exif)
    prepared = prepare_image(path, max_side=50)
    assert prepared.note == "rotated per EXIF; downscaled 100x200 to 25x50"
    assert (prepared.width, prepared.height) == (25, 50)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_max_side_is_a_programming_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="max_side"):
        prepare_image(tmp_path / "a.jpg", max_side=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# Bad files


def test_missing_file(tmp_path: Path) -> None:
    prepared = prepare_image(tmp_path / "nope.jpg")
    assert_failed(prepared, "file not found")
    assert prepared.sha256 == ""


def test_directory_named_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    assert_failed(prepare_image(tmp_path / "dir.jpg"), "is a directory")


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads through chmod 000, so the refusal is simulated at the open() call.
    path = save(tmp_path / "a.jpg", photo(), "JPEG")

    def refuse(file: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(images, "open", refuse, raising=False)
    assert_failed(prepare_image(path), "permission denied")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores chmod 000"
)
def test_permission_denied_for_real(tmp_path: Path) -> None:
    path = save(tmp_path / "a.jpg", photo(), "JPEG")
    path.chmod(0)
    try:
        assert_failed(prepare_image(path), "permission denied")
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop(tmp_path: Path) -> None:
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    assert_failed(prepare_image(tmp_path / "loop.jpg"), "symlink loop or unreadable path")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block forever
    assert_failed(prepare_image(tmp_path / "pipe.jpg"), "not a regular file")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    prepared = prepare_image(tmp_path / "empty.jpg")
    assert_failed(prepared, "empty file (0 bytes)")
    assert prepared.sha256 == sha256_bytes(b"")


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = save(tmp_path / "full.jpg", photo(size=(64, 64)), "JPEG").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    prepared = prepare_image(tmp_path / "cut.jpg")
    assert_failed(prepared, "truncated or corrupt image")
    assert prepared.sha256 == sha256_bytes(data[: len(data) // 2])


def test_text_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("this is not an image\n")
    assert_failed(prepare_image(tmp_path / "fake.jpg"), "not an image: cannot identify image file")


def test_decompression_bomb_png(tmp_path: Path) -> None:
    # Past Pillow's own bomb limit: Image.open itself refuses it.
    (tmp_path / "bomb.png").write_bytes(png_with_header(20000, 20000))
    before = Image.MAX_IMAGE_PIXELS
    assert_failed(prepare_image(tmp_path / "bomb.png"), "image too large: 20000x20000 pixels")
    assert before == Image.MAX_IMAGE_PIXELS  # the global limit is left alone


def test_image_over_max_pixels_but_under_pillows_limit(tmp_path: Path) -> None:
    side = int(MAX_PIXELS**0.5) + 100
    (tmp_path / "large.png").write_bytes(png_with_header(side, side))
    assert_failed(prepare_image(tmp_path / "large.png"), f"image too large: {side}x{side} pixels")


def test_unexpected_pillow_failure_names_the_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(tmp_path / "a.jpg", photo(), "JPEG")

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyError("internal")

    monkeypatch.setattr(images.Image, "open", explode)
    assert_failed(prepare_image(path), "cannot decode image: KeyError")


def test_format_outside_the_allowed_set_is_not_an_image(tmp_path: Path) -> None:
    path = save(tmp_path / "face.jpg", photo(), "PPM")  # a real image, but not a web format
    assert_failed(prepare_image(path), "not an image: cannot identify image file")


def test_bad_files_never_warn_or_print(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bomb.png").write_bytes(png_with_header(12000, 12000))  # Pillow would warn
    (tmp_path / "fake.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("bomb.png", "fake.jpg"):
            prepared = prepare_image(tmp_path / name)
            assert prepared.error is not None
            assert "\n" not in prepared.error
    assert capsys.readouterr() == ("", "")


def test_concurrent_calls_leave_the_warning_filters_alone(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(png_with_header(12000, 12000))
    good = save(tmp_path / "a.png", photo("RGBA"), "PNG")
    filters = list(warnings.filters)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(prepare_image, [tmp_path / "bomb.png", good] * 16))
    assert {r.error for r in results} == {"image too large: 12000x12000 pixels", None}
    assert warnings.filters == filters

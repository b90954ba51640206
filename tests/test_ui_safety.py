"""Path guard, photo-id parsing and upload decoding of the web UI."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from indexer.core.errors import ImageError, UnsafePathError
from ui.safety import PathGuard, decode_upload, parse_photo_id


def _jpeg(path: Path, size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG")
    return path


def _png_bytes(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def layout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "photos"
    outside = tmp_path / "private"
    _jpeg(root / "a" / "inside.jpg")
    _jpeg(outside / "secret.jpg")
    return root, outside


def test_guard_accepts_a_file_inside_a_root(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    guard = PathGuard([root])
    assert guard.resolve(root / "a" / "inside.jpg") == (root / "a" / "inside.jpg").resolve()


def test_guard_rejects_a_file_outside_every_root(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    with pytest.raises(UnsafePathError):
        PathGuard([root]).resolve(outside / "secret.jpg")


def test_guard_rejects_dot_dot_even_when_it_lands_inside(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    guard = PathGuard([root])
    with pytest.raises(UnsafePathError):
        guard.resolve(f"{root}/a/../a/inside.jpg")
    with pytest.raises(UnsafePathError):
        guard.resolve(f"{root}/../private/secret.jpg")


def test_guard_rejects_relative_empty_and_nul_paths(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    guard = PathGuard([root])
    for bad in ("a/inside.jpg", "", "/etc/passwd", f"{root}/a/inside.jpg\x00.png"):
        with pytest.raises(UnsafePathError):
            guard.resolve(bad)


def test_guard_rejects_a_symlink_pointing_out_of_the_root(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    link = root / "a" / "link.jpg"
    os.symlink(outside / "secret.jpg", link)
    dir_link = root / "escape"
    os.symlink(outside, dir_link)
    guard = PathGuard([root])
    with pytest.raises(UnsafePathError):
        guard.resolve(link)
    with pytest.raises(UnsafePathError):
        guard.resolve(dir_link / "secret.jpg")
    assert not guard.inside_roots(link)


def test_guard_accepts_a_symlink_that_stays_inside(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    link = root / "alias.jpg"
    os.symlink(root / "a" / "inside.jpg", link)
    assert PathGuard([root]).resolve(link) == (root / "a" / "inside.jpg").resolve()


def test_guard_refuses_directories_and_symlink_loops(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    loop = root / "loop.jpg"
    os.symlink(loop, loop)
    guard = PathGuard([root])
    for bad in (root / "a", loop):
        with pytest.raises(UnsafePathError):
            guard.resolve(bad)


def test_guard_with_no_roots_allows_nothing(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    guard = PathGuard([root / "does-not-exist"])
    assert guard.roots == ()
    with pytest.raises(UnsafePathError):
        guard.resolve(root / "a" / "inside.jpg")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        (5, 5),
        ("-1", None),
        (-3, None),
        ("1e3", None),
        ("../x", None),
        ("/etc/passwd", None),
        ("", None),
        (None, None),
        (True, None),
        ("9" * 19, None),
        (["1"], None),
    ],
)
def test_parse_photo_id_accepts_only_plain_non_negative_integers(raw: object, expected: int | None) -> None:
    assert parse_photo_id(raw) == expected


def test_decode_upload_applies_exif_orientation() -> None:
    image = Image.new("RGB", (60, 20), (0, 128, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    decoded = decode_upload(buf.getvalue(), max_bytes=10**6, max_pixels=10**6)
    assert decoded.size == (20, 60)
    assert decoded.mode == "RGB"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (_png_bytes((32, 32))[:60], "damaged"),
    ],
)
def test_decode_upload_turns_bad_files_into_friendly_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(ImageError, match=fragment):
        decode_upload(data, max_bytes=10**6, max_pixels=10**6)


def test_decode_upload_limits_bytes_before_decoding() -> None:
    data = _png_bytes((64, 64))
    with pytest.raises(ImageError, match="too large"):
        decode_upload(data, max_bytes=len(data) - 1, max_pixels=10**6)


def test_decode_upload_limits_pixels_from_the_header() -> None:
    data = _png_bytes((400, 300), mode="1")  # tiny file, many pixels
    with pytest.raises(ImageError, match="megapixels"):
        decode_upload(data, max_bytes=10**6, max_pixels=100_000)
    assert decode_upload(data, max_bytes=10**6, max_pixels=120_000).size == (400, 300)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16", "L"])
def test_decode_upload_returns_rgb_for_every_mode(mode: str) -> None:
    buf = io.BytesIO()
    image = Image.new(mode, (16, 16))
    image.save(buf, "TIFF" if mode == "CMYK" else "PNG")
    decoded = decode_upload(buf.getvalue(), max_bytes=10**6, max_pixels=10**6)
    assert decoded.mode == "RGB" and decoded.size == (16, 16)


def test_decode_upload_takes_the_first_frame_of_an_animation() -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    decoded = decode_upload(buf.getvalue(), max_bytes=10**6, max_pixels=10**6)
    r, _, b = decoded.getpixel((5, 5))
    assert r > 200 and b < 50

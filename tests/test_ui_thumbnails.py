"""Disk-cached thumbnails: EXIF orientation, cache keys, refusal outside the roots."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ui.config import UiConfig
from ui.safety import PathGuard
from ui.thumbnails import ThumbnailCache, ThumbSpec, placeholder, render

GRID = ThumbSpec(64, square=True)
PREVIEW = ThumbSpec(96, square=False)


def _photo(path: Path, size: tuple[int, int] = (300, 100), orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (220, 30, 30))
    image.paste((30, 30, 220), (0, 0, size[0] // 2, size[1]))  # left half blue
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, "JPEG", exif=exif.tobytes())
    else:
        image.save(path, "JPEG")
    return path


def _cache(tmp_path: Path, root: Path) -> ThumbnailCache:
    return ThumbnailCache(tmp_path / "data" / "thumbnails", PathGuard([root]))


def test_preview_keeps_the_aspect_ratio_and_grid_thumbnail_is_square(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p" / "wide.jpg")
    assert render(photo, PREVIEW).size == (96, 32)
    assert render(photo, GRID).size == (64, 64)


def test_thumbnail_applies_exif_orientation(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p" / "rotated.jpg", orientation=6)  # displayed 90° clockwise: tall
    thumb = render(photo, PREVIEW)
    assert thumb.size == (32, 96)
    top = thumb.getpixel((16, 5))
    assert top[2] > top[0]  # the left (blue) half of the stored image is on top once rotated


def test_thumbnail_is_written_once_under_the_data_dir_and_reused(tmp_path: Path) -> None:
    root = tmp_path / "p"
    photo = _photo(root / "a.jpg")
    cache = _cache(tmp_path, root)
    first = cache.get(7, str(photo), GRID)
    assert first is not None and first.is_file()
    assert first.is_relative_to(tmp_path / "data" / "thumbnails")
    stamp = first.stat().st_mtime_ns
    second = cache.get(7, str(photo), GRID)
    assert second == first and second.stat().st_mtime_ns == stamp
    with Image.open(first) as image:
        assert image.size == (64, 64)


def test_changed_original_gets_a_new_thumbnail_and_the_stale_one_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "p"
    photo = _photo(root / "a.jpg")
    cache = _cache(tmp_path, root)
    old = cache.get(3, str(photo), GRID)
    _photo(photo, size=(120, 240))
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    new = cache.get(3, str(photo), GRID)
    assert old is not None and new is not None and new != old
    assert not old.exists() and new.exists()


def test_grid_and_preview_sizes_are_cached_side_by_side(tmp_path: Path) -> None:
    root = tmp_path / "p"
    photo = _photo(root / "a.jpg")
    cache = _cache(tmp_path, root)
    grid, preview = cache.get(1, str(photo), GRID), cache.get(1, str(photo), PREVIEW)
    assert grid is not None and preview is not None and grid != preview
    assert grid.exists() and preview.exists()


def test_no_thumbnail_for_a_file_outside_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "p"
    _photo(root / "a.jpg")
    secret = _photo(tmp_path / "private" / "s.jpg")
    os.symlink(secret, root / "link.jpg")
    cache = _cache(tmp_path, root)
    assert cache.get(1, str(secret), GRID) is None
    assert cache.get(2, str(root / "link.jpg"), GRID) is None
    assert cache.get(3, f"{root}/../private/s.jpg", GRID) is None
    assert not (tmp_path / "data" / "thumbnails").exists()


def test_missing_or_corrupt_original_gives_none_not_an_exception(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cache = _cache(tmp_path, root)
    assert cache.get(1, str(root / "gone.jpg"), GRID) is None
    assert cache.get(2, str(root / "broken.jpg"), GRID) is None


def test_placeholder_is_a_square_of_the_requested_size() -> None:
    assert placeholder(48).size == (48, 48)


def test_config_reads_positive_integers_from_the_environment_and_ignores_junk() -> None:
    cfg = UiConfig.from_env(
        {"DUALENS_UI_PAGE_SIZE": "6", "DUALENS_UI_THUMB_PX": "-5", "DUALENS_UI_MAX_RESULTS": "x"}
    )
    assert cfg.page_size == 6
    assert cfg.thumb_px == UiConfig().thumb_px
    assert cfg.max_results == UiConfig().max_results
    assert UiConfig(max_upload_bytes=1).max_upload_mb == 1

"""Every format a photo library holds, generated small and real, through index -> search -> thumbnail;
and a folder laid out like rclip's end-to-end test images (spaces, capitals, Unicode, nesting,
RAW next to the rest, a text file) indexed completely."""

from __future__ import annotations

from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from indexer.core.imaging import open_image
from indexer.pipeline import IndexOptions, run_index
from search.searcher import Searcher
from tests.helpers.images import pattern, save_dng
from ui.thumbnails import ThumbSpec, render


def _write(path: Path, seed: int) -> None:
    """A photo-like file of the format its extension names (first frame / page distinct from later ones)."""
    pillow_heif.register_heif_opener()
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pattern((64, 48), seed=seed)
    suffix = path.suffix.lower()
    if suffix == ".dng":
        save_dng(path, image, preview="no preview" not in path.name)
    elif suffix == ".gif" and "animated" in path.name:
        image.save(path, save_all=True, append_images=[pattern((64, 48), seed=seed + 100)], duration=100)
    elif suffix in (".tif", ".tiff"):
        image.save(path, save_all=True, append_images=[pattern((64, 48), seed=seed + 100)])
    elif suffix == ".pbm":
        image.convert("1").save(path)
    elif suffix == ".pgm":
        image.convert("L").save(path)
    elif suffix in (".pnm", ".ppm"):
        image.save(path, "PPM")
    elif suffix == ".jp2":
        image.save(path, "JPEG2000")
    elif suffix in (".heic", ".heif"):
        image.save(path, "HEIF")
    else:
        image.save(path)


RCLIP_LIKE = [
    "images/bee.bmp", "images/bee.gif", "images/bee.heic", "images/bee.jp2", "images/bee.jpg",
    "images/bee.pbm", "images/bee.pgm", "images/bee.ppm", "images/bee.tif", "images/bee_animated.gif",
    "images/black cat sleeping on a chair.JPG", "images/black kitty.jpeg", "images/black_cat_sleeping.tiff",
    "images/boats_on_a_lake.pnm", "images/tree.webp", "images/modern.avif", "images/boats on a lake.png",
    "images raw/DSC08882.dng", "images raw/camera no preview.DNG",
    "images unicode/鳥鳥.png", "images nested directories/cats/black cat at night.jpg",
    "images nested directories/misc/books.jpg",
]  # fmt: skip


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rclip-like")
    for seed, name in enumerate(RCLIP_LIKE):
        _write(root / name, seed)
    (root / "images" / "not-an-image.txt").write_text("hello")
    data = root.parent / (root.name + "-data")
    summary = run_index(data, [root], IndexOptions(model=str(tiny_model_dir), workers=0))
    assert (summary.indexed, summary.failed) == (len(RCLIP_LIKE), 0)
    return root, data


def test_every_readable_file_of_an_rclip_like_folder_is_indexed_and_found(library: tuple[Path, Path]) -> None:
    root, data = library
    with Searcher.open(data) as searcher:
        hits = searcher.search("a photo", k=100)
    assert sorted(Path(h.path).relative_to(root).as_posix() for h in hits) == sorted(RCLIP_LIKE)
    types = {Path(h.path).name: h.file_type for h in hits}
    assert types["DSC08882.dng"] == "raw" and types["bee.jp2"] == "jp2" and types["bee.heic"] == "heic"


@pytest.mark.parametrize("name", RCLIP_LIKE)
def test_each_format_renders_a_thumbnail_of_its_first_frame(library: tuple[Path, Path], name: str) -> None:
    root, _ = library
    thumb = render(root / name, ThumbSpec(32, square=True))
    assert thumb.size == (32, 32)
    # the first frame or page, and for RAW the photo itself (its preview, or the developed sensor data)
    expected = (
        pattern((64, 48), seed=RCLIP_LIKE.index(name)).convert("RGB").resize((1, 1), Image.Resampling.BOX)
    )
    got = render(root / name, ThumbSpec(48, square=False)).convert("RGB").resize((1, 1), Image.Resampling.BOX)
    if Path(name).suffix.lower() not in (".pbm", ".pgm"):  # greyscale formats lose the colour
        assert (
            max(abs(a - b) for a, b in zip(got.getpixel((0, 0)), expected.getpixel((0, 0)), strict=True)) < 40
        )


def test_a_raw_file_uses_its_preview_with_the_cameras_orientation_and_exif(tmp_path: Path) -> None:
    image = pattern((64, 48), seed=3)
    image.paste((0, 0, 255), (0, 0, 21, 16))  # a blue block at the top left, as stored
    path = save_dng(tmp_path / "IMG_0001.dng", image, orientation=6)  # shown rotated 90° clockwise
    picture = open_image(path, name="raw")
    assert (picture.width, picture.height) == (48, 64)
    assert picture.image.getpixel((40, 4))[2] > 200  # the block is now at the top right
    assert (picture.meta.camera_make, picture.meta.camera_model) == ("Acme", "RawCam 1")
    assert picture.meta.taken_at is not None and picture.meta.taken_at.year == 2021


def test_a_damaged_raw_file_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    from indexer.core.errors import ImageError

    path = save_dng(tmp_path / "broken.cr2")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match=r"broken\.cr2 is a RAW file LibRaw cannot read"):
        open_image(path, name="broken.cr2")

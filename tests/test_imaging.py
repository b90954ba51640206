"""One imaging path for every reader: the same pixels for indexing, evaluation, training and queries."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.core.errors import ImageError, ImageProblem
from indexer.core.imaging import (
    check_decode_cost,
    file_type,
    is_image_name,
    jpeg_scans,
    open_image,
    supported_extensions,
    to_rgb,
)
from indexer.decode import Decoded, DecodeOptions, DecodeTask, decode_file
from indexer.quality.evaluate import EvalOptions, embed_image_files
from indexer.quality.train_features import image_pixels as training_pixels
from search.images import load_image
from tests.helpers.fake_encoder import FAKE_PREPROCESS, FakeEncoder
from tests.helpers.images import Exif, pattern, save_jpeg, save_png16, write_truncated_jpeg
from ui.safety import decode_upload
from ui.thumbnails import ThumbSpec, render


class RecordingEncoder(FakeEncoder):
    """Remembers the pixels it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        self.seen.extend(np.asarray(pixel_values, dtype=np.float32))
        return super().embed_pixels(pixel_values)


@pytest.fixture
def rotated_photo(tmp_path: Path) -> Path:
    """A 96x64 photo stored sideways with EXIF orientation 6 (shown 64x96)."""
    return save_jpeg(tmp_path / "sideways.jpg", pattern((96, 64), seed=3), exif=Exif(orientation=6))


def test_evaluation_sees_exactly_the_pixels_the_indexer_embeds(rotated_photo: Path) -> None:
    indexed = decode_file(DecodeTask(0, str(rotated_photo)), DecodeOptions(FAKE_PREPROCESS))
    assert isinstance(indexed, Decoded) and (indexed.width, indexed.height) == (64, 96)
    encoder = RecordingEncoder()
    embed_image_files(encoder, [rotated_photo], EvalOptions(cache_dir=None))
    (evaluated,) = encoder.seen
    # float16 is only the transfer format between decode workers and the model
    np.testing.assert_allclose(evaluated, indexed.pixels.astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(training_pixels(rotated_photo, FAKE_PREPROCESS), evaluated, atol=0)


def test_every_reader_applies_the_exif_orientation(rotated_photo: Path, tmp_path: Path) -> None:
    upright = open_image(rotated_photo).image
    assert upright.size == (64, 96)
    assert load_image(rotated_photo).size == (64, 96)
    assert decode_upload(rotated_photo.read_bytes(), max_bytes=1 << 20, max_pixels=10**6).size == (64, 96)
    assert render(rotated_photo, ThumbSpec(200, square=False)).size == (64, 96)
    sideways = np.asarray(Image.open(rotated_photo).convert("RGB"))
    assert np.abs(np.asarray(upright, np.int16) - np.rot90(sideways, k=-1)).mean() < 1.0


def test_sixteen_bit_greyscale_has_one_rule_and_is_not_washed_out(tmp_path: Path) -> None:
    path = save_png16(tmp_path / "deep.png")
    raw = np.asarray(Image.open(path), dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.open(path)))
    np.testing.assert_array_equal(rgb[..., 0], (raw >> 8).astype(np.uint8))
    assert np.asarray(open_image(path).image).tolist() == rgb.tolist()
    assert np.asarray(load_image(path)).tolist() == rgb.tolist()


def test_a_small_target_size_decodes_a_large_jpeg_at_reduced_scale(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "big.jpg", pattern((2000, 1500)), quality=80)
    picture = open_image(path, min_side=100)
    assert (picture.width, picture.height) == (2000, 1500)
    assert min(picture.image.size) >= 100 and max(picture.image.size) <= 2000 // 8 + 1


def test_a_damaged_file_is_an_image_error_with_its_kind(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as info:
        open_image(write_truncated_jpeg(tmp_path / "cut.jpg"), name="the photo")
    assert info.value.kind is ImageProblem.TRUNCATED and str(info.value).startswith("the photo is damaged")
    with pytest.raises(ImageError) as info:
        open_image(b"not an image")
    assert info.value.kind is ImageProblem.NOT_IMAGE


def test_one_extension_list_serves_scanning_queries_and_datasets() -> None:
    assert file_type("holiday/IMG_001.JPEG") == "jpg" and file_type("notes.txt") is None
    assert all(is_image_name(f"x{ext}") for ext in supported_extensions())
    assert is_image_name("phone.heic") and not is_image_name("movie.mp4")


def test_the_date_taken_keeps_exif_fractions_of_a_second(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2024:07:14 18:30:07"
    exif.get_ifd(0x8769)[0x9291] = "25"
    path = tmp_path / "burst.jpg"
    pattern((32, 24), seed=1).save(path, "JPEG", exif=exif.tobytes())
    taken = open_image(path).meta.taken_at
    assert taken is not None and (taken.second, taken.microsecond) == (7, 250000)
    exif.get_ifd(0x8769)[0x9291] = "garbage"
    pattern((32, 24), seed=1).save(path, "JPEG", exif=exif.tobytes())
    assert open_image(path).meta.taken_at == taken.replace(microsecond=0)


# ---------------------------------------------------------------- the decode cost of a JPEG
def _progressive(size: tuple[int, int], claimed: tuple[int, int] | None = None) -> bytes:
    """A progressive RGB JPEG (Pillow writes 10 scans), its frame header optionally claiming ``claimed``."""
    buf = io.BytesIO()
    pattern(size, seed=5).save(buf, "JPEG", progressive=True, quality=85)
    data = buf.getvalue()
    if claimed is not None:
        sof = data.index(b"\xff\xc2")
        width, height = claimed
        data = data[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9 :]
    return data


@pytest.mark.parametrize("claimed", [(4000, 3000), (8000, 6000), (16000, 11000)])
def test_ordinary_progressive_photos_pass_the_decode_cost_check(claimed: tuple[int, int]) -> None:
    data = _progressive((64, 48), claimed)  # 12, 48 and 176 megapixels with Pillow's 10 scans
    found = jpeg_scans(data)
    assert found is not None and (found.scans, found.width, found.height) == (10, *claimed)
    check_decode_cost(data)


def test_a_real_progressive_photo_decodes() -> None:
    data = _progressive((640, 480))
    assert open_image(data).image.size == (640, 480)


def test_scans_of_an_embedded_thumbnail_and_after_the_image_are_not_counted() -> None:
    photo, thumbnail = _progressive((64, 48)), _progressive((16, 12))
    app1 = b"Exif\x00\x00" + thumbnail * 30  # 300 scans inside one APP1 segment
    assert len(app1) < 65_000
    data = photo[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + photo[2:]
    data += thumbnail * 30  # and 300 more after the image's EOI (a second MPO frame, a video)
    found = jpeg_scans(data)
    assert found is not None and found.scans == 10 and (found.width, found.height) == (64, 48)
    check_decode_cost(data)
    assert open_image(data).image.size == (64, 48)


def test_a_jpeg_of_countless_marker_segments_is_refused_before_decoding() -> None:
    photo = _progressive((64, 48))
    data = photo[:2] + b"\xff\xfe\x00\x02" * 50_000 + photo[2:]  # 50,000 empty comments
    with pytest.raises(ImageError) as refused:
        check_decode_cost(data)
    assert refused.value.kind is ImageProblem.TOO_SLOW


@pytest.mark.parametrize("filler", [b"\xff", b"\xff\x00", b"\xff\xd0", b"\x00"])
def test_the_decode_cost_check_takes_linear_time_on_any_bytes(filler: bytes) -> None:
    photo = _progressive((64, 48))
    sos = photo.index(b"\xff\xda")
    scan_start = sos + 2 + int.from_bytes(photo[sos + 2 : sos + 4], "big")
    body = filler * ((4 << 20) // len(filler))  # inside the first scan's entropy-coded data
    data = photo[:scan_start] + body + b"\x00" + photo[scan_start:]
    start = time.perf_counter()
    found = jpeg_scans(data)
    assert time.perf_counter() - start < 2.0  # ~0.2 s; a search that backtracked would take hours
    assert found is not None and found.scans >= 1

"""The fast preprocessing path against the models' own (Hugging Face) image processors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.core.models import PreprocessConfig, preprocess_image
from indexer.core.models.default_spec import DEFAULT_PREPROCESS, VISION_TOWERS

IMAGENET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-sample"
SKIMAGE_PHOTOS = ("chelsea", "rocket", "coffee", "astronaut")


def _photos() -> list[Image.Image]:
    """Real photos: scikit-image's bundled ones, plus a few imagenet-sample JPEGs when present."""
    import skimage.data

    photos = [Image.fromarray(getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS]
    photos.append(Image.open(Path(skimage.data.data_dir) / "motorcycle_left.png").convert("RGB"))
    if IMAGENET.is_dir():
        for path in sorted(IMAGENET.glob("*.JPEG"))[:400:80]:
            with Image.open(path) as image:
                photos.append(image.convert("RGB"))
    return photos


def _processors() -> dict[str, object]:
    from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil, ViTImageProcessorPil

    return {
        "clip": CLIPImageProcessorPil(),  # shortest edge 224 + center crop, bicubic
        "siglip": SiglipImageProcessorPil(size={"height": 256, "width": 256}),  # squash, bicubic
        "vit": ViTImageProcessorPil(),  # squash, bilinear
        "odd-crop": CLIPImageProcessorPil(
            size={"shortest_edge": 231}, crop_size={"height": 197, "width": 211}
        ),
    }


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return _photos()


@pytest.mark.parametrize("name", list(_processors()))
def test_fast_path_matches_processor_within_1e_2_per_pixel(name: str, photos: list[Image.Image]) -> None:
    processor = _processors()[name]
    cfg = PreprocessConfig.from_processor(processor)
    for photo in photos:
        # the photos as a decoder would hand them over: already downscaled to a thumbnail
        small = photo.copy()
        small.thumbnail((320, 320))
        for image in (photo, small):
            expected = processor(images=image, return_tensors="np")["pixel_values"][0]  # type: ignore[operator]
            actual = preprocess_image(image, cfg)
            assert actual.shape == expected.shape == (3, *cfg.size)
            assert actual.dtype == np.float32
            assert np.abs(actual - expected).max() < 1e-2


def test_tiny_model_configs_match_their_processors(tiny_clip_dir: Path, tiny_siglip_dir: Path) -> None:
    from transformers import AutoImageProcessor

    photo = _photos()[0]
    for model_dir in (tiny_clip_dir, tiny_siglip_dir):
        processor = AutoImageProcessor.from_pretrained(model_dir)
        cfg = PreprocessConfig.from_pretrained(str(model_dir))
        expected = processor(images=photo, return_tensors="np")["pixel_values"][0]
        assert np.abs(preprocess_image(photo, cfg) - expected).max() < 1e-2


def test_predownscaled_photo_with_original_size_stays_close(photos: list[Image.Image]) -> None:
    """Shrinking to the draft size first changes the resampling, not the geometry: small mean error."""
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil()
    cfg = PreprocessConfig.from_processor(processor)
    std = np.asarray(cfg.std, dtype=np.float32)[:, None, None]
    for photo in photos:
        expected = processor(images=photo, return_tensors="np")["pixel_values"][0]
        small = photo.copy()
        width, height = cfg.draft_size()
        scale = max(width / photo.width, height / photo.height)
        small.thumbnail((int(photo.width * scale) + 1, int(photo.height * scale) + 1))
        assert min(small.size) >= cfg.resize_shortest_edge  # type: ignore[operator]
        actual = preprocess_image(small, cfg, original_size=photo.size)
        assert actual.shape == expected.shape
        assert float(np.mean(np.abs(actual - expected) * std)) < 1e-2  # in 0..1 pixel units


def test_transparency_is_composited_onto_white_like_the_processor() -> None:
    from transformers import SiglipImageProcessorPil

    processor = SiglipImageProcessorPil(size={"height": 8, "width": 8})
    cfg = PreprocessConfig.from_processor(processor)
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 8, 16))
    expected = processor(images=rgba, return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(preprocess_image(rgba, cfg), expected, atol=1e-5)
    gray = Image.new("L", (20, 10), 128)
    assert preprocess_image(gray, cfg).shape == (3, 8, 8)


def test_images_smaller_than_the_crop_are_zero_padded_like_the_processor() -> None:
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(size={"shortest_edge": 10}, crop_size={"height": 12, "width": 12})
    cfg = PreprocessConfig.from_processor(processor)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (10, 30, 3), dtype=np.uint8))
    expected = processor(images=image, return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(preprocess_image(image, cfg), expected, atol=1e-5)


def test_config_is_picklable_and_draft_size_covers_the_resize() -> None:
    assert pickle.loads(pickle.dumps(DEFAULT_PREPROCESS)) == DEFAULT_PREPROCESS
    edge = DEFAULT_PREPROCESS.resize_shortest_edge
    assert DEFAULT_PREPROCESS.draft_size() == (edge, edge)
    assert VISION_TOWERS["efficientnet-lite0"].preprocess().draft_size() == (256, 256)  # 224 * 256 / 224
    assert VISION_TOWERS["efficientnet-lite2"].preprocess().draft_size() == (297, 297)  # 260 * 256 / 224
    squash = PreprocessConfig((384, 320), None, (0.5,) * 3, (0.5,) * 3, 3, 1 / 255)
    assert squash.draft_size() == (320, 384)

"""Fast image preprocessing read off a model's own image-processor config.

The Hugging Face processors convert every image to a numpy array, back to PIL, resize, crop and
normalise one image at a time. :func:`preprocess_image` does the same arithmetic straight on the
PIL image (one resize, one crop, one vectorised normalise), so it can run in decoder worker
processes on images that were already shrunk with JPEG draft mode or ``thumbnail``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from indexer.core.errors import ModelError
from indexer.core.imaging import Picture, Source, open_image, to_rgb
from indexer.core.limits import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class PreprocessConfig:
    """What a model's image processor does, as plain picklable numbers."""

    size: tuple[int, int]  # (height, width) fed to the model
    resize_shortest_edge: int | None  # CLIP-style resize + center crop; None: resize straight to `size`
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int  # PIL resample filter
    rescale_factor: float  # usually 1/255
    # SigLIP 2 (NaFlex): the model takes the image as a grid of patch_size patches. dualens feeds it
    # one fixed square grid (the processor's max_num_patches), which its processor also gives for a
    # square photo; other aspect ratios are resized to the square, as SigLIP 1 does.
    patch_size: int | None = None

    @classmethod
    def from_pretrained(cls, location: str | os.PathLike[str]) -> PreprocessConfig:
        """Read the image-processor config of a model directory or hub id (already resolved:
        see :func:`indexer.core.models.resolve.resolve_model`, which knows the default's)."""
        from transformers import AutoImageProcessor

        try:
            processor = AutoImageProcessor.from_pretrained(os.fspath(location))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(
                f"cannot read the image processor of model {os.fspath(location)!r}: {exc}"
            ) from exc
        return cls.from_processor(processor)

    @classmethod
    def from_processor(cls, processor: Any) -> PreprocessConfig:
        """Translate a Hugging Face image processor (slow or fast backend) into a config."""
        max_patches, patch = (
            getattr(processor, "max_num_patches", None),
            getattr(processor, "patch_size", None),
        )
        if max_patches and patch:
            grid = math.isqrt(int(max_patches))
            side = grid * int(patch)
            return cls(
                (side, side),
                None,
                _triple(processor.image_mean),
                _triple(processor.image_std),
                int(_resample_int(getattr(processor, "resample", Image.Resampling.BILINEAR))),
                float(getattr(processor, "rescale_factor", 1 / 255)),
                patch_size=int(patch),
            )
        size = _as_dict(getattr(processor, "size", None))
        crop = _as_dict(getattr(processor, "crop_size", None))
        do_crop = bool(getattr(processor, "do_center_crop", False)) and crop.get("height") is not None
        shortest = size.get("shortest_edge")
        if shortest is not None:
            out = (int(crop["height"]), int(crop["width"])) if do_crop else (int(shortest), int(shortest))
            resize_shortest: int | None = int(shortest)
        elif size.get("height") is not None and size.get("width") is not None:
            resize_shortest = None
            out = (int(size["height"]), int(size["width"]))
            # Chinese-CLIP resizes to the crop size, so its crop is a no-op; a real crop is not supported
            if do_crop and (int(crop["height"]), int(crop["width"])) != out:
                raise ModelError(
                    "image processors that resize to a fixed size and then crop are not supported"
                )
        else:
            raise ModelError(f"unsupported image processor size {size!r}")
        if getattr(processor, "do_resize", True) is False:
            raise ModelError("image processors without resizing are not supported")
        do_normalize = getattr(processor, "do_normalize", True)
        mean = _triple(processor.image_mean) if do_normalize else (0.0, 0.0, 0.0)
        std = _triple(processor.image_std) if do_normalize else (1.0, 1.0, 1.0)
        do_rescale = getattr(processor, "do_rescale", True)
        rescale = float(getattr(processor, "rescale_factor", 1 / 255)) if do_rescale else 1.0
        resample = getattr(processor, "resample", None)
        resample = int(Image.Resampling.BILINEAR if resample is None else _resample_int(resample))
        return cls(out, resize_shortest, mean, std, resample, rescale)

    def draft_size(self) -> tuple[int, int]:
        """The smallest (width, height) a decoder must deliver (for JPEG draft mode / ``thumbnail``).

        An image whose both sides are at least this large keeps its shortest edge at or above the
        resize target, so the final resize only ever shrinks it.
        """
        height, width = self.size
        edge = self.resize_shortest_edge or 0
        return max(width, edge), max(height, edge)


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, int):
        return {"height": value, "width": value}
    # transformers' SizeDict
    keys = ("height", "width", "shortest_edge", "longest_edge")
    return {k: getattr(value, k) for k in keys if getattr(value, k, None) is not None}


def _triple(value: Any) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value), float(value)
    values = [float(v) for v in value]
    if len(values) != 3:
        raise ModelError(f"expected 3 channel values, got {values!r}")
    return values[0], values[1], values[2]


def _resample_int(resample: Any) -> int:
    try:
        return int(resample)
    except (TypeError, ValueError):  # torchvision InterpolationMode
        name = str(getattr(resample, "name", resample)).upper()
        return int(getattr(Image.Resampling, name, Image.Resampling.BILINEAR))


def resized_shape(width: int, height: int, cfg: PreprocessConfig) -> tuple[int, int]:
    """(width, height) after the resize step, with transformers' rounding."""
    if cfg.resize_shortest_edge is None:
        return cfg.size[1], cfg.size[0]
    edge = cfg.resize_shortest_edge
    if width <= height:
        return edge, int(edge * height / width)
    return int(edge * width / height), edge


def preprocess_image(
    image: Image.Image, cfg: PreprocessConfig, *, original_size: tuple[int, int] | None = None
) -> np.ndarray:
    """(3, H, W) float32 RGB pixel values, normalised as the model's processor does.

    Accepts images of any size and mode, including ones already downscaled by the decoder
    (JPEG draft mode, ``thumbnail``): pass the full-size ``original_size`` (width, height) then,
    so the resize and crop geometry is computed exactly as for the full image (a downscale rounds
    the aspect ratio, which would otherwise shift the crop by a pixel).
    """
    rgb = to_rgb(image)
    width, height = original_size if original_size is not None else rgb.size
    new_w, new_h = resized_shape(width, height, cfg)
    if (new_w, new_h) != rgb.size:
        rgb = rgb.resize((new_w, new_h), resample=cfg.resample)
    pixels = np.asarray(rgb, dtype=np.uint8)
    crop_h, crop_w = cfg.size
    if (new_h, new_w) != (crop_h, crop_w):
        pixels = _center_crop(pixels, crop_h, crop_w)
    scale = np.float32(cfg.rescale_factor)
    mean = np.asarray(cfg.mean, dtype=np.float32)
    std = np.asarray(cfg.std, dtype=np.float32)
    out = (pixels.astype(np.float32) * scale - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def _center_crop(pixels: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """transformers' ``center_crop`` on an (H, W, C) array, zero-padding images that are too small."""
    height, width = pixels.shape[:2]
    if height < crop_h or width < crop_w:
        new_h, new_w = max(height, crop_h), max(width, crop_w)
        padded = np.zeros((new_h, new_w, pixels.shape[2]), dtype=pixels.dtype)
        top_pad = -(-(new_h - height) // 2)
        left_pad = -(-(new_w - width) // 2)
        padded[top_pad : top_pad + height, left_pad : left_pad + width] = pixels
        pixels, height, width = padded, new_h, new_w
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return pixels[top : top + crop_h, left : left + crop_w]


def picture_pixels(
    source: Source, cfg: PreprocessConfig, *, name: str = "the image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Picture, np.ndarray]:
    """Decode an image file as the indexer does and turn it into the model's (3, H, W) pixels.

    The one path from a file to model input, shared by indexing, evaluation and training.
    """
    picture = open_image(source, name=name, max_pixels=max_pixels, min_side=max(cfg.draft_size()))
    return picture, preprocess_image(picture.image, cfg, original_size=(picture.width, picture.height))

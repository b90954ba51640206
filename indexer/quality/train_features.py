"""The base model of LiT training and its frozen-tower features, computed once and cached on disk.

Locked towers give the same pooled (pre-projection) output every epoch, so training only needs
them once: image features always (the image tower is locked), text features too unless top text
layers are unlocked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from indexer.core.errors import ModelError
from indexer.core.imaging import open_image
from indexer.core.models import PreprocessConfig
from indexer.core.models.preprocess import picture_pixels, preprocess_image
from indexer.core.models.resolve import resolve_model
from indexer.quality.cache import VectorCache, image_key, model_fingerprint, text_key

log = logging.getLogger(__name__)

REQUIRED = ("vision_model", "text_model", "visual_projection", "text_projection", "logit_scale")
IMAGE_BATCH = 32
TEXT_BATCH = 128


@dataclass
class BaseModel:
    """A loaded VisionTextDualEncoderModel (or CLIPModel: same layout) and its text/image processing."""

    model: Any
    tokenizer: Any
    preprocess: PreprocessConfig
    location: str
    model_id: str
    max_length: int
    device: torch.device

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.model_id, Path(self.location))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Exactly as :class:`~indexer.core.models.DualEncoder` tokenizes (padding, truncation)."""
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        names = ("input_ids", "attention_mask", "token_type_ids")
        return {k: tokens[k].to(self.device) for k in names if k in tokens}

    def pooled_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Text tower output before the projection (gradients flow into unlocked layers)."""
        return self.model.text_model(**self.tokenize(texts)).pooler_output


def load_base(base: str, device: str | None = None) -> BaseModel:
    """Load ``base`` (``"default"``, a directory or a hub id) for training; ModelError if unsuitable."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from indexer.core.models import register_towers

    register_towers()  # the default model's custom towers must be known to AutoModel
    hf_logging.disable_progress_bar()  # dualens shows its own progress

    resolved = resolve_model(base)
    if resolved.is_default:
        from indexer.core.models.default_model import ensure_default_model

        ensure_default_model(resolved.location)
    try:
        model = AutoModel.from_pretrained(resolved.location)
        tokenizer = AutoTokenizer.from_pretrained(resolved.location)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load base model {resolved.location!r}: {exc}") from exc
    missing = [name for name in REQUIRED if not hasattr(model, name)]
    if missing or not isinstance(model.visual_projection, torch.nn.Linear):
        raise ModelError(
            f"base model {base!r} ({type(model).__name__}) cannot be LiT-trained: it needs a vision tower, "
            "a text tower and linear projections (a VisionTextDualEncoderModel or CLIPModel)"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).float().eval()
    preprocess = resolved.preprocess or PreprocessConfig.from_pretrained(resolved.location)
    return BaseModel(
        model=model,
        tokenizer=tokenizer,
        preprocess=preprocess,
        location=resolved.location,
        model_id=resolved.model_id,
        max_length=_max_length(tokenizer, model.config),
        device=dev,
    )


def _max_length(tokenizer: Any, config: Any) -> int:
    """The same limit :class:`~indexer.core.models.DualEncoder` applies."""
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 1_000_000 else []
    positions = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    return min(limits) if limits else 77


def image_pixels(path: Path, cfg: PreprocessConfig, aspect: float = 1.0) -> np.ndarray:
    """Exactly the pixels the indexer embeds for this file; with ``aspect`` ≠ 1, as if it were
    ``aspect`` times as wide (``--aspect-views``: a square-resized photo stretched back)."""
    if aspect == 1.0:
        return picture_pixels(path, cfg, name=f"image {path}")[1]
    picture = open_image(path, name=f"image {path}", min_side=max(cfg.draft_size()))
    width = max(1, round(picture.width * aspect))
    return preprocess_image(picture.image, cfg, original_size=(width, picture.height))


def image_features(
    base: BaseModel,
    paths: Sequence[Path],
    cache_dir: Path | None,
    progress: bool = False,
    aspect: float = 1.0,
) -> np.ndarray:
    """(n, vision_dim) pooled outputs of the locked image tower, through the on-disk cache (one cache
    per ``aspect``, see :func:`image_pixels`)."""
    view = "" if aspect == 1.0 else f"aspect {aspect:.2f} view, "

    def compute(todo: list[Path]) -> np.ndarray:
        out = []
        bar = tqdm(total=len(todo), desc=f"image features ({view}once)", unit="img", disable=not progress)
        for start in range(0, len(todo), IMAGE_BATCH):
            chunk = todo[start : start + IMAGE_BATCH]
            pixels = np.stack([image_pixels(p, base.preprocess, aspect) for p in chunk])
            with torch.inference_mode():
                pooled = base.model.vision_model(pixel_values=torch.from_numpy(pixels).to(base.device))
            out.append(pooled.pooler_output.float().cpu().numpy())
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out)

    namespace = "vision-pooled" if aspect == 1.0 else f"vision-pooled-aspect{aspect:.4f}"
    cache = VectorCache(cache_dir, base.fingerprint, namespace)
    return cache.get_or_compute(list(paths), image_key, compute)


def text_features(
    base: BaseModel, texts: Sequence[str], cache_dir: Path | None, progress: bool = False
) -> np.ndarray:
    """(n, text_dim) pooled outputs of the (locked) text tower, through the on-disk cache."""

    def compute(todo: list[str]) -> np.ndarray:
        out = []
        bar = tqdm(total=len(todo), desc="text features (once)", unit="text", disable=not progress)
        for start in range(0, len(todo), TEXT_BATCH):
            chunk = todo[start : start + TEXT_BATCH]
            with torch.inference_mode():
                out.append(base.pooled_text(chunk).float().cpu().numpy())
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out)

    unique = list(dict.fromkeys(texts))
    cache = VectorCache(cache_dir, base.fingerprint, "text-pooled")
    vectors = cache.get_or_compute(unique, text_key, compute)
    position = {t: i for i, t in enumerate(unique)}
    return vectors[[position[t] for t in texts]]

"""Measure a dual encoder: caption retrieval (recall@K, median rank) and zero-shot classification.

Works with anything shaped like :class:`indexer.core.models.DualEncoder` (``model_id``,
``embed_images``, ``embed_texts``). Image and text vectors are cached on disk per model so
repeated evaluations only pay for what changed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from indexer.core.errors import ImageError
from indexer.core.models.default_spec import DEFAULT_ID_PREFIX
from indexer.core.quality.cache import VectorCache, image_key, model_fingerprint, text_key
from indexer.core.quality.data import CaptionDataset, LabelDataset
from indexer.core.quality.metrics import (
    RetrievalMetrics,
    ZeroShotMetrics,
    retrieval_metrics,
    zero_shot_metrics,
)
from indexer.core.settings import default_model_dir, resolve_data_dir

log = logging.getLogger(__name__)

IMAGE_BATCH = 64


class Encoder(Protocol):
    @property
    def model_id(self) -> str: ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EvalOptions:
    cache_dir: Path | None = None  # None: no on-disk cache
    progress: bool = False
    text_batch: int = 256


def eval_cache_dir(data: str | os.PathLike[str] | None = None) -> Path:
    """Where evaluation caches its vectors inside a data directory."""
    return resolve_data_dir(data) / "cache" / "eval"


def _fingerprint(encoder: Encoder) -> str:
    """Model id plus the files of its local directory (so a rebuilt or retrained model misses the cache)."""
    model_id = str(encoder.model_id)
    local = getattr(encoder, "location", None)
    if local is None and model_id.startswith(DEFAULT_ID_PREFIX):
        local = default_model_dir()
    return model_fingerprint(model_id, Path(local) if local is not None else None)


def _draft_size(encoder: Encoder) -> tuple[int, int] | None:
    cfg: Any = getattr(encoder, "preprocess_config", None)
    try:
        return (int(cfg.draft_size()[0]), int(cfg.draft_size()[1])) if cfg is not None else None
    except Exception:  # a config without draft support: decode at full size
        return None


def open_rgb(path: Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image as RGB, letting JPEG decode at reduced scale when ``draft_size`` allows."""
    try:
        with Image.open(path) as img:
            if draft_size is not None and img.format == "JPEG":
                img.draft("RGB", draft_size)
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def embed_image_files(
    encoder: Encoder, paths: Sequence[Path], options: EvalOptions = EvalOptions()
) -> np.ndarray:
    """(n, dim) L2-normalised vectors of image files, through the cache."""
    cache = VectorCache(options.cache_dir, _fingerprint(encoder), "image")
    draft = _draft_size(encoder)

    def compute(todo: list[Path]) -> np.ndarray:
        out = []
        bar = tqdm(total=len(todo), desc="embedding images", unit="img", disable=not options.progress)
        for start in range(0, len(todo), IMAGE_BATCH):
            chunk = todo[start : start + IMAGE_BATCH]
            out.append(encoder.embed_images([open_rgb(p, draft) for p in chunk]))
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out)

    return _normalise(cache.get_or_compute(list(paths), image_key, compute))


def embed_texts(encoder: Encoder, texts: Sequence[str], options: EvalOptions = EvalOptions()) -> np.ndarray:
    """(n, dim) L2-normalised text vectors, through the cache."""
    cache = VectorCache(options.cache_dir, _fingerprint(encoder), "text")

    def compute(todo: list[str]) -> np.ndarray:
        out = []
        bar = tqdm(total=len(todo), desc="embedding texts", unit="text", disable=not options.progress)
        for start in range(0, len(todo), options.text_batch):
            chunk = todo[start : start + options.text_batch]
            out.append(encoder.embed_texts(chunk))
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out)

    return _normalise(cache.get_or_compute(list(dict.fromkeys(texts)), text_key, compute), texts)


def _normalise(vectors: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if texts is not None:  # the cache saw unique texts; expand back to the requested order
        unique = list(dict.fromkeys(texts))
        pos = {t: i for i, t in enumerate(unique)}
        v = v[[pos[t] for t in texts]]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def class_embeddings(
    encoder: Encoder, classes: Sequence[str], templates: Sequence[str], options: EvalOptions = EvalOptions()
) -> np.ndarray:
    """One vector per class: the renormalised mean of its prompts' vectors (a prompt ensemble)."""
    prompts = [t.format(c) for c in classes for t in templates]
    vecs = embed_texts(encoder, prompts, options).reshape(len(classes), len(templates), -1)
    return _normalise(vecs.mean(axis=1))


def evaluate_retrieval(
    encoder: Encoder, dataset: CaptionDataset, options: EvalOptions = EvalOptions()
) -> RetrievalMetrics:
    """Text-to-image and image-to-text recall@1/5/10 and median rank over the whole set."""
    images = embed_image_files(encoder, dataset.images, options)
    texts = embed_texts(encoder, dataset.captions, options)
    return retrieval_metrics(texts @ images.T, dataset.caption_image)


def evaluate_zero_shot(
    encoder: Encoder, dataset: LabelDataset, templates: Sequence[str], options: EvalOptions = EvalOptions()
) -> ZeroShotMetrics:
    """Top-1 / top-5 accuracy of nearest class embedding (cosine) over the labelled images."""
    images = embed_image_files(encoder, dataset.images, options)
    classes = class_embeddings(encoder, dataset.classes, templates, options)
    return zero_shot_metrics(images @ classes.T, dataset.labels)

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

import numpy as np
from tqdm import tqdm

from indexer.core.models.default_spec import DEFAULT_ID_PREFIX
from indexer.core.models.interface import Encoder
from indexer.core.models.preprocess import picture_pixels
from indexer.core.settings import default_model_dir, resolve_data_dir
from indexer.core.vectors import l2_normalise
from indexer.quality.cache import VectorCache, image_key, model_fingerprint, text_key
from indexer.quality.data import CaptionDataset, LabelDataset
from indexer.quality.metrics import (
    RetrievalMetrics,
    ZeroShotMetrics,
    retrieval_metrics,
    zero_shot_metrics,
)

log = logging.getLogger(__name__)

IMAGE_BATCH = 64


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


def embed_image_files(
    encoder: Encoder, paths: Sequence[Path], options: EvalOptions = EvalOptions()
) -> np.ndarray:
    """(n, dim) L2-normalised vectors of image files, through the cache."""
    cache = VectorCache(options.cache_dir, _fingerprint(encoder), "image")
    cfg = encoder.preprocess_config

    def compute(todo: list[Path]) -> np.ndarray:
        out = []
        bar = tqdm(total=len(todo), desc="embedding images", unit="img", disable=not options.progress)
        for start in range(0, len(todo), IMAGE_BATCH):
            chunk = todo[start : start + IMAGE_BATCH]
            # exactly the pixels the indexer embeds (same decoder, orientation and preprocessing)
            pixels = np.stack([picture_pixels(p, cfg, name=f"image {p}")[1] for p in chunk])
            out.append(encoder.embed_pixels(pixels))
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out)

    return cache.get_or_compute(list(paths), image_key, compute)


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

    unique = list(dict.fromkeys(texts))  # the cache sees each text once; expand to the order asked
    vectors = cache.get_or_compute(unique, text_key, compute)
    position = {t: i for i, t in enumerate(unique)}
    return vectors[[position[t] for t in texts]]


def class_embeddings(
    encoder: Encoder, classes: Sequence[str], templates: Sequence[str], options: EvalOptions = EvalOptions()
) -> np.ndarray:
    """One vector per class: the renormalised mean of its prompts' vectors (a prompt ensemble)."""
    prompts = [t.format(c) for c in classes for t in templates]
    vecs = embed_texts(encoder, prompts, options).reshape(len(classes), len(templates), -1)
    return l2_normalise(vecs.mean(axis=1))


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

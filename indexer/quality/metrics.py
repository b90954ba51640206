"""Retrieval and zero-shot metrics on similarity matrices (pure numpy, no model).

Ranks are 1-based and *pessimistic* on ties: an item's rank is the number of candidates scoring
at least as high as it (itself included), so a degenerate model that scores everything equally
gets the worst rank, never the best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RECALL_KS: tuple[int, ...] = (1, 5, 10)


@dataclass(frozen=True)
class DirectionMetrics:
    """Recall@K (percent of queries whose first correct item ranks within K) and rank statistics."""

    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    median_rank: float
    mean_rank: float
    n_queries: int


@dataclass(frozen=True)
class RetrievalMetrics:
    """Text-to-image and image-to-text retrieval on a captioned image set."""

    text_to_image: DirectionMetrics
    image_to_text: DirectionMetrics
    n_images: int
    n_captions: int


@dataclass(frozen=True)
class ZeroShotMetrics:
    """Zero-shot classification accuracy (percent) over a labelled image set."""

    top1: float
    top5: float
    n_images: int
    n_classes: int


def _direction(ranks: np.ndarray) -> DirectionMetrics:
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size == 0:
        raise ValueError("no queries to evaluate")
    recall = {k: round(float(100.0 * np.mean(ranks <= k)), 4) for k in RECALL_KS}
    return DirectionMetrics(
        recall_at_1=recall[1],
        recall_at_5=recall[5],
        recall_at_10=recall[10],
        median_rank=float(np.median(ranks)),
        mean_rank=round(float(np.mean(ranks)), 4),
        n_queries=int(ranks.size),
    )


def text_to_image_ranks(similarity: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """Rank of each caption's own image among all images.

    ``similarity`` is (n_captions, n_images); ``caption_image[c]`` is the index of caption c's image.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    target = np.asarray(caption_image, dtype=np.int64)
    if sim.ndim != 2 or target.shape != (sim.shape[0],):
        raise ValueError("similarity must be (n_captions, n_images) with one image index per caption")
    own = sim[np.arange(sim.shape[0]), target]
    return (sim >= own[:, None]).sum(axis=1)


def image_to_text_ranks(similarity: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """Rank of each image's best-ranked own caption among all captions (images without captions skipped)."""
    sim = np.asarray(similarity, dtype=np.float64)
    target = np.asarray(caption_image, dtype=np.int64)
    if sim.ndim != 2 or target.shape != (sim.shape[0],):
        raise ValueError("similarity must be (n_captions, n_images) with one image index per caption")
    per_image = sim.T  # (n_images, n_captions)
    own_mask = target[None, :] == np.arange(per_image.shape[0])[:, None]
    has_caption = own_mask.any(axis=1)
    best_own = np.where(own_mask, per_image, -np.inf).max(axis=1)
    ranks = (per_image >= best_own[:, None]).sum(axis=1)
    return ranks[has_caption]


def retrieval_metrics(similarity: np.ndarray, caption_image: np.ndarray) -> RetrievalMetrics:
    """Recall@1/5/10 and median rank in both directions from a (n_captions, n_images) similarity."""
    sim = np.asarray(similarity)
    return RetrievalMetrics(
        text_to_image=_direction(text_to_image_ranks(sim, caption_image)),
        image_to_text=_direction(image_to_text_ranks(sim, caption_image)),
        n_images=int(sim.shape[1]),
        n_captions=int(sim.shape[0]),
    )


def label_ranks(scores: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Rank of each image's true class among all classes; ``scores`` is (n_images, n_classes)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if s.ndim != 2 or y.shape != (s.shape[0],):
        raise ValueError("scores must be (n_images, n_classes) with one label per image")
    own = s[np.arange(s.shape[0]), y]
    return (s >= own[:, None]).sum(axis=1)


def zero_shot_metrics(scores: np.ndarray, labels: Sequence[int] | np.ndarray) -> ZeroShotMetrics:
    """Top-1 / top-5 accuracy (percent) of class scores against integer labels."""
    ranks = label_ranks(scores, labels)
    if ranks.size == 0:
        raise ValueError("no images to evaluate")
    return ZeroShotMetrics(
        top1=round(float(100.0 * np.mean(ranks <= 1)), 4),
        top5=round(float(100.0 * np.mean(ranks <= 5)), 4),
        n_images=int(ranks.size),
        n_classes=int(np.asarray(scores).shape[1]),
    )

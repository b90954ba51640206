"""Recall@K / median rank / zero-shot accuracy against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.quality.metrics import (
    image_to_text_ranks,
    retrieval_metrics,
    text_to_image_ranks,
    zero_shot_metrics,
)


def _approx(value):  # type: ignore[no-untyped-def]
    """Metrics are reported rounded to 4 decimals."""
    return pytest.approx(value, abs=1e-3)


# 4 captions x 3 images; captions 0 and 1 describe image 0, caption 2 image 1, caption 3 image 2.
SIM = np.array(
    [
        [0.9, 0.1, 0.5],
        [0.2, 0.8, 0.3],
        [0.1, 0.4, 0.6],
        [0.7, 0.0, 0.3],
    ]
)
CAPTION_IMAGE = np.array([0, 0, 1, 2])


def test_text_to_image_ranks_match_hand_computation():
    # c0: own 0.9 is best -> 1; c1: own 0.2 < 0.8, 0.3 -> 3; c2: own 0.4 < 0.6 -> 2; c3: own 0.3 < 0.7 -> 2
    assert text_to_image_ranks(SIM, CAPTION_IMAGE).tolist() == [1, 3, 2, 2]


def test_image_to_text_ranks_use_the_best_of_several_captions():
    # image 0 column [0.9, 0.2, 0.1, 0.7]: best own caption (c0, 0.9) ranks 1
    # image 1 column [0.1, 0.8, 0.4, 0.0]: own c2 = 0.4 is beaten by 0.8 -> 2
    # image 2 column [0.5, 0.3, 0.6, 0.3]: own c3 = 0.3, tied with c1, beaten by 0.5, 0.6 -> 4 (ties count)
    assert image_to_text_ranks(SIM, CAPTION_IMAGE).tolist() == [1, 2, 4]


def test_retrieval_metrics_summarise_hand_computed_ranks():
    m = retrieval_metrics(SIM, CAPTION_IMAGE)
    assert m.n_images == 3 and m.n_captions == 4
    assert m.text_to_image.recall_at_1 == _approx(25.0)
    assert m.text_to_image.recall_at_5 == _approx(100.0)
    assert m.text_to_image.median_rank == 2.0
    assert m.text_to_image.mean_rank == _approx(2.0)
    assert m.image_to_text.recall_at_1 == _approx(100 / 3)
    assert m.image_to_text.median_rank == 2.0
    assert m.image_to_text.mean_rank == _approx(7 / 3)


def _similarity_with_ranks(ranks: list[int], rng: np.random.Generator) -> np.ndarray:
    """One caption per image, caption i's own image placed at rank ranks[i]."""
    n = len(ranks)
    sim = np.zeros((n, n))
    for i, r in enumerate(ranks):
        scores = np.sort(rng.random(n))[::-1]  # distinct, descending
        others = [j for j in range(n) if j != i]
        rng.shuffle(others)
        order = [*others[: r - 1], i, *others[r - 1 :]]
        sim[i, order] = scores
    return sim


def test_recall_at_5_and_10_count_ranks_within_k():
    ranks = list(range(1, 13))  # 12 captions with own image at ranks 1..12
    sim = _similarity_with_ranks(ranks, np.random.default_rng(0))
    assert text_to_image_ranks(sim, np.arange(12)).tolist() == ranks
    m = retrieval_metrics(sim, np.arange(12)).text_to_image
    assert (m.recall_at_1, m.recall_at_5, m.recall_at_10) == _approx((100 / 12, 500 / 12, 1000 / 12))
    assert m.median_rank == 6.5


def test_constant_scores_rank_last_not_first():
    m = retrieval_metrics(np.zeros((5, 5)), np.arange(5))
    assert m.text_to_image.recall_at_1 == 0.0
    assert m.text_to_image.median_rank == 5.0


def test_images_without_captions_are_left_out_of_image_to_text():
    sim = np.array([[0.9, 0.1, 0.2]])
    assert image_to_text_ranks(sim, np.array([0])).tolist() == [1]


def test_zero_shot_top1_and_top5():
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0],  # label 0 -> rank 1
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # label 4 -> rank 5
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # label 6 -> rank 7
        ]
    )
    m = zero_shot_metrics(scores, [0, 4, 6])
    assert m.top1 == _approx(100 / 3)
    assert m.top5 == _approx(200 / 3)
    assert (m.n_images, m.n_classes) == (3, 7)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError):
        retrieval_metrics(SIM, np.array([0, 1]))

"""Scores in the model's units: logit = exp(logit_scale)·cos (+ bias), softmax or sigmoid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.core.errors import UsageError
from search.classify import classify_vector, clean_labels
from search.scoring import ScoreModel, sigmoid, softmax

CLIP = ScoreModel(logit_scale=math.log(100.0))
SIGLIP = ScoreModel(logit_scale=math.log(10.0), logit_bias=-5.0, is_sigmoid=True)


def test_logit_is_exp_scale_times_cosine():
    np.testing.assert_allclose(CLIP.logits([0.3, -0.1]), [30.0, -10.0])


def test_siglip_logit_adds_the_bias():
    np.testing.assert_allclose(SIGLIP.logits([0.5]), [0.0], atol=1e-12)


def test_clip_probabilities_are_a_softmax_over_the_candidates():
    p = CLIP.probabilities([0.30, 0.29, 0.10])
    assert p.sum() == pytest.approx(1.0)
    assert p[0] / p[1] == pytest.approx(math.e)  # 0.01 cosine apart at scale 100
    assert list(np.argsort(-p)) == [0, 1, 2]


def test_siglip_probabilities_are_independent_sigmoids():
    p = SIGLIP.probabilities([0.5, 0.9])
    np.testing.assert_allclose(p, [0.5, 1 / (1 + math.exp(-4.0))])
    np.testing.assert_allclose(SIGLIP.probabilities([0.5]), [0.5])  # same with or without other items


def test_extreme_logits_do_not_overflow():
    assert np.isfinite(sigmoid(np.array([-1e4, 1e4]))).all()
    np.testing.assert_allclose(softmax(np.array([1e4, 0.0])), [1.0, 0.0])
    assert CLIP.probabilities([]).size == 0


def test_classify_vector_orders_labels_by_probability():
    image = np.array([1.0, 0.0], np.float32)
    labels = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], np.float32)
    result = classify_vector(image, labels, ["cat", "dog", "car"], CLIP)
    assert [name for name, _ in result] == ["dog", "car", "cat"]
    assert sum(p for _, p in result) == pytest.approx(1.0)


def test_labels_are_cleaned_and_must_not_be_empty():
    assert clean_labels(" cat, dog ,,cat,  sports   car ") == ["cat", "dog", "sports car"]
    with pytest.raises(UsageError):
        clean_labels(" , ")

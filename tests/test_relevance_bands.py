"""The relevance bands' rule (search/relevance.py) on synthetic score arrays."""

from __future__ import annotations

import numpy as np
import pytest

from search.relevance import MIN_SCORES, TOP_SCORES, Z_GOOD, Z_STRONG, Band, Relevance, calibrate

NONSENSE = calibrate(np.random.default_rng(0).normal(0.20, 0.02, 96))  # floor ~0.23, strong ~0.31


def _top(rng: np.random.Generator, mu: float, sigma: float, head: tuple[float, ...] = ()) -> np.ndarray:
    """A query's best cosines: ``head`` above a crowd drawn around ``mu``, descending."""
    crowd = rng.normal(mu, sigma, TOP_SCORES - len(head))
    return np.sort(np.concatenate([head, crowd]))[::-1]


def test_the_constants_ask_a_strong_match_to_stand_out_further_than_a_good_one() -> None:
    assert Z_GOOD <= Z_STRONG and Z_STRONG > 0 and MIN_SCORES <= TOP_SCORES


def test_a_crowd_of_similar_hits_above_the_nonsense_cosines_is_not_strong() -> None:
    # "goldfish": dozens of related photos all clear the nonsense calibration by far
    top = _top(np.random.default_rng(1), mu=0.45, sigma=0.02)
    cut = NONSENSE.cutoffs(top)
    assert top[0] > NONSENSE.strong and NONSENSE.band(float(top[0])) is Band.STRONG  # the old rule
    assert cut.band(float(top[0])) is not Band.STRONG


def test_one_hit_far_above_its_query_s_other_scores_is_strong_and_the_rest_not() -> None:
    top = _top(np.random.default_rng(2), mu=0.30, sigma=0.01, head=(0.60,))
    cut = NONSENSE.cutoffs(top)
    assert cut.band(0.60) is Band.STRONG
    assert Band.STRONG not in [cut.band(float(c)) for c in top[1:]]
    # the crowd clears the nonsense floor, but stands out of nothing and is far below the best: weak
    assert all(c >= NONSENSE.floor for c in top[1:5])
    assert [cut.band(float(c)) for c in top[1:]] == [Band.WEAK] * (len(top) - 1)


def test_a_hit_that_stands_out_below_the_nonsense_floor_stays_weak() -> None:
    top = _top(np.random.default_rng(3), mu=0.05, sigma=0.01, head=(NONSENSE.floor - 0.01,))
    assert NONSENSE.cutoffs(top).band(float(top[0])) is Band.WEAK


def test_the_cutoffs_order_the_bands_by_cosine() -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        top = _top(rng, mu=float(rng.uniform(0.1, 0.5)), sigma=float(rng.uniform(0.001, 0.05)))
        cut = NONSENSE.cutoffs(top)
        assert NONSENSE.floor <= cut.good <= cut.strong and NONSENSE.strong <= cut.strong
        order = {Band.WEAK: 0, Band.GOOD: 1, Band.STRONG: 2}
        bands = [order[cut.band(float(c))] for c in np.linspace(-1, 1, 201)]
        assert bands == sorted(bands)


def test_too_few_photos_to_stand_out_of_leave_the_nonsense_calibration_alone() -> None:
    top = np.array([0.9, 0.5, 0.5, 0.5][: MIN_SCORES - 1])
    cut = NONSENSE.cutoffs(top)
    assert (cut.good, cut.strong) == (NONSENSE.floor, NONSENSE.strong)


def test_a_calibration_without_z_bands_by_the_nonsense_cosines_only() -> None:
    plain = Relevance(floor=0.2, strong=0.3)
    cut = plain.cutoffs(_top(np.random.default_rng(5), mu=0.28, sigma=0.01))
    assert [cut.band(c) for c in (0.1, 0.25, 0.35)] == [Band.WEAK, Band.GOOD, Band.STRONG]


def test_identical_scores_put_no_hit_above_the_others() -> None:
    cut = NONSENSE.cutoffs(np.full(TOP_SCORES, 0.5))
    assert cut.band(0.5) is not Band.STRONG


def test_a_stored_calibration_reads_back_as_the_measured_one() -> None:
    assert Relevance.from_values(NONSENSE.values()) == NONSENSE
    with pytest.raises(KeyError):
        Relevance.from_values({"floor": 0.2})

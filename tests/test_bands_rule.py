"""The good band of search/relevance.py on seeded synthetic score distributions: a hit is good when it
stands out of its query's own best scores, or when it is clearly above nonsense and level with the
query's best; nonsense and flat distributions get no good match."""

from __future__ import annotations

import math

import numpy as np

from search.relevance import D_GOOD, GAP_GOOD, TOP_SCORES, Z_GOOD, Band, Relevance, calibrate

NONSENSE = calibrate(np.random.default_rng(0).normal(0.20, 0.02, 96))  # floor ~0.23, spread ~0.028


def _top(seed: int, mu: float, sigma: float, head: tuple[float, ...] = ()) -> np.ndarray:
    """A query's best cosines, descending: ``head`` above a crowd drawn around ``mu``."""
    crowd = np.random.default_rng(seed).normal(mu, sigma, TOP_SCORES - len(head))
    return np.sort(np.concatenate([head, crowd]))[::-1]


def _bands(top: np.ndarray, relevance: Relevance = NONSENSE) -> list[Band]:
    cut = relevance.cutoffs(top)
    return [cut.band(float(c)) for c in top]


def test_the_good_rule_asks_for_more_than_the_nonsense_floor() -> None:
    assert math.isfinite(Z_GOOD) and D_GOOD > 0 and GAP_GOOD > 0
    assert NONSENSE.spread > 0 and math.isclose(NONSENSE.floor + 3 * NONSENSE.spread, NONSENSE.strong)


def test_an_outlier_above_a_crowd_near_the_nonsense_floor_is_a_match_and_the_crowd_is_not() -> None:
    head = NONSENSE.floor + 2 * NONSENSE.spread  # not level-with-best material: it must stand out
    top = _top(1, mu=NONSENSE.floor - 0.02, sigma=0.005, head=(head,))
    bands = _bands(top)
    assert bands[0] in (Band.GOOD, Band.STRONG)
    assert set(bands[1:]) == {Band.WEAK}


def test_a_crowd_far_above_nonsense_is_good_where_level_with_its_best() -> None:
    # "a dog" in a collection full of dogs: nothing stands out, every dog is as close as the best
    best = NONSENSE.floor + (D_GOOD + GAP_GOOD + 1) * NONSENSE.spread
    top = _top(2, mu=best - 2 * NONSENSE.spread, sigma=NONSENSE.spread)
    bands = _bands(top)
    level = top >= max(top[0] - GAP_GOOD * NONSENSE.spread, NONSENSE.floor + D_GOOD * NONSENSE.spread)
    assert level.sum() >= 10 and Band.STRONG not in bands
    assert bands == [Band.GOOD if ok else Band.WEAK for ok in level]


def test_a_flat_distribution_just_above_the_nonsense_floor_has_no_good_match() -> None:
    # a vague query: everything a little above nonsense, nothing standing out, nothing clearly above
    top = _top(3, mu=NONSENSE.floor + 1.5 * NONSENSE.spread, sigma=0.2 * NONSENSE.spread)
    assert top.min() >= NONSENSE.floor  # the nonsense calibration alone would call all of them good
    assert set(_bands(top)) == {Band.WEAK}


def test_nonsense_whose_best_just_clears_the_floor_stays_weak() -> None:
    # one nonsense query in ten reaches the floor (its 90 % quantile): that alone is no match
    rng = np.random.default_rng(4)
    for seed in range(20):
        head = NONSENSE.floor + float(rng.uniform(0.0, 1.0)) * NONSENSE.spread
        top = _top(100 + seed, mu=float(rng.normal(0.17, 0.01)), sigma=0.015, head=(head,))
        assert NONSENSE.band(float(top[0])) is Band.GOOD  # the nonsense calibration alone says good
        assert set(_bands(top)) == {Band.WEAK}


def test_a_hit_below_the_best_by_more_than_the_gap_is_not_good_by_being_high() -> None:
    # "goldfish": the goldfish far above, lionfish and goldfinch clear of nonsense but well below it
    high = NONSENSE.floor + (D_GOOD + 0.5) * NONSENSE.spread
    best = high + (GAP_GOOD + 1) * NONSENSE.spread
    top = _top(5, mu=high - 0.3 * NONSENSE.spread, sigma=0.2 * NONSENSE.spread, head=(best,))
    bands = _bands(top)
    assert bands[0] in (Band.GOOD, Band.STRONG) and set(bands[1:]) == {Band.WEAK}


def test_an_old_stored_calibration_reads_with_today_s_rule() -> None:
    # relevance.json files written before the good rule hold floor and strong only: still enough
    stored = {"floor": NONSENSE.floor, "strong": NONSENSE.strong}
    assert Relevance.from_values(stored) == NONSENSE


def test_the_cutoffs_stay_cheap_per_query() -> None:
    import time

    tops = [_top(s, mu=0.3, sigma=0.03) for s in range(20)]
    start = time.perf_counter()
    for i in range(2000):
        NONSENSE.cutoffs(tops[i % 20])
    assert (time.perf_counter() - start) / 2000 < 1e-3  # well under the 1 ms per query allowed


def test_the_good_cutoff_stays_a_valid_minimum_score_when_no_cosine_can_reach_it() -> None:
    # a tiny test model: nonsense reaches 0.9 and spreads widely, so "clearly above nonsense" is > 1
    wide = Relevance.from_values({"floor": 0.9, "strong": 1.5})
    cut = wide.cutoffs(_top(6, mu=0.0, sigma=0.4))
    assert cut.good == 1.0 and cut.strong > 1.0

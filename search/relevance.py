"""Relevance a person can read: how a text query's hit compares with what nonsense finds, and
with the query's own scores over the collection.

A cosine means nothing on its own: its useful range depends on the model and the collection (the
offline default's text→image cosines sit in ~0.1–0.5, CLIP's in ~0.15–0.35), and the best hit of any
query, gibberish included, always looks like a match when bars are scaled to it. So each collection
is calibrated against a background: :data:`BACKGROUND_QUERIES` pronounceable nonsense queries
("plorf wubble", seeded), each searched for its best photo. Their top cosines are what "no real
match" looks like for this model on these photos:

- ``floor``: the :data:`FLOOR_QUANTILE` quantile of the background's top cosines. A hit below it
  is a *weak* match — nonsense does as well — and a query none of whose hits clear it has *no good
  matches*.
- ``strong``: ``floor + STRONG_MARGIN × spread`` (the background's interquartile range): hits well
  clear of anything nonsense reaches.

Nonsense alone over-promises: a real but vague query ("goldfish") clears the nonsense floor with
dozens of photos of related things (lionfish, goldfinch, crayfish). So each query is also compared
with its own best scores: the :data:`TOP_SCORES` best cosines the query reaches over the whole
collection (filters aside), their mean ``mu``, standard deviation ``sigma`` and maximum ``best``. In
units of the nonsense ``spread`` (its interquartile range, ``(strong - floor) / STRONG_MARGIN``):

- *strong*: cosine >= ``strong`` and ``(cosine - mu) / sigma >= Z_STRONG`` — the hit stands far out
  of everything else the query finds (the one goldfish among a thousand kinds of things);
- *good*: cosine >= ``floor`` and either it *stands out* (``(cosine - mu) / sigma >= Z_GOOD``) or it
  is *clearly above nonsense and level with the query's best* (cosine >= ``floor + D_GOOD × spread``
  and cosine >= ``best - GAP_GOOD × spread``): many photos of one thing ("a dog" in a collection full
  of dogs) stand out of nothing, yet each is as close as the best;
- *weak*: the rest.

All three are cosine cut-offs per query (:meth:`Relevance.cutoffs`), so a band is monotone in the
cosine and a "good or better" filter is a minimum score (the good cut-off is at most 1.0 unless the
floor is higher, so that it stays a valid one); the per-query cost is a few operations on the
:data:`TOP_SCORES` cosines the search already has. In a collection of fewer than
:data:`MIN_SCORES` photos nothing can be seen to stand out, and the nonsense calibration alone decides.

The constants were chosen on flickr8k-train's validation split only (``make bench-bands SELECT=1``:
keyword queries such as "a dog" whose right photos are those a caption mentions a dog in, and the
captions themselves), never on the sets the closing notes report (``make bench-relevance``, ``make
bench-bands``: flickr8k-1k and imagenet-sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

BACKGROUND_QUERIES = 96
FLOOR_QUANTILE = 0.9
STRONG_MARGIN = 3.0
TOP_SCORES = 100  # the query's best cosines over the collection a hit is compared with
MIN_SCORES = 20  # fewer photos: no distribution to stand out of
# Chosen on flickr8k-train's validation split only (`make bench-bands SELECT=1`; docs/benchmarks.md,
# "bench-bands"). Z_STRONG: its 7,090 captions (one right photo each) are 100 % right from z 6.5
# (5 hits) and 7 (4). Z_GOOD: the lowest z at which they are >= 70 % right (73.7 % of 19 hits at 6).
# D_GOOD, GAP_GOOD: the most right photos good or better while >= 75 % of the keyword queries' good
# matches and >= 70 % of the natural queries' are right, and >= 95 % of nonsense has none.
Z_GOOD = 6.0
Z_STRONG = 7.0
D_GOOD = 4.0  # nonsense spreads above the floor ...
GAP_GOOD = 3.0  # ... and at most this many spreads below the query's best cosine
# what a stored calibration depends on (the constants above are applied when it is read: a file
# stored before them reads with them, as its floor and strong are all they need)
RULE = f"nonsense{BACKGROUND_QUERIES}-q{FLOOR_QUANTILE}-m{STRONG_MARGIN}"
_ONSETS = ("b", "bl", "br", "d", "dr", "f", "fl", "g", "gr", "k", "kr", "l", "m", "n", "p", "pl", "pr",
           "qu", "r", "s", "sk", "sl", "sn", "t", "tr", "v", "w", "x", "z", "zw")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "oo", "ee", "ai", "ou", "y")
_CODAS = ("", "", "b", "ck", "f", "g", "l", "m", "n", "nk", "p", "rf", "rt", "sh", "t", "x", "zz")


class Band(StrEnum):
    STRONG = "strong"
    GOOD = "good"
    WEAK = "weak"


@dataclass(frozen=True)
class Cutoffs:
    """One query's bands as cosines: good from ``good``, strong from ``strong`` (``good <= strong``)."""

    good: float
    strong: float

    def band(self, cosine: float) -> Band:
        if cosine >= self.strong:
            return Band.STRONG
        return Band.GOOD if cosine >= self.good else Band.WEAK


@dataclass(frozen=True)
class Relevance:
    """A collection's calibration: the nonsense cosines, and how a hit must compare with its query's
    own best scores to be good or strong. The defaults (``z_* = -inf``, ``d_good = inf``) band by the
    nonsense calibration alone."""

    floor: float  # cosine below which a hit does no better than nonsense
    strong: float  # cosine from which a hit may be a strong match
    z_good: float = -math.inf  # good: stands this many sigmas out of the query's best scores (-inf: need not)
    z_strong: float = -math.inf
    d_good: float = math.inf  # or good: this many nonsense spreads above the floor (inf: never) ...
    gap_good: float = 0.0  # ... and at most this many below the query's best cosine

    @property
    def spread(self) -> float:
        """The nonsense spread (interquartile range of the background's top cosines; 0 when unknown)."""
        return max(self.strong - self.floor, 0.0) / STRONG_MARGIN

    def band(self, cosine: float) -> Band:
        """The band by the nonsense calibration alone (the rule before per-query cut-offs)."""
        return Cutoffs(self.floor, self.strong).band(cosine)

    def cutoffs(self, top_scores: Sequence[float] | np.ndarray) -> Cutoffs:
        """The cut-offs of a query whose best cosines over the collection are ``top_scores``."""
        scores = np.asarray(top_scores, dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if len(scores) < MIN_SCORES:
            return Cutoffs(self.floor, max(self.floor, self.strong))
        mu, sigma, best = float(scores.mean()), float(scores.std()), float(scores.max())
        good = max(self.floor, min(_above(mu, sigma, self.z_good), self._level_with(best), 1.0))
        strong = max(good, self.strong, _above(mu, sigma, self.z_strong))
        return Cutoffs(good, strong)

    def _level_with(self, best: float) -> float:
        """The cosine from which a hit is clearly above nonsense and level with the query's ``best``."""
        if self.d_good == math.inf:
            return math.inf
        return max(self.floor + self.d_good * self.spread, best - self.gap_good * self.spread)

    def values(self) -> dict[str, float]:
        """The calibration as numbers (to store it: see indexer/core/storage/calibration.py)."""
        return {"floor": self.floor, "strong": self.strong}

    @classmethod
    def from_values(cls, values: dict[str, float]) -> Relevance:
        """The calibration :meth:`values` stored, with today's rule constants. KeyError: not one."""
        return cls(values["floor"], values["strong"], Z_GOOD, Z_STRONG, d_good=D_GOOD, gap_good=GAP_GOOD)


def plausible(values: dict[str, float]) -> bool:
    """Whether stored values are ones :func:`calibrate` can give: a floor among the cosines, a strong
    cut-off not below it."""
    floor, strong = values.get("floor"), values.get("strong")
    return floor is not None and strong is not None and -1.0 <= floor <= 1.0 and strong >= floor


def _above(mu: float, sigma: float, z: float) -> float:
    """``mu + z * sigma``: -inf for z = -inf, +inf when the scores do not spread (none stands out)."""
    if z == -math.inf:
        return -math.inf
    return mu + z * sigma if sigma > 1e-9 else math.inf


# How likely a hit of each band is a right photo, in words a viewer shows beside the band: the
# precision `make bench-bands` measured for the default model on flickr8k-1k and imagenet-sample
# (docs/benchmarks.md): strong 99.5 % (imagenet classes), good 60-76 % (keywords, natural queries,
# classes), weak 0.5-31 %.
BAND_CHANCE = {
    Band.STRONG: "high: over 9 in 10 strong matches were the right photo in labelled tests",
    Band.GOOD: "fair: 6 to 8 in 10 good matches were the right photo in labelled tests",
    Band.WEAK: "low: nonsense queries find photos as close as this one",
}


def band_chance(band: str) -> str:
    """The chance, in words, that a hit of ``band`` is a right photo ("" for no band)."""
    try:
        return BAND_CHANCE[Band(band)]
    except ValueError:
        return ""


def nonsense_queries(n: int, seed: int = 0) -> list[str]:
    """``n`` pronounceable nonsense queries of one to three made-up words of two or three syllables
    (seeded; one-syllable words are too often real ones: "tree", "rail")."""
    rng = np.random.default_rng(seed)

    def word() -> str:
        syllables = int(rng.integers(2, 4))
        return "".join(
            str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) + str(rng.choice(_CODAS))
            for _ in range(syllables)
        )

    return [" ".join(word() for _ in range(int(rng.integers(1, 4)))) for _ in range(n)]


def calibrate(top_cosines: Sequence[float] | np.ndarray) -> Relevance:
    """The bands from the best cosines the background queries reached."""
    top = np.asarray(top_cosines, dtype=np.float64)
    if len(top) == 0:
        return Relevance.from_values({"floor": -1.0, "strong": -1.0})
    floor = float(np.quantile(top, FLOOR_QUANTILE))
    q1, q3 = np.quantile(top, [0.25, 0.75])
    spread = max(float(q3 - q1), 0.01)
    return Relevance.from_values({"floor": floor, "strong": floor + STRONG_MARGIN * spread})


def measure(
    embed_texts: Callable[[list[str]], np.ndarray], best_cosine: Callable[[np.ndarray], float]
) -> Relevance:
    """Calibrate with a model's text embeddings and a collection's best cosine for a query vector."""
    vectors = embed_texts(nonsense_queries(BACKGROUND_QUERIES))
    return calibrate([best_cosine(v) for v in vectors])

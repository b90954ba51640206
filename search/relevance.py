"""Relevance a person can read: how a text query's hit compares with what nonsense finds.

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

The constants were chosen on the training pool (``flickr8k-train``), never on the sets the
closing notes report (``make bench-relevance``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

BACKGROUND_QUERIES = 96
FLOOR_QUANTILE = 0.9
STRONG_MARGIN = 3.0
_ONSETS = ("b", "bl", "br", "d", "dr", "f", "fl", "g", "gr", "k", "kr", "l", "m", "n", "p", "pl", "pr",
           "qu", "r", "s", "sk", "sl", "sn", "t", "tr", "v", "w", "x", "z", "zw")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "oo", "ee", "ai", "ou", "y")
_CODAS = ("", "", "b", "ck", "f", "g", "l", "m", "n", "nk", "p", "rf", "rt", "sh", "t", "x", "zz")


class Band(StrEnum):
    STRONG = "strong"
    GOOD = "good"
    WEAK = "weak"


@dataclass(frozen=True)
class Relevance:
    floor: float  # cosine below which a hit does no better than nonsense
    strong: float  # cosine from which a hit is a strong match

    def band(self, cosine: float) -> Band:
        if cosine >= self.strong:
            return Band.STRONG
        return Band.GOOD if cosine >= self.floor else Band.WEAK


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
        return Relevance(floor=-1.0, strong=-1.0)
    floor = float(np.quantile(top, FLOOR_QUANTILE))
    q1, q3 = np.quantile(top, [0.25, 0.75])
    spread = max(float(q3 - q1), 0.01)
    return Relevance(floor=floor, strong=floor + STRONG_MARGIN * spread)


def measure(
    embed_texts: Callable[[list[str]], np.ndarray], best_cosine: Callable[[np.ndarray], float]
) -> Relevance:
    """Calibrate with a model's text embeddings and a collection's best cosine for a query vector."""
    vectors = embed_texts(nonsense_queries(BACKGROUND_QUERIES))
    return calibrate([best_cosine(v) for v in vectors])

"""Scores in the model's own units: logit = exp(logit_scale) * cosine (+ logit_bias for SigLIP).

* CLIP-style models (trained with a softmax contrastive loss): the probability of a hit is the
  softmax of the logits over the candidate set (the results the query retrieved; see
  :data:`search.searcher.MIN_CANDIDATES`), i.e. "which of these photos does the text describe".
* SigLIP (trained with a sigmoid loss): each hit's probability is sigmoid(logit) on its own, i.e.
  "does this text describe this photo", independent of the other results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from indexer.core.models import DualEncoder


@dataclass(frozen=True)
class ScoreModel:
    """The learned temperature (and bias) of a dual encoder."""

    logit_scale: float  # the learned LOG scale
    logit_bias: float | None = None
    is_sigmoid: bool = False

    @classmethod
    def from_encoder(cls, encoder: DualEncoder) -> ScoreModel:
        bias = encoder.logit_bias
        return cls(
            logit_scale=float(encoder.logit_scale),
            logit_bias=None if bias is None else float(bias),
            is_sigmoid=bool(encoder.is_sigmoid),
        )

    @property
    def scale(self) -> float:
        return math.exp(self.logit_scale)

    def logits(self, cosines: np.ndarray | Sequence[float]) -> np.ndarray:
        cos = np.asarray(cosines, dtype=np.float64)
        out = self.scale * cos
        if self.logit_bias is not None:
            out = out + self.logit_bias
        return out

    def probabilities(self, cosines: np.ndarray | Sequence[float]) -> np.ndarray:
        """Sigmoid per item (SigLIP) or softmax over all given items (CLIP-style)."""
        logits = self.logits(cosines)
        if logits.size == 0:
            return logits
        return sigmoid(logits) if self.is_sigmoid else softmax(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - np.max(logits)
    e = np.exp(shifted)
    return e / e.sum()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |logit|.
    out = np.empty_like(logits, dtype=np.float64)
    pos = logits >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-logits[pos]))
    e = np.exp(logits[~pos])
    out[~pos] = e / (1.0 + e)
    return out

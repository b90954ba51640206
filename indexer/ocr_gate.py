"""A text-presence gate ahead of text recognition: photos it judges to hold no text skip the OCR engine.

The gate is a linear probe (logistic regression) on the visual vector that embedding has already
stored for each photo (the default model's EfficientNet-Lite2 pooled features, ``VISUAL`` space):
one dot product per photo, no decoding, no engine. It was trained on flickr8k-train only
(``tests/bench/train_ocr_gate.py``: natural photos labelled by the real engine, plus words
rendered onto them) and its threshold chosen there on held-out photos; its figures on other sets
are in docs/benchmarks.md.

Invariants:

- the gate applies only to the models whose visual vector it was trained on (:data:`GATED_MODELS`,
  fp32 towers): every other collection reads every photo, as before;
- a photo it skips is stored as read with no text by :meth:`TextGate.engine_for` (``gate <version>``
  and the engine it stands in for), so another gate version or another engine judges it again;
- a photo without a stored visual vector is never skipped;
- the gate is opt-in, ``$DUALENS_OCR=gate``: measured on imagenet-sample it let through most photos
  without text and held back half of those with words (docs/benchmarks.md), so by default, and with
  ``$DUALENS_OCR=all``, the engine reads every photo, those a gated run skipped too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from indexer.core.models.default_spec import DEFAULT_MODEL_ID, V5_MODEL_ID
from indexer.core.settings import OCR_ENV

GATE_FILE = Path(__file__).with_name("ocr_gate_lite2.npz")
# v4.2 and v5 share the image side (EfficientNet-Lite2 features, default preprocessing): same vectors
GATED_MODELS = frozenset({DEFAULT_MODEL_ID, V5_MODEL_ID})
GATED_PRECISION = "fp32"
GATED = "gate"  # $DUALENS_OCR=gate: the gate runs (opt-in); any other value: every photo is read
# what np.load raises on a damaged .npz (empty, truncated, not an archive, a field missing)
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TextGate:
    """``weights`` (dim,) and ``bias`` of the probe; a photo is read when its score is at least
    ``threshold``. ``version``: the recipe and a digest of the weights."""

    version: str
    weights: np.ndarray
    bias: float
    threshold: float

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """The probe's logit of each row of ``vectors`` (n, dim)."""
        return np.asarray(vectors, np.float32) @ self.weights + np.float32(self.bias)

    def keep(self, vectors: np.ndarray) -> np.ndarray:
        """Boolean (n,): which photos the engine should read (those that may hold text)."""
        return self.scores(vectors) >= self.threshold

    def engine_for(self, reader_name: str) -> str:
        """The engine name stored with a photo this gate skipped, in front of ``reader_name``."""
        return f"gate {self.version} / {reader_name}"


def load_gate(path: Path | None = None) -> TextGate:
    """The gate saved at ``path`` (default :data:`GATE_FILE`): weights, bias, threshold, recipe name."""
    return _load(str(path or GATE_FILE))


@cache
def _load(path: str) -> TextGate:
    raw = Path(path).read_bytes()
    with np.load(path) as saved:
        weights = np.asarray(saved["weights"], np.float32)
        recipe = str(saved["recipe"])
        return TextGate(
            f"{recipe}-{hashlib.sha256(raw).hexdigest()[:8]}",
            weights,
            float(saved["bias"]),
            float(saved["threshold"]),
        )


def save_gate(path: Path, recipe: str, weights: np.ndarray, bias: float, threshold: float) -> None:
    """Write a gate for :func:`load_gate` (float32 weights: a few KB)."""
    with path.open("wb") as out:
        np.savez(
            out,
            weights=np.asarray(weights, np.float32),
            bias=np.float32(bias),
            threshold=np.float32(threshold),
            recipe=np.array(recipe),
        )


def gate_asked(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$DUALENS_OCR=gate`` asks for the text gate (else every photo is read)."""
    return (os.environ if environ is None else environ).get(OCR_ENV, "").strip().lower() == GATED


def gate_for(
    model_id: str | None, precision: str = GATED_PRECISION, environ: Mapping[str, str] | None = None
) -> TextGate | None:
    """The gate for a collection of ``model_id`` at ``precision`` when ``$DUALENS_OCR=gate``, or None
    (every photo is read): not asked for, another model, int8 towers, or no readable gate file (a
    damaged one is logged and ignored)."""
    if not gate_asked(environ) or model_id not in GATED_MODELS or precision != GATED_PRECISION:
        return None
    if not GATE_FILE.is_file():
        return None
    try:
        return load_gate()
    except UNREADABLE as exc:
        log.warning("ignoring the unreadable text gate %s (every photo is read): %s", GATE_FILE, exc)
        return None


def split(
    gate: TextGate, ids: Sequence[int], vectors_of: dict[int, np.ndarray]
) -> tuple[list[int], list[int]]:
    """``ids`` as (to read, to skip): skipped are those with a vector in ``vectors_of`` that the gate
    judges to hold no text; a photo without a vector is read."""
    judged = [i for i in ids if i in vectors_of]
    keep = gate.keep(np.stack([vectors_of[i] for i in judged])) if judged else np.zeros(0, bool)
    skipped = {i for i, k in zip(judged, keep, strict=True) if not k}
    return [i for i in ids if i not in skipped], [i for i in ids if i in skipped]

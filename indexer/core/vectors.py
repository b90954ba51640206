"""L2-normalised float32 vectors: made once at the model boundary, checked at every storage boundary."""

from __future__ import annotations

import numpy as np

UNIT_TOLERANCE = 1e-3


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (a zero row stays zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return arr / np.maximum(norms, np.float32(1e-12))


def non_unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Positions of the rows that are not finite unit vectors (garbage bytes among them: no warning)."""
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1), axis=1)
    return np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1.0) > UNIT_TOLERANCE))

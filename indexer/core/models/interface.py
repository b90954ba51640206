"""The one encoder interface the indexer, search and quality code are written against.

:class:`~indexer.core.models.DualEncoder` implements it; tests use small stand-ins of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from indexer.core.models.preprocess import PreprocessConfig


class Encoder(Protocol):
    """Images and texts to comparable L2-normalised float32 vectors of one model."""

    @property
    def model_id(self) -> str: ...

    @property
    def preprocess_config(self) -> PreprocessConfig: ...

    @property
    def visual_dim(self) -> int: ...  # 0: the joint image vector serves image-to-image search too

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray: ...

    def embed_pixels_pair(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

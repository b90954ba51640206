"""A deterministic stand-in for DualEncoder: counts what it embeds, loads nothing (fast pipeline tests)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from indexer.core.models.preprocess import PreprocessConfig

FAKE_PREPROCESS = PreprocessConfig(
    size=(16, 16),
    resize_shortest_edge=16,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    resample=int(Image.Resampling.BICUBIC),
    rescale_factor=1 / 255,
)


class FakeEncoder:
    """Embeds pixels by a fixed random projection: identical pixels give identical vectors."""

    def __init__(
        self, model_id: str = "fake-encoder-v1", dim: int = 8, seed: int = 0, visual_dim: int = 0
    ) -> None:
        self.model_id = model_id
        self.dim = dim
        self.visual_dim = visual_dim
        self.preprocess_config = FAKE_PREPROCESS
        h, w = FAKE_PREPROCESS.size
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((3 * h * w, dim)).astype(np.float32)
        self._visual = rng.standard_normal((3 * h * w, visual_dim)).astype(np.float32)
        self.batches: list[int] = []  # size of every embed_pixels call

    @property
    def n_embedded(self) -> int:
        return sum(self.batches)

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        flat = np.asarray(pixel_values, dtype=np.float32).reshape(len(pixel_values), -1)
        self.batches.append(len(flat))
        vectors = flat @ self._projection
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_pixels_pair(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The joint vectors, and with ``visual_dim`` a second projection as the visual ones."""
        joint = self.embed_pixels(pixel_values)
        if not self.visual_dim:
            return joint, None
        visual = np.asarray(pixel_values, dtype=np.float32).reshape(len(pixel_values), -1) @ self._visual
        return joint, visual / np.linalg.norm(visual, axis=1, keepdims=True)

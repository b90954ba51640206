"""Seeded synthetic embeddings with cluster structure, for vector-index tests and the search benchmark.

Real image embeddings are not uniform on the sphere: they share a common direction (the "cone"
of a modality; mean pairwise cosine well above 0) and gather in semantic clusters of very
different sizes. The model here: ``n_clusters`` centres = random unit vectors pulled towards one
shared mean direction (``anisotropy``), cluster sizes from a Dirichlet(2) draw, points = centre +
isotropic gaussian noise of norm ~``spread``, L2-normalised. Queries come from the same mixture
with a wider spread (``query_spread``): like text queries, they fall between the photos rather
than on top of one. With the defaults at dim 384: mean pairwise cosine ~0.11, a photo's nearest
neighbour ~0.63, a query's nearest photo ~0.57.

:meth:`Mixture.from_centers` puts the clusters around given vectors instead. The search benchmark
uses the default model's text embeddings of the 1000 ImageNet class prompts: the default model's
image embeddings are convex combinations of exactly those vectors (ConSE), so real text queries
relate to the synthetic photos the way they relate to real ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mixture:
    centers: np.ndarray  # (n_clusters, dim) unit vectors
    weights: np.ndarray  # (n_clusters,) cluster probabilities

    @classmethod
    def make(cls, dim: int = 384, n_clusters: int = 1000, anisotropy: float = 0.5, seed: int = 0) -> Mixture:
        rng = np.random.default_rng(seed)
        mean = rng.standard_normal(dim).astype(np.float32)
        mean /= np.linalg.norm(mean)
        centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        centers += anisotropy * mean
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        weights = rng.dirichlet(np.full(n_clusters, 2.0))
        return cls(centers.astype(np.float32), weights)

    @classmethod
    def from_centers(cls, centers: np.ndarray, seed: int = 0) -> Mixture:
        """Clusters around given unit vectors, e.g. a model's text embeddings of class prompts."""
        c = np.asarray(centers, dtype=np.float32)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
        weights = np.random.default_rng(seed).dirichlet(np.full(len(c), 2.0))
        return cls(c, weights)

    @property
    def dim(self) -> int:
        return int(self.centers.shape[1])

    def sample(self, n: int, seed: int, spread: float = 0.9, chunk: int = 100_000) -> np.ndarray:
        """(n, dim) float32 unit vectors (generated in chunks to bound memory)."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(len(self.weights), size=n, p=self.weights)
        out = np.empty((n, self.dim), dtype=np.float32)
        scale = np.float32(spread / math.sqrt(self.dim))
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            x = rng.standard_normal((end - start, self.dim), dtype=np.float32) * scale
            x += self.centers[labels[start:end]]
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[start:end] = x
        return out

    def queries(self, n: int, seed: int, query_spread: float = 1.2) -> np.ndarray:
        return self.sample(n, seed, spread=query_spread)


def exact_topk(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k ids and scores with NumPy (the reference every index is checked against)."""
    scores = queries @ vectors.T
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    return ids[top], np.take_along_axis(scores, top, axis=1)

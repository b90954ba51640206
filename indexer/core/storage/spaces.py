"""The vector spaces of a collection: which column holds each, and which FAISS file derives from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexer.core.settings import CollectionPaths
from indexer.core.storage.database import InfoKey


@dataclass(frozen=True)
class Space:
    """One vector space of a collection: its column, the key of its size, and its FAISS file.

    ``JOINT`` (image-text) serves text and composite queries; ``VISUAL`` (the model's own image
    features, where it has them) serves image-to-image search and duplicates. Both files are derived
    from the database the same way: stamped with the generation, rebuilt when stale.
    """

    name: str
    column: str  # the Photo attribute holding the vector blob
    dim_key: str
    saved_key: str  # generation of the last file saved
    file_name: str

    def path(self, paths: CollectionPaths) -> Path:
        return paths.root / self.file_name


JOINT = Space("joint", "vector", InfoKey.DIM, InfoKey.INDEX_GENERATION, "vectors.faiss")
VISUAL = Space("visual", "visual", InfoKey.VISUAL_DIM, InfoKey.VISUAL_INDEX_GENERATION, "visual.faiss")

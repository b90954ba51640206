"""End of a run: bring the FAISS file in line with the database.

If the file on disk was current when the run started, apply the run's delta (remove the ids whose
vector went away or changed, add the new vectors read back from the database). Otherwise, or if the
delta cannot be applied (an index type without removal, a count that does not add up), rebuild
from the database. The result is saved atomically, stamped with the database generation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from sqlalchemy import func, select

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection, InfoKey, get_info
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.storage.vector_index import VectorIndex

log = logging.getLogger(__name__)


def _db_state(collection: Collection) -> tuple[int, int, int]:
    """(generation, dim, number of indexed rows), read in one transaction."""
    with collection.session() as s, s.begin():
        generation = int(get_info(s, InfoKey.GENERATION) or 0)
        dim = int(get_info(s, InfoKey.DIM) or 0)
        n = s.scalar(select(func.count()).select_from(Photo).where(Photo.status == PhotoStatus.INDEXED))
    return generation, dim, int(n or 0)


def _apply_delta(collection: Collection, removed: set[int], added: set[int], dim: int) -> VectorIndex | None:
    try:
        index = collection.read_index_file()
    except CollectionError as exc:
        log.warning("%s; rebuilding it from the database", exc)
        return None
    if index.dim != dim:
        return None
    try:
        index.remove(np.array(sorted(removed | added), dtype=np.int64))
        ids, vectors = collection.indexed_vectors(sorted(added))
        index.add(ids, vectors)
    except (RuntimeError, ValueError) as exc:  # e.g. an index type that cannot remove ids
        log.info("cannot update the vector index in place (%s); rebuilding it", exc)
        return None
    return index


def _file_matches(collection: Collection, generation: int, n_indexed: int) -> bool:
    """The file on disk loads, is intact and holds this generation's vectors (cheap next to a run)."""
    try:
        index = collection.read_index_file()
    except CollectionError:
        return False
    return index.generation == generation and index.ntotal == n_indexed


def update_index(
    collection: Collection,
    *,
    was_current: bool,
    removed: Iterable[int],
    added: Iterable[int],
) -> VectorIndex | None:
    """Save an index matching the database; None when the file on disk already matches it."""
    removed_set, added_set = set(removed), set(added)
    generation, dim, n_indexed = _db_state(collection)
    if not removed_set and not added_set and _file_matches(collection, generation, n_indexed):
        return None
    index: VectorIndex | None = None
    if was_current and dim:
        index = _apply_delta(collection, removed_set, added_set, dim)
        if index is not None and index.needs_rebuild():  # an IVF-PQ delta grown large: fold it in
            index = None
        if index is not None and index.ntotal != n_indexed:
            log.warning(
                "vector index holds %d vectors for %d indexed rows; rebuilding it", index.ntotal, n_indexed
            )
            index = None
    if index is None:
        index = collection.build_index_from_db()
    else:
        index.generation = generation
    collection.save_index(index)
    return index

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

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import JOINT, Collection, InfoKey, Space, count_indexed, get_info
from indexer.core.storage.vector_index import VectorIndex

log = logging.getLogger(__name__)


def _db_state(collection: Collection, space: Space) -> tuple[int, int, int]:
    """(generation, dim, number of rows in the space's index), read in one transaction."""
    with collection.session() as s, s.begin():
        generation = int(get_info(s, InfoKey.GENERATION) or 0)
        dim = int(get_info(s, space.dim_key) or 0)
        n = count_indexed(s, space)
    return generation, dim, n


def _apply_delta(
    collection: Collection, removed: set[int], added: set[int], dim: int, space: Space
) -> VectorIndex | None:
    try:
        index = collection.read_index_file(space)
    except CollectionError as exc:
        log.warning("%s; rebuilding it from the database", exc)
        return None
    if index.dim != dim:
        return None
    try:
        index.remove(np.array(sorted(removed | added), dtype=np.int64))
        ids, vectors = collection.indexed_vectors(sorted(added), space=space)
        index.add(ids, vectors)
    except (RuntimeError, ValueError) as exc:  # e.g. an index type that cannot remove ids
        log.info("cannot update the vector index in place (%s); rebuilding it", exc)
        return None
    return index


def _file_matches(collection: Collection, generation: int, n_indexed: int, space: Space) -> bool:
    """The file on disk loads, is intact and holds this generation's vectors (cheap next to a run)."""
    try:
        index = collection.read_index_file(space)
    except CollectionError:
        return False
    return index.generation == generation and index.ntotal == n_indexed


def current_spaces(collection: Collection) -> dict[Space, bool]:
    """Per vector space kept, whether its file is current now (before a run changes the database)."""
    return {space: collection.index_is_current(space) for space in collection.spaces()}


def update_indexes(
    collection: Collection, was_current: dict[Space, bool], removed: Iterable[int], added: Iterable[int]
) -> None:
    """Bring every space's file in line with the database, in ``Collection.spaces_to_save`` order."""
    removed_set, added_set = set(removed), set(added)
    for space in collection.spaces_to_save():
        update_index(
            collection,
            was_current=was_current.get(space, False),
            removed=removed_set,
            added=added_set,
            space=space,
        )


def update_index(
    collection: Collection,
    *,
    was_current: bool,
    removed: Iterable[int],
    added: Iterable[int],
    space: Space = JOINT,
) -> VectorIndex | None:
    """Save an index matching the database; None when the file on disk already matches it."""
    removed_set, added_set = set(removed), set(added)
    generation, dim, n_indexed = _db_state(collection, space)
    if not removed_set and not added_set and _file_matches(collection, generation, n_indexed, space):
        return None
    index: VectorIndex | None = None
    if was_current and dim:
        index = _apply_delta(collection, removed_set, added_set, dim, space)
        if index is not None and index.needs_rebuild():  # an IVF-PQ delta grown large: fold it in
            index = None
        if index is not None and index.ntotal != n_indexed:
            log.warning(
                "vector index holds %d vectors for %d indexed rows; rebuilding it", index.ntotal, n_indexed
            )
            index = None
    if index is None:
        index = collection.build_index_from_db(space=space)
    else:
        index.generation = generation
    collection.save_index(index, space)
    return index

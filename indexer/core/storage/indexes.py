"""The vector indexes of a collection, joint and visual: ONE owner loads, builds, updates and saves
both FAISS files against the database generation.

A file is a cache of the vectors of the rows with status ``indexed``, stamped with the generation it
reflects and with the collection's id; a missing, stale or foreign file is rebuilt from the
database, a damaged one is reported. Saves are atomic (``VectorIndex.save``) and the visual file is
saved before the joint one, which searchers watch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from indexer.core.errors import CollectionError, UsageError
from indexer.core.storage.compressed import (
    INDEX_KINDS,
    STREAM_CHUNK,
    CompressedIndex,
    ShardExecutor,
    build_streamed,
    plan_index,
)
from indexer.core.storage.database import Database, InfoKey, delete_info, get_info, get_int, set_info
from indexer.core.storage.rows import PhotoRows, count_indexed, indexed_vector_chunks, read_indexed_vectors
from indexer.core.storage.schema import Photo
from indexer.core.storage.spaces import JOINT, VISUAL, Space
from indexer.core.storage.vector_index import VectorIndex, read_stamp

log = logging.getLogger(__name__)


def drop_visual(session: Session, database: Database) -> None:
    """Forget the visual vectors (a model without them takes over), in the caller's transaction."""
    session.execute(update(Photo).where(Photo.visual.is_not(None)).values(visual=None))
    delete_info(session, InfoKey.VISUAL_DIM, InfoKey.VISUAL_INDEX_GENERATION)
    VISUAL.path(database.paths).unlink(missing_ok=True)


@dataclass(frozen=True)
class IndexState:
    """Which spaces' files were current when a run started (only those take a delta)."""

    current: frozenset[Space]


class VectorIndexes:
    """Both vector spaces' FAISS files of one collection."""

    def __init__(self, database: Database, rows: PhotoRows) -> None:
        self.database = database
        self.rows = rows
        self.paths = database.paths

    # ------------------------------------------------------------------ spaces
    def spaces(self) -> tuple[Space, ...]:
        """The vector spaces this collection keeps: the joint one, and the visual one when its model
        has visual vectors."""
        with self.database.session() as s:
            visual = get_int(s, InfoKey.VISUAL_DIM)
        return (JOINT, VISUAL) if visual else (JOINT,)

    def spaces_to_save(self) -> tuple[Space, ...]:
        """:meth:`spaces` in the order their files are saved: the visual one first, so that a searcher
        that sees a new joint file (the one it watches) finds the visual file already saved."""
        return tuple(reversed(self.spaces()))

    def similarity_space(self) -> Space:
        """The space image-to-image search and duplicates use: visual when kept, else joint."""
        return self.spaces()[-1]

    # ------------------------------------------------------------------ reading
    def _is_foreign(self, index: VectorIndex) -> bool:
        """Whether an index file was saved by another collection (its id is not this one's)."""
        return index.collection_id != self.database.info_value(InfoKey.COLLECTION_ID)

    def _with_rerank(self, index: VectorIndex, space: Space) -> VectorIndex:
        """An IVF-PQ index re-ranks its candidates with their exact vectors from this database."""
        if isinstance(index, CompressedIndex):
            index.rerank_source = lambda ids: self.rows.indexed_vectors(ids.tolist(), space=space)
        return index

    def read_file(self, space: Space = JOINT) -> VectorIndex:
        """The FAISS file on disk, verified: CollectionError if missing, damaged or another collection's."""
        path = space.path(self.paths)
        index = self._with_rerank(VectorIndex.load(path), space)
        if self._is_foreign(index):
            raise CollectionError(
                f"the vector index {path} belongs to another collection; run `dualens rebuild-index`"
            )
        return index

    def load(self, space: Space = JOINT) -> VectorIndex:
        """The FAISS index; a missing, stale or foreign file is rebuilt from the database in memory
        (not saved). A damaged file raises CollectionError (``dualens rebuild-index`` repairs it).
        """
        with self.database.session() as s:
            generation = get_int(s, InfoKey.GENERATION)
            dim = get_int(s, space.dim_key)
        path = space.path(self.paths)
        if path.exists():
            index = VectorIndex.load(path)
            if self._is_foreign(index):
                log.warning("vector index %s belongs to another collection; rebuilding it in memory", path)
                return self.build(space=space)
            if index.generation == generation and (dim == 0 or index.dim == dim):
                return self._with_rerank(index, space)
            log.info(
                "vector index %s is stale (generation %d, database %d); rebuilding it in memory",
                path,
                index.generation,
                generation,
            )
        else:
            log.info("vector index %s is missing; rebuilding it in memory", path)
        return self.build(space=space)

    def is_current(self, space: Space = JOINT) -> bool:
        """Cheap check (the file's header only): this data folder's file holds the database's generation
        of this collection.

        Decided by the file's own stamp, never by the generation recorded in the database at the last
        save: a database shared by several data folders records the saves of all of them.
        """
        stamp = read_stamp(space.path(self.paths))
        if stamp is None:
            return False
        with self.database.session() as s:
            generation = get_int(s, InfoKey.GENERATION)
            collection_id = get_info(s, InfoKey.COLLECTION_ID)
        return stamp.generation == generation and stamp.collection_id == collection_id

    # ------------------------------------------------------------------ building and saving
    def build(
        self,
        *,
        session: Session | None = None,
        executor: ShardExecutor | None = None,
        space: Space = JOINT,
    ) -> VectorIndex:
        """A fresh index of every indexed row's vector, stamped with the generation read alongside;
        its type from the collection's index choice and memory budget (``compressed.plan_index``)."""
        with self.database.reading(session) as s:  # one read transaction: vectors and generation agree
            generation = get_int(s, InfoKey.GENERATION)
            dim = get_int(s, space.dim_key)
            requested = get_info(s, InfoKey.INDEX_KIND) or "auto"
            budget = get_int(s, InfoKey.MEMORY_BUDGET) or None
            if dim == 0:
                return VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 1), np.float32), 1, generation)
            n = count_indexed(s, space)
            plan = plan_index(n, dim, requested, budget)
            if plan.kind == "ivfpq":  # streamed: the float vectors never all in RAM at once
                built = build_streamed(
                    lambda: indexed_vector_chunks(s, dim, STREAM_CHUNK, space),
                    n,
                    dim,
                    plan,
                    generation,
                    directory=self.paths.root,
                    rerank_source=lambda ids: self.rows.indexed_vectors(ids.tolist(), session=s, space=space),
                    executor=executor,
                    stem=Path(space.file_name).stem,
                )
                return self._with_rerank(built, space)
            ids, vectors = read_indexed_vectors(s, dim, space)
        return VectorIndex.build(ids, vectors, dim, generation, kind=plan.kind, nlist=plan.nlist)

    def save(self, index: VectorIndex, space: Space = JOINT) -> None:
        """Save atomically (stamped with this collection's id), then record which generation it holds."""
        index.collection_id = self.database.collection_id()
        index.save(space.path(self.paths))
        with self.database.writing() as s:
            set_info(s, space.saved_key, index.generation)

    def rebuild(self, executor: ShardExecutor | None = None, space: Space = JOINT) -> VectorIndex:
        """Rebuild a FAISS index from the database and save it atomically (an IVF-PQ build's
        shards added on ``executor`` when given, e.g. Ray tasks)."""
        index = self.build(executor=executor, space=space)
        self.save(index, space)
        return index

    def choose(self, kind: str = "auto", memory_budget: int | None = None) -> None:
        """Record the index type the next builds use (``auto``: by size and memory budget)."""
        if kind not in INDEX_KINDS:
            raise UsageError(f"unknown index type {kind!r}; choose {', '.join(INDEX_KINDS)}")
        with self.database.session() as s:
            dim = get_int(s, InfoKey.DIM)
            n = count_indexed(s)
        if dim and n:
            plan_index(n, dim, kind, memory_budget)  # a choice that cannot be built is refused, not kept
        with self.database.writing() as s:
            set_info(s, InfoKey.INDEX_KIND, kind)
            if memory_budget:
                set_info(s, InfoKey.MEMORY_BUDGET, memory_budget)
            else:
                delete_info(s, InfoKey.MEMORY_BUDGET)

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete index temp files left by a writer killed mid-save. Call only holding the index lock."""
        stale: list[Path] = []
        for space in (JOINT, VISUAL):
            vector_file = space.path(self.paths)
            stale.extend(sorted(vector_file.parent.glob(f"{vector_file.name}.*.tmp")))
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    # ------------------------------------------------------------------ the end of a run
    def state(self) -> IndexState:
        """Which files are current now: take it before a run changes the database."""
        return IndexState(frozenset(space for space in self.spaces() if self.is_current(space)))

    def update(self, before: IndexState, removed: Iterable[int], added: Iterable[int]) -> None:
        """Bring every space's file in line with the database, in :meth:`spaces_to_save` order.

        A file that was current when the run started takes the run's delta (the ids whose vector went
        away or changed removed, the new vectors read back from the database added); otherwise, or if
        the delta cannot be applied (an index type without removal, a count that does not add up),
        it is rebuilt from the database. Each result is saved atomically, stamped with the generation.
        """
        removed_set, added_set = set(removed), set(added)
        for space in self.spaces_to_save():
            self.update_space(space, space in before.current, removed_set, added_set)

    def update_space(
        self, space: Space, was_current: bool, removed: set[int], added: set[int]
    ) -> VectorIndex | None:
        """Save an index of ``space`` matching the database; None when the file already matches it."""
        with self.database.writing() as s:  # one transaction: generation, size and count agree
            generation = get_int(s, InfoKey.GENERATION)
            dim = get_int(s, space.dim_key)
            n_indexed = count_indexed(s, space)
        if not removed and not added and self._file_matches(generation, n_indexed, space):
            return None
        index: VectorIndex | None = None
        if was_current and dim:
            index = self._apply_delta(removed, added, dim, space)
            if index is not None and index.needs_rebuild():  # an IVF-PQ delta grown large: fold it in
                index = None
            if index is not None and index.ntotal != n_indexed:
                log.warning(
                    "vector index holds %d vectors for %d indexed rows; rebuilding it",
                    index.ntotal,
                    n_indexed,
                )
                index = None
        if index is None:
            index = self.build(space=space)
        else:
            index.generation = generation
        self.save(index, space)
        return index

    def _file_matches(self, generation: int, n_indexed: int, space: Space) -> bool:
        """The file on disk loads, is intact and holds this generation's vectors (cheap next to a run)."""
        try:
            index = self.read_file(space)
        except CollectionError:
            return False
        return index.generation == generation and index.ntotal == n_indexed

    def _apply_delta(self, removed: set[int], added: set[int], dim: int, space: Space) -> VectorIndex | None:
        try:
            index = self.read_file(space)
        except CollectionError as exc:
            log.warning("%s; rebuilding it from the database", exc)
            return None
        if index.dim != dim:
            return None
        try:
            index.remove(np.array(sorted(removed | added), dtype=np.int64))
            ids, vectors = self.rows.indexed_vectors(sorted(added), space=space)
            index.add(ids, vectors)
        except (RuntimeError, ValueError) as exc:  # e.g. an index type that cannot remove ids
            log.info("cannot update the vector index in place (%s); rebuilding it", exc)
            return None
        return index

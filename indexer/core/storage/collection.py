"""One collection = one data directory and one database (its SQLite file, or a PostgreSQL server's),
with the FAISS indexes derived from the database.

The database is the source of truth (rows + L2-normalised float32 vector blobs). The FAISS files
are caches of the vectors of the rows with status ``indexed``, stamped with the database
*generation* they reflect; a missing or stale file is rebuilt from the database, a damaged one is
reported.

:class:`Collection` is the unit of data other code holds. It is made of three owners:
``database`` (engine, sessions, migrations, the ``collection_info`` facts, the server lock),
``rows`` (reads and small writes of the photo rows) and ``indexes`` (both vector spaces' FAISS
files). A run's batches are written by :class:`~indexer.core.storage.batches.RowWriter`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from indexer.core.settings import CollectionPaths
from indexer.core.storage.compressed import ShardExecutor
from indexer.core.storage.database import (
    Database,
    InfoKey,
    bump_generation,
    get_info,
    set_info,
    shown_url,
    utcnow,
)
from indexer.core.storage.indexes import VectorIndexes
from indexer.core.storage.rows import (
    CollectionStats,
    PhotoRows,
    count_indexed,
    indexed_vector_chunks,
    read_indexed_vectors,
)
from indexer.core.storage.schema import Photo
from indexer.core.storage.spaces import JOINT, VISUAL, Space
from indexer.core.storage.text import (
    TextMatch,
    TextResult,
    TextTodo,
    count_texts_to_read,
    photo_texts,
    text_matches,
    texts_to_read,
    write_texts,
)
from indexer.core.storage.vector_index import VectorIndex

__all__ = [
    "JOINT",
    "VISUAL",
    "Collection",
    "CollectionStats",
    "InfoKey",
    "Space",
    "TextMatch",
    "TextResult",
    "TextTodo",
    "bump_generation",
    "count_indexed",
    "get_info",
    "indexed_vector_chunks",
    "read_indexed_vectors",
    "set_info",
    "shown_url",
    "utcnow",
]


class Collection:
    """A collection of indexed photos in one data directory (see the module docstring)."""

    def __init__(self, database: Database) -> None:
        self.paths = database.paths
        self.database = database
        self.rows = PhotoRows(database)
        self.indexes = VectorIndexes(database, self.rows)

    @classmethod
    def open(
        cls, data: str | os.PathLike[str] | None = None, *, create: bool = False, db_url: str | None = None
    ) -> Collection:
        """Open the collection in ``data`` (``create``: make it if there is none), its database at
        ``db_url`` (default: ``$DUALENS_DB_URL``, else the data directory's SQLite file).

        A damaged database, or another program's SQLite file, raises CollectionError before
        anything is written to it; so does every later database error (one line, no traceback), an
        unreachable server and a schema revision of a newer dualens among them.
        """
        return cls(Database.open(CollectionPaths.from_option(data, db_url), create=create))

    @property
    def where(self) -> str:
        """The database, as shown to people (the SQLite file, or the server URL without password)."""
        return self.database.where

    # ------------------------------------------------------------------ sessions (storage modules only)
    @property
    def engine(self) -> Engine:
        """For modules of ``indexer.core.storage`` only (tests/test_layout.py keeps the indexer out)."""
        return self.database.engine

    def session(self) -> Session:
        """For modules of ``indexer.core.storage`` only: everything else asks a named method."""
        return self.database.session()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A session inside one read transaction: every read through it sees the same commit.

        Pass it as ``session=`` to :meth:`generation`, :meth:`photos`, :meth:`vectors` and
        :meth:`build_index_from_db` to get an index and metadata of the same database state while an
        indexer commits batches.
        """
        with self.database.snapshot() as s:
            yield s

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ what readers ask
    def info(self) -> CollectionStats:
        return self.rows.stats()

    def generation(self, *, session: Session | None = None) -> int:
        return self.database.generation(session=session)

    def collection_id(self) -> str:
        return self.database.collection_id()

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        return self.database.integrity_problems(quick=quick)

    def roots(self) -> list[Path]:
        return self.rows.roots()

    def photos(self, ids: Sequence[int], *, session: Session | None = None) -> dict[int, Photo]:
        return self.rows.photos(ids, session=session)

    def photo_by_path(self, path: str | Path) -> Photo | None:
        return self.rows.photo_by_path(path)

    def indexed_vectors(
        self, ids: Sequence[int], *, session: Session | None = None, space: Space = JOINT
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.rows.indexed_vectors(ids, session=session, space=space)

    def vectors(
        self, ids: Sequence[int], *, session: Session | None = None, space: Space = JOINT
    ) -> np.ndarray:
        return self.rows.vectors(ids, session=session, space=space)

    def spaces(self) -> tuple[Space, ...]:
        return self.indexes.spaces()

    def similarity_space(self) -> Space:
        return self.indexes.similarity_space()

    def read_index_file(self, space: Space = JOINT) -> VectorIndex:
        return self.indexes.read_file(space)

    def load_index(self, space: Space = JOINT) -> VectorIndex:
        return self.indexes.load(space)

    def build_index_from_db(
        self,
        *,
        session: Session | None = None,
        executor: ShardExecutor | None = None,
        space: Space = JOINT,
    ) -> VectorIndex:
        return self.indexes.build(session=session, executor=executor, space=space)

    def rebuild_index(self, executor: ShardExecutor | None = None, space: Space = JOINT) -> VectorIndex:
        return self.indexes.rebuild(executor, space)

    # ------------------------------------------------------------------ text in photos (storage/text.py)
    def text_matches(self, query: str, limit: int, allowed: Sequence[int] | None = None) -> list[TextMatch]:
        """Indexed photos whose recognised text holds every word of ``query`` (plain words, never
        syntax), best first, at most ``limit``, only among ``allowed`` when given."""
        return text_matches(self.database, query, limit, allowed)

    def photo_texts(self, ids: Sequence[int]) -> dict[int, str]:
        """The recognised text of those of ``ids`` that have some, for display."""
        return photo_texts(self.database, ids)

    def texts_to_read(
        self, engine: str | Sequence[str], *, after: int = 0, limit: int = 100
    ) -> list[TextTodo]:
        """Photos (id > ``after``, id order) whose text ``engine`` has not read from their current content."""
        return texts_to_read(self.database, engine, after=after, limit=limit)

    def count_texts_to_read(self, engine: str | Sequence[str]) -> int:
        return count_texts_to_read(self.database, engine)

    def write_texts(self, results: Sequence[TextResult]) -> int:
        """Store a batch of recognition results in one transaction; returns how many were stored."""
        return write_texts(self.database, results)

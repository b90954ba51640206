"""One collection = one data directory and one database (its SQLite file, or a PostgreSQL server's),
with the FAISS index derived from the database.

The database is the source of truth (rows + L2-normalised float32 vector blobs). The FAISS file is a
cache of the vectors of the rows with status ``indexed``, stamped with the database *generation* it
reflects; a missing or stale file is rebuilt from the database, a damaged one is reported.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, delete, func, make_url, select, text, update
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, defer, sessionmaker

from indexer.core.errors import CollectionError, NotFoundError, UsageError
from indexer.core.places import GEOCODER, Geocoder
from indexer.core.settings import PROJECT_DATA, CollectionPaths
from indexer.core.storage.compressed import (
    INDEX_KINDS,
    STREAM_CHUNK,
    CompressedIndex,
    ShardExecutor,
    build_streamed,
    plan_index,
)
from indexer.core.storage.migrations import stored_revision, upgrade
from indexer.core.storage.redact import redact
from indexer.core.storage.schema import (
    CollectionInfo,
    Photo,
    PhotoStatus,
    Root,
    blobs_to_matrix,
    damaged_database,
    inspect_sqlite_file,
    install_error_translation,
    install_sqlite_pragmas,
    integrity_problems,
    read_only_sqlite_uri,
)
from indexer.core.storage.vector_index import VectorIndex

log = logging.getLogger(__name__)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # row ids are SQL BIGINTs: SQLite cannot even bind others


class InfoKey:
    """Keys of the ``collection_info`` table."""

    MODEL_ID = "model_id"  # stable id of the model whose vectors the collection holds (load_encoder takes it)
    DIM = "dim"
    GENERATION = "generation"  # bumped in every transaction that changes the set of indexed vectors
    INDEX_GENERATION = "index_generation"  # generation of the last FAISS file saved by dualens
    LAST_INDEXED_AT = "last_indexed_at"  # ISO timestamp (UTC) of the end of the last `dualens index`
    RUN = "run"  # number of `dualens index` runs started
    COLLECTION_ID = "collection_id"  # random id, also written into the vector index file
    MODEL_FINGERPRINT = "model_fingerprint"  # content hash of a local model directory
    INDEX_KIND = "index_kind"  # `rebuild-index --index`: auto (default), flat, ivf or ivfpq
    MEMORY_BUDGET = "memory_budget"  # `rebuild-index --memory-budget`, bytes (default: a share of RAM)
    VISUAL_DIM = "visual_dim"  # size of the visual vectors; absent or 0: the joint vectors serve
    VISUAL_INDEX_GENERATION = "visual_index_generation"  # generation of the last visual FAISS file


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


@dataclass(frozen=True)
class CollectionStats:
    n_indexed: int
    n_failed: int
    model_id: str | None
    dim: int | None
    generation: int
    last_indexed_at: datetime | None
    roots: tuple[Path, ...]
    n_pending: int = 0  # rows waiting to be (re-)embedded, e.g. after `--reindex` was interrupted


def utcnow() -> datetime:
    """Naive UTC timestamp, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def get_info(session: Session, key: str) -> str | None:
    row = session.get(CollectionInfo, key)
    return None if row is None else row.value


def set_info(session: Session, key: str, value: str | int) -> None:
    row = session.get(CollectionInfo, key)
    if row is None:
        session.add(CollectionInfo(key=key, value=str(value)))
    else:
        row.value = str(value)


def bump_generation(session: Session) -> int:
    """Increment the generation inside the caller's transaction and return the new value."""
    new = int(get_info(session, InfoKey.GENERATION) or 0) + 1
    set_info(session, InfoKey.GENERATION, new)
    return new


CHUNK = 500  # ids per IN (...) list


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def read_indexed_vectors(session: Session, dim: int, space: Space = JOINT) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every indexed row, read in the caller's transaction."""
    parts = list(indexed_vector_chunks(session, dim, space=space))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _in_space(space: Space) -> list[Any]:
    """The rows a space's index holds: indexed ones (with a visual vector, for the visual space)."""
    conditions: list[Any] = [Photo.status == PhotoStatus.INDEXED]
    if space is not JOINT:  # rows of older runs get theirs on the next `dualens index`
        conditions.append(getattr(Photo, space.column).is_not(None))
    return conditions


def count_indexed(session: Session, space: Space = JOINT) -> int:
    return int(session.scalar(select(func.count()).where(*_in_space(space))) or 0)


def indexed_vector_chunks(
    session: Session, dim: int, rows: int = STREAM_CHUNK, space: Space = JOINT
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of every indexed row in id order, ``rows`` at a time (keyset pages over the
    (status, id) index), read in the caller's transaction."""
    column = getattr(Photo, space.column)
    query = select(Photo.id, column.label("vector")).where(*_in_space(space)).order_by(Photo.id)
    last: int | None = None
    while True:
        page = session.execute((query if last is None else query.where(Photo.id > last)).limit(rows)).all()
        if not page:
            return
        bad = [r.id for r in page if r.vector is None or len(r.vector) != dim * 4]
        if bad:
            raise CollectionError(
                f"{len(bad)} indexed photo(s) have a missing or wrong-sized vector (e.g. id {bad[0]}); "
                "run `dualens index --reindex`"
            )
        last = int(page[-1].id)
        yield (
            np.fromiter((r.id for r in page), np.int64, len(page)),
            blobs_to_matrix([r.vector for r in page], dim),
        )


def _no_collection(paths: CollectionPaths) -> CollectionError:
    if not paths.uses_sqlite_file:
        where = shown_url(paths.database_url)
        return CollectionError(f"no collection in the database {where}; run `dualens index --db URL PHOTOS`")
    data = "" if paths.root == PROJECT_DATA else f" --data {paths.root}"
    return CollectionError(f"no collection in {paths.root}; run `dualens index{data} PHOTOS`")


def shown_url(url: str) -> str:
    """A database URL to show: every spelling of a password hidden (userinfo, query, keywords)."""
    try:
        return redact(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return "(an unreadable URL)"


SERVER_DIALECTS = ("postgresql",)
INDEXER_LOCK = 0x64756C6E_0002  # PostgreSQL advisory lock key: one indexer per collection database


def _make_engine(url: str) -> Engine:
    """An engine for ``url``; UsageError-like CollectionError for a URL dualens cannot use."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CollectionError(
            f"--db {redact(url)!r} is not a database URL (e.g. postgresql+psycopg://user@host/db)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgres":  # libpq's spelling
        backend = "postgresql"
    if backend not in ("sqlite", *SERVER_DIALECTS):
        raise CollectionError(f"--db: dualens stores collections in SQLite or PostgreSQL, not {backend!r}")
    if backend == "sqlite":
        return create_engine(parsed)
    parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, the `postgres` extra
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise CollectionError(
            "a PostgreSQL collection needs the psycopg driver: pip install 'dualens[postgres]'"
        ) from exc
    name = f"dualens {socket.gethostname()}:{os.getpid()}"[:63]
    return create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": name},
    )


def _read_only_engine(uri: str) -> Engine:
    """An engine that reads a SQLite file through ``uri`` (read-only: search works, writes fail)."""
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))


class Collection:
    """A collection of indexed photos in one data directory."""

    def __init__(self, paths: CollectionPaths, engine: Engine) -> None:
        self.paths = paths
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    # ------------------------------------------------------------------ opening
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
        paths = CollectionPaths.from_option(data, db_url)
        if not create and not paths.exists():
            raise _no_collection(paths)
        if create:
            try:
                paths.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CollectionError(
                    f"cannot create the data folder {paths.root}: {exc.strerror or exc}"
                ) from exc
        url = paths.database_url
        read_only: str | None = None  # the URI of a SQLite file this process may not write
        if paths.uses_sqlite_file:
            inspect_sqlite_file(paths.database)  # before any connection could switch it to WAL
            read_only = None if create else read_only_sqlite_uri(paths.database)
        engine = _make_engine(url) if read_only is None else _read_only_engine(read_only)
        install_sqlite_pragmas(engine, read_only=read_only is not None)
        install_error_translation(engine, paths.database if paths.uses_sqlite_file else shown_url(url))
        try:
            if not create:
                with engine.connect() as conn:
                    if stored_revision(conn) is None:
                        raise _no_collection(paths)
            upgrade(engine)
        except CollectionError:
            engine.dispose()
            raise
        except Exception as exc:  # a damaged file must be reported, never overwritten
            engine.dispose()
            reason = redact(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
            raise CollectionError(f"cannot open the collection database {shown_url(url)}: {reason}") from exc
        return cls(paths, engine)

    @property
    def where(self) -> str:
        """The database, as shown to people (the SQLite file, or the server URL without password)."""
        if self.paths.uses_sqlite_file:
            return str(self.paths.database)
        return shown_url(self.paths.database_url)

    @contextmanager
    def indexer_lock(self) -> Iterator[None]:
        """One indexer per collection, enforced by the database server (a PostgreSQL session advisory
        lock: released when this process ends, however it ends). A SQLite file's collection is
        guarded by the data directory's lock file alone (``indexer.lock``).
        """
        if self.engine.dialect.name != "postgresql":
            yield
            return
        with self.engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": INDEXER_LOCK}).scalar()
            conn.commit()
            if not got:
                holder = conn.execute(
                    text(
                        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                        "AND (l.classid::bigint << 32 | l.objid::bigint) = :k"
                    ),
                    {"k": INDEXER_LOCK},
                ).scalar()
                raise CollectionError(
                    f"another dualens indexer ({holder or 'on another machine'}) is indexing the collection "
                    f"in {self.where}; wait for it to finish"
                )
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": INDEXER_LOCK})
                conn.commit()

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        """What the database engine's own integrity check finds (empty when the file is sound)."""
        return integrity_problems(self.engine, quick=quick)

    def ensure_intact(self) -> None:
        """Raise CollectionError when the database is damaged: call before writing to it."""
        problems = self.integrity_problems(quick=True)
        if problems:
            raise damaged_database(self.where, problems[0], untouched=True)

    def collection_id(self) -> str:
        """This collection's identity (made once; the vector index file carries it)."""
        with self.session() as s, s.begin():
            value = get_info(s, InfoKey.COLLECTION_ID)
            if value is None:
                value = uuid.uuid4().hex
                set_info(s, InfoKey.COLLECTION_ID, value)
        return value

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A session inside one read transaction: every read through it sees the same commit.

        Pass it as ``session=`` to :meth:`generation`, :meth:`photos`, :meth:`vectors` and
        :meth:`build_index_from_db` to get an index and metadata of the same database state while an
        indexer commits batches.
        """
        with self.session() as s, s.begin():
            if self.engine.dialect.name == "postgresql":  # READ COMMITTED sees each commit at once
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield s

    @contextmanager
    def _reading(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.snapshot() as s:
                yield s

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ facts
    def info(self) -> CollectionStats:
        with self.session() as s:
            counts = dict(s.execute(select(Photo.status, func.count()).group_by(Photo.status)).all())
            last = get_info(s, InfoKey.LAST_INDEXED_AT)
            dim = get_info(s, InfoKey.DIM)
            return CollectionStats(
                n_indexed=int(counts.get(PhotoStatus.INDEXED, 0)),
                n_failed=int(counts.get(PhotoStatus.ERROR, 0)),
                model_id=get_info(s, InfoKey.MODEL_ID),
                dim=int(dim) if dim else None,
                generation=int(get_info(s, InfoKey.GENERATION) or 0),
                last_indexed_at=datetime.fromisoformat(last) if last else None,
                roots=tuple(self._roots(s)),
                n_pending=int(counts.get(PhotoStatus.PENDING, 0)),
            )

    def generation(self, *, session: Session | None = None) -> int:
        with self._reading(session) as s:
            return int(get_info(s, InfoKey.GENERATION) or 0)

    def roots(self) -> list[Path]:
        with self.session() as s:
            return self._roots(s)

    @staticmethod
    def _roots(s: Session) -> list[Path]:
        return [Path(p) for p in s.scalars(select(Root.path).order_by(Root.path))]

    # ------------------------------------------------------------------ rows
    def photos(self, ids: Sequence[int], *, session: Session | None = None) -> dict[int, Photo]:
        """Metadata rows by id, detached (the vector column is not loaded: use :meth:`vectors`)."""
        wanted = [i for i in (int(x) for x in ids) if _INT64_MIN <= i <= _INT64_MAX]  # others match no row
        out: dict[int, Photo] = {}
        with self._reading(session) as s:
            for chunk in _chunks(wanted):
                for p in s.scalars(select(Photo).options(defer(Photo.vector)).where(Photo.id.in_(chunk))):
                    out[p.id] = p
            for p in out.values():
                s.expunge(p)
        return out

    def photo_by_path(self, path: str | Path) -> Photo | None:
        with self.session() as s:
            photo = s.scalars(
                select(Photo).options(defer(Photo.vector)).where(Photo.path == str(path))
            ).first()
            if photo is not None:
                s.expunge(photo)
            return photo

    def indexed_vectors(
        self, ids: Sequence[int], *, session: Session | None = None, space: Space = JOINT
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those of ``ids`` that are indexed now, sorted by id: the one chunked
        vector reader (the ``IN (...)`` lists stay far below every database's parameter limit)."""
        wanted = sorted({i for i in (int(x) for x in ids) if _INT64_MIN <= i <= _INT64_MAX})
        found: dict[int, bytes] = {}
        column = getattr(Photo, space.column)
        with self._reading(session) as s:
            dim = int(get_info(s, space.dim_key) or 0)
            for chunk in _chunks(wanted):
                stmt = select(Photo.id, column.label("vector")).where(
                    Photo.id.in_(chunk), Photo.status == PhotoStatus.INDEXED
                )
                found.update({r.id: r.vector for r in s.execute(stmt) if r.vector is not None})
        keep = np.array(sorted(found), dtype=np.int64)
        return keep, blobs_to_matrix([found[int(i)] for i in keep], dim)

    def vectors(
        self, ids: Sequence[int], *, session: Session | None = None, space: Space = JOINT
    ) -> np.ndarray:
        """Stored vectors of indexed photos, in the order of ``ids``; NotFoundError if one has none."""
        wanted = [int(i) for i in ids]
        found_ids, matrix = self.indexed_vectors(wanted, session=session, space=space)
        position = {int(i): n for n, i in enumerate(found_ids)}
        missing = [i for i in wanted if i not in position]
        if missing:
            raise NotFoundError(f"photo id {missing[0]} is not an indexed photo of this collection")
        return matrix[[position[i] for i in wanted]]

    # ------------------------------------------------------------------ vector index
    def _is_foreign(self, index: VectorIndex) -> bool:
        """Whether an index file was saved by another collection (its id is not this one's)."""
        with self.session() as s:
            return index.collection_id != get_info(s, InfoKey.COLLECTION_ID)

    def spaces(self) -> tuple[Space, ...]:
        """The vector spaces this collection keeps: the joint one, and the visual one when its model
        has visual vectors."""
        with self.session() as s:
            visual = int(get_info(s, InfoKey.VISUAL_DIM) or 0)
        return (JOINT, VISUAL) if visual else (JOINT,)

    def spaces_to_save(self) -> tuple[Space, ...]:
        """:meth:`spaces` in the order their files are saved: the visual one first, so that a searcher
        that sees a new joint file (the one it watches) finds the visual file already saved."""
        return tuple(reversed(self.spaces()))

    def similarity_space(self) -> Space:
        """The space image-to-image search and duplicates use: visual when kept, else joint."""
        return self.spaces()[-1]

    def read_index_file(self, space: Space = JOINT) -> VectorIndex:
        """The FAISS file on disk, verified: CollectionError if missing, damaged or another collection's."""
        path = space.path(self.paths)
        index = self._with_rerank(VectorIndex.load(path), space)
        if self._is_foreign(index):
            raise CollectionError(
                f"the vector index {path} belongs to another collection; run `dualens rebuild-index`"
            )
        return index

    def load_index(self, space: Space = JOINT) -> VectorIndex:
        """The FAISS index; a missing, stale or foreign file is rebuilt from the database in memory
        (not saved). A damaged file raises CollectionError (``dualens rebuild-index`` repairs it).
        """
        with self.session() as s:
            generation = int(get_info(s, InfoKey.GENERATION) or 0)
            dim = int(get_info(s, space.dim_key) or 0)
        path = space.path(self.paths)
        if path.exists():
            index = VectorIndex.load(path)
            if self._is_foreign(index):
                log.warning("vector index %s belongs to another collection; rebuilding it in memory", path)
                return self.build_index_from_db(space=space)
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
        return self.build_index_from_db(space=space)

    def build_index_from_db(
        self,
        *,
        session: Session | None = None,
        executor: ShardExecutor | None = None,
        space: Space = JOINT,
    ) -> VectorIndex:
        """A fresh index of every indexed row's vector, stamped with the generation read alongside;
        its type from the collection's index choice and memory budget (``compressed.plan_index``)."""
        with self._reading(session) as s:  # one read transaction: vectors and generation agree
            generation = int(get_info(s, InfoKey.GENERATION) or 0)
            dim = int(get_info(s, space.dim_key) or 0)
            requested = get_info(s, InfoKey.INDEX_KIND) or "auto"
            budget = int(get_info(s, InfoKey.MEMORY_BUDGET) or 0) or None
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
                    rerank_source=lambda ids: self.indexed_vectors(ids.tolist(), session=s, space=space),
                    executor=executor,
                    stem=Path(space.file_name).stem,
                )
                return self._with_rerank(built, space)
            ids, vectors = read_indexed_vectors(s, dim, space)
        return VectorIndex.build(ids, vectors, dim, generation, kind=plan.kind, nlist=plan.nlist)

    def _with_rerank(self, index: VectorIndex, space: Space) -> VectorIndex:
        """An IVF-PQ index re-ranks its candidates with their exact vectors from this database."""
        if isinstance(index, CompressedIndex):
            index.rerank_source = lambda ids: self.indexed_vectors(ids.tolist(), space=space)
        return index

    def choose_index(self, kind: str = "auto", memory_budget: int | None = None) -> None:
        """Record the index type the next builds use (``auto``: by size and memory budget)."""
        if kind not in INDEX_KINDS:
            raise UsageError(f"unknown index type {kind!r}; choose {', '.join(INDEX_KINDS)}")
        with self.session() as s:
            dim = int(get_info(s, InfoKey.DIM) or 0)
            n = count_indexed(s)
        if dim and n:
            plan_index(n, dim, kind, memory_budget)  # a choice that cannot be built is refused, not kept
        with self.session() as s, s.begin():
            set_info(s, InfoKey.INDEX_KIND, kind)
            if memory_budget:
                set_info(s, InfoKey.MEMORY_BUDGET, memory_budget)
            else:
                s.execute(delete(CollectionInfo).where(CollectionInfo.key == InfoKey.MEMORY_BUDGET))

    def rebuild_index(self, executor: ShardExecutor | None = None, space: Space = JOINT) -> VectorIndex:
        """Rebuild a FAISS index from the database and save it atomically (an IVF-PQ build's
        shards added on ``executor`` when given, e.g. Ray tasks)."""
        index = self.build_index_from_db(executor=executor, space=space)
        self.save_index(index, space)
        return index

    def fill_places(self, geocoder: Geocoder = GEOCODER, chunk: int = 5000) -> int:
        """Reverse-geocode the photos whose GPS position has no place yet (new or changed photos, and
        every photo of a collection from before places); returns how many got one. A position with
        no city near enough is marked looked-up ("" as its country), so it is not tried again."""
        placed = 0
        pending = (
            select(Photo.id, Photo.gps_lat, Photo.gps_lon)
            .where(Photo.gps_lat.is_not(None), Photo.gps_lon.is_not(None), Photo.place_country.is_(None))
            .limit(chunk)
        )
        while True:
            with self.session() as s:
                rows = s.execute(pending).all()
            if not rows:
                return placed
            places = geocoder.places([(float(r.gps_lat), float(r.gps_lon)) for r in rows])
            values = [
                {"id": r.id, "place_city": p.city if p else "", "place_region": p.region if p else "",
                 "place_country": p.country if p else ""}
                for r, p in zip(rows, places, strict=True)
            ]  # fmt: skip
            with self.session() as s, s.begin():
                s.execute(update(Photo), values)
            placed += sum(p is not None for p in places)

    def save_index(self, index: VectorIndex, space: Space = JOINT) -> None:
        """Save atomically (stamped with this collection's id), then record which generation it holds."""
        index.collection_id = self.collection_id()
        index.save(space.path(self.paths))
        with self.session() as s, s.begin():
            set_info(s, space.saved_key, index.generation)

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete index temp files left by a writer killed mid-save. Call only holding the index lock."""
        stale: list[Path] = []
        for space in (JOINT, VISUAL):
            vector_file = space.path(self.paths)
            stale.extend(sorted(vector_file.parent.glob(f"{vector_file.name}.*.tmp")))
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def drop_visual(self, session: Session) -> None:
        """Forget the visual vectors (a model without them takes over), in the caller's transaction."""
        session.execute(update(Photo).where(Photo.visual.is_not(None)).values(visual=None))
        session.execute(
            delete(CollectionInfo).where(
                CollectionInfo.key.in_([InfoKey.VISUAL_DIM, InfoKey.VISUAL_INDEX_GENERATION])
            )
        )
        VISUAL.path(self.paths).unlink(missing_ok=True)

    def index_is_current(self, space: Space = JOINT) -> bool:
        """Cheap check (no file read): the last saved index matches the database generation."""
        with self.session() as s:
            gen = get_info(s, InfoKey.GENERATION) or "0"
            saved = get_info(s, space.saved_key)
        return saved == gen and space.path(self.paths).exists()

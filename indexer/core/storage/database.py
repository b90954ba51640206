"""The collection database: its engine, sessions, schema revision and the ``collection_info`` facts.

Opening checks before anything is written (another program's SQLite file, a damaged one, a schema
of a newer dualens), and every later database error becomes one CollectionError line. Only modules
of ``indexer.core.storage`` hold sessions: everything else asks them for what it needs.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from sqlalchemy import Engine, create_engine, delete, make_url, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from indexer.core.errors import CollectionError
from indexer.core.settings import PROJECT_DATA, CollectionPaths
from indexer.core.storage.migrations import stored_revision, upgrade
from indexer.core.storage.redact import redact
from indexer.core.storage.schema import (
    CollectionInfo,
    damaged_database,
    inspect_server_database,
    inspect_sqlite_file,
    install_error_translation,
    install_sqlite_pragmas,
    integrity_problems,
    read_only_sqlite_uri,
)


class InfoKey:
    """Keys of the ``collection_info`` table."""

    MODEL_ID = "model_id"  # stable id of the model whose vectors the collection holds (load_encoder takes it)
    DIM = "dim"
    GENERATION = "generation"  # bumped in every transaction that changes the set of indexed vectors
    # generation of the last FAISS file saved by dualens, in ANY data folder using this database: tells
    # searchers that a run ended, never that this folder's file is current (its own stamp says that)
    INDEX_GENERATION = "index_generation"
    LAST_INDEXED_AT = "last_indexed_at"  # ISO timestamp (UTC) of the end of the last `dualens index`
    RUN = "run"  # number of `dualens index` runs started
    COLLECTION_ID = "collection_id"  # random id, also written into the vector index file
    MODEL_FINGERPRINT = "model_fingerprint"  # content hash of a local model directory
    INDEX_KIND = "index_kind"  # `rebuild-index --index`: auto (default), flat, ivf or ivfpq
    MEMORY_BUDGET = "memory_budget"  # `rebuild-index --memory-budget`, bytes (default: a share of RAM)
    VISUAL_DIM = "visual_dim"  # size of the visual vectors; absent or 0: the joint vectors serve
    VISUAL_INDEX_GENERATION = "visual_index_generation"  # generation of the last visual FAISS file
    # a re-index in progress: the model whose vectors are staged in ``next_vector``/``next_visual``
    NEXT_MODEL_ID = "next_model_id"
    NEXT_DIM = "next_dim"
    NEXT_FINGERPRINT = "next_model_fingerprint"
    NEXT_VISUAL_DIM = "next_visual_dim"
    # the generation at which a re-index switched to the current model: an index file of an older
    # generation holds the previous model's vectors
    MODEL_GENERATION = "model_generation"
    # the precision of the model's towers the vectors were made with (absent: fp32), part of the
    # model's identity like its fingerprint; and that of a re-index in progress
    PRECISION = "precision"
    NEXT_PRECISION = "next_precision"


def utcnow() -> datetime:
    """Naive UTC timestamp, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def get_info(session: Session, key: str) -> str | None:
    row = session.get(CollectionInfo, key)
    return None if row is None else row.value


def get_int(session: Session, key: str) -> int:
    """A numeric fact; 0 when absent."""
    return int(get_info(session, key) or 0)


def set_info(session: Session, key: str, value: str | int) -> None:
    row = session.get(CollectionInfo, key)
    if row is None:
        session.add(CollectionInfo(key=key, value=str(value)))
    else:
        row.value = str(value)


def delete_info(session: Session, *keys: str) -> None:
    session.execute(delete(CollectionInfo).where(CollectionInfo.key.in_(keys)))


def bump_generation(session: Session) -> int:
    """Increment the generation inside the caller's transaction and return the new value."""
    new = get_int(session, InfoKey.GENERATION) + 1
    set_info(session, InfoKey.GENERATION, new)
    return new


@dataclass(frozen=True)
class ModelFacts:
    """What the collection records of its model and vectors (``collection_info``)."""

    generation: int
    model_id: str | None
    dim: int
    visual_dim: int  # 0: no visual vectors (the joint ones serve)
    next_model_id: str | None = None  # the model of an unfinished re-index (its vectors staged)
    precision: str = "fp32"  # of the served vectors (InfoKey.PRECISION)
    next_precision: str = "fp32"  # of the staged ones


def model_facts(session: Session) -> ModelFacts:
    return ModelFacts(
        generation=get_int(session, InfoKey.GENERATION),
        model_id=get_info(session, InfoKey.MODEL_ID),
        dim=get_int(session, InfoKey.DIM),
        visual_dim=get_int(session, InfoKey.VISUAL_DIM),
        next_model_id=get_info(session, InfoKey.NEXT_MODEL_ID),
        precision=get_info(session, InfoKey.PRECISION) or "fp32",
        next_precision=get_info(session, InfoKey.NEXT_PRECISION) or "fp32",
    )


def no_collection(paths: CollectionPaths) -> CollectionError:
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


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None: a server's URL, an in-memory database, or no URL at all)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") in ("true", "1") and parsed.database.startswith("file:"):
        return _uri_file(parsed.database)
    return Path(parsed.database)


def _uri_file(uri: str) -> Path | None:
    """The file a SQLite ``file:`` URI filename names (``file:/p``, ``file:///p``, ``file://localhost/p``,
    ``file:rel``), percent-escapes decoded; None for an in-memory one (refused by the URL check)."""
    parts = urlsplit(uri)
    if "memory" in parse_qs(parts.query).get("mode", []) or parts.path in ("", ":memory:"):
        return None
    return Path(unquote(parts.path))


def _writable_uri(path: Path) -> str:
    """The URI that opens an existing SQLite file for writing and never creates one (``mode=rw``)."""
    return f"file:{quote(str(path.absolute()))}?mode=rw"


SERVER_DIALECTS = ("postgresql",)
INDEXER_LOCK = 0x64756C6E_0002  # PostgreSQL advisory lock key: one indexer per collection database


def _uri_engine(url: str, uri: str) -> Engine:
    """An engine for the SQLite file of ``url`` whose connections open ``uri`` (``mode=ro``: search
    works, writes fail; ``mode=rw``: a file deleted under a running server is an error, never made anew).
    """
    return create_engine(url, creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))


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


class Database:
    """The engine and sessions of one collection's database (its SQLite file or a server's)."""

    def __init__(self, paths: CollectionPaths, engine: Engine, *, read_only: bool = False) -> None:
        self.paths = paths
        self.engine = engine
        self.read_only = read_only  # a SQLite file this process may not write: opened mode=ro
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, paths: CollectionPaths, *, create: bool) -> Database:
        """Open (``create``: make) the database of ``paths``, migrated to this release's schema.

        A damaged database, or another program's SQLite file, raises CollectionError before
        anything is written to it; so does every later database error (one line, no traceback), an
        unreachable server and a schema revision of a newer dualens among them.
        """
        if not create and not paths.exists():
            raise no_collection(paths)
        if create:
            try:
                paths.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CollectionError(
                    f"cannot create the data folder {paths.root}: {exc.strerror or exc}"
                ) from exc
        url = paths.database_url
        file = paths.database if paths.uses_sqlite_file else sqlite_file(url)
        read_only: str | None = None  # the URI of a SQLite file this process may not write
        existing: str | None = None  # the URI of an existing SQLite file it may: never created again
        if file is not None:
            if not create and not file.exists():  # never create one just to find it empty
                raise no_collection(paths)
            # before any connection could switch it to WAL
            inspect_sqlite_file(
                file,
                elsewhere="Use another --data folder" if file == paths.database else "Give --db another file",
            )
            read_only = None if create else read_only_sqlite_uri(file)
            existing = None if create else _writable_uri(file)
        uri = read_only or existing
        engine = _make_engine(url) if uri is None else _uri_engine(url, uri)
        install_sqlite_pragmas(engine, read_only=read_only is not None)
        install_error_translation(engine, file or shown_url(url))
        try:
            with engine.connect() as conn:
                if file is None:  # a server's database: another application's is refused as a file is
                    inspect_server_database(conn, shown_url(url))
                if not create and stored_revision(conn) is None:
                    raise no_collection(paths)
            upgrade(engine)
        except CollectionError:
            engine.dispose()
            raise
        except Exception as exc:  # a damaged file must be reported, never overwritten
            engine.dispose()
            reason = redact(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
            raise CollectionError(f"cannot open the collection database {shown_url(url)}: {reason}") from exc
        return cls(paths, engine, read_only=read_only is not None)

    @property
    def where(self) -> str:
        """The database, as shown to people (the SQLite file, or the server URL without password)."""
        if self.paths.uses_sqlite_file:
            return str(self.paths.database)
        return shown_url(self.paths.database_url)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A session inside one read transaction: every read through it sees the same commit."""
        with self.session() as s, s.begin():
            if self.engine.dialect.name == "postgresql":  # READ COMMITTED sees each commit at once
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield s

    @contextmanager
    def reading(self, session: Session | None) -> Iterator[Session]:
        """``session`` when the caller has one (its snapshot), else a fresh snapshot."""
        if session is not None:
            yield session
        else:
            with self.snapshot() as s:
                yield s

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self.session() as s, s.begin():
            yield s

    def facts(self) -> ModelFacts:
        with self.session() as s:
            return model_facts(s)

    def info_value(self, key: str) -> str | None:
        with self.session() as s:
            return get_info(s, key)

    def generation(self, *, session: Session | None = None) -> int:
        with self.reading(session) as s:
            return get_int(s, InfoKey.GENERATION)

    def collection_id(self) -> str:
        """This collection's identity (made once; the vector index file carries it)."""
        with self.writing() as s:
            value = get_info(s, InfoKey.COLLECTION_ID)
            if value is None:
                value = uuid.uuid4().hex
                set_info(s, InfoKey.COLLECTION_ID, value)
        return value

    def integrity_problems(self, *, quick: bool = False) -> list[str]:
        """What the database engine's own integrity check finds (empty when the file is sound)."""
        return integrity_problems(self.engine, quick=quick)

    def ensure_intact(self) -> None:
        """Raise CollectionError when the database is damaged: call before writing to it."""
        problems = self.integrity_problems(quick=True)
        if problems:
            raise damaged_database(self.where, problems[0], untouched=True)

    @contextmanager
    def indexer_lock(self) -> Iterator[None]:
        """One indexer per collection, enforced by the database server (a PostgreSQL session advisory
        lock: released when this process ends, however it ends). A SQLite file's collection is
        guarded by the data directory's lock file alone (``storage.locks.collection_lock``).
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

    def close(self) -> None:
        self.engine.dispose()

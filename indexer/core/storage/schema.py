"""The collection database: one row per file, the vector itself as a float32 blob.

The database is the source of truth; the FAISS index is derived from it and can always be rebuilt
(``dualens rebuild-index``). The same schema lives in SQLite (a file per collection, the default) or
PostgreSQL (a server many machines share); Alembic migrations in ``migrations/`` create and upgrade
it on both (``indexer.core.storage.migrations``).
"""

from __future__ import annotations

import enum
import os
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    event,
    inspect,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from indexer.core.errors import CollectionError
from indexer.core.storage.redact import redact
from indexer.core.text import from_stored, to_stored
from indexer.core.vectors import non_unit_rows


class Base(DeclarativeBase):
    pass


class FilePath(TypeDecorator[str]):
    """A file system path: any name, even one that is not valid UTF-8, round-trips exactly."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else to_stored(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else from_stored(value)


class PhotoStatus(enum.StrEnum):
    INDEXED = "indexed"  # has a current vector, present in the FAISS index
    ERROR = "error"  # could not be read or decoded; ``error`` holds the reason
    # waiting to be (re-)embedded: no vector (a file found by an unfinished re-index holds only its
    # ``next_vector``; a row of an older release's interrupted ``--reindex`` holds none)
    PENDING = "pending"


PLACE_FIELDS = ("place_city", "place_region", "place_country")


class Photo(Base):
    """One file seen under an indexed root."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True, index=True)
    root: Mapped[str] = mapped_column(FilePath, index=True)
    file_type: Mapped[str] = mapped_column(String(16), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    camera_make: Mapped[str | None] = mapped_column(String(128))
    camera_model: Mapped[str | None] = mapped_column(String(128))
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    # reverse-geocoded from the GPS position (indexer/core/places.py); NULL: not looked up yet,
    # "" in place_country: looked up, no city near enough
    place_city: Mapped[str | None] = mapped_column(String(200))
    place_region: Mapped[str | None] = mapped_column(String(200))
    place_country: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[PhotoStatus] = mapped_column(
        Enum(PhotoStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        index=True,
    )
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # the joint (image-text) space
    # the purely visual vector (image-to-image search, duplicates) when the model has one richer than
    # its joint space (the default model's pooled tower features); NULL for CLIP-family models
    visual: Mapped[bytes | None] = mapped_column(LargeBinary)
    seen_run: Mapped[int] = mapped_column(Integer, default=0, index=True)
    # a re-index in progress (``collection_info`` ``next_model_id``): the new model's vectors, staged
    # while ``vector``/``visual`` keep serving the old model's; swapped in at once when complete
    # (``indexer.core.storage.runs``). NULL whenever no re-index is pending.
    next_vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    next_visual: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_photos_status_id", "status", "id"),  # indexed vectors in id order
        # photos still to place (place_country NULL, a GPS position): found by a seek every run,
        # not by a walk over every photo without a position
        Index("ix_photos_place_pending", "place_country", "gps_lat"),
    )


class TextStatus(enum.StrEnum):
    OK = "ok"  # text found: ``text`` holds it
    NONE = "none"  # looked at, no text
    FAILED = "failed"  # the engine failed on this photo; not read again until the engine changes


class PhotoText(Base):
    """The text recognised in one photo (``indexer.core.storage.text``, which also owns the full-text
    index over ``terms``: FTS5 on SQLite, a tsvector column on PostgreSQL)."""

    __tablename__ = "photo_text"

    photo_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("photos.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    content_hash: Mapped[str | None] = mapped_column(String(64))  # of the file the text was read from
    engine: Mapped[str] = mapped_column(String(200))  # engine, version and models, e.g. "rapidocr 1.4.4/…"
    status: Mapped[TextStatus] = mapped_column(
        Enum(TextStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        index=True,
    )
    text: Mapped[str] = mapped_column(Text)  # safe to show: no control characters (storage.text.safe_text)
    terms: Mapped[str] = mapped_column(Text)  # the searched form: folded tokens joined by spaces
    words: Mapped[int] = mapped_column(Integer)
    updated: Mapped[datetime] = mapped_column(DateTime)


class Root(Base):
    """A folder that was indexed into this collection; only files below a root are ever shown."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)


class CollectionInfo(Base):
    """Key/value facts about the collection: model id, embedding dimension, index generation…"""

    __tablename__ = "collection_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def vector_to_blob(vector: np.ndarray) -> bytes:
    """Serialise one L2-normalised float32 vector; anything else is refused (the storage boundary)."""
    arr = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if len(non_unit_rows(arr.reshape(1, -1))):
        raise CollectionError("refusing to store a vector that is not a finite unit-length vector")
    return arr.tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def blobs_to_matrix(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim).copy()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The driver's own transaction handling would BEGIN only before writes, so the SELECTs of one
    # SQLAlchemy transaction could each see a different commit; _sqlite_begin emits BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_read_only_pragmas(dbapi_connection, _record) -> None:
    # A read-only file: no journal-mode switch (it would be a write), the rest as for writers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def install_sqlite_pragmas(engine: Engine, *, read_only: bool = False) -> None:
    """WAL, busy timeout, and real transactions: every read inside one transaction sees one snapshot
    (``read_only``: a file dualens may not write, its journal mode left as it is)."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_read_only_pragmas if read_only else _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)


APPLICATION_ID = 0x64756C6E  # "duln" in SQLite's application_id header field: a dualens database
DUALENS_TABLES = frozenset({"photos", "roots", "collection_info"})
DUALENS_REVISION = re.compile(r"\d{4}")  # dualens's Alembic revision ids: 0001, 0002, …
MAINTENANCE_DATABASES = frozenset({"postgres", "template0", "template1"})  # PostgreSQL's own


def foreign_reason(tables: set[str], revision: str | None) -> str | None:
    """Why a database holding ``tables`` (and Alembic ``revision``) is another application's; None when
    it is empty or may be dualens's.

    dualens's tables mark its databases: every one of them is there, and an Alembic revision, when
    there is one, is numbered as dualens numbers its own (another application's ``alembic_version``
    is not taken for a newer dualens's).
    """
    if not tables:
        return None
    if not tables >= DUALENS_TABLES:
        return f"tables: {', '.join(sorted(tables)[:5])}"
    if revision is not None and not DUALENS_REVISION.fullmatch(revision):
        return f"schema revision {revision!r}, not one of dualens's"
    return None


def _alembic_revision(rows: list[tuple[Any, ...]]) -> str | None:
    return None if not rows else str(rows[0][0])


def inspect_server_database(conn: Connection, where: str) -> None:
    """Refuse, before anything is written, a server database that is not a dualens collection: one
    holding another application's tables (in the schema dualens would use), or PostgreSQL's own
    maintenance database while no collection is in it.
    """
    tables = set(inspect(conn).get_table_names())
    rows = []
    if "alembic_version" in tables:
        rows = [tuple(r) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    reason = foreign_reason(tables, _alembic_revision(rows))
    if reason is not None:
        raise CollectionError(
            f"the database {where} is another application's database ({reason}), not a dualens "
            "collection; nothing was changed. Give --db a database of its own (e.g. createdb dualens)"
        )
    if not tables and conn.dialect.name == "postgresql":
        name = conn.exec_driver_sql("SELECT current_database()").scalar()
        if name in MAINTENANCE_DATABASES:
            raise CollectionError(
                f"the database {where} is PostgreSQL's own {name!r} database, not one for a collection; "
                "nothing was changed. Give --db a database of its own (e.g. createdb dualens)"
            )


def damaged_database(where: object, detail: str, *, untouched: bool) -> CollectionError:
    """The one message for a damaged collection database (``untouched``: dualens wrote nothing)."""
    written = "; nothing was written to it. Restore" if untouched else "; restore"
    return CollectionError(
        f"the collection database {where} is damaged ({detail}){written} it from a backup, "
        "or move it away and index the photos again"
    )


def read_only_sqlite_uri(path: Path) -> str | None:
    """The URI to read ``path`` through when this process may not write it (None: it may).

    Opened ``mode=ro``, never switched to WAL; ``immutable`` too when its folder cannot be written
    and it has no write-ahead log (so no writer can be at work: a writer needs the -wal file).
    """
    if not path.is_file() or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        return None
    wal = path.with_name(path.name + "-wal")
    live_log = wal.exists() and wal.stat().st_size > 0
    mode = "mode=ro" if os.access(path.parent, os.W_OK) or live_log else "mode=ro&immutable=1"
    return f"file:{quote(str(path))}?{mode}"


def inspect_sqlite_file(path: Path, *, elsewhere: str = "Use another --data folder") -> None:
    """Refuse, without writing a byte, a file that is not a dualens database or is damaged.

    A missing or empty file is fine (a new collection). Read through a read-only connection, so
    even the journal mode of another program's database stays as it was. ``elsewhere``: what the
    refusal tells the user to do instead.
    """
    try:
        if not path.exists() or path.stat().st_size == 0:
            return
        if not path.is_file():
            raise CollectionError(f"{path} is not a regular file; move it away")
        # Without a write-ahead log the file alone is the database: read it as immutable, so not even
        # -wal/-shm files appear next to it. With one, read it as SQLite must (read-only all the same).
        wal = path.with_name(path.name + "-wal").exists()
        mode = "mode=ro" if wal else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"file:{quote(str(path))}?{mode}", uri=True, timeout=30)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            rows = []
            if "alembic_version" in tables:
                rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise damaged_database(path, str(exc), untouched=True) from exc
    except OSError as exc:
        raise CollectionError(f"cannot read the collection database {path}: {exc.strerror or exc}") from exc
    reason = None if app_id == APPLICATION_ID else foreign_reason(tables, _alembic_revision(rows))
    if reason is not None:
        raise CollectionError(
            f"{path} is another program's database ({reason}), not a dualens collection; "
            f"nothing was changed. {elsewhere}"
        )


def _first_line(exc: BaseException) -> str:
    """The driver's first message line, any password in it hidden."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0]) if lines else type(exc).__name__


def _server_error(exc: BaseException, where: object) -> CollectionError | None:
    """A database server's connection or resource error as one sentence (None: not one)."""
    try:
        import psycopg
    except ImportError:
        return None
    if not isinstance(exc, psycopg.OperationalError):
        return None
    return CollectionError(f"cannot use the collection database {where}: {_first_line(exc)}")


def _storage_error(exc: BaseException, where: object) -> CollectionError | None:
    """A database driver error as one user-facing sentence (None: not a storage condition)."""
    if "psycopg" in type(exc).__module__:
        return _server_error(exc, where)
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        return None
    text = _first_line(exc)
    lowered = text.lower()
    if "malformed" in lowered or "not a database" in lowered:
        return damaged_database(where, text, untouched=False)
    if "full" in lowered:
        what = f"cannot be written: the disk is full ({text})"
    elif "readonly" in lowered or "read-only" in lowered:
        what = f"is read-only ({text}); dualens needs to write to it here"
    elif "locked" in lowered or "busy" in lowered:
        what = f"is busy ({text}); another process holds it, try again"
    else:
        what = f"cannot be used ({text})"
    return CollectionError(f"the collection database {where} {what}")


def install_error_translation(engine: Engine, where: object) -> None:
    """Every database error of this engine surfaces as a one-line CollectionError."""

    def translate(context: Any) -> None:
        error = _storage_error(context.original_exception, where)
        if error is not None:
            raise error from context.original_exception

    event.listen(engine, "handle_error", translate)


def integrity_problems(engine: Engine, *, quick: bool = False) -> list[str]:
    """SQLite's own integrity check (``quick``: the cheaper quick_check); other engines: none."""
    if engine.dialect.name != "sqlite":
        return []
    pragma = "quick_check" if quick else "integrity_check"
    try:
        with engine.connect() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
    except CollectionError as exc:
        return [str(exc)]
    if rows == ["ok"]:
        return []
    lines = [line.strip() for row in rows for line in row.splitlines()]
    return [line for line in lines if line and not line.startswith("*** in database")]

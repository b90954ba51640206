"""The collection database: one row per file, the vector itself as a float32 blob.

The database is the source of truth; the FAISS index is derived from it and can always be rebuilt
(``dualens rebuild-index``). Schema changes are ordered migrations keyed by ``schema_version``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime

import numpy as np
from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from indexer.core.errors import CollectionError
from indexer.core.vectors import non_unit_rows

SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class PhotoStatus(enum.StrEnum):
    INDEXED = "indexed"  # has a current vector, present in the FAISS index
    ERROR = "error"  # could not be read or decoded; ``error`` holds the reason
    PENDING = "pending"  # waiting to be (re-)embedded (``dualens index --reindex`` in progress); no vector


class Photo(Base):
    """One file seen under an indexed root."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True, index=True)
    root: Mapped[str] = mapped_column(Text, index=True)
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
    status: Mapped[PhotoStatus] = mapped_column(
        Enum(PhotoStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        index=True,
    )
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    seen_run: Mapped[int] = mapped_column(Integer, default=0, index=True)


class Root(Base):
    """A folder that was indexed into this collection; only files below a root are ever shown."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)


class CollectionInfo(Base):
    """Key/value facts about the collection: model id, embedding dimension, index generation…"""

    __tablename__ = "collection_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)


# Ordered migrations: MIGRATIONS[v] upgrades a database at version v to v + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


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


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def install_sqlite_pragmas(engine: Engine) -> None:
    """WAL, busy timeout, and real transactions: every read inside one transaction sees one snapshot."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)


def current_schema_version(conn: Connection) -> int | None:
    has_table = conn.execute(
        text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'")
        if conn.dialect.name == "sqlite"
        else text("SELECT 1 FROM information_schema.tables WHERE table_name='schema_version'")
    ).first()
    if not has_table:
        return None
    return conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()


def create_or_migrate(engine: Engine) -> int:
    """Create the schema on an empty database, or run the pending migrations in order."""
    with engine.begin() as conn:
        version = current_schema_version(conn)
        if version is None:
            Base.metadata.create_all(conn)
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": SCHEMA_VERSION})
            return SCHEMA_VERSION
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            version += 1
            conn.execute(text("DELETE FROM schema_version"))
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})
        return version

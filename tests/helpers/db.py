"""Read a collection's database from a test, whichever it is: the data directory's SQLite file, or
the PostgreSQL database ``$DUALENS_DB_URL`` names (the ``database`` fixture sets it)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from indexer.core.settings import DB_URL_ENV
from indexer.core.storage.schema import blob_to_vector

if TYPE_CHECKING:
    from tests.helpers.postgres import PostgresServer


def url_of(data: Path) -> str:
    return os.environ.get(DB_URL_ENV) or f"sqlite:///file:{data / 'dualens.sqlite'}?mode=ro&uri=true"


def rows(data: Path, sql: str) -> list[tuple]:
    """The rows of ``sql``; [] while the database or its schema does not exist yet."""
    if DB_URL_ENV not in os.environ and not (data / "dualens.sqlite").exists():
        return []
    engine = create_engine(url_of(data))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    except (OperationalError, ProgrammingError):  # schema not created yet
        return []
    finally:
        engine.dispose()


def count_indexed(data: Path) -> int:
    found = rows(data, "SELECT COUNT(*) FROM photos WHERE status = 'indexed'")
    return int(found[0][0]) if found else 0


def vectors_by_path(data: Path) -> dict[str, np.ndarray]:
    return {
        path: blob_to_vector(bytes(blob))
        for path, blob in rows(data, "SELECT path, vector FROM photos WHERE status = 'indexed'")
    }


class Databases:
    """One collection database per data directory, for a test that makes several collections: each
    data directory's own SQLite file, or (``server`` given) a fresh PostgreSQL database each."""

    def __init__(self, server: PostgresServer | None) -> None:
        self.server = server
        self._names: dict[Path, str] = {}

    @property
    def kind(self) -> str:
        return "sqlite" if self.server is None else "postgresql"

    def url(self, data: Path, *, copy_of: Path | None = None) -> str | None:
        """The database URL of ``data`` (None: its SQLite file); ``copy_of``: start as a copy of that
        data directory's database (what copying the folder does for a SQLite file)."""
        if self.server is None:
            return None
        if data not in self._names:
            if copy_of is not None:
                name = f"t_{uuid.uuid4().hex[:16]}"
                self.server.execute(f"CREATE DATABASE {name} TEMPLATE {self._names[copy_of]}")
            else:
                name = self.server.new_database()
            self._names[data] = name
        return self.server.url(self._names[data])

    def argv(self, data: Path, *, copy_of: Path | None = None) -> list[str]:
        """``--db URL`` for a `dualens` command on ``data`` (nothing for a SQLite file)."""
        url = self.url(data, copy_of=copy_of)
        return [] if url is None else ["--db", url]

    def drop_all(self) -> None:
        if self.server is not None:
            for name in self._names.values():
                self.server.drop_database(name)

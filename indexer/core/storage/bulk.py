"""Bulk inserts of new photo rows inside the caller's transaction: PostgreSQL through COPY (psycopg 3,
binary format), SQLite through one ``executemany``.

Invariants: the rows go through the same connection, so they commit or vanish with the rest of the
caller's batch (a SIGKILL mid-COPY aborts that transaction on the server: nothing of the batch is
kept); every value passes the column type's own bind processing (path mapping, enum values, dates),
so a bulk row reads back exactly as one written through the ORM; the ids (drawn from the table's
sequence before the COPY on PostgreSQL, given by SQLite and read back by path) are returned in the
order of the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session

from indexer.core.storage.schema import Photo

_TABLE = Photo.__table__
TABLE_NAME: str = Photo.__tablename__
COLUMNS: tuple[str, ...] = tuple(c.name for c in _TABLE.columns)
_PATH = COLUMNS.index("path")
_LOOKUP_CHUNK = 500  # paths a lookup (SQLite's limit on bound values is far above)
_COPY_TYPES: dict[str, list[int]] = {}  # a table's column type oids, in COLUMNS order (once per process)


def insert_photos(s: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (column name → value; no ``id``, absent columns NULL) in the session's
    transaction; returns their new ids in the order of ``rows``."""
    if not rows:
        return []
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        ids = sequence_ids(conn, len(rows))
        copy_rows(conn, tuples(conn.dialect, rows, ids))
    else:
        ids = _sqlite_insert(conn, tuples(conn.dialect, rows, [None] * len(rows)))
    return ids


def _sqlite_insert(conn: Connection, values: list[tuple[Any, ...]]) -> list[int]:
    """One executemany (SQLite gives each row its id), then the ids read back by path: the
    transaction's first statement may be this write, so it waits for the file's write lock (busy
    timeout) instead of failing on a snapshot another writer moved on from."""
    marks = ", ".join("?" for _ in COLUMNS)
    conn.exec_driver_sql(f"INSERT INTO {TABLE_NAME} ({', '.join(COLUMNS)}) VALUES ({marks})", values)
    paths = [row[_PATH] for row in values]
    found: dict[str, int] = {}
    for start in range(0, len(paths), _LOOKUP_CHUNK):
        chunk = tuple(paths[start : start + _LOOKUP_CHUNK])
        sql = f"SELECT path, id FROM {TABLE_NAME} WHERE path IN ({', '.join('?' for _ in chunk)})"
        found.update((str(p), int(i)) for p, i in conn.exec_driver_sql(sql, chunk))
    return [found[path] for path in paths]


def tuples(
    dialect: Dialect, rows: Sequence[dict[str, Any]], ids: Sequence[int | None]
) -> list[tuple[Any, ...]]:
    """The driver's values of each row, in ``COLUMNS`` order (``id`` first; None: the database's)."""
    processed: list[tuple[int, Callable[[Any], Any]]] = []
    for n, column in enumerate(_TABLE.columns):
        process = column.type.bind_processor(dialect)
        if process is not None:
            processed.append((n, process))
    names = COLUMNS[1:]
    out: list[tuple[Any, ...]] = []
    for row_id, row in zip(ids, rows, strict=True):
        values = [row_id, *map(row.get, names)]
        for n, convert in processed:
            if values[n] is not None:
                values[n] = convert(values[n])
        out.append(tuple(values))
    return out


def sequence_ids(conn: Connection, n: int) -> list[int]:
    """``n`` new ids drawn from the table's sequence (PostgreSQL)."""
    sql = f"SELECT nextval(pg_get_serial_sequence('{TABLE_NAME}', 'id')) FROM generate_series(1, %(n)s)"
    return [int(row[0]) for row in conn.exec_driver_sql(sql, {"n": n})]


def copy_rows(
    conn: Connection,
    values: Sequence[tuple[Any, ...]],
    table: str = TABLE_NAME,
    columns: Sequence[str] = COLUMNS,
) -> None:
    """COPY ``values`` (in ``columns`` order) into ``table`` through the transaction's own psycopg
    connection."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        types = _COPY_TYPES.get(f"{table}({','.join(columns)})")
        if types is None:  # built-in types (text, int8, bytea…): the same oids on every server
            cur.execute(
                "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                (table,),
            )
            oids = dict(cur.fetchall())
            types = _COPY_TYPES[f"{table}({','.join(columns)})"] = [oids[name] for name in columns]
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in values:
                copy.write_row(row)

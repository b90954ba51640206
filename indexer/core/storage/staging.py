"""Rows written by the Ray workers themselves (PostgreSQL): each embedding actor COPYs the new rows of
its batch into the run's staging table over its own connection, and the driver moves a batch of them
into ``photos`` with one ``INSERT … SELECT`` inside the batch's transaction (with the generation bump).

Invariants:
- a staging table belongs to one run of the one indexer of the collection (the indexer lock): a table
  left by an earlier run can only be a dead driver's, and is dropped when the next run starts; its rows
  were never committed to ``photos``, so those photos are planned and done again;
- a staged row is built by the driver's own code (``fresh_row``, the columns' bind processing, vectors
  checked finite and unit length) in the worker, so a committed staged row equals a bulk row;
- every staged row carries its ``item_no`` and the ``token`` of the worker call that wrote it, and the
  driver commits only the (item_no, token) pairs of the calls whose results it received: the rows of a
  call whose worker died after staging (Ray retries that batch under a new token) are never committed,
  so no photo is stored twice and none is lost;
- staged rows serve nothing: only ``photos`` rows do.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.orm import Session

from indexer.core.errors import CollectionError
from indexer.core.storage.batches import BatchOutcome, NewVectors, RowWriter, fresh_row, unit_blobs
from indexer.core.storage.bulk import COLUMNS, TABLE_NAME, copy_rows, sequence_ids, tuples
from indexer.core.storage.database import Database, utcnow

PREFIX = "dualens_stage_"
KEYS = ("item_no", "token")  # the staging table's columns beyond the photo row's


@dataclass(frozen=True)
class StageSpec:
    """Where and how the workers stage the rows of new files (sent to every embedding actor)."""

    url: str  # the collection's database (password included: the workers connect themselves)
    table: str
    run: int  # the rows' seen_run
    reindex: bool  # a re-index run: the vectors go to next_vector / next_visual, status pending


def _drop(s: Session, table: str) -> None:
    s.connection().exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')


@contextlib.contextmanager
def staging_table(database: Database, run: int, reindex: bool) -> Iterator[StageSpec | None]:
    """A new staging table for this run (None on SQLite: one file, one writer, the driver's), dropped
    after it with those left by dead runs before it. The caller holds the indexer lock."""
    if database.engine.dialect.name != "postgresql":
        yield None
        return
    table = f"{PREFIX}{run}_{uuid.uuid4().hex[:12]}"
    with database.writing() as s:
        conn = s.connection()
        stale = conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %(p)s",
            {"p": PREFIX.replace("_", r"\_") + "%"},
        )
        for (name,) in list(stale):
            _drop(s, str(name))
        conn.exec_driver_sql(f'CREATE UNLOGGED TABLE "{table}" AS SELECT * FROM {TABLE_NAME} WITH NO DATA')
        conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN item_no bigint, ADD COLUMN token text')
        conn.exec_driver_sql(f'CREATE INDEX ON "{table}" (item_no)')  # a batch's rows found, not scanned
    url = database.engine.url.render_as_string(hide_password=False)
    try:
        yield StageSpec(url, table, run, reindex)
    finally:
        with contextlib.suppress(Exception), database.writing() as s:  # else the next run drops it
            _drop(s, table)


class StageSink:
    """A worker's side: its own connection, one COPY (and commit) of a batch's new rows per call."""

    def __init__(self, spec: StageSpec) -> None:
        self.spec = spec
        self._engine: Engine | None = None

    def _connect(self) -> Engine:
        if self._engine is None:
            url = make_url(self.spec.url).set(drivername="postgresql+psycopg")
            self._engine = create_engine(
                url, pool_size=1, pool_pre_ping=True,
                connect_args={"connect_timeout": 10, "application_name": "dualens ray writer"},
            )  # fmt: skip
        return self._engine

    def write(self, rows: Sequence[tuple[int, NewVectors]]) -> str:
        """Stage ``rows`` ((item_no, new file's vectors)); returns the call's token ("" when none)."""
        if not rows:
            return ""
        token = uuid.uuid4().hex
        now = utcnow()
        blobs = unit_blobs([w.vector for _, w in rows])
        visuals = [w.visual for _, w in rows if w.visual is not None]
        seen = iter(unit_blobs(visuals))
        spec = self.spec
        dicts = [
            fresh_row(
                w, blob, None if w.visual is None else next(seen), now, run=spec.run, staging=spec.reindex
            )
            for (_, w), blob in zip(rows, blobs, strict=True)
        ]
        engine = self._connect()
        values = tuples(engine.dialect, dicts, [None] * len(dicts))
        keyed = [(*v, item_no, token) for v, (item_no, _) in zip(values, rows, strict=True)]
        with engine.begin() as conn:
            copy_rows(conn, keyed, table=spec.table, columns=(*COLUMNS, *KEYS))
        return token

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def insert_staged(s: Session, table: str, keys: Sequence[tuple[int, str]], now: datetime) -> list[int]:
    """Move the staged rows ``keys`` ((item_no, token)) into ``photos`` in the session's transaction,
    with new ids and ``indexed_at`` ``now``; returns the ids in the order of ``keys``."""
    if not keys:
        return []
    conn = s.connection()
    ids = sequence_ids(conn, len(keys))
    picked = ", ".join("%(now)s" if c == "indexed_at" else f"s.{c}" for c in COLUMNS[1:])
    sql = (
        f'INSERT INTO {TABLE_NAME} ({", ".join(COLUMNS)}) SELECT k.id, {picked} FROM "{table}" s '
        "JOIN unnest(%(items)s::bigint[], %(tokens)s::text[], %(ids)s::bigint[]) AS k(item_no, token, id) "
        "ON s.item_no = k.item_no AND s.token = k.token"
    )
    params: dict[str, Any] = {"items": [k[0] for k in keys], "tokens": [k[1] for k in keys], "ids": ids}
    inserted = conn.exec_driver_sql(sql, {**params, "now": now}).rowcount
    if inserted != len(keys):
        raise CollectionError(
            f"{len(keys) - inserted} of {len(keys)} rows staged by the Ray workers are missing; "
            "run `dualens index` again"
        )
    return ids


def _staged_dim(s: Session, stage: StageSpec, key: tuple[int, str]) -> int:
    column = "next_vector" if stage.reindex else "vector"
    sql = f'SELECT octet_length({column}) / 4 FROM "{stage.table}" WHERE item_no = %(i)s AND token = %(t)s'
    return int(s.connection().exec_driver_sql(sql, {"i": key[0], "t": key[1]}).scalar() or 0)


class StagedRowWriter(RowWriter):
    """A RowWriter whose new files' rows, those announced with :meth:`expect`, were staged by the
    workers: they go in through :func:`insert_staged` (their NewVectors carry no vector), the rest as
    in RowWriter, all in the batch's one transaction."""

    def __init__(self, database: Database, stage: StageSpec) -> None:
        super().__init__(database, stage.run, staging=stage.reindex)
        self.stage = stage
        self._keys: dict[str, tuple[int, str]] = {}

    def expect(self, path: str, item_no: int, token: str) -> None:
        """The next write's NewVectors of ``path`` (a new file) is the staged row (item_no, token)."""
        self._keys[path] = (item_no, token)

    def _insert_fresh(
        self, s: Session, fresh: Sequence[NewVectors], now: datetime, out: BatchOutcome
    ) -> None:
        staged = [w for w in fresh if w.file.path in self._keys]
        super()._insert_fresh(s, [w for w in fresh if w.file.path not in self._keys], now, out)
        if not staged:
            return
        keys = [self._keys.pop(w.file.path) for w in staged]
        if self.dim is None:  # the first batch records the collection's dimension, or is refused
            self._check_dim(s, _staged_dim(s, self.stage, keys[0]))
        ids = insert_staged(s, self.stage.table, keys, now)
        for w, row_id in zip(staged, ids, strict=True):
            if not self.staging:
                out.added_ids.append(row_id)
            if w.file.content_hash:
                out.new_hashes[w.file.content_hash] = row_id

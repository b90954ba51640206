"""A SIGKILL in the middle of a large COPY loses only that batch (issue 31, item 4): a real writer
process killed while PostgreSQL shows its COPY running, then a second run completes the rest and every
photo is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.helpers.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
N_ROWS = 30_000
BATCH = 6_000  # rows a transaction: a COPY long enough to be caught in flight

# The writer: the rows not yet stored, BATCH a transaction through RowWriter (the bulk path), a line
# on stdout after each commit. Deterministic: row i always has the same path and vector.
WRITER = r"""
import sys
from pathlib import Path
import numpy as np
from sqlalchemy import select
from indexer.core.storage.batches import FileState, NewVectors, PhotoFacts, RowWriter
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo

data, url, n, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vectors = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
with Collection.open(data, create=True, db_url=url) as collection:
    with collection.database.snapshot() as s:
        stored = set(s.scalars(select(Photo.path)))
    todo = [i for i in range(n) if f"/p/{i:06d}.jpg" not in stored]
    writer = RowWriter(collection.database, run=1)
    for start in range(0, len(todo), batch):
        writer.write([
            NewVectors(None, FileState(f"/p/{i:06d}.jpg", "/p", "jpeg", 10, i, f"{i:064x}", True),
                       PhotoFacts(), vectors[i])
            for i in todo[start:start + batch]
        ])
        print("committed", flush=True)
"""


def _writer(data: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data), url, str(N_ROWS), str(BATCH)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _copy_running(conn: psycopg.Connection, database: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
        "AND query LIKE 'COPY photos%%'",
        (database,),
    ).fetchone()
    return bool(row and row[0])


def _stored(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(rows, distinct paths, generation) of the collection database."""
    rows, paths = conn.execute("SELECT count(*), count(DISTINCT path) FROM photos").fetchone() or (0, 0)
    generation = conn.execute("SELECT value FROM collection_info WHERE key = 'generation'").fetchone()
    return int(rows), int(paths), int(generation[0]) if generation else 0


@pytest.mark.slow  # two writer processes, 30,000 rows: ~10-40 s on a loaded 2-core machine
@pytest.mark.timeout(240)
def test_sigkill_mid_copy_loses_only_that_batch_and_the_next_run_completes(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    watch = psycopg.connect(
        host=str(postgres_server.dir), port=postgres_server.port, user="postgres", dbname=name
    )
    watch.autocommit = True
    try:
        first = _writer(tmp_path / "data", url)
        try:
            assert first.stdout is not None
            assert first.stdout.readline() == "committed\n"  # one batch in, the next one's COPY next
            deadline = time.monotonic() + 120
            while not _copy_running(watch, name) and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            assert first.poll() is None, "the writer finished before its COPY could be caught"
            os.killpg(first.pid, signal.SIGKILL)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        rows, paths, generation = _stored(watch)
        assert rows % BATCH == 0 and 0 < rows < N_ROWS  # whole batches only: nothing of the killed COPY
        assert paths == rows and generation == rows // BATCH  # the generation moved with each batch

        second = _writer(tmp_path / "data", url)
        out, _ = second.communicate(timeout=180)
        assert second.returncode == 0
        assert out.count("committed") == (N_ROWS - rows) // BATCH
        assert _stored(watch) == (N_ROWS, N_ROWS, N_ROWS // BATCH)  # every photo once
    finally:
        watch.close()
        postgres_server.drop_database(name)

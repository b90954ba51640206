"""Bulk writes (issue 31, item 4): new rows go through COPY (PostgreSQL) or one executemany (SQLite)
and read back exactly as the row-at-a-time path stores them, in the batch's one transaction."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from indexer.core.errors import CollectionError
from indexer.core.storage.batches import FailedRead, FileState, KeptVectors, NewVectors, PhotoFacts, RowWriter
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, PhotoStatus

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

DIM = 8


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _new(prefix: str, n: int, seed: int = 0, *, visual: bool = True) -> list[NewVectors]:
    rng = np.random.default_rng(seed)
    joint, seen = _unit(rng, n), _unit(rng, n)
    out = []
    for i in range(n):
        name = f"/photos/{prefix}/p{i:03d}-é\udcff.jpg"  # a name that is not valid UTF-8 too
        file = FileState(name, "/photos", "jpeg", 1000 + i, 1_700_000_000_000_000_000 + i, f"{i:064x}", True)
        facts = PhotoFacts(40 + i, 30, datetime(2020, 1, 2, 3, 4, 5, 678901), "Canon", None, 48.5 + i, None)
        out.append(NewVectors(None, file, facts, joint[i], seen[i] if visual else None))
    return out


def _rows(collection: Collection, prefix: str) -> list[dict[str, object]]:
    """The stored rows under ``/photos/prefix/`` as the database holds them (raw SQL), path-ordered,
    without id and path prefix."""
    with collection.database.snapshot() as s:
        found = s.execute(text("SELECT * FROM photos ORDER BY path")).mappings().all()
    rows = []
    for row in found:
        if f"/{prefix}/" in row["path"]:
            path = row["path"].replace(f"/{prefix}/", "/")
            rows.append({**row, "id": None, "path": path, "indexed_at": None})
    return rows


@pytest.mark.timeout(60)
def test_bulk_rows_are_stored_exactly_as_the_row_at_a_time_path_stores_them(tmp_path: Path) -> None:
    with Collection.open(tmp_path / "data", create=True) as collection:
        bulk = RowWriter(collection.database, run=3)
        orm = RowWriter(collection.database, run=3, bulk=False)
        out_bulk = bulk.write(_new("a", 5) + _new("c", 2, seed=1, visual=False))
        out_orm = orm.write(_new("b", 5) + _new("d", 2, seed=1, visual=False))
        assert _rows(collection, "a") == _rows(collection, "b") and len(_rows(collection, "a")) == 5
        assert _rows(collection, "c") == _rows(collection, "d")
        assert len(out_bulk.added_ids) == len(set(out_bulk.added_ids)) == 7
        assert len(out_bulk.new_hashes) == len(out_orm.new_hashes) == 5  # two batches share hashes
        assert collection.generation() == 2
        with collection.database.snapshot() as s:
            by_id = {p.id: p for p in s.scalars(select(Photo))}
        for w, row_id in zip(_new("a", 5), out_bulk.added_ids[:5], strict=True):
            assert by_id[row_id].path == w.file.path  # the returned ids are the rows' own, in order
            assert np.array_equal(np.frombuffer(by_id[row_id].vector or b"", np.float32), w.vector)


@pytest.mark.timeout(60)
def test_a_mixed_batch_is_one_transaction_with_one_generation_bump(tmp_path: Path) -> None:
    with Collection.open(tmp_path / "data", create=True) as collection:
        writer = RowWriter(collection.database, run=1)
        first = writer.write(_new("x", 3))
        kept, failed = _new("x", 3)[:2]
        before = collection.generation()
        writer.run = 2
        out = writer.write(
            [
                KeptVectors(first.added_ids[0], kept.file),
                FailedRead(first.added_ids[1], failed.file, "unreadable"),
                *_new("y", 4, seed=5),
            ]
        )
        assert collection.generation() == before + 1
        assert out.removed_ids == [first.added_ids[1]]
        assert len(out.added_ids) == 4 and first.added_ids[0] not in out.added_ids
        with collection.database.snapshot() as s:
            counts = dict(s.execute(select(Photo.status, func.count()).group_by(Photo.status)).tuples().all())
            runs = set(s.scalars(select(Photo.seen_run).where(Photo.path.like("/photos/y/%"))))
        assert counts == {PhotoStatus.INDEXED: 6, PhotoStatus.ERROR: 1} and runs == {2}


@pytest.mark.timeout(60)
def test_a_batch_with_one_non_unit_vector_writes_nothing(tmp_path: Path) -> None:
    with Collection.open(tmp_path / "data", create=True) as collection:
        writes = _new("z", 4)
        bad = NewVectors(None, writes[2].file, writes[2].facts, writes[2].vector * 2.0)
        with pytest.raises(CollectionError, match="unit-length"):
            RowWriter(collection.database, run=1).write([writes[0], writes[1], bad, writes[3]])
        assert collection.info().n_indexed == 0 and collection.generation() == 0
        with collection.database.snapshot() as s:
            assert s.scalar(select(func.count()).select_from(Photo)) == 0


@pytest.mark.timeout(60)
def test_bulk_rows_of_a_reindex_are_staged_and_serve_nothing(tmp_path: Path) -> None:
    with Collection.open(tmp_path / "data", create=True) as collection:
        out = RowWriter(collection.database, run=1, staging=True).write(_new("s", 3))
        assert out.added_ids == [] and len(out.new_hashes) == 3
        with collection.database.snapshot() as s:
            rows = s.scalars(select(Photo)).all()
        assert {r.status for r in rows} == {PhotoStatus.PENDING}
        assert all(r.vector is None and r.visual is None for r in rows)
        assert all(r.next_vector is not None and r.next_visual is not None for r in rows)

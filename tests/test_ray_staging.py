"""Ray workers write their own rows on PostgreSQL (issue 31, item 4): each embedding actor COPYs its
batch's new rows into the run's staging table, and the driver commits each batch with one
INSERT … SELECT, keeping every guarantee of the driver's own writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from indexer.core.errors import CollectionError
from indexer.core.storage.batches import NewVectors, RowWriter
from indexer.core.storage.collection import Collection
from indexer.core.storage.staging import PREFIX, StagedRowWriter, StageSink, staging_table
from indexer.pipeline import IndexOptions, run_index
from indexer.ray_engine import RayOptions
from tests.helpers.faults import check_ok
from tests.helpers.images import save_jpeg
from tests.helpers.postgres import PostgresServer
from tests.test_ingest_bulk import _new, _rows


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url(postgres_server.new_database())


def _stage_tables(collection: Collection) -> list[str]:
    with collection.database.snapshot() as s:
        sql = text("SELECT tablename FROM pg_tables WHERE tablename LIKE :p")
        return [str(r[0]) for r in s.execute(sql, {"p": PREFIX + "%"})]


def _empty(w: NewVectors) -> NewVectors:
    """What the driver holds of a staged row: no vector."""
    return dataclasses.replace(w, vector=np.zeros(0, np.float32), visual=None)


@pytest.mark.timeout(60)
def test_staged_rows_commit_as_the_driver_writes_them_and_a_dead_calls_rows_never(
    tmp_path: Path, pg_url: str
) -> None:
    with Collection.open(tmp_path / "data", create=True, db_url=pg_url) as collection:
        RowWriter(collection.database, run=3).write(_new("driver", 5))  # the driver's own bulk rows
        with staging_table(collection.database, run=3, reindex=False) as stage:
            assert stage is not None
            sink = StageSink(stage)
            new = _new("staged", 5)
            dead = sink.write(list(enumerate(new)))  # staged, then its worker died: Ray retries the batch
            retried = sink.write(list(enumerate(new)))
            assert dead != retried
            writer = StagedRowWriter(collection.database, stage)
            for n, w in enumerate(new):
                writer.expect(w.file.path, n, retried)
            outcome = writer.write([_empty(w) for w in new])
            sink.close()
            assert len(outcome.added_ids) == 5 and len(set(outcome.added_ids)) == 5
            assert set(outcome.new_hashes.values()) == set(outcome.added_ids)
        assert _rows(collection, "staged") == _rows(collection, "driver")  # once each, byte for byte
        assert _stage_tables(collection) == []  # dropped after the run
        assert collection.info().n_indexed == 10


@pytest.mark.timeout(60)
def test_a_staged_row_that_is_missing_fails_the_batch_and_writes_nothing(tmp_path: Path, pg_url: str) -> None:
    with (
        Collection.open(tmp_path / "data", create=True, db_url=pg_url) as collection,
        staging_table(collection.database, run=1, reindex=False) as stage,
    ):
        assert stage is not None
        new = _new("a", 3)
        token = StageSink(stage).write(list(enumerate(new[:2])))  # the third was never staged
        writer = StagedRowWriter(collection.database, stage)
        for n, w in enumerate(new):
            writer.expect(w.file.path, n, token)
        generation = collection.database.generation()
        with pytest.raises(CollectionError, match="1 of 3 rows staged"):
            writer.write([_empty(w) for w in new])
        assert collection.info().n_indexed == 0 and collection.database.generation() == generation


@pytest.mark.timeout(60)
def test_a_dead_runs_staging_table_is_dropped_by_the_next_run_and_none_of_its_rows_committed(
    tmp_path: Path, pg_url: str
) -> None:
    with Collection.open(tmp_path / "data", create=True, db_url=pg_url) as collection:
        left = staging_table(collection.database, run=1, reindex=False)
        stage = left.__enter__()  # a driver SIGKILLed mid-run: never exited
        assert stage is not None
        StageSink(stage).write(list(enumerate(_new("a", 3))))
        with staging_table(collection.database, run=2, reindex=False) as later:
            assert later is not None and _stage_tables(collection) == [later.table]
        assert _stage_tables(collection) == [] and collection.info().n_indexed == 0


@pytest.mark.timeout(120)
def test_ray_on_postgresql_indexes_through_the_workers_rows_without_the_driver_writing_a_vector(
    tmp_path: Path, pg_url: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> list[int]:
        raise AssertionError("the driver inserted a new file's row itself")

    monkeypatch.setattr("indexer.core.storage.batches.insert_photos", refused)  # the driver's COPY path
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(24):
        save_jpeg(photos / f"d{i % 3}" / f"p{i:02d}.jpg", seed=i)
    save_jpeg(photos / "copy.jpg", seed=3)  # a duplicate: its vector copied by the driver
    options = IndexOptions(model=str(tiny_model_dir), batch_size=8, engine="ray", ray=RayOptions(workers=1))
    summary = run_index(data, [photos], options, db_url=pg_url)
    assert (summary.indexed + summary.reused, summary.failed) == (25, 0)
    with Collection.open(data, db_url=pg_url) as collection:
        assert collection.info().n_indexed == 25
        assert _stage_tables(collection) == []
        with collection.database.snapshot() as s:
            n, paths = s.execute(text("SELECT COUNT(*), COUNT(DISTINCT path) FROM photos")).one()
        assert (n, paths) == (25, 25)
    assert check_ok(data, pg_url) == []

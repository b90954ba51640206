"""The collection schema: created and upgraded by Alembic on SQLite and PostgreSQL, old files kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.migrations import HEAD, SCRIPTS, known_revisions, stored_revision
from indexer.core.storage.schema import APPLICATION_ID, Base
from indexer.core.storage.text import full_text_artefact

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL


def _schema_diff(collection: Collection) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with collection.engine.connect() as conn:
        skip_full_text = {"include_name": lambda name, _type, _parents: not full_text_artefact(name)}
        context = MigrationContext.configure(conn, opts={"compare_type": True, **skip_full_text})
        return compare_metadata(context, Base.metadata)


def test_an_empty_database_gets_the_newest_schema_which_matches_the_models(tmp_path: Path) -> None:
    with Collection.open(tmp_path / "data", create=True) as collection:
        with collection.engine.connect() as conn:
            assert stored_revision(conn) == HEAD
        assert _schema_diff(collection) == []


def test_head_is_the_newest_revision_on_disk() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD
    assert {"0001", HEAD} <= known_revisions()


def test_a_database_of_a_newer_dualens_is_refused_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Collection.open(data, create=True) as collection:
        with collection.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        url = collection.paths.database_url
    with pytest.raises(CollectionError, match=r"schema revision '0999'.*newer dualens.*Nothing was changed"):
        Collection.open(data)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0999"
        assert conn.execute(text("SELECT COUNT(*) FROM photos")).scalar() == 0
    engine.dispose()


@pytest.mark.sqlite_only
def test_a_collection_of_the_ordered_migration_releases_keeps_opening(tmp_path: Path) -> None:
    """A SQLite file as dualens wrote it before Alembic (schema_version 1) is stamped and upgraded."""
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "dualens.sqlite")
    conn.executescript(
        f"""
        PRAGMA application_id = {APPLICATION_ID};
        CREATE TABLE photos (id INTEGER NOT NULL PRIMARY KEY, path TEXT NOT NULL, root TEXT NOT NULL,
            file_type VARCHAR(16) NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
            content_hash VARCHAR(64), width INTEGER, height INTEGER, taken_at DATETIME,
            camera_make VARCHAR(128), camera_model VARCHAR(128), gps_lat FLOAT, gps_lon FLOAT,
            status VARCHAR(16) NOT NULL, error TEXT, indexed_at DATETIME, vector BLOB,
            seen_run INTEGER NOT NULL);
        CREATE UNIQUE INDEX ix_photos_path ON photos (path);
        CREATE INDEX ix_photos_root ON photos (root);
        CREATE INDEX ix_photos_file_type ON photos (file_type);
        CREATE INDEX ix_photos_content_hash ON photos (content_hash);
        CREATE INDEX ix_photos_taken_at ON photos (taken_at);
        CREATE INDEX ix_photos_status ON photos (status);
        CREATE INDEX ix_photos_seen_run ON photos (seen_run);
        CREATE TABLE roots (id INTEGER NOT NULL PRIMARY KEY, path TEXT NOT NULL UNIQUE,
            added_at DATETIME NOT NULL);
        CREATE TABLE collection_info (key VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY);
        INSERT INTO schema_version VALUES (1);
        INSERT INTO roots VALUES (1, '/photos', '2026-01-01 00:00:00');
        INSERT INTO collection_info VALUES ('model_id', 'default'), ('dim', '4'), ('generation', '1');
        INSERT INTO photos (id, path, root, file_type, size, mtime_ns, status, seen_run, vector)
            VALUES (7, '/photos/a.jpg', '/photos', 'jpeg', 10, 1, 'indexed', 1, zeroblob(16));
        """
    )
    conn.commit()
    conn.close()
    with Collection.open(data) as collection:
        stats = collection.info()
        assert (stats.n_indexed, stats.model_id, stats.generation) == (1, "default", 1)
        assert collection.photos([7])[7].path == "/photos/a.jpg"
        with collection.engine.connect() as c:
            assert stored_revision(c) == HEAD
        assert _schema_diff(collection) == []

"""Another program's database is never changed, however it is given (#27 items 9 and 13): a SQLite
file named with ``--db sqlite:///…`` is inspected as the data folder's own file is, and a PostgreSQL
database holding another application's tables (or PostgreSQL's own ``postgres``) is refused before
dualens creates anything in it."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from indexer.core.storage.collection import Collection
from tests.helpers.images import save_jpeg
from tests.helpers.postgres import PostgresServer
from ui.cli import main

COMMANDS = (["check"], ["errors"], ["search", "a dog"], ["rebuild-index"], ["index"])


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def _one_line_error(err: str, fragment: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return "Traceback" not in err and len(lines) == 1 and fragment in lines[0]


def _every_command(tmp_path: Path, url: str) -> Iterator[list[str]]:
    photos = tmp_path / "photos"
    save_jpeg(photos / "a.jpg", seed=1)
    for command, *rest in COMMANDS:
        extra = [str(photos)] if command == "index" else rest
        yield [command, "--data", str(tmp_path / "data"), "--db", url, *extra]


# ---------------------------------------------------------------- 9. a SQLite file given with --db
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_another_program_s_sqlite_file_given_with_db_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('my shopping list')")
        conn.commit()
    before = _sha256(other)
    for argv in _every_command(tmp_path, f"sqlite:///{other}"):
        code, err = _run(capsys, argv)
        assert code == 1 and _one_line_error(err, "another program's database"), (argv, err)
    assert _sha256(other) == before
    with contextlib.closing(sqlite3.connect(f"file:{other}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # never switched to WAL
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == [
            "notes"
        ]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("other.db")) == ["other.db"]


def test_searching_a_sqlite_file_that_does_not_exist_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    missing = tmp_path / "typo.db"
    code, err = _run(
        capsys, ["search", "--data", str(tmp_path / "data"), "--db", f"sqlite:///{missing}", "a dog"]
    )
    assert code == 1 and _one_line_error(err, "no collection")
    assert not missing.exists()


# ------------------------------------------------------- 13. another application's PostgreSQL database
@pytest.fixture
def foreign_db(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database (its name) that the test fills with another application's tables."""
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    name = postgres_server.new_database()
    yield name
    postgres_server.drop_database(name)


def _tables(server: PostgresServer, name: str) -> list[str]:
    with psycopg.connect(host=str(server.dir), port=server.port, user="postgres", dbname=name) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        return [str(r[0]) for r in rows]


def test_a_postgresql_database_of_another_application_is_refused_and_left_as_it_was(
    postgres_server: PostgresServer, foreign_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    postgres_server.execute("CREATE TABLE invoices (id serial PRIMARY KEY, total numeric)", foreign_db)
    for argv in _every_command(tmp_path, postgres_server.url(foreign_db)):
        code, err = _run(capsys, argv)
        assert code == 1 and _one_line_error(err, "another application's database"), (argv, err)
    assert _tables(postgres_server, foreign_db) == ["invoices"]


@pytest.mark.parametrize("with_tables", [True, False], ids=["with its tables", "alembic_version alone"])
def test_another_application_s_alembic_version_is_not_taken_for_a_newer_dualens(
    postgres_server: PostgresServer,
    foreign_db: str,
    with_tables: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    postgres_server.execute(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        "INSERT INTO alembic_version VALUES ('ae1027a6acf')",
        foreign_db,
    )
    if with_tables:
        postgres_server.execute("CREATE TABLE users (id serial PRIMARY KEY, name text)", foreign_db)
    for argv in _every_command(tmp_path, postgres_server.url(foreign_db)):
        code, err = _run(capsys, argv)
        assert code == 1 and _one_line_error(err, "another application's database"), (argv, err)
        assert "newer dualens" not in err
    assert "photos" not in _tables(postgres_server, foreign_db)


def test_the_postgres_maintenance_database_gets_no_collection(
    postgres_server: PostgresServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    assert _tables(postgres_server, "postgres") == []
    try:
        for argv in _every_command(tmp_path, postgres_server.url("postgres")):
            code, err = _run(capsys, argv)
            assert code == 1 and _one_line_error(err, "PostgreSQL's own 'postgres' database"), (argv, err)
        assert _tables(postgres_server, "postgres") == []
    finally:  # on a dualens that created its tables there, leave the shared server as it was
        for table in ("photos", "roots", "collection_info", "schema_version", "alembic_version"):
            postgres_server.execute(f"DROP TABLE IF EXISTS {table} CASCADE")


def test_a_collection_in_its_own_postgresql_database_still_opens(
    postgres_server: PostgresServer, foreign_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusals above leave dualens's own databases alone: empty, then with its tables."""
    url = postgres_server.url(foreign_db)
    photos = tmp_path / "photos"
    save_jpeg(photos / "a.jpg", seed=1)
    data = ["--data", str(tmp_path / "data"), "--db", url]
    code, err = _run(capsys, ["rebuild-index", *data])  # an empty database: no collection yet
    assert code == 1 and _one_line_error(err, "no collection")
    Collection.open(tmp_path / "data", create=True, db_url=url).close()
    code, err = _run(capsys, ["check", *data])
    assert code == 0, err

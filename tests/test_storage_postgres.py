"""A PostgreSQL server as the collection database: `--db` on every command, one indexer at a time
enforced by the server, and every server problem as one line (run against a real throw-away server)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.pipeline import IndexOptions, run_index
from tests.helpers.images import save_jpeg, write_zero_bytes
from tests.helpers.postgres import PostgresServer
from ui.cli import main


@pytest.fixture
def pg_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    name = postgres_server.new_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_works_on_a_database_given_with_db(
    pg_url: str, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(6):
        save_jpeg(photos / f"p{i}.jpg", seed=i)
    write_zero_bytes(photos / "empty.jpg")
    db = ["--data", str(data), "--db", pg_url]
    code, out, _ = _run(capsys, "index", *db, "--model", str(tiny_model_dir), "--workers", "0", str(photos))
    assert code == 0 and "indexed 6," in out and "failed 1" in out
    assert not (data / "dualens.sqlite").exists()  # the rows went to the server

    code, out, _ = _run(capsys, "search", *db, "a photo", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 6
    code, out, _ = _run(capsys, "similar", *db, str(hits[0]["id"]), "--json")
    similar = [h["id"] for h in json.loads(out)["hits"]]
    assert code == 0 and sorted(similar) == sorted(h["id"] for h in hits[1:])  # all but itself
    code, out, _ = _run(capsys, "errors", *db)
    assert code == 0 and "empty.jpg" in out
    code, out, _ = _run(capsys, "rebuild-index", *db)
    assert code == 0 and "6 vectors" in out
    code, out, _ = _run(capsys, "check", *db)
    assert code == 0 and out.startswith("OK")
    # without --db, the same data folder has no collection of its own
    code, _, err = _run(capsys, "check", "--data", str(data))
    assert code != 0 and "no collection" in err


def test_a_second_indexer_is_refused_by_the_server_even_from_another_data_folder(
    pg_url: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Two machines share no lock file: the database's advisory lock keeps them apart."""
    photos = tmp_path / "photos"
    save_jpeg(photos / "a.jpg", seed=1)
    options = IndexOptions(model=str(tiny_model_dir), workers=0)
    with Collection.open(tmp_path / "machine-a", create=True, db_url=pg_url) as first:
        refused = pytest.raises(CollectionError, match=r"another dualens indexer \(dualens .*:\d+\)")
        with first.database.indexer_lock(), refused:
            run_index(tmp_path / "machine-b", [photos], options, db_url=pg_url)
        summary = run_index(tmp_path / "machine-b", [photos], options, db_url=pg_url)  # released
    assert summary.indexed == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (lambda s, n: s.tcp_url(n, password="wrong"), r"password authentication failed"),
        (lambda s, n: f"postgresql+psycopg://u:secret@127.0.0.1:{_free_port()}/x", r"Connection refused"),
        (lambda s, n: "mysql://u@localhost/x", r"SQLite or PostgreSQL, not 'mysql'"),
        (lambda s, n: "not a url at all", r"not a database URL"),
    ],
    ids=["wrong-password", "unreachable", "unsupported", "garbage"],
)
def test_a_database_that_cannot_be_used_is_one_line_and_hides_the_password(
    postgres_server: PostgresServer,
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    url,  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    name = postgres_server.new_database()
    try:
        target = url(postgres_server, name)
        save_jpeg(tmp_path / "photos" / "a.jpg", seed=1)
        for argv in (
            ["index", "--model", str(tiny_model_dir), str(tmp_path / "photos")],
            ["search", "a dog"],
            ["check"],
        ):
            code, out, err = _run(capsys, *argv, "--data", str(tmp_path / "data"), "--db", target)
            assert code != 0 and out == ""
            assert err.startswith("dualens: error: ") and err.count("\n") == 1, err
            assert re.search(message, err), err
            assert "secret" not in err and "wrong" not in err.replace("password authentication failed", "")
    finally:
        postgres_server.drop_database(name)
    assert not (tmp_path / "data" / "dualens.sqlite").exists()


def test_an_empty_db_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "check", "--db", " ")
    assert code == 2 and "--db must be a database URL" in err

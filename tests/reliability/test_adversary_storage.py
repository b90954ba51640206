"""An adversarial tester's storage findings: a SQLite ``file:`` URI naming another program's database,
a recorded root replaced by a symlink, a collection file deleted under a running reader, and the
vanished-folder warning printed after ``--prune`` removed the photos. Each test failed on the old code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from indexer import watch
from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.database import sqlite_file
from indexer.core.storage.schema import Photo
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg
from ui.cli import main

pytestmark = pytest.mark.timeout(120)


def _index(data: Path, *dirs: Path, **options: object) -> IndexSummary:
    opts = IndexOptions(**{"workers": 0, "batch_size": 8, **options})  # type: ignore[arg-type]
    return run_index(data, list(dirs), opts, encoder=FakeEncoder())


def _paths(data: Path) -> set[str]:
    with Collection.open(data) as c, c.session() as s:
        return set(s.scalars(select(Photo.path)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- 1. a SQLite file: URI given with --db
def test_a_file_uri_names_the_file_it_opens() -> None:
    assert sqlite_file("sqlite:///file:/tmp/x/a.db?uri=true") == Path("/tmp/x/a.db")
    assert sqlite_file("sqlite+pysqlite:///file:///tmp/x/a%20b.db?uri=true") == Path("/tmp/x/a b.db")
    assert sqlite_file("sqlite:///file:/tmp/x/a.db?mode=ro&uri=true") == Path("/tmp/x/a.db")
    assert sqlite_file("sqlite:///file:/tmp/x/a.db") == Path("file:/tmp/x/a.db")  # no uri=true: a name


@pytest.mark.parametrize("driver", ["sqlite", "sqlite+pysqlite"])
@pytest.mark.parametrize("command", ["index", "check"])
def test_another_program_s_database_named_by_a_file_uri_is_refused_and_left_as_it_was(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    driver: str,
    command: str,
) -> None:
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    other = tmp_path / "foreign.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    before = _sha256(other)
    photos = tmp_path / "photos"
    save_jpeg(photos / "a.jpg", seed=1)
    url = f"{driver}:///file:{other}?uri=true"
    folders = [str(photos)] if command == "index" else []
    argv = [command, "--data", str(tmp_path / "data"), "--db", url, *folders]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "another program's database" in lines[0], err
    assert _sha256(other) == before
    with contextlib.closing(sqlite3.connect(f"file:{other}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["t"]


# ---------------------------------------------------------------- 2. a recorded root becomes a symlink
def test_a_recorded_root_replaced_by_a_symlink_is_not_followed_nor_registered(
    tmp_path: Path, database: str | None
) -> None:
    root, data, outside = tmp_path / "p4", tmp_path / "data", tmp_path / "outside"
    for i in range(3):
        save_jpeg(root / f"a{i}.jpg", seed=i)
    save_jpeg(outside / "secret.jpg", seed=50)
    _index(data, root)
    os.rename(root, tmp_path / "p4.real")
    root.symlink_to(outside, target_is_directory=True)
    assert watch._collection_roots(data, None) == (str(root),)  # --watch: the root as recorded
    summary = _index(data)  # the collection's recorded roots
    assert summary.indexed == 0 and summary.roots == (str(root),)
    assert (summary.kept_unreachable, summary.unreachable_folders) == (3, (str(root),))
    with Collection.open(data) as c:
        assert [str(r) for r in c.rows.roots()] == [str(root)]
    assert _paths(data) == {str(root / f"a{i}.jpg") for i in range(3)}
    pruned = _index(data, prune=True)
    assert pruned.removed == 3 and pruned.indexed == 0 and _paths(data) == set()


# ---------------------------------------------------------------- 3. the file deleted under a reader
def test_a_collection_file_deleted_under_a_running_reader_is_an_error_not_a_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUALENS_DB_URL", raising=False)
    photos, data = tmp_path / "photos", tmp_path / "data"
    save_jpeg(photos / "a.jpg", seed=1)
    _index(data, photos)
    with Collection.open(data) as c:
        assert c.database.facts().generation > 0
        c.database.engine.dispose()
        for f in data.glob("dualens.sqlite*"):
            f.unlink()
        with pytest.raises(CollectionError):
            c.database.facts()
    assert not list(data.glob("dualens.sqlite*"))


# ---------------------------------------------------------------- 4. the warning after --prune
def test_no_kept_photos_warning_once_prune_removed_a_vanished_folder_s_photos(
    tmp_path: Path, database: str | None
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    save_jpeg(photos / "keep.jpg", seed=1)
    for i in range(2):
        save_jpeg(photos / "trip" / f"t{i}.jpg", seed=10 + i)
    _index(data, photos)
    os.rename(photos / "trip", tmp_path / "elsewhere")
    assert "kept its 2 indexed photo(s)" in " ".join(_index(data, photos).warnings())
    pruned = _index(data, photos, prune=True)
    assert pruned.removed == 2 and pruned.warnings() == []

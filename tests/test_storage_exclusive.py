"""One exclusive-indexing context for every writer: the lock file first, then the database, then
(PostgreSQL) the server's lock; a writer refused says so before it touches anything."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer.core.errors import CollectionError
from indexer.core.storage.locks import exclusive_indexing
from indexer.pipeline import IndexOptions, run_index
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg
from ui.cli import main

REPO = Path(__file__).resolve().parents[1]
HOLD_LOCK = """
import sys
from indexer.core.settings import CollectionPaths
from indexer.core.storage.locks import collection_lock
with collection_lock(CollectionPaths.from_option(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def _lock_held_elsewhere(data: Path) -> Iterator[None]:
    """Another process holds the data folder's lock file while the block runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(data)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        yield
    finally:
        holder.communicate(b"", timeout=30)


def _index(data: Path, photos: Path, db_url: str | None = None) -> int:
    return run_index(data, [photos], IndexOptions(workers=0), encoder=FakeEncoder(), db_url=db_url).indexed


@pytest.mark.sqlite_only
def test_a_writer_refused_by_the_lock_file_creates_no_database(database: str | None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    refused = pytest.raises(CollectionError, match="another dualens indexer")
    with _lock_held_elsewhere(data), refused, exclusive_indexing(data, create=True):
        pass
    assert not (data / "dualens.sqlite").exists()
    with exclusive_indexing(data, create=True) as collection:  # free again once the holder is gone
        assert collection.info().n_indexed == 0


@pytest.mark.sqlite_only
def test_a_missing_collection_is_reported_before_any_folder_is_made(
    database: str | None, tmp_path: Path
) -> None:
    data = tmp_path / "nothing"
    with pytest.raises(CollectionError, match="no collection in"), exclusive_indexing(data):
        pass
    assert not data.exists()
    assert main(["rebuild-index", "--data", str(data)]) != 0
    assert not data.exists()


def test_rebuild_index_is_refused_while_an_indexer_holds_the_collection(
    database: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    save_jpeg(photos / "a.jpg", seed=1)
    assert _index(data, photos) == 1
    with _lock_held_elsewhere(data):
        assert main(["rebuild-index", "--data", str(data)]) != 0
        assert "another dualens indexer" in capsys.readouterr().err
    assert main(["rebuild-index", "--data", str(data)]) == 0
    assert "1 vectors" in capsys.readouterr().out


def test_two_data_folders_exclude_each_other_only_when_they_share_a_server_database(
    database: str | None, tmp_path: Path
) -> None:
    """A PostgreSQL collection is one database for every machine: the server's lock keeps a second
    writer out although its lock file is another folder's. SQLite files are separate collections."""
    photos = tmp_path / "photos"
    save_jpeg(photos / "a.jpg", seed=1)
    with exclusive_indexing(tmp_path / "machine-a", create=True, db_url=database):
        if database is None:
            assert _index(tmp_path / "machine-b", photos) == 1
        else:
            with pytest.raises(CollectionError, match="another dualens indexer"):
                _index(tmp_path / "machine-b", photos, db_url=database)
    if database is not None:
        assert _index(tmp_path / "machine-b", photos, db_url=database) == 1  # released

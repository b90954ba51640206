"""One collection database used from two data folders (#27 item 12): each folder's FAISS file is
current only when its OWN stamp holds the database's generation, whatever the other folder saved.

Both folders give the same database with ``--db``: a PostgreSQL server's, or one SQLite file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.check import check_collection
from indexer.core.storage.collection import Collection
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from search import Searcher
from tests.helpers.faults import make_photos


def _index(data: Path, root: Path, url: str, model: Path) -> IndexSummary:
    options = IndexOptions(model=str(model), workers=0, threads=1, batch_size=8)
    return run_index(data, [root], options, db_url=url)


def _found(searcher: Searcher) -> set[str]:
    """Every photo a text search through ``searcher`` can return."""
    return {hit.path for hit in searcher.search("a photo", k=100)}


def _replace_five(root: Path, photos: list[Path]) -> list[Path]:
    """Five photos removed, five new ones added: the count stays, the ids change."""
    for old in photos[:5]:
        old.unlink()
    return photos[5:] + make_photos(root / "new", 5, seed=99)


@pytest.fixture
def shared_url(database: str | None, tmp_path: Path) -> str:
    """The one database both data folders give with --db."""
    return database or f"sqlite:///{tmp_path / 'shared.sqlite'}"


def test_a_folder_s_stale_index_is_rebuilt_after_another_folder_indexed_the_shared_database(
    shared_url: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    root, a, b = tmp_path / "photos", tmp_path / "folder-a", tmp_path / "folder-b"
    photos = make_photos(root, 12, seed=3)
    _index(a, root, shared_url, tiny_model_dir)
    photos = _replace_five(root, photos)
    assert _index(b, root, shared_url, tiny_model_dir).removed == 5
    _index(a, root, shared_url, tiny_model_dir)  # nothing changed since B's run

    with Collection.open(a, db_url=shared_url) as collection:
        assert check_collection(collection).problems == []
    with Searcher.open(a, db_url=shared_url) as searcher:
        assert _found(searcher) == {str(p) for p in photos}


def test_a_searcher_through_one_folder_sees_what_another_folder_indexed(
    shared_url: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    root, a, b = tmp_path / "photos", tmp_path / "folder-a", tmp_path / "folder-b"
    photos = make_photos(root, 12, seed=4)
    _index(a, root, shared_url, tiny_model_dir)
    with Searcher.open(a, db_url=shared_url) as searcher:
        assert _found(searcher) == {str(p) for p in photos}
        photos = _replace_five(root, photos)
        _index(b, root, shared_url, tiny_model_dir)  # A's own file is untouched

        assert searcher.reload_if_stale()
        assert _found(searcher) == {str(p) for p in photos}
        assert not searcher.reload_if_stale()  # once per save elsewhere, not on every request

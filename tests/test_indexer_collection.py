"""The Collection API the search layer reads through (indexer/core/storage/collection.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete

import indexer.core.imaging as imaging
from indexer.core.errors import CollectionError, NotFoundError
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from indexer.pipeline import IndexOptions, run_index
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL


@pytest.fixture
def collection(tmp_path: Path):  # type: ignore[no-untyped-def]
    for i in range(4):
        save_jpeg(tmp_path / "photos" / f"p{i}.jpg", seed=i)
    run_index(tmp_path / "data", [tmp_path / "photos"], IndexOptions(workers=0), encoder=FakeEncoder())
    with Collection.open(tmp_path / "data") as c:
        yield c


def test_open_without_a_collection_says_how_to_make_one(tmp_path: Path, database: str | None) -> None:
    how = r"--db URL" if database else r"--data .*nothing-here"
    with pytest.raises(CollectionError, match=rf"no collection in .*; run `dualens index {how} PHOTOS`"):
        Collection.open(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here").exists()


def test_photos_and_vectors_by_id_keep_the_order_asked(collection: Collection) -> None:
    ids = sorted(collection.photos(range(1, 100)))
    assert len(ids) == 4
    photos = collection.photos(ids[::-1])
    assert set(photos) == set(ids) and all(p.path.endswith(".jpg") for p in photos.values())
    vectors = collection.vectors(ids[::-1])
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], collection.vectors([ids[-1]])[0])
    with pytest.raises(NotFoundError):
        collection.vectors([ids[0], 12345])


def test_photo_by_path_and_stats(collection: Collection) -> None:
    root = collection.roots()[0]
    photo = collection.photo_by_path(root / "p2.jpg")
    assert photo is not None and photo.width == 64
    assert collection.photo_by_path(root / "nope.jpg") is None
    stats = collection.info()
    assert (stats.n_indexed, stats.n_failed, stats.dim, stats.model_id) == (4, 0, 8, "fake-encoder-v1")
    assert stats.generation == collection.generation() == collection.load_index().generation


def test_stale_index_file_is_rebuilt_in_memory(collection: Collection) -> None:
    from indexer.core.storage.collection import bump_generation

    with collection.session() as s, s.begin():
        bump_generation(s)  # as if an indexer committed a batch after the file was saved
    index = collection.load_index()
    assert index.generation == collection.generation() and index.ntotal == 4


def test_heic_and_avif_are_scanned_when_the_plugin_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "heif_available", lambda: True)
    exts = imaging.supported_extensions()
    assert exts[".heic"] == "heic" and exts[".avif"] == "avif"
    monkeypatch.setattr(imaging, "heif_available", lambda: False)
    assert ".heic" not in imaging.supported_extensions()


def test_a_snapshot_sees_one_commit_while_an_indexer_writes(collection: Collection) -> None:
    from indexer.core.storage.collection import bump_generation

    with collection.snapshot() as snap:
        before = collection.generation(session=snap)
        ids = sorted(collection.photos(range(1, 100), session=snap))
        with collection.session() as writer, writer.begin():  # another connection commits meanwhile
            bump_generation(writer)
            writer.execute(delete(Photo).where(Photo.id == ids[0]))
        assert collection.generation(session=snap) == before
        assert sorted(collection.photos(ids, session=snap)) == ids
        assert collection.build_index_from_db(session=snap).ntotal == 4
    assert collection.generation() == before + 1 and len(collection.photos(ids)) == 3


def test_index_temp_files_of_a_killed_save_are_removed_by_the_next_run(tmp_path: Path) -> None:
    save_jpeg(tmp_path / "photos" / "a.jpg")
    data = tmp_path / "data"
    run_index(data, [tmp_path / "photos"], IndexOptions(workers=0), encoder=FakeEncoder())
    leftover = data / "vectors.faiss.abc123.tmp"
    leftover.write_bytes(b"half an index")
    run_index(data, [tmp_path / "photos"], IndexOptions(workers=0), encoder=FakeEncoder())
    assert not leftover.exists()

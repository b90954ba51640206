"""The visual space: a second vector per photo for image-to-image search, with its own FAISS file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.check import check_collection
from indexer.core.storage.collection import JOINT, VISUAL, Collection
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from tests.helpers.db import rows
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL


def _index(data: Path, root: Path, encoder: FakeEncoder, **kw) -> IndexSummary:  # type: ignore[no-untyped-def]
    return run_index(data, [root], IndexOptions(workers=0, batch_size=4, **kw), encoder=encoder)


def _photos(tmp_path: Path, n: int = 6) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    return root


def _visual_blobs(data: Path) -> dict[str, bytes | None]:
    return {
        Path(p).name: (None if v is None else bytes(v))
        for p, v in rows(data, "SELECT path, visual FROM photos")
    }


def test_a_model_with_visual_vectors_stores_them_in_their_own_checked_index(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root, FakeEncoder(visual_dim=5))
    blobs = _visual_blobs(data)
    assert len(blobs) == 6 and all(b is not None and len(b) == 5 * 4 for b in blobs.values())
    with Collection.open(data) as c:
        assert c.spaces() == (JOINT, VISUAL)
        assert c.paths.visual_index.is_file()
        visual = c.read_index_file(VISUAL)
        assert (visual.ntotal, visual.dim) == (6, 5)
        _, vectors = c.indexed_vectors(visual.ids().tolist(), space=VISUAL)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        report = check_collection(c)
    assert report.ok, report.problems
    assert (report.visual_dim, report.n_visual) == (5, 6)


def test_a_model_without_visual_vectors_keeps_the_joint_space_only(tmp_path: Path) -> None:
    root, data = _photos(tmp_path, 3), tmp_path / "data"
    _index(data, root, FakeEncoder())
    assert set(_visual_blobs(data).values()) == {None}
    with Collection.open(data) as c:
        assert c.spaces() == (JOINT,) and c.similarity_space() is JOINT
        assert not c.paths.visual_index.exists()
        assert check_collection(c).ok


def test_an_older_collection_gets_visual_vectors_on_the_next_run(tmp_path: Path) -> None:
    root, data = _photos(tmp_path, 4), tmp_path / "data"
    _index(data, root, FakeEncoder())  # as indexed by a release without visual vectors
    summary = _index(data, root, FakeEncoder(visual_dim=5))
    assert (summary.updated, summary.unchanged) == (4, 0)  # decoded again: no other way to get them
    assert all(v is not None for v in _visual_blobs(data).values())
    again = _index(data, root, FakeEncoder(visual_dim=5))
    assert (again.updated, again.unchanged) == (0, 4)
    with Collection.open(data) as c:
        report = check_collection(c)
    assert report.ok and report.n_visual == 4


def test_reindexing_with_a_model_without_visual_vectors_drops_them(tmp_path: Path) -> None:
    root, data = _photos(tmp_path, 3), tmp_path / "data"
    _index(data, root, FakeEncoder(visual_dim=5))
    _index(data, root, FakeEncoder(model_id="clip-like", dim=8), reindex=True)
    assert set(_visual_blobs(data).values()) == {None}
    with Collection.open(data) as c:
        assert c.spaces() == (JOINT,)
        assert not c.paths.visual_index.exists()
        assert check_collection(c).ok


def test_changes_reach_the_visual_index_and_check_finds_a_stale_one(tmp_path: Path) -> None:
    root, data = _photos(tmp_path, 4), tmp_path / "data"
    _index(data, root, FakeEncoder(visual_dim=5))
    (root / "p0.jpg").unlink()
    save_jpeg(root / "new.jpg", seed=40)
    stale = (data / "visual.faiss").read_bytes()
    _index(data, root, FakeEncoder(visual_dim=5))
    with Collection.open(data) as c:
        assert c.read_index_file(VISUAL).ntotal == 4
        assert check_collection(c).ok
        (data / "visual.faiss").write_bytes(stale)  # an older file put back
        report = check_collection(c)
    assert not report.ok
    assert any("visual index" in p for p in report.problems), report.problems


def test_check_reports_a_damaged_visual_vector(tmp_path: Path) -> None:
    from sqlalchemy import update

    from indexer.core.storage.schema import Photo

    root, data = _photos(tmp_path, 3), tmp_path / "data"
    _index(data, root, FakeEncoder(visual_dim=5))
    with Collection.open(data) as c:
        with c.session() as s, s.begin():
            s.execute(update(Photo).where(Photo.path.like("%p1.jpg")).values(visual=b"\x00" * 8))
        report = check_collection(c)
    assert any("visual vector" in p for p in report.problems), report.problems


def test_rebuild_index_rebuilds_both_files(tmp_path: Path) -> None:
    from ui.cli import main

    root, data = _photos(tmp_path, 3), tmp_path / "data"
    _index(data, root, FakeEncoder(visual_dim=5))
    (data / "visual.faiss").unlink()
    (data / "vectors.faiss").unlink()
    assert main(["rebuild-index", "--data", str(data)]) == 0
    with Collection.open(data) as c:
        assert check_collection(c).ok
        assert c.read_index_file(VISUAL).ntotal == 3

"""Points 4-9 of the indexer issue on a fast fake encoder: storage, incremental runs, moves, bad files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.check import check_collection
from indexer.core.errors import CollectionError, ModelMismatchError, UsageError
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import PhotoStatus
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from tests.helpers.db import rows
from tests.helpers.decodes import count_decodes
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import (
    Exif,
    save_as,
    save_jpeg,
    write_bomb_png,
    write_random_bytes,
    write_text_as_image,
    write_truncated_jpeg,
    write_zero_bytes,
)

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL


def _index(data: Path, *dirs: Path, encoder: FakeEncoder | None = None, **kw) -> IndexSummary:  # type: ignore[no-untyped-def]
    options = IndexOptions(**{"workers": 0, "batch_size": 4, **kw})
    return run_index(data, list(dirs), options, encoder=encoder or FakeEncoder())


def _photos(tmp_path: Path, n: int = 6) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        save_jpeg(root / f"album{i % 2}" / f"p{i}.jpg", seed=i)
    return root


def _rows(data: Path) -> dict[str, tuple[int, PhotoStatus, bytes | None]]:
    with Collection.open(data) as c, c.session() as s:
        from sqlalchemy import select

        from indexer.core.storage.schema import Photo

        return {
            Path(r.path).name: (r.id, r.status, r.vector)
            for r in s.execute(select(Photo.path, Photo.id, Photo.status, Photo.vector))
        }


def _assert_consistent(data: Path) -> None:
    with Collection.open(data) as c:
        report = check_collection(c)
    assert report.ok, report.lines()


def test_first_run_stores_rows_vectors_and_metadata(tmp_path: Path) -> None:
    root = _photos(tmp_path, 5)
    exif = Exif(taken_at="2020:01:02 03:04:05", make="Nikon", model="D90", gps=(1.5, 2.5))
    save_jpeg(root / "exif.jpg", exif=exif)
    data = tmp_path / "data"
    encoder = FakeEncoder()
    summary = _index(data, root, encoder=encoder)
    assert (summary.indexed, summary.failed, summary.unchanged) == (6, 0, 0)
    assert encoder.batches == [4, 2]  # embedded in batches of --batch-size
    with Collection.open(data) as c:
        info = c.info()
        assert (info.n_indexed, info.model_id, info.dim) == (6, "fake-encoder-v1", 8)
        assert info.roots == (root.resolve(),) and info.last_indexed_at is not None
        photo = c.photo_by_path(root.resolve() / "exif.jpg")
        assert photo is not None and photo.status == PhotoStatus.INDEXED
        assert (photo.width, photo.height, photo.camera_make, photo.camera_model) == (64, 48, "Nikon", "D90")
        assert photo.taken_at is not None and photo.taken_at.year == 2020
        assert photo.gps_lat == pytest.approx(1.5) and photo.file_type == "jpg" and photo.content_hash
        vectors = c.vectors([photo.id])
        assert vectors.dtype == np.float32 and np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
        index = c.load_index()
        assert index.ntotal == 6
        hit = index.search(vectors, 1)
        assert hit.ids[0, 0] == photo.id and hit.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    _assert_consistent(data)


def test_unchanged_files_are_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    opened = count_decodes(monkeypatch)
    encoder = FakeEncoder()
    summary = _index(data, root, encoder=encoder)
    assert opened == [] and encoder.n_embedded == 0
    assert (summary.unchanged, summary.indexed, summary.updated, summary.removed) == (6, 0, 0, 0)


def test_changed_file_is_re_embedded_and_its_old_vector_replaced(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    before = _rows(data)["p2.jpg"]
    save_jpeg(root / "album0" / "p2.jpg", seed=99)
    opened = count_decodes(monkeypatch)
    encoder = FakeEncoder()
    summary = _index(data, root, encoder=encoder)
    after = _rows(data)["p2.jpg"]
    assert opened == ["p2.jpg"] and encoder.n_embedded == 1
    assert (summary.updated, summary.unchanged) == (1, 5)
    assert after[0] == before[0] and after[2] != before[2]
    _assert_consistent(data)


def test_touched_file_with_same_content_keeps_its_vector(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    before = _rows(data)["p1.jpg"]
    os.utime(root / "album1" / "p1.jpg", ns=(1, 1_000_000_000))
    encoder = FakeEncoder()
    summary = _index(data, root, encoder=encoder)
    assert encoder.n_embedded == 0 and summary.reused == 1
    assert _rows(data)["p1.jpg"] == before
    assert _index(data, root).unchanged == 6  # the new mtime was recorded


def test_deleted_files_leave_database_and_index(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    (root / "album0" / "p0.jpg").unlink()
    shutil.rmtree(root / "album1")
    summary = _index(data, root)  # a whole folder gone at once is kept (a disk unmounted?) ...
    assert (summary.removed, summary.kept_unreachable) == (1, 3)
    assert summary.unreachable_folders == (str(root / "album1"),)
    summary = _index(data, root, prune=True)  # ... until --prune confirms it
    assert summary.removed == 3 and set(_rows(data)) == {"p2.jpg", "p4.jpg"}
    with Collection.open(data) as c:
        assert c.load_index().ntotal == 2
    _assert_consistent(data)


def test_moved_file_keeps_its_row_and_vector_without_embedding(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    before = _rows(data)["p3.jpg"]
    (root / "moved" / "deeper").mkdir(parents=True)
    os.rename(root / "album1" / "p3.jpg", root / "moved" / "deeper" / "renamed.jpg")
    encoder = FakeEncoder()
    summary = _index(data, root, encoder=encoder)
    rows = _rows(data)
    assert encoder.n_embedded == 0
    assert (summary.moved, summary.removed, summary.indexed) == (1, 0, 0)
    assert "p3.jpg" not in rows and rows["renamed.jpg"] == before  # same id, same vector
    _assert_consistent(data)


def test_duplicate_of_an_indexed_photo_reuses_its_vector(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    shutil.copy(root / "album0" / "p0.jpg", root / "copy-of-p0.jpg")
    encoder = FakeEncoder()
    summary = _index(data, root, encoder=encoder)
    rows = _rows(data)
    assert encoder.n_embedded == 0 and summary.reused == 1 and summary.moved == 0
    assert rows["copy-of-p0.jpg"][2] == rows["p0.jpg"][2] and rows["copy-of-p0.jpg"][0] != rows["p0.jpg"][0]
    _assert_consistent(data)


def test_folder_mixing_good_photos_and_broken_files(tmp_path: Path) -> None:
    root = _photos(tmp_path, 4)
    for ext, fmt in [("png", "PNG"), ("webp", "WEBP"), ("gif", "GIF"), ("bmp", "BMP"), ("tiff", "TIFF")]:
        save_as(root / "formats" / f"ok.{ext}", fmt, seed=len(ext))
    write_truncated_jpeg(root / "bad" / "truncated.jpg")
    write_zero_bytes(root / "bad" / "empty.jpg")
    write_random_bytes(root / "bad" / "noise.jpg")
    write_text_as_image(root / "bad" / "text.png")
    write_bomb_png(root / "bad" / "bomb.png")
    data = tmp_path / "data"
    summary = run_index(data, [root], IndexOptions(workers=2, batch_size=3), encoder=FakeEncoder())
    assert (summary.indexed, summary.failed) == (9, 5)
    rows = _rows(data)
    assert all(rows[n][1] == PhotoStatus.ERROR and rows[n][2] is None for n in ("truncated.jpg", "bomb.png"))
    with Collection.open(data) as c:
        assert (c.info().n_indexed, c.info().n_failed) == (9, 5)
    _assert_consistent(data)
    # a fixed file is picked up on the next run; the rest are retried and fail again
    save_jpeg(root / "bad" / "truncated.jpg", seed=50)
    again = _index(data, root)
    assert (again.updated, again.failed, again.unchanged) == (1, 4, 9)


def test_indexed_photo_that_becomes_broken_leaves_the_index(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    write_truncated_jpeg(root / "album0" / "p4.jpg")
    summary = _index(data, root)
    assert summary.failed == 1 and _rows(data)["p4.jpg"][1] == PhotoStatus.ERROR
    with Collection.open(data) as c:
        assert c.load_index().ntotal == 5
    _assert_consistent(data)


def test_several_roots_in_one_collection_are_swept_separately(tmp_path: Path) -> None:
    one, two, data = tmp_path / "one", tmp_path / "two", tmp_path / "data"
    save_jpeg(one / "a.jpg", seed=1)
    save_jpeg(two / "b.jpg", seed=2)
    _index(data, one, two)
    summary = _index(data, one)  # indexing one root never deletes the other's rows
    assert summary.removed == 0 and set(_rows(data)) == {"a.jpg", "b.jpg"}
    save_jpeg(two / "c.jpg", seed=3)
    (two / "b.jpg").unlink()
    assert _index(data).removed == 1  # no DIR: the collection's roots
    assert set(_rows(data)) == {"a.jpg", "c.jpg"}
    with Collection.open(data) as c:
        assert c.roots() == [one.resolve(), two.resolve()]


def test_a_different_model_is_refused_and_reindex_replaces_every_vector(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    other = FakeEncoder(model_id="another-model", dim=12, seed=5)
    with pytest.raises(ModelMismatchError, match="--reindex"):
        _index(data, root, encoder=other)
    summary = _index(data, root, encoder=other, reindex=True)
    assert summary.updated == 6 and other.n_embedded == 6
    with Collection.open(data) as c:
        assert (c.info().model_id, c.info().dim) == ("another-model", 12)
        assert c.load_index().dim == 12
    _assert_consistent(data)


def test_interrupted_reindex_never_mixes_models_and_resumes(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)

    class Exploding(FakeEncoder):
        def embed_pixels(self, pixel_values):  # type: ignore[no-untyped-def]
            if self.batches:
                raise KeyboardInterrupt
            return super().embed_pixels(pixel_values)

    with pytest.raises(KeyboardInterrupt):
        _index(data, root, encoder=Exploding(model_id="new-model", dim=12), reindex=True, batch_size=2)
    with Collection.open(data) as c:
        info = c.info()  # the old model's vectors all still served, none of the new model's
        assert (info.model_id, info.n_indexed, info.n_pending) == ("fake-encoder-v1", 6, 0)
        assert c.load_index().dim == 8
    summary = _index(data, root, encoder=FakeEncoder(model_id="new-model", dim=12))
    assert (summary.updated, summary.unchanged) == (4, 2)
    with Collection.open(data) as c:
        assert (c.info().model_id, c.info().n_indexed) == ("new-model", 6)
        assert c.load_index().dim == 12
    _assert_consistent(data)


HOLD_LOCK = """
import sys
from pathlib import Path
from indexer.core.settings import CollectionPaths
from indexer.core.storage.locks import collection_lock
with collection_lock(CollectionPaths(Path(sys.argv[1]))):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_second_indexer_on_the_same_collection_is_refused(tmp_path: Path) -> None:
    root, data = _photos(tmp_path, 1), tmp_path / "data"
    _index(data, root)
    repo = Path(__file__).resolve().parents[1]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(data)], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        with pytest.raises(CollectionError, match="another dualens indexer"):
            _index(data, root)
    finally:
        holder.communicate(b"", timeout=30)
    assert _index(data, root).unchanged == 1  # free again once the other indexer is gone


def test_index_is_rebuilt_when_the_file_is_missing_stale_or_damaged(tmp_path: Path) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root)
    with Collection.open(data) as c:
        c.paths.vector_index.unlink()
        assert c.load_index().ntotal == 6  # missing: rebuilt in memory
        assert not check_collection(c).ok
        c.rebuild_index()
        assert check_collection(c).ok
        raw = bytearray(c.paths.vector_index.read_bytes())
        raw[-10] ^= 0xFF
        c.paths.vector_index.write_bytes(bytes(raw))
        with pytest.raises(CollectionError, match="damaged"):
            c.load_index()
        assert not check_collection(c).ok
    assert _index(data, root).unchanged == 6  # the next run repairs it
    _assert_consistent(data)


def test_a_root_that_comes_back_empty_keeps_its_photos_unless_pruned(tmp_path: Path) -> None:
    one, two, data = tmp_path / "one", tmp_path / "two", tmp_path / "data"
    save_jpeg(one / "a.jpg", seed=1)
    for i in range(3):
        save_jpeg(two / f"b{i}.jpg", seed=10 + i)
    _index(data, one, two)
    for photo in two.iterdir():  # as if the disk behind `two` were not mounted
        photo.unlink()
    kept = _index(data)
    assert (kept.removed, kept.kept_unreachable) == (0, 3)
    assert kept.unreachable_folders == (str(two.resolve()),) and "--prune" in kept.warnings()[0]
    assert len(_rows(data)) == 4
    two.rmdir()  # the mount point itself gone: still kept
    assert _index(data).kept_unreachable == 3 and len(_rows(data)) == 4
    pruned = _index(data, prune=True)
    assert (pruned.removed, pruned.kept_unreachable) == (3, 0) and set(_rows(data)) == {"a.jpg"}
    _assert_consistent(data)


def test_the_data_folder_inside_an_indexed_folder_is_never_indexed(tmp_path: Path) -> None:
    root = _photos(tmp_path)
    data = root / ".." / "photos" / "dualens-data"  # inside the indexed folder
    first = _index(data, root)
    (data / "thumbnails" / "00").mkdir(parents=True)
    save_jpeg(data / "thumbnails" / "00" / "1-1-1-320s.jpg", seed=99)  # what the UI caches there
    again = _index(data, root)
    assert (first.indexed, again.indexed, again.unchanged) == (6, 0, 6)
    assert len(_rows(data)) == 6 and "1-1-1-320s.jpg" not in _rows(data)


def test_index_without_a_folder_into_a_new_data_folder_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "new"
    with pytest.raises((UsageError, CollectionError), match=r"give at least one folder|no collection in"):
        _index(data)
    assert not (data / "dualens.sqlite").exists()
    assert rows(data, "SELECT COUNT(*) FROM photos") == []  # nor a schema in a database server


def test_jpeg_2000_and_netpbm_photos_are_indexed(tmp_path: Path) -> None:
    from PIL import Image

    from tests.helpers.images import pattern

    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    base = pattern((48, 40), seed=3)
    base.save(root / "a.jp2", "JPEG2000")
    base.save(root / "b.ppm")
    base.convert("L").save(root / "c.pgm")
    base.convert("1").save(root / "d.pbm")
    pattern((48, 40), seed=4).save(root / "e.pnm", "PPM")  # other content: not a duplicate of b.ppm
    summary = _index(data, root)
    assert (summary.indexed, summary.failed) == (5, 0)
    types = {name: status for name, (_id, status, _v) in _rows(data).items()}
    assert set(types) == {"a.jp2", "b.ppm", "c.pgm", "d.pbm", "e.pnm"}
    assert Image.open(root / "a.jp2").format == "JPEG2000"


def test_heic_avif_and_first_frames_of_animations_are_indexed_by_default(tmp_path: Path) -> None:
    import pillow_heif
    from PIL import Image

    from tests.helpers.images import pattern
    from ui.thumbnails import ThumbSpec, render

    pillow_heif.register_heif_opener()
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    pattern((64, 48), seed=5).save(root / "iphone.heic", format="HEIF")
    pattern((64, 48), seed=6).save(root / "modern.avif", format="AVIF")
    red, blue = Image.new("RGB", (40, 30), (220, 20, 20)), Image.new("RGB", (40, 30), (20, 20, 220))
    red.save(root / "anim.webp", save_all=True, append_images=[blue], duration=100, loop=0)
    red.save(root / "pages.tiff", save_all=True, append_images=[blue])
    summary = _index(data, root)
    assert (summary.indexed, summary.failed) == (4, 0)
    for name in ("anim.webp", "pages.tiff"):  # the first frame, not a later one
        r, _g, b = render(root / name, ThumbSpec(40, square=False)).resize((1, 1)).getpixel((0, 0))
        assert r > 150 and b < 100
    assert render(root / "iphone.heic", ThumbSpec(32, square=True)).size == (32, 32)

"""#27 item 7: while `dualens index --reindex` re-embeds a collection with a new model, searches keep
the old model's vectors and text tower (full pages, `similar` works); the new model is served, at
once and whole, when every photo has its new vector. An interrupted re-index resumes, and an old-model
run in between is refused rather than mixing models.

The re-index is SIGKILLed from outside after a few committed batches (tests/helpers/slow_commits.py
pauses the child after each commit), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from indexer.check import check_collection
from indexer.core.models import DualEncoder
from indexer.core.storage.collection import Collection
from indexer.core.storage.indexes import VectorIndexes
from indexer.core.storage.schema import Photo
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from search.query import parse_query
from search.searcher import Searcher
from tests.helpers import slow_commits
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.faults import CliForkServer, index_in_process, make_photos
from tests.helpers.images import pattern, save_jpeg
from tests.helpers.tiny_models import make_tiny_dual_encoder

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

N_PHOTOS = 16
QUERY = "a red car"
_PAUSE = slow_commits.hook(0.4)  # after each committed batch of 2: the kill lands mid re-index


@pytest.fixture(scope="module")
def model_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model of another family (CLIP), its vectors incomparable with model A's."""
    return make_tiny_dual_encoder(tmp_path_factory.mktemp("tiny-clip"), "clip", seed=5)


@dataclass(frozen=True)
class Served:
    """What a searcher serves: a full page for a text query, and `similar` for one photo."""

    model_id: str
    search: list[tuple[int, float]]
    similar: list[int]


def _served(data: Path, photo_id: int) -> Served:
    with Searcher.open(data) as searcher:
        hits = searcher.search(QUERY, k=N_PHOTOS + 5)
        similar = searcher.similar(photo_id, k=N_PHOTOS)
        return Served(searcher.encoder.model_id, [(h.id, h.cosine) for h in hits], [h.id for h in similar])


def _staged(data: Path) -> int:
    with Collection.open(data) as c, c.session() as s:
        return int(s.scalar(select(func.count()).where(Photo.next_vector.is_not(None))) or 0)


def _argv(data: Path, *extra: str) -> list[str]:
    return ["index", "--data", str(data), "--workers", "0", "--threads", "1", "--no-progress", *extra]


def _kill_mid_reindex(cli: CliForkServer, data: Path, model: Path) -> int:
    """Start `index --reindex --model MODEL`, SIGKILL it once a few batches are staged; returns how many."""
    pid, log = cli.start(_argv(data, "--reindex", "--model", str(model), "--batch-size", "2"), pre=_PAUSE)
    deadline = time.monotonic() + 120
    while _staged(data) < 4:
        if time.monotonic() > deadline:
            pytest.fail("the re-index staged no batch in 120 s")
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    assert cli.wait(pid) == -9, log.read_text(errors="replace")  # killed mid-run, not finished
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    staged = _staged(data)
    assert 4 <= staged < N_PHOTOS + 1
    return staged


def _interrupted_reindex(cli: CliForkServer, tmp_path: Path, model_a: Path, model_b: Path):  # type: ignore[no-untyped-def]
    """A collection indexed with A, then a new photo added and a re-index with B killed halfway.
    Returns the data folder, what was served before the re-index, and the rows staged."""
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, N_PHOTOS, seed=3)
    index_in_process(data, [photos], model_a)
    with Collection.open(data) as c, c.session() as s:
        first_id = int(s.scalar(select(func.min(Photo.id))) or 0)
    before = _served(data, first_id)
    assert len(before.search) == N_PHOTOS and len(before.similar) == N_PHOTOS - 1
    save_jpeg(photos / "new" / "late.jpg", pattern((40, 30), seed=999))  # found by the re-index itself
    staged = _kill_mid_reindex(cli, data, model_b)
    return data, before, first_id, staged


def _assert_same_results(got: Served, want: Served) -> None:
    assert got.model_id == want.model_id
    assert [i for i, _ in got.search] == [i for i, _ in want.search]
    np.testing.assert_allclose([c for _, c in got.search], [c for _, c in want.search], atol=1e-5)
    assert got.similar == want.similar


def _counts(output: str) -> tuple[int, int, int]:
    found = re.search(r"indexed (\d+), unchanged (\d+), updated (\d+)", output)
    assert found, output
    return int(found[1]), int(found[2]), int(found[3])


def test_an_interrupted_reindex_keeps_serving_the_old_model_and_resumes_to_the_new_one(
    cli: CliForkServer, tiny_model_dir: Path, model_b: Path, tmp_path: Path
) -> None:
    data, before, first_id, staged = _interrupted_reindex(cli, tmp_path, tiny_model_dir, model_b)

    # halfway: full pages, ranked by model A exactly as before; `similar` works; the new photo waits
    _assert_same_results(_served(data, first_id), before)
    with Collection.open(data) as c:
        assert c.info().model_id == before.model_id and c.info().n_indexed == N_PHOTOS

    with Searcher.open(data) as open_searcher:  # what a UI or API server holds through the re-index
        resumed = cli.run(_argv(data, "--reindex", "--model", str(model_b)))
        assert resumed.rc == 0, resumed.output
        indexed, unchanged, updated = _counts(resumed.output)
        assert unchanged == staged and indexed + updated == N_PHOTOS + 1 - staged  # only the rest embedded

        # done: model B everywhere at once (the open searcher switches its text tower with the index)
        assert open_searcher.reload_if_stale()
        assert open_searcher.encoder.model_id == str(model_b.resolve())
        want_query = DualEncoder(model_b).embed_texts([QUERY])[0]
        np.testing.assert_allclose(open_searcher.embed_query(parse_query(QUERY)), want_query, atol=1e-5)
        hits = open_searcher.search(QUERY, k=N_PHOTOS + 5)
    assert len(hits) == N_PHOTOS + 1  # every photo, the one found during the re-index included
    with Collection.open(data) as c:
        ids, vectors = c.rows.indexed_vectors([h.id for h in hits])
        assert c.info().model_id == str(model_b.resolve()) and vectors.shape[1] == want_query.shape[0]
        assert _staged(data) == 0
    order = np.argsort(-(vectors @ want_query), kind="stable")  # ranked by model B's vectors
    assert [h.id for h in hits] == ids[order].tolist()
    np.testing.assert_allclose([h.cosine for h in hits], (vectors @ want_query)[order], atol=1e-4)
    after = _served(data, first_id)
    assert after.model_id == str(model_b.resolve()) and len(after.similar) == N_PHOTOS
    assert cli.run(["check", "--data", str(data)]).rc == 0


def test_after_an_interrupted_reindex_the_old_model_is_refused_and_a_plain_index_finishes_it(
    cli: CliForkServer, tiny_model_dir: Path, model_b: Path, tmp_path: Path
) -> None:
    data, before, first_id, staged = _interrupted_reindex(cli, tmp_path, tiny_model_dir, model_b)

    old = cli.run(_argv(data, "--model", str(tiny_model_dir)))
    errors = [line for line in old.output.splitlines() if line.strip()]
    assert old.rc == 1 and len(errors) == 1 and "re-index" in errors[0] and "unfinished" in errors[0]
    assert _staged(data) == staged  # nothing changed: the staged vectors wait, model A still served
    _assert_same_results(_served(data, first_id), before)

    plain = cli.run(_argv(data))  # no --model, no --reindex: the pending re-index goes on with B
    assert plain.rc == 0, plain.output
    assert f"model {model_b.resolve()}" in plain.output
    assert _counts(plain.output)[1] == staged
    with Collection.open(data) as c:
        info = c.info()
        assert (info.model_id, info.n_indexed, info.n_pending) == (str(model_b.resolve()), N_PHOTOS + 1, 0)
    assert cli.run(["check", "--data", str(data)]).rc == 0
    assert len(_served(data, first_id).search) == N_PHOTOS + 1


# ---------------------------------------------------------------- the rules, in process (fake encoders)
class _StopsAfterOneBatch(FakeEncoder):
    """A model whose second batch never comes (the run is interrupted there)."""

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        if self.batches:
            raise KeyboardInterrupt
        return super().embed_pixels(pixel_values)


def _fake_index(data: Path, root: Path, encoder: FakeEncoder, **kw) -> IndexSummary:  # type: ignore[no-untyped-def]
    return run_index(data, [root], IndexOptions(**{"workers": 0, "batch_size": 2, **kw}), encoder=encoder)


def _fake_collection(tmp_path: Path) -> tuple[Path, Path]:
    root, data = tmp_path / "photos", tmp_path / "data"
    for i in range(6):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    _fake_index(data, root, FakeEncoder())
    with pytest.raises(KeyboardInterrupt):
        _fake_index(data, root, _StopsAfterOneBatch(model_id="model-b", dim=12), reindex=True)
    assert _staged(data) == 2
    return root, data


def _assert_served(data: Path, model_id: str, dim: int, n: int) -> None:
    with Collection.open(data) as c:
        info = c.info()
        assert (info.model_id, info.dim, info.n_indexed, info.n_pending) == (model_id, dim, n, 0)
        assert c.load_index().dim == dim and c.load_index().ntotal == n
        assert check_collection(c).ok


def test_a_reindex_with_a_third_model_discards_the_pending_one_and_serves_only_its_own(
    tmp_path: Path,
) -> None:
    root, data = _fake_collection(tmp_path)
    summary = _fake_index(data, root, FakeEncoder(model_id="model-c", dim=10), reindex=True)
    assert (summary.updated, summary.unchanged) == (6, 0)  # model B's staged vectors are not model C's
    _assert_served(data, "model-c", 10, 6)
    assert _staged(data) == 0


def test_a_photo_changed_during_a_pending_reindex_is_served_with_its_new_content_only(
    tmp_path: Path,
) -> None:
    root, data = _fake_collection(tmp_path)
    with Collection.open(data) as c, c.session() as s:
        path, old_next = s.execute(
            select(Photo.path, Photo.next_vector).where(Photo.next_vector.is_not(None)).limit(1)
        ).one()
    save_jpeg(Path(path), seed=77)  # new content for a photo whose model-B vector was staged
    os.utime(path, ns=(1, 1))
    summary = _fake_index(data, root, FakeEncoder(model_id="model-b", dim=12))
    assert (summary.updated, summary.unchanged) == (5, 1)  # the changed photo is embedded again
    _assert_served(data, "model-b", 12, 6)
    with Collection.open(data) as c:
        photo = c.rows.photo_by_path(path)
        assert photo is not None
        served = c.rows.vectors([photo.id])[0]
    assert not np.allclose(served, np.frombuffer(old_next, np.float32))  # not the old content's vector


def test_an_idle_searcher_never_pairs_the_old_models_index_file_with_the_new_text_tower(
    tiny_model_dir: Path, model_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, 6, seed=4)
    index_in_process(data, [photos], tiny_model_dir)
    with Searcher.open(data) as idle:  # a UI nobody used since: it has not loaded the next file
        model_a = idle.encoder.model_id
        save_jpeg(photos / "late.jpg", pattern((40, 30), seed=998))
        index_in_process(data, [photos], tiny_model_dir)  # saves model A's file of 7 photos

        def killed_before_the_rebuilt_file(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:  # the re-index dies after its switch committed
            patch.setattr(VectorIndexes, "update", killed_before_the_rebuilt_file)
            with pytest.raises(KeyboardInterrupt):
                index_in_process(data, [photos], model_b, reindex=True)
        with Collection.open(data) as c:
            assert c.info().model_id == str(model_b.resolve())  # switched; A's file still on disk

        assert not idle.reload_if_stale()  # A's newer file is not paired with model B's text tower
        assert idle.encoder.model_id == model_a and len(idle.search(QUERY, k=10)) == 6
        with Searcher.open(data) as fresh:  # the stale file is rebuilt in memory: model B throughout
            assert fresh.encoder.model_id == str(model_b.resolve())
            assert len(fresh.search(QUERY, k=10)) == 7
        index_in_process(data, [photos], model_b)  # the next run saves model B's file
        assert idle.reload_if_stale() and idle.encoder.model_id == str(model_b.resolve())
        assert len(idle.search(QUERY, k=10)) == 7

"""IVF-PQ with exact re-ranking, built in RAM or merged on disk, with a delta index and tombstones
(seeded clustered synthetic vectors; approximate results checked against exact search)."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from indexer.core.errors import CollectionError, UsageError
from indexer.core.storage.compressed import (
    CompressedIndex,
    IndexPlan,
    build_compressed,
    calibration_nprobe,
    parse_size,
    plan_index,
    regroup,
)
from indexer.core.storage.vector_index import IndexKind, RunningTopK, VectorIndex, recall_at_k
from tests.helpers.synthetic_vectors import Mixture, exact_topk

DIM, N = 64, 12_000
PLAN = IndexPlan("ivfpq", nlist=64, pq_bytes=16)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mixture = Mixture.make(dim=DIM, n_clusters=60, seed=4)
    x = mixture.sample(N, seed=5)
    ids = np.arange(N, dtype=np.int64) * 3 + 11  # ids are database keys, not positions
    return ids, x, mixture.queries(60, seed=6)


def _source(ids: np.ndarray, x: np.ndarray):  # type: ignore[no-untyped-def]
    position = {int(i): n for n, i in enumerate(ids)}

    def lookup(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = np.array([i for i in wanted if int(i) in position], dtype=np.int64)
        return found, x[[position[int(i)] for i in found]]

    return lookup


@pytest.fixture(scope="module")
def in_ram(data) -> CompressedIndex:  # type: ignore[no-untyped-def]
    ids, x, _ = data
    index = build_compressed(ids, x, PLAN, generation=1)
    index.rerank_source = _source(ids, x)
    return index


def test_plan_follows_size_and_memory_budget() -> None:
    assert plan_index(10_000, 384).kind == "flat"
    assert plan_index(1_000_000, 384, budget=parse_size("8G")).kind == "ivf"
    big = plan_index(100_000_000, 384, budget=parse_size("16G"))
    assert (big.kind, big.pq_bytes, big.on_disk) == ("ivfpq", 96, True)
    assert 100_000_000 * (big.pq_bytes + 8) <= 0.15 * 100_000_000 * 384 * 4  # <= 15 % of the floats
    assert plan_index(100_000_000, 384, budget=parse_size("3G")).pq_bytes == 16
    with pytest.raises(UsageError, match="raise --memory-budget"):
        plan_index(100_000_000, 384, budget=parse_size("1G"))
    with pytest.raises(UsageError, match="not a size"):
        parse_size("lots")
    assert plan_index(60_000, 384, "ivfpq").kind == "ivfpq"


def test_re_ranked_ivfpq_recall_at_10_reaches_the_target_with_exact_scores(data, in_ram) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    truth_ids, truth_scores = exact_topk(x, ids, queries, 10)
    found = in_ram.search(queries, 10)
    assert recall_at_k(found.ids, truth_ids, 10) >= 0.95
    hit = found.ids[:, 0] == truth_ids[:, 0]
    assert np.allclose(found.scores[hit, 0], truth_scores[hit, 0], atol=1e-5)  # exact cosines
    assert in_ram.describe().kind is IndexKind.IVFPQ and in_ram.memory_bytes() < N * DIM * 4 * 0.5


def test_without_re_ranking_recall_is_lower(data, in_ram) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    truth_ids, _ = exact_topk(x, ids, queries, 10)
    source, in_ram.rerank_source = in_ram.rerank_source, None
    try:
        plain = recall_at_k(in_ram.search(queries, 10).ids, truth_ids, 10)
    finally:
        in_ram.rerank_source = source
    assert plain < recall_at_k(in_ram.search(queries, 10).ids, truth_ids, 10)


def test_on_disk_merged_build_equals_the_in_ram_build(data, in_ram, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    on_disk = build_compressed(
        ids, x, IndexPlan("ivfpq", 64, 16, on_disk=True), 1, directory=tmp_path, shard=3000
    )
    on_disk.rerank_source = _source(ids, x)
    assert on_disk.ivfdata is not None and on_disk.ivfdata.stat().st_size > 0
    assert sorted(on_disk.ids()) == sorted(in_ram.ids())
    a, b = on_disk.search(queries, 10), in_ram.search(queries, 10)
    assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores)

    on_disk.save(tmp_path / "vectors.faiss")
    loaded = VectorIndex.load(tmp_path / "vectors.faiss")
    assert isinstance(loaded, CompressedIndex) and loaded.describe().on_disk
    loaded.rerank_source = _source(ids, x)
    assert np.array_equal(loaded.search(queries, 10).ids, a.ids)
    assert len(list(tmp_path.glob("*.ivfdata"))) == 1


def test_an_on_disk_index_still_opens_after_its_folder_moved(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    before = tmp_path / "before"
    before.mkdir()
    built = build_compressed(ids, x, IndexPlan("ivfpq", 64, 16, on_disk=True), 1, directory=before)
    built.save(before / "vectors.faiss")
    expected = built.search(queries, 10).ids
    del built
    moved = before.rename(tmp_path / "after")
    loaded = VectorIndex.load(moved / "vectors.faiss")
    assert isinstance(loaded, CompressedIndex) and loaded.ivfdata is not None
    assert loaded.ivfdata.parent == moved
    assert np.array_equal(loaded.search(queries, 10).ids, expected)


def test_delta_and_tombstones_answer_as_a_full_rebuild(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    cut = int(N * 0.9)
    index = build_compressed(ids[:cut], x[:cut], PLAN, 1)
    index.add(ids[cut:], x[cut:])
    gone = ids[::50]
    assert index.remove(gone) == len(gone)
    keep = ~np.isin(ids, gone)
    index.rerank_source = full_source = _source(ids, x)
    full = build_compressed(ids[keep], x[keep], PLAN, 1)
    full.rerank_source = full_source
    assert index.ntotal == int(keep.sum()) and sorted(index.ids()) == sorted(ids[keep])
    a, b = index.search(queries, 10, exact=True), full.search(queries, 10, exact=True)
    assert np.array_equal(a.ids, b.ids)
    truth, _ = exact_topk(x[keep], ids[keep], queries, 10)
    assert np.array_equal(a.ids, truth)
    assert recall_at_k(index.search(queries, 10).ids, truth, 10) >= 0.95
    index.save(tmp_path / "v.faiss")
    again = VectorIndex.load(tmp_path / "v.faiss")
    assert again.ntotal == index.ntotal and not np.isin(gone, again.ids()).any()
    assert index.needs_rebuild() is False
    index.add(np.arange(10**6, 10**6 + N // 4), x[: N // 4])
    assert index.needs_rebuild() is True


def test_filtered_search_equals_exact_filtered_search(data, in_ram) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    allowed = ids[np.random.default_rng(7).random(N) < 0.1]
    got = in_ram.search(queries, 10, allowed_ids=allowed)
    mask = np.isin(ids, allowed)
    truth, _ = exact_topk(x[mask], ids[mask], queries, 10)
    assert np.isin(got.ids[got.ids >= 0], allowed).all()
    assert recall_at_k(got.ids, truth, 10) >= 0.95


def test_a_truncated_list_file_is_reported_as_damaged(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, x, _ = data
    index = build_compressed(ids, x, IndexPlan("ivfpq", 64, 16, on_disk=True), 1, directory=tmp_path)
    index.save(tmp_path / "vectors.faiss")
    assert index.ivfdata is not None
    ivfdata = index.ivfdata
    # Release the build's mapping first: FAISS's prefetch threads may still be reading the lists of
    # the last calibration search, and a page cut from under a live mapping is a SIGBUS.
    del index
    gc.collect()
    with ivfdata.open("r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CollectionError, match=r"damaged .*missing or truncated.*rebuild-index"):
        VectorIndex.load(tmp_path / "vectors.faiss")


def test_a_collection_rebuilt_as_ivfpq_searches_like_exact_and_says_so(
    tmp_path: Path,
    data,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The build streams the database in pages (never all vectors at once) and equals an in-RAM build."""
    from indexer.core.storage import indexes as indexes_module
    from indexer.core.storage.collection import Collection
    from tests.helpers.search_collection import FakePhoto, make_collection
    from ui.cli import main

    _, x, queries = data
    photos = [FakePhoto(f"d{i % 7}/{i}.jpg", x[i]) for i in range(N)]
    ids = np.array(make_collection(tmp_path / "data", tmp_path / "p", photos, model_id="m", save_index=False))
    pages: list[int] = []
    paged = indexes_module.indexed_vector_chunks

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        for chunk in paged(*args, **kwargs):
            pages.append(len(chunk[0]))
            yield chunk

    def whole(*_: object) -> None:
        raise AssertionError("an IVF-PQ build read every vector at once")

    monkeypatch.setattr(indexes_module, "STREAM_CHUNK", 1000)
    monkeypatch.setattr(indexes_module, "indexed_vector_chunks", counted)
    monkeypatch.setattr(indexes_module, "read_indexed_vectors", whole)
    assert main(["rebuild-index", "--data", str(tmp_path / "data"), "--index", "ivfpq"]) == 0
    assert "IndexIVFPQ" in capsys.readouterr().out
    assert max(pages) == 1000 and sum(pages) == 2 * N  # two passes: the sample, then the shards
    monkeypatch.undo()
    with Collection.open(tmp_path / "data") as c:
        index = c.load_index()
        assert isinstance(index, CompressedIndex) and index.rerank_source is not None
        in_ram = build_compressed(ids, x, index.plan, 0)
        in_ram.rerank_source = index.rerank_source
        assert np.array_equal(in_ram.search(queries, 10).ids, index.search(queries, 10).ids)
        truth, scores = exact_topk(x, ids, queries, 10)
        got = index.search(queries, 10)
        assert recall_at_k(got.ids, truth, 10) >= 0.95
        assert np.allclose(
            got.scores[:, 0][got.ids[:, 0] == truth[:, 0]],
            scores[:, 0][got.ids[:, 0] == truth[:, 0]],
            atol=1e-5,
        )
    assert main(["check", "--data", str(tmp_path / "data")]) == 0
    assert (
        main(["rebuild-index", "--data", str(tmp_path / "data"), "--index", "ivfpq", "--memory-budget", "1K"])
        == 2
    )
    assert "need at least 1 MiB" in capsys.readouterr().err  # refused, and not remembered:

    from indexer.core.storage import compressed

    monkeypatch.setattr(compressed, "ONDISK_MIN_VECTORS", 1000)  # lists merged on disk, as from 1M
    assert main(["rebuild-index", "--data", str(tmp_path / "data")]) == 0
    assert main(["check", "--data", str(tmp_path / "data")]) == 0
    (lists,) = (tmp_path / "data").glob("*.ivfdata")
    with lists.open("r+b") as fh:
        fh.seek(lists.stat().st_size // 3)
        fh.write(b"\x00\x01\x02\x03")
    capsys.readouterr()
    assert main(["check", "--data", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "list file" in out and "checksum differs" in out and "rebuild-index" in out


def test_regrouped_chunks_and_the_running_top_k_equal_their_whole_array_versions(data) -> None:  # type: ignore[no-untyped-def]
    ids, x, queries = data
    pieces = [(ids[a:b], x[a:b]) for a, b in [(0, 5), (5, 4000), (4000, 4001), (4001, N)]]
    regrouped = list(regroup(iter(pieces), 3000))
    assert [len(i) for i, _ in regrouped] == [3000, 3000, 3000, 3000]
    assert np.array_equal(np.concatenate([i for i, _ in regrouped]), ids)
    assert np.array_equal(np.concatenate([v for _, v in regrouped]), x)
    top = RunningTopK(queries, 10)
    for chunk_ids, chunk_x in pieces:
        top.add(chunk_ids, chunk_x)
    assert np.array_equal(top.ids, exact_topk(x, ids, queries, 10)[0])


def test_calibration_waits_until_every_group_of_queries_reaches_the_target() -> None:
    truth = np.arange(200).reshape(20, 10)

    def search(nprobe: int) -> np.ndarray:  # the first ten queries are answered at once, the rest from 8
        found = truth.copy()
        if nprobe < 8:
            found[10:] = -1
        return found

    assert calibration_nprobe(search, truth, 1024, 0.5) == 4  # the mean over all rows reaches 0.5 at once
    assert calibration_nprobe(search, truth, 1024, 0.5, [np.arange(10), np.arange(10, 20)]) == 8


def test_a_damaged_list_file_of_the_right_size_fails_its_checksum(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, x, _ = data
    index = build_compressed(ids, x, IndexPlan("ivfpq", 64, 16, on_disk=True), 1, directory=tmp_path)
    index.save(tmp_path / "vectors.faiss")
    assert index.ivfdata is not None and index.lists_intact()
    ivfdata = index.ivfdata
    del index
    gc.collect()
    assert VectorIndex.load(tmp_path / "vectors.faiss").lists_intact()  # type: ignore[attr-defined]
    with ivfdata.open("r+b") as fh:  # one flipped byte: the size still fits
        fh.seek(ivfdata.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    damaged = VectorIndex.load(tmp_path / "vectors.faiss")
    assert isinstance(damaged, CompressedIndex) and not damaged.lists_intact()


def test_coarse_codes_get_a_deeper_re_rank_that_restores_recall(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With 4-byte codes the PQ order is too rough for 8x candidates: calibration re-ranks more."""
    ids, x, queries = data
    coarse = build_compressed(ids, x, IndexPlan("ivfpq", 64, 4), 1)
    coarse.rerank_source = _source(ids, x)
    assert coarse.rerank_factor > 8
    truth, _ = exact_topk(x, ids, queries, 10)
    assert recall_at_k(coarse.search(queries, 10).ids, truth, 10) >= 0.95
    coarse.rerank_factor = 8
    assert recall_at_k(coarse.search(queries, 10).ids, truth, 10) < 0.95  # what the depth fixed
    coarse.rerank_factor = 32
    coarse.save(tmp_path / "v.faiss")
    assert VectorIndex.load(tmp_path / "v.faiss").rerank_factor == 32  # type: ignore[attr-defined]

"""VectorIndex: exact vs IVF choice, recall against exact search, filtered top-k, updates, files."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.errors import CollectionError
from indexer.core.storage import vector_index as vi
from indexer.core.storage.vector_index import IndexKind, VectorIndex, recall_at_k, recommended_kind
from tests.helpers.synthetic_vectors import Mixture, exact_topk

DIM = 64
N = 12_000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mixture = Mixture.make(dim=DIM, n_clusters=200, seed=3)
    vectors = mixture.sample(N, seed=4)
    ids = np.arange(N, dtype=np.int64) * 3 + 11  # ids are database keys, not positions
    return ids, vectors, mixture.queries(100, seed=5)


@pytest.fixture(scope="module")
def ivf(data) -> VectorIndex:
    ids, vectors, _ = data
    return VectorIndex.build(ids, vectors, DIM, generation=7, kind="ivf")


def test_small_collections_get_an_exact_index_and_large_ones_ivf():
    assert recommended_kind(vi.EXACT_MAX_VECTORS) is IndexKind.FLAT
    assert recommended_kind(vi.EXACT_MAX_VECTORS + 1) is IndexKind.IVF
    small = VectorIndex.build(np.arange(10), np.eye(10, DIM, dtype=np.float32), DIM)
    assert small.kind is IndexKind.FLAT


def test_build_picks_ivf_above_the_threshold(monkeypatch, data):
    ids, vectors, _ = data
    monkeypatch.setattr(vi, "EXACT_MAX_VECTORS", 5_000)
    index = VectorIndex.build(ids, vectors, DIM)
    assert index.kind is IndexKind.IVF
    assert index.ntotal == N
    assert index.describe().nlist == vi.recommended_nlist(N)


def test_exact_index_matches_numpy_brute_force(data):
    ids, vectors, queries = data
    flat = VectorIndex.build(ids, vectors, DIM, kind="flat")
    got = flat.search(queries, 10)
    want_ids, want_scores = exact_topk(vectors, ids, queries, 10)
    np.testing.assert_allclose(got.scores, want_scores, atol=1e-5)
    assert recall_at_k(got.ids, want_ids, 10) > 0.999


def test_ivf_default_parameters_reach_recall_095_against_exact(ivf, data):
    ids, vectors, queries = data
    want_ids, _ = exact_topk(vectors, ids, queries, 10)
    assert recall_at_k(ivf.search(queries, 10).ids, want_ids, 10) >= 0.95
    assert ivf.measure_recall(queries, 10) >= 0.95


def test_ivf_exact_mode_equals_brute_force(ivf, data):
    ids, vectors, queries = data
    want_ids, want_scores = exact_topk(vectors, ids, queries[:20], 10)
    got = ivf.search(queries[:20], 10, exact=True)
    np.testing.assert_allclose(got.scores, want_scores, atol=1e-5)
    assert recall_at_k(got.ids, want_ids, 10) > 0.999


@pytest.mark.parametrize("share", [0.002, 0.02, 0.3, 0.9])
def test_filtered_ivf_search_finds_the_exact_filtered_top_k(ivf, data, share):
    ids, vectors, queries = data
    rng = np.random.default_rng(int(share * 1000))
    mask = rng.random(N) < share
    allowed = ids[mask]
    got = ivf.search(queries, 10, allowed_ids=allowed)
    want_ids, _ = exact_topk(vectors[mask], allowed, queries, 10)
    assert np.isin(got.ids[got.ids >= 0], allowed).all()
    assert recall_at_k(got.ids, want_ids, 10) >= 0.95
    if len(allowed) * 10 <= N:  # selective filter: IVF probes every list, so it is exact
        assert recall_at_k(got.ids, want_ids, 10) == 1.0


def test_filter_correlated_with_a_cluster_still_gives_the_true_top_k(ivf, data):
    ids, vectors, queries = data
    # "a folder" = the photos most similar to one query: a cluster-shaped allow-list
    scores = vectors @ queries[0]
    allowed = ids[np.argsort(-scores)[:300]]
    mask = np.isin(ids, allowed)
    got = ivf.search(queries[1:30], 10, allowed_ids=allowed)
    want_ids, _ = exact_topk(vectors[mask], ids[mask], queries[1:30], 10)
    assert recall_at_k(got.ids, want_ids, 10) == 1.0


def test_filter_with_no_allowed_ids_returns_no_results(ivf, data):
    _, _, queries = data
    got = ivf.search(queries[:2], 5, allowed_ids=np.zeros(0, np.int64))
    assert (got.ids == -1).all()


def test_filter_with_huge_ids_uses_a_batch_selector(data):
    _, vectors, queries = data
    ids = np.arange(100, dtype=np.int64) + (1 << 40)
    flat = VectorIndex.build(ids, vectors[:100], DIM)
    got = flat.search(queries[:1], 3, allowed_ids=ids[::2])
    assert set(got.ids[0]) <= set(ids[::2])


def test_ivf_add_and_remove_by_id(data):
    ids, vectors, queries = data
    index = VectorIndex.build(ids[:8000], vectors[:8000], DIM, kind="ivf")
    index.auto = False
    index.add(ids[8000:], vectors[8000:])
    assert index.ntotal == N
    assert set(index.ids().tolist()) == set(ids.tolist())
    gone = ids[::2]
    assert index.remove(gone) == len(gone)
    assert set(index.ids().tolist()) == set(ids[1::2].tolist())
    got = index.search(queries, 10, exact=True)
    assert not np.isin(got.ids, gone).any()


def test_contents_returns_every_vector_under_its_id(ivf, data):
    ids, vectors, _ = data
    got_ids, got_vectors = ivf.contents()
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], ids)
    np.testing.assert_array_equal(got_vectors[order], vectors)
    flat = VectorIndex.build(ids[:50], vectors[:50], DIM)
    f_ids, f_vectors = flat.contents()
    np.testing.assert_array_equal(f_ids, ids[:50])
    np.testing.assert_array_equal(f_vectors, vectors[:50])


def test_flat_index_switches_to_ivf_when_adds_cross_the_threshold(monkeypatch, data):
    ids, vectors, queries = data
    monkeypatch.setattr(vi, "EXACT_MAX_VECTORS", 6_000)
    index = VectorIndex.empty(DIM)
    index.add(ids[:5000], vectors[:5000])
    assert index.kind is IndexKind.FLAT
    index.add(ids[5000:], vectors[5000:])
    assert index.kind is IndexKind.IVF
    assert index.ntotal == N
    assert index.measure_recall(queries, 10) >= 0.95
    index.remove(ids[:9500])  # shrinks below half the threshold: back to exact
    assert index.kind is IndexKind.FLAT
    assert set(index.ids().tolist()) == set(ids[9500:].tolist())


def test_ivf_is_retrained_when_it_outgrows_its_training(monkeypatch, data):
    ids, vectors, _ = data
    monkeypatch.setattr(vi, "EXACT_MAX_VECTORS", 1_000)
    index = VectorIndex.build(ids[:2500], vectors[:2500], DIM)
    assert index.trained_on == 2500
    index.add(ids[2500:], vectors[2500:])  # 12000 > 4 x 2500
    assert index.trained_on == N
    assert index.describe().nlist == vi.recommended_nlist(N)


def test_ivf_save_load_round_trip_keeps_parameters(tmp_path, ivf, data):
    _, _, queries = data
    path = tmp_path / "vectors.faiss"
    ivf.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.kind is IndexKind.IVF
    assert loaded.generation == 7
    assert loaded.nprobe == ivf.nprobe
    assert loaded.trained_on == ivf.trained_on
    a, b = ivf.search(queries, 10), loaded.search(queries, 10)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_damaged_index_file_is_a_collection_error(tmp_path, ivf):
    path = tmp_path / "vectors.faiss"
    ivf.save(path)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CollectionError, match="damaged"):
        VectorIndex.load(path)


def test_describe_reports_kind_size_and_memory(ivf):
    d = ivf.describe()
    assert d.kind is IndexKind.IVF and d.ntotal == N and d.dim == DIM
    assert d.memory_bytes >= N * DIM * 4
    assert 1 <= d.nprobe <= d.nlist
    assert "IVF" in d.label
    assert "exact" in VectorIndex.empty(DIM).describe().label


def test_search_on_an_empty_index_returns_padding():
    got = VectorIndex.empty(DIM).search(np.ones(DIM, np.float32), 5)
    assert (got.ids == -1).all()

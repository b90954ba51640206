"""Filters: validation, and the filtered top-k with an approximate (IVF) index equals exact search."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.core.errors import UsageError
from indexer.core.models import DualEncoder
from indexer.core.storage import vector_index as vi
from indexer.core.storage.vector_index import IndexKind
from search import Filters, Query, Searcher, Term
from search.filters import folder_prefixes
from tests.helpers.search_collection import FakePhoto, make_collection
from tests.helpers.synthetic_vectors import Mixture

N = 3000


def test_filters_normalise_types_and_dates():
    f = Filters(file_types=("JPEG", ".png", "jpg", "tif"), date_from=datetime(2020, 5, 1, 13, 0))
    assert f.file_types == ("jpg", "png", "tiff")
    assert f.date_from == date(2020, 5, 1)
    assert f.restricts_candidates
    assert not Filters(min_score=0.2).restricts_candidates
    assert Filters(folder="  ").folder is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"date_from": date(2021, 1, 2), "date_to": date(2021, 1, 1)},
        {"min_score": 1.5},
        {"min_score": float("nan")},
        {"file_types": ("j p g",)},
        {"date_from": "2020-01-01"},
    ],
)
def test_invalid_filters_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        Filters(**kwargs)


def test_folder_prefix_is_absolute_or_relative_to_each_root(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    assert folder_prefixes("x/y", roots)[:2] == [f"{tmp_path}/a/x/y/", f"{tmp_path}/b/x/y/"]
    assert folder_prefixes(f"{tmp_path}/a/x/../z/", roots) == [f"{tmp_path}/a/z/"]


@pytest.fixture(scope="module")
def ivf_world(tmp_path_factory, tiny_clip_dir: Path, module_db_url: str | None):
    """3000 photos in cluster-shaped folders, searched through an IVF index."""
    encoder = DualEncoder(tiny_clip_dir)
    mixture = Mixture.make(dim=encoder.dim, n_clusters=30, seed=7)
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 30, N)
    vectors = mixture.centers[labels] + rng.standard_normal((N, encoder.dim)).astype(np.float32) * 0.15
    photos = [
        FakePhoto(
            f"folder{labels[i] % 5}/{i}.{'png' if i % 4 == 0 else 'jpg'}",
            vectors[i],
            file_type="png" if i % 4 == 0 else "jpg",
            taken_at=datetime(2015 + i % 8, 1 + i % 12, 1 + i % 28) if i % 3 else None,
            mtime=datetime(2016 + i % 7, 1 + i % 12, 10),
        )
        for i in range(N)
    ]
    base = tmp_path_factory.mktemp("ivf")
    patch = pytest.MonkeyPatch()
    patch.setattr(vi, "EXACT_MAX_VECTORS", 1000)
    try:
        ids = make_collection(
            base / "data", base / "photos", photos, model_id=encoder.model_id, db_url=module_db_url
        )
        searcher = Searcher.open(base / "data", encoder=encoder, db_url=module_db_url)
        assert searcher.index.kind is IndexKind.IVF
        yield searcher, np.array(ids), photos
    finally:
        patch.undo()
    searcher.close()


def _exact(searcher: Searcher, photos, ids, query_vec, keep, k):
    """Brute force over the photos the predicate keeps, ranked by cosine."""
    vectors = searcher.collection.vectors(ids.tolist())
    scores = vectors @ query_vec
    order = [i for i in np.argsort(-scores, kind="stable") if keep(photos[i])]
    return [int(ids[i]) for i in order[:k]]


FILTER_CASES = {
    "folder": (Filters(folder="folder3"), lambda p: p.path.startswith("folder3/")),
    "type": (Filters(file_types=("png",)), lambda p: p.file_type == "png"),
    "date": (
        Filters(date_from=date(2018, 1, 1), date_to=date(2019, 6, 30)),
        lambda p: date(2018, 1, 1) <= (p.taken_at or p.mtime).date() <= date(2019, 6, 30),
    ),
    "combined": (
        Filters(folder="folder1", file_types=("jpg",), date_from=date(2020, 1, 1)),
        lambda p: (
            p.path.startswith("folder1/") and p.file_type == "jpg" and (p.taken_at or p.mtime).year >= 2020
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(FILTER_CASES))
def test_filtered_top_k_with_ivf_equals_exact_search(ivf_world, case):
    searcher, ids, photos = ivf_world
    filters, keep = FILTER_CASES[case]
    rng = np.random.default_rng(len(case))
    for qid in rng.choice(ids, 5, replace=False):
        query = Query((Term.image(int(qid)),))
        vec = searcher.embed_query(query)
        got = [h.id for h in searcher.search(query, k=10, filters=filters)]
        want = _exact(searcher, photos, ids, vec, keep, 10)
        assert got == want
        assert all(keep(photos[int(np.flatnonzero(ids == h)[0])]) for h in got)


def test_paging_with_filters_matches_exact_search(ivf_world):
    searcher, ids, photos = ivf_world
    filters, keep = FILTER_CASES["type"]
    qid = int(ids[17])
    vec = searcher.embed_query(Query((Term.image(qid),)))
    want = _exact(searcher, photos, ids, vec, keep, 25)
    got = [h.id for off in (0, 10, 20) for h in searcher.search(f"#{qid}", k=10, offset=off, filters=filters)]
    assert got[:25] == want


def test_similar_with_a_filter_that_excludes_everything_returns_nothing(ivf_world):
    searcher, ids, _ = ivf_world
    assert searcher.similar(int(ids[0]), filters=Filters(folder="no-such-folder")) == []


def test_index_report_measures_recall_of_the_ivf_index(ivf_world):
    searcher, _, _ = ivf_world
    report = searcher.index_report(n_queries=50)
    assert report.description.kind is IndexKind.IVF
    assert report.n_queries == 50 and report.n_indexed == N
    assert 0.95 <= report.recall_at_10 <= 1.0


def test_a_date_range_to_the_last_representable_day_has_no_upper_bound(ivf_world):
    searcher, _, photos = ivf_world
    assert searcher.count(Filters(date_to=date(9999, 12, 31))) == N
    since = Filters(date_from=date(2019, 1, 1), date_to=date(9999, 12, 31))
    assert searcher.count(since) == sum((p.taken_at or p.mtime).date() >= date(2019, 1, 1) for p in photos)

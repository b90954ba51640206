"""Searcher: text, image and composite queries, scores, paging and errors, on small synthetic collections.

The tiny random models carry no meaning, so each collection is built from the model's own text
embeddings: a photo "about" a text has a vector close to that text's embedding.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.core.errors import (
    CollectionError,
    ImageError,
    ModelMismatchError,
    NotFoundError,
    QueryError,
    UnsafePathError,
    UsageError,
)
from indexer.core.models import DualEncoder
from indexer.core.storage.calibration import calibration_file
from search import Filters, Query, Searcher, Term
from search.classify import PROMPT
from search.relevance import BACKGROUND_QUERIES, nonsense_queries
from tests.helpers.search_collection import FakePhoto, make_collection, unit

N_RANDOM = 40


@pytest.fixture(scope="module")
def clip_encoder(tiny_clip_dir: Path) -> DualEncoder:
    return DualEncoder(tiny_clip_dir)


def _text(encoder: DualEncoder, text: str) -> np.ndarray:
    return encoder.embed_texts([text])[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory, clip_encoder: DualEncoder, module_db_url: str | None):
    """A collection with a few photos built from text embeddings, plus random distractors."""
    base = tmp_path_factory.mktemp("world")
    root = base / "photos"
    e = {w: _text(clip_encoder, w) for w in ("beach", "people", "night", "dog")}
    rng = np.random.default_rng(0)
    dim = clip_encoder.dim
    named = {
        "holiday/beach_crowd.jpg": e["beach"] + e["people"],
        "holiday/beach_empty.jpg": e["beach"] - e["people"],
        "holiday/dog.png": e["dog"],
        "work/night.jpg": e["night"],
        "work/Beach_caps.jpg": rng.standard_normal(dim),
    }
    photos = [
        FakePhoto(path, v, file_type=Path(path).suffix[1:], taken_at=datetime(2021, 6, 1))
        for path, v in named.items()
    ]
    for i in range(N_RANDOM):
        photos.append(
            FakePhoto(
                f"misc/{i:03d}.{'png' if i % 3 == 0 else 'jpg'}",
                rng.standard_normal(dim),
                file_type="png" if i % 3 == 0 else "jpg",
                taken_at=datetime(2019, 1 + i % 12, 1) if i % 2 == 0 else None,
                mtime=datetime(2022, 1 + i % 12, 15),
            )
        )
    ids = make_collection(base / "data", root, photos, model_id=clip_encoder.model_id, db_url=module_db_url)
    by_name = {p.path: i for p, i in zip(photos, ids, strict=True)}
    return base / "data", root, by_name, photos


@pytest.fixture()
def searcher(world, clip_encoder):
    data, *_ = world
    with Searcher.open(data, encoder=clip_encoder) as s:
        yield s


def brute_force(photos, ids_by_name, query: np.ndarray) -> list[str]:
    names = [p.path for p in photos]
    scores = np.stack([unit(p.vector) for p in photos]) @ query
    return [names[i] for i in np.argsort(-scores, kind="stable")]


def test_text_search_ranks_the_matching_photo_first(searcher, world):
    hits = searcher.search("dog", k=3)
    assert hits[0].path.endswith("holiday/dog.png")
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].cosine > hits[1].cosine


def test_hits_carry_metadata_and_the_models_scores(searcher, clip_encoder):
    hits = searcher.search("night", k=5)
    top = hits[0]
    assert top.path.endswith("work/night.jpg")
    assert (top.width, top.height, top.file_type, top.size) == (64, 48, "jpg", 1000)
    assert top.taken_at == datetime(2021, 6, 1)
    assert top.logit == pytest.approx(math.exp(clip_encoder.logit_scale) * top.cosine, rel=1e-5)
    assert top.cosine == pytest.approx(
        float(unit(_text(clip_encoder, "night")) @ unit(_text(clip_encoder, "night"))), abs=1e-4
    )


def test_clip_probabilities_are_a_softmax_over_all_candidates(searcher, world):
    *_, photos = world
    hits = searcher.search("beach", k=len(photos))
    assert sum(h.probability for h in hits) == pytest.approx(1.0, abs=1e-6)
    assert all(a.probability >= b.probability for a, b in itertools.pairwise(hits))
    # a page holds the same probabilities as the full ranking
    page = searcher.search("beach", k=3, offset=2)
    assert [h.probability for h in page] == pytest.approx([h.probability for h in hits[2:5]])


def test_paging_concatenates_to_the_full_ranking(searcher):
    full = [h.id for h in searcher.search("people", k=30)]
    pages = [h.id for off in range(0, 30, 7) for h in searcher.search("people", k=7, offset=off)]
    assert pages[:30] == full
    assert searcher.search("people", k=5, offset=10_000) == []


def test_composite_subtraction_moves_results_away_from_the_negative_term(searcher):
    plain = [h.path for h in searcher.search("beach", k=50)]
    crowd, empty = "holiday/beach_crowd.jpg", "holiday/beach_empty.jpg"
    rank = {name: next(i for i, p in enumerate(plain) if p.endswith(name)) for name in (crowd, empty)}
    composite = [h.path for h in searcher.search('"beach" - "people"', k=50)]
    rank2 = {name: next(i for i, p in enumerate(composite) if p.endswith(name)) for name in (crowd, empty)}
    assert rank2[empty] == 0
    assert rank2[crowd] > rank[crowd]


def test_weights_pull_the_query_towards_the_heavier_term(searcher, clip_encoder):
    def cos_to(query: str, word: str) -> float:
        v = searcher.embed_query(Query.parse(query))
        return float(v @ _text(clip_encoder, word))

    assert cos_to('3:"dog" + "night"', "dog") > cos_to('"dog" + 3:"night"', "dog")
    v = searcher.embed_query(Query.parse('2:"dog" - 0.5:"night"'))
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    expected = unit(2 * _text(clip_encoder, "dog") - 0.5 * _text(clip_encoder, "night"))
    np.testing.assert_allclose(v, expected, atol=1e-5)


def test_indexed_photo_in_a_query_reuses_its_stored_vector(searcher, world):
    _, root, ids, photos = world
    path = root / "work/night.jpg"  # no such file on disk: the stored vector must be used
    assert not path.exists()
    by_path = searcher.embed_query(Query.parse(f'{path} + 0:"dog"'))
    by_id = searcher.embed_query(Query.parse(f"#{ids['work/night.jpg']}"))
    np.testing.assert_allclose(by_path, unit(photos[3].vector), atol=1e-6)
    np.testing.assert_allclose(by_id, by_path, atol=1e-6)


def test_terms_that_cancel_out_are_a_query_error(searcher):
    with pytest.raises(QueryError, match="cancel"):
        searcher.search('"dog" - "dog"')


def test_similar_by_id_and_by_path_excludes_the_photo_itself(searcher, world):
    _, root, ids, photos = world
    pid = ids["holiday/beach_crowd.jpg"]
    by_id = searcher.similar(pid, k=5)
    by_path = searcher.similar(str(root / "holiday/beach_crowd.jpg"), k=5)
    assert [h.id for h in by_id] == [h.id for h in by_path]
    assert pid not in [h.id for h in by_id]
    want = [n for n in brute_force(photos, ids, unit(photos[0].vector)) if n != "holiday/beach_crowd.jpg"]
    assert [h.path for h in by_id] == [str(root / n) for n in want[:5]]
    with_self = searcher.similar(pid, k=5, exclude_self=False)
    assert with_self[0].id == pid and with_self[0].cosine == pytest.approx(1.0, abs=1e-5)


def test_similar_on_an_unknown_photo_is_not_found(searcher):
    with pytest.raises(NotFoundError):
        searcher.similar(10_000)
    with pytest.raises(NotFoundError):
        searcher.similar("/nowhere/x.jpg")


def test_external_image_needs_permission_outside_the_roots(searcher, world, tmp_path):
    _, root, *_ = world
    outside = tmp_path / "query.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(outside)
    with pytest.raises(UnsafePathError):
        searcher.search_image(outside, k=3)
    with pytest.raises(UnsafePathError):
        searcher.search(f'{outside} + "dog"')
    inside = root / "holiday" / "new.png"  # inside a root, not indexed: readable
    inside.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (20, 30, 200)).save(inside)
    assert len(searcher.search_image(inside, k=3)) == 3
    searcher.allow_external_files = True
    hits = searcher.search_image(outside, k=3)
    assert len(hits) == 3
    pil_hits = searcher.search_image(Image.open(outside), k=3)
    assert [h.id for h in pil_hits] == [h.id for h in hits]


def test_symlink_out_of_a_root_is_refused(searcher, world, tmp_path):
    _, root, *_ = world
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    link = root / "link.png"
    link.symlink_to(secret)
    try:
        with pytest.raises(UnsafePathError):
            searcher.search_image(link)
    finally:
        link.unlink()


def test_unreadable_query_image_is_an_image_error(searcher, tmp_path):
    searcher.allow_external_files = True
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ImageError):
        searcher.search_image(bad)
    with pytest.raises(NotFoundError):
        searcher.search_image(tmp_path / "missing.jpg")


def test_filters_restrict_folder_type_date_and_score(searcher, world):
    _, root, _, photos = world
    hits = searcher.search("beach", k=100, filters=Filters(folder="holiday"))
    assert {Path(h.path).name for h in hits} == {"beach_crowd.jpg", "beach_empty.jpg", "dog.png"}
    absolute = searcher.search("beach", k=100, filters=Filters(folder=str(root / "holiday") + "/"))
    assert [h.id for h in absolute] == [h.id for h in hits]
    assert searcher.search("beach", k=100, filters=Filters(folder="holi")) == []
    assert searcher.search("beach", k=100, filters=Filters(folder="WORK")) == []  # case-sensitive
    pngs = searcher.search("dog", k=100, filters=Filters(file_types=("PNG",)))
    assert pngs and all(h.file_type == "png" for h in pngs)
    assert len(searcher.search("dog", k=100, filters=Filters(file_types=("jpeg",)))) == sum(
        p.file_type == "jpg" for p in photos
    )
    dated = searcher.search("dog", k=100, filters=Filters(date_from=datetime(2022, 3, 1).date()))
    # photos without EXIF date fall back to mtime (2022); EXIF 2019/2021 ones are excluded
    assert dated and all(h.taken_at is None and h.mtime >= datetime(2022, 3, 1) for h in dated)
    jan_2019 = searcher.search(
        "dog",
        k=100,
        filters=Filters(date_from=datetime(2019, 1, 1).date(), date_to=datetime(2019, 1, 31).date()),
    )
    assert jan_2019 and all(h.taken_at == datetime(2019, 1, 1) for h in jan_2019)
    scored = searcher.search("dog", k=100, filters=Filters(min_score=0.5))
    assert scored and all(h.cosine >= 0.5 for h in scored)


@pytest.mark.parametrize(("k", "offset"), [(0, 0), (-1, 0), (10_001, 0), (5, -1), (True, 0), (2.5, 0)])
def test_bad_k_or_offset_is_a_usage_error(searcher, k, offset):
    with pytest.raises(UsageError):
        searcher.search("dog", k=k, offset=offset)


def test_empty_query_is_a_query_error(searcher):
    with pytest.raises(QueryError):
        searcher.search("   ")


def test_a_different_model_is_refused(world, tiny_model_dir):
    data, *_ = world
    with pytest.raises(ModelMismatchError, match="indexed with"):
        Searcher.open(data, encoder=DualEncoder(tiny_model_dir))


def test_a_refused_open_waits_for_its_index_read_and_closes_the_collection(
    world, tiny_model_dir, monkeypatch
):
    import threading

    from indexer.core.storage.collection import Collection

    closed = []
    monkeypatch.setattr(Collection, "close", lambda self: closed.append(self))
    with pytest.raises(ModelMismatchError):
        Searcher.open(world[0], encoder=DualEncoder(tiny_model_dir))
    assert len(closed) == 1
    assert not any(t.name == "dualens-open" for t in threading.enumerate())


def test_missing_collection_is_a_collection_error(tmp_path):
    with pytest.raises(CollectionError, match="no collection"):
        Searcher.open(tmp_path / "nothing")


def test_photo_metadata_by_id(searcher, world):
    _, root, ids, _ = world
    hit = searcher.photo(ids["holiday/dog.png"])
    assert hit is not None and hit.path == str(root / "holiday/dog.png") and hit.cosine == 0.0
    assert searcher.photo(99_999) is None


def test_classify_gives_the_prompted_label_the_highest_probability(searcher, world, clip_encoder):
    _, root, *_ = world
    # a photo whose vector is the prompt embedding of "dog" is classified as a dog
    target = unit(_text(clip_encoder, PROMPT.format(label="dog")))
    base = root.parent / "classify"
    photos = [FakePhoto("x.jpg", target)]
    ids = make_collection(base / "data", base / "p", photos, model_id=clip_encoder.model_id)
    with Searcher.open(base / "data", encoder=clip_encoder) as s:
        result = s.classify(ids[0], "cat, dog, car")
    assert result[0][0] == "dog"
    assert sum(p for _, p in result) == pytest.approx(1.0)


def test_siglip_probabilities_are_sigmoids(tmp_path, tiny_siglip_dir):
    encoder = DualEncoder(tiny_siglip_dir)
    rng = np.random.default_rng(1)
    photos = [FakePhoto(f"{i}.jpg", rng.standard_normal(encoder.dim)) for i in range(10)]
    make_collection(tmp_path / "data", tmp_path / "p", photos, model_id=encoder.model_id)
    with Searcher.open(tmp_path / "data", encoder=encoder) as s:
        hits = s.search("a dog", k=10)
    for h in hits:
        logit = math.exp(encoder.logit_scale) * h.cosine + encoder.logit_bias
        assert h.logit == pytest.approx(logit, rel=1e-5, abs=1e-6)
        assert h.probability == pytest.approx(1 / (1 + math.exp(-logit)), rel=1e-6)


def test_reload_if_stale_picks_up_a_newer_saved_index_only(clip_encoder, tmp_path):
    from indexer.core.storage.collection import InfoKey, set_info

    rng = np.random.default_rng(2)
    photos = [FakePhoto(f"{i}.jpg", rng.standard_normal(clip_encoder.dim)) for i in range(5)]
    make_collection(tmp_path / "data", tmp_path / "p", photos, model_id=clip_encoder.model_id)
    with Searcher.open(tmp_path / "data", encoder=clip_encoder) as s:
        assert s.reload_if_stale() is False
        with s.collection.session() as session, session.begin():
            set_info(session, InfoKey.GENERATION, 2)  # the indexer is mid-run: file not saved yet
        assert s.reload_if_stale() is False
        assert s.index.generation == 1 and len(s.search("dog", k=10)) == 5
        s.collection.rebuild_index()  # the indexer saves the new index
        assert s.reload_if_stale() is True
        assert s.index.generation == 2
        assert s.reload_if_stale() is False


def test_reload_check_skips_the_database_while_the_index_file_is_unchanged(clip_encoder, tmp_path):
    from indexer.core.storage.collection import InfoKey, set_info

    rng = np.random.default_rng(2)
    photos = [FakePhoto(f"{i}.jpg", rng.standard_normal(clip_encoder.dim)) for i in range(5)]
    make_collection(tmp_path / "data", tmp_path / "p", photos, model_id=clip_encoder.model_id)
    with Searcher.open(tmp_path / "data", encoder=clip_encoder) as s:
        opened = []
        session = s.collection.session
        s.collection.session = lambda: opened.append(1) or session()  # type: ignore[method-assign]
        assert s.reload_if_stale() is False and s.reload_if_stale() is False
        assert opened == []  # the file is the one loaded: a stat answered
        # the indexer replaces the file first and records its generation after: in between, the
        # database is asked on every check, and the new index is picked up once it is recorded
        index = s.collection.build_index_from_db()
        index.generation = 2
        index.collection_id = s.collection.collection_id()
        index.save(s.collection.paths.vector_index)
        opened.clear()
        assert s.reload_if_stale() is False and s.reload_if_stale() is False
        assert len(opened) == 2 and s.index.generation == 1
        with session() as db, db.begin():
            set_info(db, InfoKey.INDEX_GENERATION, 2)
        assert s.reload_if_stale() is True and s.index.generation == 2
        opened.clear()
        assert s.reload_if_stale() is False and opened == []


def test_empty_collection_returns_no_hits(tmp_path, clip_encoder):
    make_collection(tmp_path / "data", tmp_path / "p", [], model_id=clip_encoder.model_id)
    with Searcher.open(tmp_path / "data", encoder=clip_encoder) as s:
        assert s.search("dog") == []
        with pytest.raises(QueryError):
            s.search("")


def test_query_objects_are_accepted(searcher):
    q = Query((Term.text("dog"),))
    assert [h.id for h in searcher.search(q, k=3)] == [h.id for h in searcher.search("dog", k=3)]


def test_repeated_text_queries_are_embedded_once(world, tiny_clip_dir):
    data, *_ = world
    encoder = DualEncoder(tiny_clip_dir)
    calls: list[list[str]] = []
    original = encoder.embed_texts

    def counting(texts):
        calls.append(list(texts))
        return original(texts)

    encoder.embed_texts = counting  # type: ignore[method-assign]
    calibration_file(data).unlink(missing_ok=True)  # stored by an earlier test's Searcher
    with Searcher.open(data, encoder=encoder) as s:
        first = [h.id for h in s.search("dog", k=5)]
        assert [h.id for h in s.search("dog", k=5, offset=0)] == first
        s.search('"dog" - "night"', k=5)
    background = nonsense_queries(BACKGROUND_QUERIES)
    assert calls.count(background) == 1  # the relevance bands are measured once
    assert [c for c in calls if c != background] == [["dog"], ["night"]]


def test_collection_of_an_older_default_model_asks_for_a_reindex(tmp_path):
    photos = [FakePhoto("a.jpg", np.ones(8))]
    make_collection(tmp_path / "data", tmp_path / "p", photos, model_id="dualens-default-v0")
    with pytest.raises(ModelMismatchError, match="--reindex"):
        Searcher.open(tmp_path / "data")

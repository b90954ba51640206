"""Understood queries and date-sorted results through the Searcher and the CLI (#29 items 2-3)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from indexer.core.errors import UsageError
from indexer.core.models import DualEncoder
from indexer.core.storage.schema import Photo
from search import Filters, Hit, Searcher
from search.relevance import Relevance
from tests.helpers.search_collection import FakePhoto, make_collection
from ui.cli import main

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

TODAY = date(2024, 3, 15)
# (taken_at, mtime, city, country) of each photo
PHOTOS = [
    (datetime(2019, 7, 10), datetime(2020, 1, 1), "Paris", "France"),
    (datetime(2019, 12, 25), datetime(2020, 1, 1), "Berlin", "Germany"),
    (None, datetime(2021, 5, 1), "Paris", "France"),
    (datetime(2018, 3, 3), datetime(2020, 1, 1), None, None),
    (datetime(2019, 8, 20), datetime(2020, 1, 1), "Nice", "France"),
    (datetime(2023, 1, 1), datetime(2020, 1, 1), "Berlin", "Germany"),
]


@pytest.fixture
def world(tmp_path: Path, tiny_clip_dir: Path) -> tuple[Path, DualEncoder, list[int]]:
    encoder = DualEncoder(tiny_clip_dir, device="cpu")
    rng = np.random.default_rng(11)
    photos = [
        FakePhoto(f"{i}.jpg", rng.standard_normal(encoder.dim), taken_at=taken, mtime=mtime)
        for i, (taken, mtime, _, _) in enumerate(PHOTOS)
    ]
    ids = make_collection(tmp_path / "data", tmp_path / "p", photos, model_id=encoder.model_id)
    with Searcher.open(tmp_path / "data", encoder=encoder) as s, s.collection.session() as db, db.begin():
        for pid, (_, _, city, country) in zip(ids, PHOTOS, strict=True):
            db.execute(update(Photo).where(Photo.id == pid).values(place_city=city, place_country=country))
    return tmp_path / "data", encoder, ids


def _searcher(world: tuple[Path, DualEncoder, list[int]]) -> Searcher:
    data, encoder, _ = world
    return Searcher.open(data, encoder=encoder)


def test_a_date_in_the_query_filters_and_leaves_the_description(world) -> None:
    ids = world[2]
    with _searcher(world) as s:
        hits, meant = s.search_understood("dog in summer 2019", k=10, today=TODAY)
    assert meant.understood is not None
    assert meant.understood.summary() == "after 2019-06-01, before 2019-08-31"
    assert {h.id for h in hits} == {ids[0], ids[4]}
    assert meant.query is not None and str(meant.query) == '"dog"'


def test_a_collection_place_in_the_query_filters(world) -> None:
    ids = world[2]
    with _searcher(world) as s:
        hits, meant = s.search_understood("dog in Paris", k=10, today=TODAY)
    assert meant.understood is not None and meant.understood.summary() == "place Paris"
    assert {h.id for h in hits} == {ids[0], ids[2]}


def test_a_query_of_only_a_year_or_a_place_lists_photos_newest_first(world) -> None:
    ids = world[2]
    with _searcher(world) as s:
        year, meant = s.search_understood("2019", k=10, today=TODAY)
        place, _ = s.search_understood("Paris", k=10, today=TODAY)
        second, _ = s.search_understood("2019", k=1, offset=1, today=TODAY)
    assert meant.understood is not None and meant.understood.text == "" and meant.query is None
    assert [h.id for h in year] == [ids[1], ids[4], ids[0]]
    assert [h.rank for h in year] == [1, 2, 3]
    assert [h.id for h in place] == [ids[2], ids[0]]  # no date taken: the file date (2021) counts
    assert [(h.id, h.rank) for h in second] == [(ids[4], 2)]


def test_literal_search_reads_nothing_from_the_text(world) -> None:
    with _searcher(world) as s:
        hits, meant = s.search_understood("dog in Paris", k=10, literal=True, today=TODAY)
    assert meant.understood is None and len(hits) == len(PHOTOS)


def test_a_filter_already_set_is_not_read_from_the_text(world) -> None:
    ids = world[2]
    with _searcher(world) as s:
        hits, meant = s.search_understood("dog in Paris", k=10, filters=Filters(place="Berlin"))
    assert meant.understood is None and str(meant.query) == '"dog in Paris"'
    assert {h.id for h in hits} == {ids[1], ids[5]}


def test_a_place_the_collection_lacks_stays_in_the_text(world) -> None:
    with _searcher(world) as s:
        meant = s.interpret("dog in Tokyo", today=TODAY)
    assert meant.understood is None and str(meant.query) == '"dog in Tokyo"'


def test_composite_queries_understand_their_text_terms_and_keep_the_others(world) -> None:
    ids = world[2]
    with _searcher(world) as s:
        meant = s.interpret('"dog in summer 2019" - "cat"', today=TODAY)
        hits, _ = s.search_understood('"dog in summer 2019" - "cat"', k=10, today=TODAY)
    assert str(meant.query) == '"dog" - "cat"'
    assert {h.id for h in hits} == {ids[0], ids[4]}


def _dated(hit: Hit) -> datetime:
    return hit.taken_at or hit.mtime


def test_date_sort_keeps_good_and_strong_text_matches_newest_first(world, monkeypatch) -> None:
    with _searcher(world) as s:
        ranked = s.search("dog", k=10)
        floor = sorted(h.cosine for h in ranked)[len(ranked) // 2]  # half the photos are weak
        monkeypatch.setattr(s, "relevance", lambda: Relevance(floor=floor, strong=1.0))
        by_date = s.search("dog", k=10, sort="date")
        page = s.search("dog", k=1, offset=1, sort="date")
    kept = [h for h in ranked if h.cosine >= floor]
    assert {h.id for h in by_date} == {h.id for h in kept} and len(kept) < len(ranked)
    assert [_dated(h) for h in by_date] == sorted((_dated(h) for h in kept), reverse=True)
    assert all(h.relevance in ("good", "strong") for h in by_date)
    assert [h.id for h in page] == [by_date[1].id]


def test_similar_sorted_by_date_is_its_ranking_newest_first(world) -> None:
    ids = world[2]
    with _searcher(world) as s:
        by_date = s.similar(ids[3], k=10, sort="date")
        with pytest.raises(UsageError, match="sort by"):
            s.similar(ids[3], k=10, sort="name")
    assert {h.id for h in by_date} == set(ids) - {ids[3]}
    assert [_dated(h) for h in by_date] == sorted((_dated(h) for h in by_date), reverse=True)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_what_it_understood_on_stderr_and_in_json(world, capsys) -> None:
    data, _, ids = world
    code, out, err = _run(capsys, "search", "--data", str(data), "--json", "dog in Paris in 2019")
    assert code == 0, err
    assert "understood: after 2019-01-01, before 2019-12-31, place Paris" in err
    payload = json.loads(out)
    assert payload["understood"]["place"] == "Paris" and payload["understood"]["text"] == "dog"
    assert [h["id"] for h in payload["hits"]] == [ids[0]]


def test_cli_literal_turns_understanding_off(world, capsys) -> None:
    data, *_ = world
    code, out, err = _run(capsys, "search", "--data", str(data), "--json", "--literal", "dog in Paris")
    assert code == 0, err
    assert "understood" not in err and "understood" not in json.loads(out)
    assert len(json.loads(out)["hits"]) == len(PHOTOS)


def test_cli_sort_date_orders_a_listing_and_similar(world, capsys) -> None:
    data, _, ids = world
    code, out, err = _run(capsys, "search", "--data", str(data), "--json", "--sort", "date", "2019")
    assert code == 0, err
    assert [h["id"] for h in json.loads(out)["hits"]] == [ids[1], ids[4], ids[0]]
    code, out, err = _run(capsys, "similar", "--data", str(data), "--json", "--sort", "date", str(ids[3]))
    assert code == 0, err
    dates = [h["taken_at"] or h["mtime"] for h in json.loads(out)["hits"]]
    assert dates == sorted(dates, reverse=True)

"""Places: EXIF GPS positions reverse-geocoded offline, stored per photo, filterable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from indexer.core.places import GEOCODER, Geocoder, Place
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from indexer.core.storage.search_reads import allowed_ids_statement
from indexer.geocode import fill_places
from indexer.pipeline import IndexOptions, run_index
from search.filters import Filters, photo_filter
from search.hits import HIT_COLUMNS, Hit
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import Exif, save_jpeg

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

PARIS, TOKYO, ATLANTIC = (48.8566, 2.3522), (35.6812, 139.7671), (0.0, -30.0)  # Paris: the Hôtel de Ville


class CountingGeocoder(Geocoder):
    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def places(self, positions):  # type: ignore[no-untyped-def]
        self.asked += len(positions)
        return GEOCODER.places(positions)


def test_positions_are_named_by_their_nearest_city_and_the_open_sea_by_nothing() -> None:
    paris, tokyo, sea = GEOCODER.places([PARIS, TOKYO, ATLANTIC])
    assert paris == Place("Paris", "Ile-de-France", "France")
    assert tokyo is not None and tokyo.country == "Japan" and tokyo.label().endswith("Japan")
    assert sea is None
    assert Place("Tokyo", "Tokyo", "Japan").label() == "Tokyo, Japan"  # a repeat is shown once


def _index_places(tmp_path: Path) -> tuple[Path, Path]:
    root, data = tmp_path / "photos", tmp_path / "data"
    save_jpeg(root / "eiffel.jpg", seed=1, exif=Exif(gps=PARIS))
    save_jpeg(root / "tokyo.jpg", seed=2, exif=Exif(gps=TOKYO))
    save_jpeg(root / "boat.jpg", seed=3, exif=Exif(gps=ATLANTIC))
    save_jpeg(root / "nogps.jpg", seed=4)
    summary = run_index(data, [root], IndexOptions(workers=0), encoder=FakeEncoder())
    assert summary.placed == 2 and "placed 2" in summary.lines()[1]
    return root.resolve(), data


def _places(c: Collection) -> dict[str, tuple[str | None, str | None]]:
    with c.session() as s:
        rows = s.execute(select(Photo.path, Photo.place_city, Photo.place_country)).all()
    return {Path(path).name: (city, country) for path, city, country in rows}


def _filtered(c: Collection, place: str) -> set[str]:
    with c.session() as s:
        ids = s.scalars(allowed_ids_statement(photo_filter(Filters(place=place), c.info().roots))).all()
        return {Path(p).name for p in s.scalars(select(Photo.path).where(Photo.id.in_(ids)))}


def test_indexing_stores_the_place_of_each_photo_with_a_position(tmp_path: Path) -> None:
    _, data = _index_places(tmp_path)
    with Collection.open(data) as c:
        places = _places(c)
        assert places["eiffel.jpg"] == ("Paris", "France")
        assert places["tokyo.jpg"][1] == "Japan"
        assert places["boat.jpg"] == ("", "")  # looked up, nothing near: not tried again
        assert places["nogps.jpg"] == (None, None)
        with c.session() as s:
            row = s.execute(select(*HIT_COLUMNS).where(Photo.path.like("%eiffel.jpg"))).one()
        hit = Hit.from_row(row, cosine=0.0, logit=0.0, probability=0.0, rank=1)
        assert hit.place == "Paris, Ile-de-France, France" and hit.to_json()["place"] == hit.place


def test_the_place_filter_matches_a_city_region_or_country_in_any_case(tmp_path: Path) -> None:
    _, data = _index_places(tmp_path)
    with Collection.open(data) as c:
        assert _filtered(c, "paris") == {"eiffel.jpg"}
        assert _filtered(c, "  FRANCE ") == {"eiffel.jpg"}
        assert _filtered(c, "Ile-de-France") == {"eiffel.jpg"}
        assert _filtered(c, "Japan") == {"tokyo.jpg"}
        assert _filtered(c, "Atlantis") == set()
    assert Filters(place="   ").place is None and not Filters(place=" ").restricts_candidates


def test_older_collections_get_their_places_once_and_changed_photos_again(tmp_path: Path) -> None:
    root, data = _index_places(tmp_path)
    with Collection.open(data) as c:
        with c.session() as s, s.begin():  # as a release before places left them
            s.execute(update(Photo).values(place_city=None, place_region=None, place_country=None))
        counting = CountingGeocoder()
        assert fill_places(c, counting) == 2 and counting.asked == 3
        assert fill_places(c, counting) == 0 and counting.asked == 3  # nothing left to look up
    save_jpeg(root / "eiffel.jpg", seed=9, exif=Exif(gps=TOKYO))  # the same file, now from Tokyo
    summary = run_index(data, [root], IndexOptions(workers=0), encoder=FakeEncoder())
    assert summary.updated == 1 and summary.placed == 1
    with Collection.open(data) as c:
        assert _places(c)["eiffel.jpg"][1] == "Japan"


def test_a_place_term_in_a_query_narrows_the_search_like_the_filter(
    tmp_path: Path, tiny_clip_dir: Path
) -> None:
    import numpy as np

    from indexer.core.models import DualEncoder
    from search import Searcher
    from tests.helpers.search_collection import FakePhoto, make_collection

    clip_encoder = DualEncoder(tiny_clip_dir, device="cpu")
    rng = np.random.default_rng(5)
    photos = [FakePhoto(f"{i}.jpg", rng.standard_normal(clip_encoder.dim)) for i in range(6)]
    make_collection(tmp_path / "data", tmp_path / "p", photos, model_id=clip_encoder.model_id)
    with Searcher.open(tmp_path / "data", encoder=clip_encoder) as s:
        with s.collection.session() as db, db.begin():
            ids = sorted(db.scalars(select(Photo.id)).all())
            db.execute(
                update(Photo).where(Photo.id.in_(ids[:2])).values(place_city="Nice", place_country="France")
            )
        assert {h.id for h in s.search('"a dog" + place:"nice"', k=10)} == set(ids[:2])
        assert {h.id for h in s.search('"a dog"', k=10, filters=Filters(place="France"))} == set(ids[:2])
        assert s.search('"a dog" + place:"Nice"', k=10, filters=Filters(place="Rome")) == []
        assert all(h.place == "Nice, France" for h in s.search('"a dog" + place:"Nice"', k=10))

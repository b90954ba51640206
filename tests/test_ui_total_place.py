"""The total a page (and the HTTP API) reports counts what a ``+ place:"…"`` term inside the query
allows, as the search applies it: not the whole collection."""

from __future__ import annotations

from pathlib import Path

from search import Filters
from tests.helpers.ui_fixtures import build_collection, make_photos
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig


def test_the_total_counts_the_photos_a_place_term_in_the_query_allows(
    tmp_path: Path, tiny_model_dir: Path, database: str | None
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=10)  # every fifth in Paris: 2 of 10
    build_collection(data, photos, tiny_model_dir, database)
    backend = Backend.open(data, UiConfig())
    try:
        paris = backend.run(SearchRequest("text", text='"a photo" + place:"Paris"', limit=50, literal=True))
        assert len(paris.hits) == 2 and paris.total == 2
        plain = backend.run(SearchRequest("text", text="a photo", limit=50, literal=True))
        assert plain.total == 10
        elsewhere = Filters(place="Lyon")
        none = backend.run(
            SearchRequest("text", text='"a photo" + place:"Paris"', filters=elsewhere, literal=True)
        )
        assert none.hits == [] and none.total == 0
    finally:
        backend.close()

"""The total of a Similar page (page and HTTP API) leaves out the chosen photo only when the filters
allow it: with a folder filter the photo is not in, every photo of that folder is a result."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import Filters
from tests.helpers.ui_fixtures import build_collection, make_photos
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig

pytestmark = pytest.mark.timeout(120)


def test_a_similar_pages_total_is_the_same_for_every_page_size_and_counts_every_result(
    tmp_path: Path, tiny_model_dir: Path, database: str | None
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=8)  # beach/ and city/, 4 each
    build_collection(data, photos, tiny_model_dir, database)
    backend = Backend.open(data, UiConfig())
    try:
        source = next(h for h in backend.searcher.list_by_date(k=8) if "/beach/" in h.path)
        for folder, expected in (("city", 4), ("beach", 3), (None, 7)):
            filters = Filters(folder=folder)
            pages = [
                backend.run(SearchRequest("similar", photo_id=source.id, filters=filters, limit=limit))
                for limit in (1, 2, 50)
            ]
            assert len(pages[-1].hits) == expected, folder
            assert [p.total for p in pages] == [expected] * 3, folder
    finally:
        backend.close()

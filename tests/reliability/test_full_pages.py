"""Issue #27 item 15: result pages have no holes when photos outside the roots are indexed.

A folder symlinked into a root pulls photos from elsewhere into the collection; they may not be
served. They used to be dropped from a page *after* the ranking was cut, so `k=20` returned 18.
Here the outside photos are the best matches of every query: each page must still be full, and hold
only photos inside the roots, in the order of the ranking without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder
from search import Filters, Searcher
from tests.helpers.search_collection import FakePhoto, make_collection, unit
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig

N_INSIDE, N_OUTSIDE = 40, 12
QUERY = "a red bicycle"


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir: Path) -> DualEncoder:
    return DualEncoder(tiny_clip_dir)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, encoder: DualEncoder, module_db_url: str | None
) -> tuple[Path, Path, dict[str, int]]:
    """(data, root, ids by path): the photos behind ``root/link`` (a link to a sibling folder) are
    the closest to QUERY's embedding; those inside the root follow at distinct distances."""
    base = tmp_path_factory.mktemp("full_pages")
    root, outside = base / "photos", base / "elsewhere"
    outside.mkdir(parents=True)
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    target = unit(encoder.embed_texts([QUERY])[0])
    rng = np.random.default_rng(15)
    photos = [
        FakePhoto(f"link/out{i:02d}.jpg", target + 0.01 * rng.standard_normal(len(target)))
        for i in range(N_OUTSIDE)
    ]
    photos += [
        FakePhoto(f"d{i % 3}/in{i:02d}.jpg", target + (0.2 + 0.05 * i) * rng.standard_normal(len(target)))
        for i in range(N_INSIDE)
    ]
    ids = make_collection(base / "data", root, photos, model_id=encoder.model_id, db_url=module_db_url)
    return base / "data", root, {p.path: i for p, i in zip(photos, ids, strict=True)}


@pytest.fixture
def searcher(world: tuple[Path, Path, dict[str, int]], encoder: DualEncoder) -> Iterator[Searcher]:
    with Searcher.open(world[0], encoder=encoder) as s:
        yield s


def _inside(hits: list, root: Path) -> bool:
    return all("/link/" not in h.path and Path(h.path).is_relative_to(root) for h in hits)


def test_a_text_page_is_full_and_holds_only_photos_inside_the_roots(searcher: Searcher, world) -> None:
    _, root, _ = world
    hits = searcher.search(QUERY, k=20)
    assert len(hits) == 20 and _inside(hits, root)
    assert [h.rank for h in hits] == list(range(1, 21))
    assert [h.cosine for h in hits] == sorted((h.cosine for h in hits), reverse=True)


def test_consecutive_pages_are_full_and_continue_the_ranking(searcher: Searcher, world) -> None:
    _, root, _ = world
    whole = searcher.search(QUERY, k=N_INSIDE)
    pages = [searcher.search(QUERY, k=10, offset=offset) for offset in range(0, N_INSIDE, 10)]
    assert [len(p) for p in pages] == [10] * (N_INSIDE // 10)
    assert [h.id for p in pages for h in p] == [h.id for h in whole]
    assert len(whole) == N_INSIDE and _inside(whole, root)
    assert searcher.search(QUERY, k=10, offset=N_INSIDE) == []  # the outside photos never come last


def test_a_similar_page_and_a_filtered_page_are_full(searcher: Searcher, world) -> None:
    _, root, ids = world
    similar = searcher.similar(ids["d0/in00.jpg"], k=20)
    assert len(similar) == 20 and _inside(similar, root)
    typed = searcher.search(QUERY, k=20, filters=Filters(file_types=("jpg",)))
    assert len(typed) == 20 and _inside(typed, root)


def test_the_ui_page_is_full_and_knows_there_is_more(searcher: Searcher, world) -> None:
    _, root, _ = world
    page = Backend(searcher, UiConfig()).run(SearchRequest(kind="text", text=QUERY, limit=20))
    assert len(page.hits) == 20 and page.has_more and _inside(page.hits, root)

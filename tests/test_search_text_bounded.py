"""A ``text:`` query with a very common word stays one bounded full-text query under filters: the
folder, date, type and place filters are applied in the database with the LIMIT (never every match
fetched and filtered in Python), and the answers with filters and paging are the right ones, on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event

from indexer.core.models import DualEncoder
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import TextStatus
from indexer.core.storage.text import TextResult
from search import Filters, Searcher
from tests.helpers.search_collection import FakePhoto, make_collection

N_PER_FOLDER = 12


@pytest.fixture()
def common(
    tmp_path: Path, tiny_clip_dir: Path, database: str | None
) -> Iterator[tuple[Searcher, dict[int, str]]]:
    """Two folders of photos whose text all says "sale", "sale" repeated more in the "shop" folder
    (they rank first), one photo without the word."""
    encoder = DualEncoder(tiny_clip_dir)
    rng = np.random.default_rng(5)
    photos = [
        FakePhoto(
            f"{folder}/{i:02d}.jpg", rng.standard_normal(encoder.dim), taken_at=datetime(2020, 1, 1 + i)
        )
        for folder in ("shop", "street")
        for i in range(N_PER_FOLDER)
    ]
    photos.append(FakePhoto("street/none.jpg", rng.standard_normal(encoder.dim)))
    data = tmp_path / "data"
    ids = make_collection(data, tmp_path / "photos", photos, model_id=encoder.model_id, db_url=database)
    texts = {i: "sale " * 3 if p.path.startswith("shop") else "sale and more words here" for p, i in
             zip(photos, ids, strict=True)}  # fmt: skip
    texts[ids[-1]] = "nothing to see"
    with Collection.open(data, db_url=database) as c:
        c.write_texts([TextResult(i, None, "test-engine", TextStatus.OK, t) for i, t in texts.items()])
    folders = {i: p.path.split("/")[0] for p, i in zip(photos, ids, strict=True)}
    with Searcher.open(data, encoder=encoder, db_url=database) as searcher:
        yield searcher, folders


@contextmanager
def _full_text_statements(searcher: Searcher) -> Iterator[list[str]]:
    """The full-text statements the collection's database runs inside the block."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if " MATCH " in statement or "@@" in statement:
            seen.append(statement)

    engine = searcher.collection.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_common_word_under_a_folder_filter_is_one_limited_query_with_the_filter_in_it(common) -> None:
    searcher, folders = common
    with _full_text_statements(searcher) as seen:
        hits = searcher.search("text:sale", k=5, filters=Filters(folder="street"))
    assert len(hits) == 5 and {folders[h.id] for h in hits} == {"street"}
    assert seen and all("LIMIT" in s.upper() for s in seen)
    assert all("path" in s for s in seen)  # the folder filter is in the query itself
    with _full_text_statements(searcher) as seen:
        assert searcher.count(Filters(folder="street"), "sale") == N_PER_FOLDER
    assert len(seen) == 1 and "count(" in seen[0].lower()  # counted in the database, no rows read


def test_a_common_word_with_filters_pages_through_exactly_the_allowed_matches(common) -> None:
    searcher, folders = common
    street = Filters(folder="street")
    pages = [
        h.id for off in range(0, 15, 5) for h in searcher.search("text:sale", k=5, offset=off, filters=street)
    ]
    assert len(pages) == N_PER_FOLDER == len(set(pages))  # the photo without the word is not one
    assert {folders[i] for i in pages} == {"street"}
    assert pages == [h.id for h in searcher.search("text:sale", k=20, filters=street)]
    assert searcher.count(street, "sale") == N_PER_FOLDER
    dated = Filters(
        folder="street", date_from=datetime(2020, 1, 3).date(), date_to=datetime(2020, 1, 5).date()
    )
    assert len(searcher.search("text:sale", k=20, filters=dated)) == 3
    everything = searcher.search("text:sale", k=30)
    assert len(everything) == 2 * N_PER_FOLDER
    assert {folders[h.id] for h in everything[:N_PER_FOLDER]} == {"shop"}  # "sale sale sale" first

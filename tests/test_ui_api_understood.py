"""The HTTP API and its client with understood queries and date sorting (#29 items 2-3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.core.models import DualEncoder
from search import Searcher
from tests.test_search_understood import PHOTOS, world  # noqa: F401  (the collection fixture)
from ui.api import ApiSettings, create_app
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig
from ui.remote import RemoteBackend

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

World = tuple[Path, DualEncoder, list[int]]


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:  # noqa: F811
    data, encoder, _ = world
    app = create_app(
        ApiSettings(data=str(data)), lambda: Backend(Searcher.open(data, encoder=encoder), UiConfig())
    )
    with TestClient(app) as found:
        yield found


def test_search_page_carries_what_was_understood_and_its_total(client: TestClient, world: World) -> None:  # noqa: F811
    ids = world[2]
    page = client.get("/search", params={"q": "dog in Paris in 2019"}).json()
    assert page["understood"]["summary"] == "after 2019-01-01, before 2019-12-31, place Paris"
    assert page["understood"]["text"] == "dog" and page["understood"]["phrases"] == ["in Paris", "in 2019"]
    assert [h["id"] for h in page["hits"]] == [ids[0]] and page["total"] == 1


def test_literal_true_reads_nothing_from_the_query(client: TestClient) -> None:
    page = client.get("/search", params={"q": "dog in Paris", "literal": "true"}).json()
    assert page["understood"] is None and len(page["hits"]) == len(PHOTOS)


def test_sort_date_orders_a_listing_and_similar_photos(client: TestClient, world: World) -> None:  # noqa: F811
    ids = world[2]
    listing = client.get("/search", params={"q": "2019", "sort": "date"}).json()
    assert [h["id"] for h in listing["hits"]] == [ids[1], ids[4], ids[0]]
    similar = client.get(f"/similar/{ids[3]}", params={"sort": "date"}).json()["hits"]
    dates = [h["taken_at"] or h["mtime"] for h in similar]
    assert len(dates) == len(PHOTOS) - 1 and dates == sorted(dates, reverse=True)
    assert client.get("/search", params={"q": "dog", "sort": "name"}).status_code == 422


def test_the_remote_backend_reads_understood_filters_back(client: TestClient, world: World) -> None:  # noqa: F811
    ids = world[2]
    remote = RemoteBackend("http://testserver", UiConfig())
    remote._client = client  # type: ignore[assignment]  # the service in process (an httpx client too)
    page = remote.run(SearchRequest("text", text="dog in Paris in 2019", limit=5))
    assert page.understood is not None and page.understood.place == "Paris"
    assert [h.id for h in page.hits] == [ids[0]]
    literal = remote.run(SearchRequest("text", text="dog in Paris", limit=10, literal=True))
    assert literal.understood is None and len(literal.hits) == len(PHOTOS)

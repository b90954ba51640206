"""The timeline over the HTTP API (`GET /timeline`) and `dualens ui --api` (RemoteBackend): the
collection newest first with filters, paging by offset, the total, and each photo's month; the
same pages as the in-process timeline (ui/timeline.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from indexer.core.models import DualEncoder
from search import Filters, Searcher
from tests.helpers.api_server import KEY, Server
from tests.test_ui_timeline import NEWEST_FIRST, world  # noqa: F401  (the collection fixture)
from ui.api import ApiSettings, create_app
from ui.backend import Backend
from ui.config import UiConfig
from ui.remote import API_KEY_FILE_ENV, API_URL_ENV, RemoteBackend
from ui.timeline import month_groups, timeline_page

World = tuple[Path, DualEncoder, dict[str, int]]
APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:  # noqa: F811
    data, encoder, _ = world
    app = create_app(
        ApiSettings(data=str(data)), lambda: Backend(Searcher.open(data, encoder=encoder), UiConfig())
    )
    with TestClient(app) as found:
        yield found


def _names(page: dict, made: World) -> list[str]:  # type: ignore[type-arg]
    by_id = {pid: name for name, pid in made[2].items()}
    return [by_id[h["id"]] for h in page["hits"]]


def test_the_timeline_lists_newest_first_pages_by_offset_and_counts(client: TestClient, world: World) -> None:  # noqa: F811
    whole = client.get("/timeline", params={"k": 10}).json()
    assert _names(whole, world) == NEWEST_FIRST
    assert whole["total"] == len(NEWEST_FIRST) and whole["has_more"] is False
    assert [h["rank"] for h in whole["hits"]] == list(range(1, 7))
    first = client.get("/timeline", params={"k": 4}).json()
    rest = client.get("/timeline", params={"k": 4, "offset": 4}).json()
    assert first["has_more"] is True and rest["has_more"] is False
    assert _names(first, world) + _names(rest, world) == NEWEST_FIRST  # no gap, no repeat
    assert (first["offset"], rest["offset"], rest["total"]) == (0, 4, 6)


def test_each_photo_of_the_timeline_carries_its_month_and_the_page_its_groups(client: TestClient) -> None:
    page = client.get("/timeline", params={"k": 10}).json()
    # b/nodate.jpg has no date taken: its file's date (May 2021) places it
    assert page["months"] == ["2021-05", "2019-07", "2019-07", "2019-06", "2019-06", "2018-03"]
    assert page["groups"] == [
        {"month": "2021-05", "label": "May 2021", "count": 1},
        {"month": "2019-07", "label": "July 2019", "count": 2},
        {"month": "2019-06", "label": "June 2019", "count": 2},
        {"month": "2018-03", "label": "March 2018", "count": 1},
    ]


def test_the_timeline_applies_filters_and_ignores_the_match_band(client: TestClient, world: World) -> None:  # noqa: F811
    folder = client.get("/timeline", params={"folder": "b", "k": 10}).json()
    assert _names(folder, world) == [n for n in NEWEST_FIRST if n.startswith("b/")] and folder["total"] == 3
    dated = client.get("/timeline", params={"after": "2019-07", "k": 10}).json()
    assert _names(dated, world) == ["b/nodate.jpg", "b/july2.jpg", "a/july1.jpg"] and dated["total"] == 3
    banded = client.get("/timeline", params={"min_match": "strong", "min_score": "0.99", "k": 10}).json()
    assert _names(banded, world) == NEWEST_FIRST  # nothing is ranked: no band can leave photos out
    for bad in ({"k": 0}, {"k": 201}, {"offset": -1}, {"after": "yesterday"}):
        response = client.get("/timeline", params=bad)
        assert 400 <= response.status_code < 500 and "error" in response.json(), bad


def test_the_remote_timeline_equals_the_in_process_one(client: TestClient, world: World) -> None:  # noqa: F811
    data, encoder, _ = world
    remote = RemoteBackend("http://testserver", UiConfig())
    remote._client = client  # type: ignore[assignment]  # the service in process (an httpx client too)
    with Searcher.open(data, encoder=encoder) as searcher:
        local = Backend(searcher, UiConfig())
        for filters, limit in ((Filters(), 4), (Filters(), 10), (Filters(folder="a"), 2)):
            a, b = timeline_page(local, filters, limit), timeline_page(remote, filters, limit)
            assert [h.id for h in a.hits] == [h.id for h in b.hits], (filters, limit)
            assert (a.has_more, a.total) == (b.has_more, b.total)
            assert month_groups(a.hits) == month_groups(b.hits)


# ---------------------------------------------------------------------- a real `dualens serve`


def test_the_timeline_over_a_real_service_matches_the_in_process_pages(
    api_server: Server, api_world: tuple[Path, Path]
) -> None:
    local = Backend.open(api_world[0], UiConfig())
    remote = RemoteBackend.open(api_server.url, UiConfig(), api_key=KEY)
    try:
        for filters, limit in ((Filters(), 5), (Filters(), 30), (Filters(folder="beach"), 3)):
            a = timeline_page(local, filters, limit)
            b = timeline_page(remote, filters, limit)
            assert [h.id for h in a.hits] == [h.id for h in b.hits] and a.hits, (filters, limit)
            assert (a.has_more, a.total) == (b.has_more, b.total)
            assert a.hits == b.hits  # every field, dates included, survives the trip
        assert timeline_page(remote, Filters(), 30).total == 12
        dates = [h.date for h in timeline_page(remote, Filters(), 30).hits]
        assert dates == sorted(dates, reverse=True)
        assert httpx.get(f"{api_server.url}/timeline", timeout=10).status_code == 401  # the key, as /search
    finally:
        remote.close()
        local.close()


def test_the_start_page_over_the_service_shows_the_timeline(
    api_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ui.page import get_remote_backend

    key = tmp_path / "key"
    key.write_text(KEY)
    monkeypatch.setenv(API_URL_ENV, api_server.url)
    monkeypatch.setenv(API_KEY_FILE_ENV, str(key))
    monkeypatch.setenv("DUALENS_DATA", str(tmp_path / "no-collection-here"))  # never read
    monkeypatch.setenv("DUALENS_UI_PAGE_SIZE", "5")
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception and not at.error
        # the count and the month headings, not the grid's widgets (the grid is its own component)
        assert any("Your photos, newest first" in m.value for m in at.markdown)
        assert any("5 of 12 photos" in m.value for m in at.markdown)
        assert any(re.search(r'class="dl-month">[A-Z][a-z]+ \d{4}<', m.value) for m in at.markdown)
        at.button(key="more").click().run()
        assert not at.exception
        assert any("10 of 12 photos" in m.value for m in at.markdown)
    finally:
        get_remote_backend.clear()

"""`dualens ui --api URL`: the page as a client of a real `dualens serve` (uvicorn on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from indexer.core.errors import CollectionError, QueryError, UsageError
from search import Filters
from tests.helpers import grid_apptest
from tests.helpers.api_server import KEY, Server
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig
from ui.remote import API_KEY_FILE_ENV, API_URL_ENV, RemoteBackend

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


@pytest.fixture(scope="module")
def pair(api_server: Server, api_world: tuple[Path, Path]) -> Iterator[tuple[Backend, RemoteBackend]]:
    local = Backend.open(api_world[0], UiConfig())
    remote = RemoteBackend.open(api_server.url, UiConfig(), api_key=KEY)
    yield local, remote
    remote.close()
    local.close()


def _ids(page) -> list[int]:  # type: ignore[no-untyped-def]
    return [h.id for h in page.hits]


def test_remote_pages_equal_the_in_process_pages(pair: tuple[Backend, RemoteBackend]) -> None:
    local, remote = pair
    for request in (
        SearchRequest("text", text="a photo", limit=5),
        SearchRequest("text", text='"red" - "blue"', limit=20),
        SearchRequest("text", text="a photo", filters=Filters(folder="beach"), limit=20),
        SearchRequest("text", text="a photo", filters=Filters(file_types=("jpg", "png")), limit=20),
        SearchRequest("text", text="a photo", filters=Filters(min_match="good"), limit=20),
        SearchRequest("text", text="a photo", filters=Filters(place="france"), limit=20),
    ):
        a, b = local.run(request), remote.run(request)
        assert _ids(a) == _ids(b) and a.has_more == b.has_more, request
        assert [h.cosine for h in a.hits] == pytest.approx([h.cosine for h in b.hits], abs=1e-6)
        assert a.hits[:1] == b.hits[:1]  # every field, dates included, survives the trip
    top = local.run(SearchRequest("text", text="a photo", limit=1)).hits[0]
    similar = SearchRequest("similar", photo_id=top.id, limit=4)
    assert _ids(local.run(similar)) == _ids(remote.run(similar))
    with Image.open(top.path) as image:
        shown = remote.run(SearchRequest("image", limit=1), image=image.convert("RGB"))
    assert _ids(shown) == [top.id]


def test_remote_stats_facets_photos_and_thumbnails(pair: tuple[Backend, RemoteBackend]) -> None:
    local, remote = pair
    assert remote.stats() == local.stats()
    assert remote.facets() == local.facets()
    assert [(p.name, p.count) for p in remote.facets().places] == [("France", 3), ("Paris", 3)]
    top = local.run(SearchRequest("text", text="a photo", limit=1)).hits[0]
    assert remote.photo(top.id) == local.photo(top.id)
    assert remote.photo(999_999) is None
    thumb = remote.thumbnail(top)
    assert thumb is not None and thumb.read_bytes() == Path(str(local.thumbnail(top))).read_bytes()
    preview = remote.thumbnail(top, preview=True)
    assert (
        preview is not None
        and Image.open(preview).size == Image.open(str(local.thumbnail(top, preview=True))).size
    )


def test_remote_errors_are_typed_sentences(api_server: Server) -> None:
    remote = RemoteBackend(api_server.url, UiConfig(), api_key=KEY)
    try:
        with pytest.raises(QueryError, match="expected"):
            remote.run(SearchRequest("text", text='#1 "cat"'))
        with pytest.raises(QueryError, match="empty"):
            remote.run(SearchRequest("text", text="  "))
        with pytest.raises(UsageError):
            remote.run(SearchRequest("similar", photo_id=None))
    finally:
        remote.close()
    with pytest.raises(UsageError, match="refused the API key"):
        RemoteBackend.open(api_server.url, UiConfig(), api_key="x" * 24)
    with pytest.raises(
        CollectionError, match=r"the dualens service at http://127\.0\.0\.1:9 is not answering.*dualens serve"
    ):
        RemoteBackend.open("http://127.0.0.1:9", UiConfig())


def test_the_page_searches_through_the_service(
    api_server: Server, api_world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ui.page import get_remote_backend

    key = tmp_path / "key"
    key.write_text(KEY)
    monkeypatch.setenv(API_URL_ENV, api_server.url)
    monkeypatch.setenv(API_KEY_FILE_ENV, str(key))
    monkeypatch.setenv("DUALENS_DATA", str(tmp_path / "no-collection-here"))  # never read
    monkeypatch.setenv("DUALENS_UI_PAGE_SIZE", "4")
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception
        assert next(m for m in at.sidebar.metric if m.label == "Photos").value == "12"
        at.text_input(key="q").set_value("a photo")
        at.run()
        assert not at.exception
        ids = grid_apptest.ids(at)
        assert len(ids) == 4 and all(item["src"] and item["w"] > 0 for item in grid_apptest.items(at))
        grid_apptest.similar(at, ids[0])
        assert not at.exception
        again = grid_apptest.ids(at)
        assert again and ids[0] not in again
    finally:
        get_remote_backend.clear()


def test_the_page_says_when_the_service_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_URL_ENV, "http://127.0.0.1:9")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("is not answering" in str(e.value) for e in [*at.error, *at.warning, *at.info])


def test_ui_with_an_unreachable_or_bad_api_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from ui.cli import main

    assert main(["ui", "--api", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("dualens: error: the dualens service at http://127.0.0.1:9 is not answering")
        and err.count("\n") == 1
    )
    assert main(["ui", "--api", "ftp://x"]) == 2
    assert "not an http:// or https:// URL" in capsys.readouterr().err
    assert main(["ui", "--api-key-file", "k"]) == 2
    assert "goes with --api" in capsys.readouterr().err


def test_a_remote_page_longer_than_the_api_k_limit_is_fetched_in_several_requests(
    pair: tuple[Backend, RemoteBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    local, remote = pair
    monkeypatch.setattr("ui.remote.MAX_K", 4)  # 10 hits: requests of 4, 4 and 2
    request = SearchRequest("text", text="a photo", limit=10)
    a, b = local.run(request), remote.run(request)
    assert _ids(b) == _ids(a) and len(_ids(b)) == 10
    assert (b.has_more, b.total) == (a.has_more, a.total) and b.total is not None


def test_the_api_answers_pages_with_the_page_s_total(pair: tuple[Backend, RemoteBackend]) -> None:
    """Page and API go through the same request path: the API's pages carry `total` and `has_more`."""
    local, remote = pair
    for request in (
        SearchRequest("text", text="a photo", limit=5),
        SearchRequest("text", text="a photo", filters=Filters(folder="beach"), limit=50),
    ):
        a, b = local.run(request), remote.run(request)
        assert (b.total, b.has_more) == (a.total, a.has_more) and b.total is not None


def test_a_remote_request_beyond_the_api_k_limit_is_not_refused(api_server: Server) -> None:
    remote = RemoteBackend(api_server.url, UiConfig(max_results=480), api_key=KEY)
    try:  # the page's "Show more" asks for up to max_results hits; the API takes at most 200 a request
        assert len(remote.run(SearchRequest("text", text="a photo", limit=300)).hits) == 12
    finally:
        remote.close()


def test_every_error_the_api_answers_is_read_back_as_its_own_class() -> None:
    from indexer.core.errors import ImageError, NotFoundError
    from ui.schema import CLIENT_ERRORS, UploadTooLarge, error_class, error_code

    for cls in CLIENT_ERRORS:
        assert error_class(cls.http_status, error_code(cls)) is cls
    assert error_class(422, "bad_request") is ImageError and error_class(413, "too_large") is UploadTooLarge
    assert (NotFoundError.http_status, QueryError.http_status, CollectionError.http_status) == (404, 400, 503)
    assert error_class(422, "invalid_request") is None  # a request that fails validation: no typed error


def test_the_total_counts_only_the_photos_a_place_term_allows(pair: tuple[Backend, RemoteBackend]) -> None:
    local, remote = pair
    everywhere = SearchRequest("text", text='"a photo"', limit=20)
    in_paris = SearchRequest("text", text='"a photo" + place:"Paris"', limit=20)
    nice = Filters(place="Nice")
    elsewhere = SearchRequest("text", text='"a photo" + place:"Paris"', filters=nice, limit=20)
    for backend in (local, remote):
        assert backend.run(everywhere).total == 12
        page = backend.run(in_paris)
        assert len(page.hits) == 3 and page.total == 3 and not page.has_more  # "3 of 3", not "3 of 12"
        assert backend.run(elsewhere).total == 0  # two places: no photo is in both


def test_the_sort_order_comes_from_the_url_and_goes_back_into_it(
    api_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ui.page import get_remote_backend
    from ui.state import SORT

    key = tmp_path / "key"
    key.write_text(KEY)
    monkeypatch.setenv(API_URL_ENV, api_server.url)
    monkeypatch.setenv(API_KEY_FILE_ENV, str(key))
    monkeypatch.setenv("DUALENS_DATA", str(tmp_path / "no-collection-here"))
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update({"q": "a photo", "sort": "date"})
        at.run()
        assert not at.exception and at.radio(key=SORT).value == "date"
        assert at.query_params["sort"] in ("date", ["date"])
        at.radio(key=SORT).set_value("relevance").run()
        assert not at.exception and "sort" not in at.query_params  # the default is left out
        at.radio(key=SORT).set_value("date").run()
        assert at.query_params["sort"] in ("date", ["date"])
        assert at.query_params["q"] in ("a photo", ["a photo"])
        fresh = AppTest.from_file(APP, default_timeout=60)
        fresh.query_params.update({"q": "a photo", "sort": "name"})  # not an order: the default
        fresh.run()
        assert not fresh.exception and fresh.radio(key=SORT).value == "relevance"
    finally:
        get_remote_backend.clear()

"""Grid thumbnails sized to their slot (ui/thumbsize.py): the allowed sizes, what a browser's cookie
or user agent asks for, and a `dualens serve` answering ``w=`` with a cached thumbnail of that size."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.helpers.api_server import KEY, Server
from tests.test_ui_remote import pair  # noqa: F401  (an in-process and a remote backend)
from ui.backend import Backend, SearchRequest
from ui.remote import RemoteBackend
from ui.thumbsize import COOKIE, SIZING_ENV, grid_px, snap


def test_a_slot_gets_the_smallest_allowed_size_that_covers_it_never_more_than_the_cap() -> None:
    assert [snap(px, 384) for px in (1, 128, 129, 170, 192, 250, 300, 384, 900)] == [
        128, 128, 192, 192, 192, 256, 384, 384, 384,
    ]  # fmt: skip
    assert snap(300, 320) == 320 and snap(200, 320) == 256 and snap(100, 96) == 96


def test_the_browser_slot_cookie_decides_and_without_it_the_largest_size_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SIZING_ENV, raising=False)
    assert grid_px({COOKIE: "170"}, 384) == 192  # a 170-px slot at 1x
    assert grid_px({COOKIE: "255"}, 384) == 256 and grid_px({COOKIE: "340"}, 384) == 384  # 1.5x, 2x
    assert grid_px({}, 384) == 384  # a first visit: sharp at any ratio
    for junk in ("", "abc", "-5", "0", "31", "99999", "1e3"):
        assert grid_px({COOKIE: junk}, 384) == 384
    monkeypatch.setenv(SIZING_ENV, "0")
    assert grid_px({COOKIE: "170"}, 384) == 384  # sizing off: one size


@pytest.fixture(scope="module")
def api(api_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=api_server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as client:
        yield client


def test_the_service_serves_a_grid_thumbnail_sized_for_the_slot_asked(api: httpx.Client) -> None:
    top = api.get("/search", params={"q": "a photo", "k": 1}).json()["hits"][0]
    sizes = {}
    for w in (150, 250, 2000):
        answer = api.get(f"/photos/{top['id']}/thumbnail", params={"w": w})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        sizes[w] = Image.open(io.BytesIO(answer.content)).size
    plain = Image.open(io.BytesIO(api.get(f"/photos/{top['id']}/thumbnail").content)).size
    assert sizes[150][0] <= 192 and sizes[250][0] <= 256 and sizes[2000] == plain
    assert sizes[150][0] < sizes[250][0] < plain[0] or plain[0] <= 192  # a small original is never blown up
    assert api.get(f"/photos/{top['id']}/thumbnail", params={"w": 0}).status_code == 422


def test_a_remote_page_gets_the_same_sized_thumbnail_as_an_in_process_one(
    pair: tuple[Backend, RemoteBackend],  # noqa: F811
) -> None:
    local, remote = pair
    top = local.run(SearchRequest("text", text="a photo", limit=1)).hits[0]
    for px in (150, 250):
        here, there = local.thumbnail(top, px=px), remote.thumbnail(top, px=px)
        assert here is not None and there is not None and here.read_bytes() == there.read_bytes()
        assert max(Image.open(there).size) <= snap(px, local.config.thumb_px)
    assert remote.thumbnail(top, px=150) != remote.thumbnail(top)  # cached per size, side by side

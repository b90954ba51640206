"""The timeline in a real headless Chromium, on real photos (tests/helpers/ui_photo_server.py): 20
shared imagenet-sample photos dated by their files, 4 more with an EXIF date taken (planted, seeded)
and one undated; pages of 16.

Newest first with a heading per month ("Undated" last after Show more), the viewer opens from it,
the filters apply, and a query replaces it. Skips cleanly without Debian's chromium or the shared
photos.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest

from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _context, _page, _results, _shot

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.ui_photo_server import IMAGENET, PLANTED, Planted, plant_collection, serve  # noqa: E402

PAGE_SIZE = 16
GRID_IMAGES = ".dl-jg .dl-tile img"

pytestmark = [
    # a real browser on a shared 2-core machine: a click can land during a rerun of the page
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not IMAGENET.is_dir(), reason="needs the shared imagenet-sample photos"),
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return plant_collection(tmp_path_factory.mktemp("ui-timeline"))


@pytest.fixture(scope="module")
def server(planted: Planted) -> Iterator[str]:
    with serve(
        planted.data, planted.data.parent / "streamlit.log", DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE)
    ) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _timeline(page, n: int = PAGE_SIZE) -> None:  # type: ignore[no-untyped-def]
    _context(page, "Your photos, newest first").wait_for()
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[GRID_IMAGES, n])


def _names(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        str(t) for t in page.locator(".st-key-timeline .dl-name").evaluate_all("els => els.map(e => e.title)")
    ]


def _headings(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.strip() for h in page.locator(".dl-month").all_inner_texts()]


def _months(planted: Planted, n: int) -> list[str]:
    """The headings of the first ``n`` photos: each month once, in order."""
    return list(dict.fromkeys(planted.months[:n]))


def test_the_page_without_a_query_shows_the_photos_newest_first_under_month_headings(
    server: str, browser, planted: Planted, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.goto(server)
    _timeline(page)
    # the planted photos' EXIF dates (2021) come first although their files are the oldest
    assert _names(page) == planted.newest_first[:PAGE_SIZE]
    assert _headings(page) == _months(planted, PAGE_SIZE)
    assert _headings(page)[0].endswith("2021") and "Undated" not in _headings(page)
    _shot(page, "desktop-timeline", tmp_path)
    page.get_by_role("button", name="Show more").click()
    total = len(planted.newest_first)
    _timeline(page, total)
    assert _names(page) == planted.newest_first
    assert _headings(page) == _months(planted, total) and _headings(page)[-1] == "Undated"
    page.close()


def test_a_photo_of_the_timeline_opens_in_the_viewer(server: str, browser, planted: Planted) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.goto(server)
    _timeline(page)
    page.locator(GRID_IMAGES).first.click()  # a thumbnail, as its View button
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"1 of {PAGE_SIZE}").wait_for()
    assert planted.newest_first[0] in dialog.inner_text()
    page.keyboard.press("ArrowRight")
    dialog.get_by_text(f"2 of {PAGE_SIZE}").wait_for()
    assert planted.newest_first[1] in dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=10_000)
    page.close()


def test_the_date_filter_applies_to_the_timeline(server: str, browser, planted: Planted) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.goto(f"{server}/?{urllib.parse.urlencode({'from': '2021-01-01', 'to': '2021-12-31'})}")
    _timeline(page, PLANTED)
    page.get_by_text(f"{PLANTED} of {PLANTED} photos").wait_for()
    assert _names(page) == planted.newest_first[:PLANTED]
    assert all(h.endswith("2021") for h in _headings(page))
    page.close()


def test_a_query_replaces_the_timeline_and_clear_brings_it_back(
    server: str, browser, planted: Planted
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.goto(server)
    _timeline(page)
    _results(page, "goldfish")
    page.locator(".st-key-timeline").wait_for(state="detached")
    assert page.locator(".dl-month").count() == 0
    page.locator(".st-key-clear button").click()
    _timeline(page)
    assert _names(page) == planted.newest_first[:PAGE_SIZE]
    page.close()

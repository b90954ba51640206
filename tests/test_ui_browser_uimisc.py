"""In a real headless Chromium on real photos (tests/helpers/ui_photo_server.py: 20 shared
imagenet-sample photos dated by their files, 4 with an EXIF date taken, one undated): the timeline
of `dualens ui --api` (the page a client of a real `dualens serve`), the sort order kept in the URL,
and the selection bar and the viewer on a phone. Skips cleanly without Debian's chromium or the
shared photos.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    _axe_violations,
    _context,
    _page,
    _results,
    _shot,
)

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.api_server import Server  # noqa: E402
from tests.helpers.ui_photo_server import IMAGENET, Planted, plant_collection, serve  # noqa: E402
from tests.test_ui_browser_timeline import GRID_IMAGES, _headings, _months, _names, _timeline  # noqa: E402

PAGE_SIZE = 16

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
    return plant_collection(tmp_path_factory.mktemp("ui-uimisc"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def api_page(planted: Planted) -> Iterator[str]:
    """`dualens ui --api`: a page that reads nothing of the collection, a client of `dualens serve`."""
    service = Server(planted.data)
    nowhere = planted.data.parent / "no-collection-here"
    try:
        with serve(
            nowhere,
            planted.data.parent / "streamlit-api.log",
            DUALENS_API_URL=service.url,
            DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE),
        ) as url:
            yield url
    finally:
        service.stop()


def test_the_timeline_over_the_api_shows_the_photos_newest_first_by_month(
    api_page: str, browser, planted: Planted, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.goto(api_page)
    _timeline(page)
    # the planted photos' EXIF dates (2021) first, though their files are the oldest: the service's order
    assert _names(page) == planted.newest_first[:PAGE_SIZE]
    assert _headings(page) == _months(planted, PAGE_SIZE)
    page.get_by_text(f"{PAGE_SIZE} of {len(planted.newest_first)} photos").wait_for()
    _shot(page, "desktop-timeline-api", tmp_path)
    page.get_by_role("button", name="Show more").click()
    total = len(planted.newest_first)
    _timeline(page, total)
    assert _names(page) == planted.newest_first
    assert _headings(page) == _months(planted, total) and _headings(page)[-1] == "Undated"
    page.locator(GRID_IMAGES).first.click()  # the viewer opens over the service's timeline too
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"1 of {total}").wait_for()
    assert planted.newest_first[0] in dialog.inner_text()
    page.close()


@pytest.fixture(scope="module")
def local_page(planted: Planted) -> Iterator[str]:
    """`dualens ui` on the collection itself."""
    with serve(
        planted.data, planted.data.parent / "streamlit.log", DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE)
    ) as url:
        yield url


def _shown(page) -> list[str]:  # type: ignore[no-untyped-def]
    page.wait_for_function(f"() => document.querySelectorAll('{GRID_IMAGES}').length >= {PAGE_SIZE}")
    return [str(t) for t in page.locator(".dl-name").evaluate_all("els => els.map(e => e.title)")]


def _in_date_order(names: list[str], planted: Planted) -> bool:
    return names == [n for n in planted.newest_first if n in set(names)]


def test_the_sort_order_is_kept_in_the_url_and_restored_by_back_and_forward(
    local_page: str, browser, planted: Planted
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.goto(f"{local_page}/?similar=1&sort=date")  # photos like the first indexed one, newest first
    _context(page, "Photos similar to").wait_for()
    newest = page.get_by_role("radio", name="Newest first")
    assert newest.is_checked()
    by_date = _shown(page)
    assert len(by_date) == PAGE_SIZE and _in_date_order(by_date, planted)
    page.locator('[data-testid="stSidebar"]').get_by_text("Best match").click()
    page.wait_for_url(lambda url: "sort=" not in url and "similar=1" in url)  # the default: left out
    page.wait_for_function(f"() => document.querySelector('.dl-name')?.title !== {by_date[0]!r}")
    assert not _in_date_order(_shown(page), planted)
    page.go_back()  # the page before: newest first again, from its URL
    page.wait_for_url(lambda url: "sort=date" in url)
    _context(page, "Photos similar to").wait_for()
    assert page.get_by_role("radio", name="Newest first").is_checked()
    assert _shown(page) == by_date
    page.go_forward()
    page.wait_for_url(lambda url: "sort=" not in url)
    _context(page, "Photos similar to").wait_for()
    assert page.get_by_role("radio", name="Best match").is_checked()
    assert not _in_date_order(_shown(page), planted)
    page.close()


# ---------------------------------------------------------------------- a phone (390×844)

HORIZONTAL_SCROLL = "() => document.scrollingElement.scrollWidth > document.scrollingElement.clientWidth"
SMALL_TARGETS = (  # the visible buttons and links under a selector smaller than 44×44 CSS pixels
    "(sel) => Array.from(document.querySelectorAll(sel + ' button, ' + sel + ' a'))"
    ".map(b => [b.innerText.trim() || b.getAttribute('aria-label'), b.getBoundingClientRect()])"
    ".filter(([, r]) => r.width > 0 && (r.width < 44 || r.height < 44))"
    ".map(([name, r]) => `${name} ${Math.round(r.width)}x${Math.round(r.height)}`)"
)


def _box(page, selector: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    found = page.locator(f"{selector} >> visible=true").first.bounding_box()
    assert found is not None, selector
    return dict(found)


def test_on_a_phone_the_selection_bar_stays_at_hand_with_touch_sized_buttons(
    local_page: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, PHONE)
    page.goto(local_page)
    _results(page, "a fish")
    for n in range(2):  # each photo's Select on the grid (it shows on hover)
        page.locator(".dl-jg .dl-tile").nth(n).hover()
        page.locator(".dl-jg .dl-sel").nth(n).click()
        page.locator(".st-key-selection-bar .dl-selected", has_text=f"{n + 1} selected").wait_for()
    page.get_by_role("button", name="Download 2 as zip").wait_for()
    assert not page.evaluate(HORIZONTAL_SCROLL)
    assert page.evaluate(SMALL_TARGETS, ".st-key-selection-bar") == []
    for name in ("Copy paths", "Move aside", "Clear selection"):  # icons on a phone, named for everyone
        page.locator(".st-key-selection-bar").get_by_role("button", name=name).wait_for()
    bar = _box(page, ".st-key-selection-bar")
    assert bar["y"] + bar["height"] <= PHONE["height"] and bar["width"] <= PHONE["width"]
    assert bar["height"] < PHONE["height"] / 4  # the photos stay in view above it
    page.mouse.move(195, 300)
    page.mouse.wheel(0, 1500)  # scrolled down the grid: the bar is where it was
    page.wait_for_timeout(400)
    assert _box(page, ".st-key-selection-bar") == bar
    _shot(page, "phone-selection-bar", tmp_path)
    assert _axe_violations(page) == [], "phone, photos selected"
    page.emulate_media(color_scheme="dark")  # the bar over the photos follows the system's theme
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('.st-key-selection-bar')).backgroundColor"
        " === 'rgb(14, 17, 23)'"
    )
    assert _axe_violations(page) == [], "phone, photos selected, dark"
    page.locator(".st-key-selection-bar").get_by_role("button", name="Clear selection").click()
    page.locator(".st-key-selection-bar").wait_for(state="detached")
    page.close()


def test_on_a_phone_the_viewer_shows_the_photo_above_its_details_with_touch_sized_controls(
    local_page: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, PHONE)
    page.goto(local_page)
    _results(page, "a fish")
    page.locator(GRID_IMAGES).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"1 of {PAGE_SIZE}").wait_for()
    dialog.locator('[data-testid="stImage"] img').first.wait_for()
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    assert not page.evaluate(HORIZONTAL_SCROLL)
    assert page.evaluate(SMALL_TARGETS, '[role="dialog"]') == []
    photo = _box(page, '[role="dialog"] [data-testid="stImage"] img')
    details = _box(page, '[role="dialog"] .dl-meta')
    assert photo["y"] + photo["height"] <= details["y"]  # the photo first, then what it is
    assert photo["y"] + photo["height"] <= PHONE["height"]  # seen whole without scrolling
    assert photo["x"] >= 0 and photo["x"] + photo["width"] <= PHONE["width"]
    previous, following = _box(page, ".st-key-viewer-prev button"), _box(page, ".st-key-viewer-next button")
    assert previous["y"] == following["y"]  # side by side, under the thumb
    assert _box(page, ".st-key-viewer-actual")["y"] > photo["y"]  # the 1:1 switch under the photo
    _shot(page, "phone-viewer", tmp_path)
    assert _axe_violations(page) == [], "phone viewer"
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_text(f"2 of {PAGE_SIZE}").wait_for()
    page.close()

"""The justified photo grid (ui/grid_component.py, ui/frontend/) in a real headless Chromium on real
shared photos: rows keep each photo's aspect ratio, >= 30 photos above the fold at 1440x900, ~3 a
row on a phone without horizontal scrolling, the keyboard (Tab to a photo, Enter opens the viewer,
Esc closes it and the focus comes back), hover chrome, touch (a tap opens, a long press selects),
shift-click ranges, Similar, and axe-core on desktop and phone in light and dark.

The collection: the first ``N_PHOTOS`` shared imagenet-sample photos (landscape and portrait), their
file dates in one month so the start page is a single grid. Skips cleanly without the shared data
or Debian chromium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.ui_fixtures import build_collection  # noqa: E402
from tests.helpers.ui_photo_server import IMAGENET, serve  # noqa: E402
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _axe_violations, _context  # noqa: E402

N_PHOTOS = 60
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
TILE = ".dl-jg .dl-tile"
MONTH = datetime(2020, 3, 1, 12, 0)

pytestmark = [
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not IMAGENET.is_dir(), reason="needs the shared imagenet-sample photos"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("ui-grid")
    photos, data = base / "photos", base / "data"
    photos.mkdir()
    for i, source in enumerate(sorted(IMAGENET.glob("*.JPEG"))[:N_PHOTOS]):
        copy = photos / source.name
        shutil.copyfile(source, copy)
        when = MONTH.timestamp() + i * 3600  # one month, newest last
        os.utime(copy, (when, when))
    build_collection(data, photos, Path("default"), None, "--no-ocr")
    with serve(data, base / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _open(browser, url: str, viewport: dict[str, int] = DESKTOP, **options: object):  # type: ignore[no-untyped-def]
    """A fresh page at ``url`` with the grid drawn and its images loaded."""
    page = browser.new_page(viewport=viewport, **options)
    page.set_default_timeout(60_000)
    page.goto(url)
    page.locator(TILE).nth(min(N_PHOTOS, 48) - 1).wait_for(state="attached")
    page.wait_for_function(
        "(sel) => Array.from(document.querySelectorAll(sel + ' img'))"
        ".every(i => i.complete && i.naturalWidth > 0 && i.closest('.dl-tile').style.width)",
        arg=TILE,
    )
    return page


def _boxes(page) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    return list(
        page.evaluate(
            "(sel) => Array.from(document.querySelectorAll(sel)).map(t => {"
            " const r = t.getBoundingClientRect(); const i = t.querySelector('img');"
            " return {top: r.top, bottom: r.bottom, width: r.width,"
            " height: r.height, nw: i.naturalWidth, nh: i.naturalHeight}; })",
            TILE,
        )
    )


def test_tiles_keep_each_photos_aspect_ratio(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server)
    boxes = _boxes(page)
    assert len(boxes) >= 30
    for box in boxes:  # the tile has the photo's shape (rounding to whole pixels aside)
        assert box["width"] / box["height"] == pytest.approx(box["nw"] / box["nh"], rel=0.04)
    portrait = [b for b in boxes if b["nh"] > 1.2 * b["nw"]]
    landscape = [b for b in boxes if b["nw"] > 1.2 * b["nh"]]
    assert portrait and landscape
    assert all(b["height"] > b["width"] for b in portrait)
    assert all(b["width"] > b["height"] for b in landscape)
    page.close()


def test_at_least_30_photos_show_above_the_fold_on_a_desktop(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server + "/?similar=1")  # one grid of results under the search bar
    _context(page, "Photos similar to").wait_for()
    height = page.evaluate("() => innerHeight")
    whole = [b for b in _boxes(page) if b["bottom"] <= height]
    assert len(whole) >= 30, f"{len(whole)} photos wholly above the fold at 1440x900"
    page.close()


def test_a_phone_shows_three_photos_a_row_without_horizontal_scrolling(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server, PHONE, is_mobile=True, has_touch=True)
    tops = [round(b["top"]) for b in _boxes(page)]
    rows = [tops.count(t) for t in dict.fromkeys(tops)][:-1]  # the last row may hold fewer
    assert sum(rows) / len(rows) >= 3
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    page.close()


def test_tab_reaches_a_photo_enter_opens_the_viewer_and_esc_brings_the_focus_back(
    server: str, browser
) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server)
    page.locator(".st-key-q input").focus()
    for _ in range(40):  # from the search box, through the chrome, to the first photo
        page.keyboard.press("Tab")
        if page.evaluate("() => !!document.activeElement.closest('.dl-open')"):
            break
    focused = page.evaluate("() => document.activeElement.closest('.dl-tile').dataset.id")
    name = page.evaluate("() => document.activeElement.querySelector('img').alt.split(',')[0]")
    page.wait_for_function(  # its actions show on focus
        "() => getComputedStyle(document.activeElement.closest('.dl-tile').querySelector('.dl-acts'))"
        ".opacity === '1'"
    )
    page.keyboard.press("Tab")  # the photo's own actions come next
    assert page.evaluate("() => document.activeElement.classList.contains('dl-sel')")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    dialog = page.locator('[data-testid="stDialog"]')
    dialog.get_by_text("Find similar photos").wait_for()
    assert name in dialog.locator(".dl-count").inner_text()  # the photo that had the focus
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    page.wait_for_function(
        "(id) => document.activeElement && document.activeElement.closest('.dl-tile')?.dataset.id === id",
        arg=focused,
        timeout=10_000,
    )
    page.close()


def test_hover_shows_a_photos_date_and_actions(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server)
    tile = page.locator(TILE).nth(3)
    acts = tile.locator(".dl-acts")
    assert acts.evaluate("a => getComputedStyle(a).opacity") == "0"
    tile.hover()
    page.wait_for_function("(a) => getComputedStyle(a).opacity === '1'", arg=acts.element_handle())
    assert tile.locator(".dl-date").inner_text().startswith("2020-03")
    assert tile.get_by_role("button", name="Similar to").is_visible()
    assert tile.get_by_role("button", name="View").is_visible()
    page.close()


def test_similar_on_a_tile_shows_photos_like_it(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server)
    tile = page.locator(TILE).nth(2)
    tile.hover()
    tile.locator(".dl-sim").click()
    _context(page, "Photos similar to").wait_for()
    page.locator(TILE).first.wait_for()
    assert "similar=" in page.url
    page.close()


def _touch_page(server: str, browser):  # type: ignore[no-untyped-def]
    return _open(
        browser, server + "/?similar=1", PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )


def test_a_long_press_selects_a_photo_and_opens_nothing(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _touch_page(server, browser)
    tile = page.locator(TILE).nth(1)
    box = tile.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    page.wait_for_timeout(900)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.locator(".dl-selected", has_text="1 selected").wait_for()
    tile.locator('.dl-sel[aria-checked="true"]').wait_for(state="attached", timeout=10_000)
    page.wait_for_timeout(1000)
    assert page.locator('[data-testid="stDialog"]').count() == 0  # the long press opened nothing
    page.close()


def test_a_tap_opens_a_photo(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _touch_page(server, browser)
    other = page.locator(TILE).nth(4)
    other.evaluate("(e) => e.scrollIntoView({block: 'center'})")
    other.locator(".dl-open").tap()
    page.locator('[data-testid="stDialog"]').get_by_text("Find similar photos").wait_for()
    page.close()


def test_shift_click_selects_a_range(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _open(browser, server + "/?similar=1")
    first, fourth = page.locator(TILE).nth(0), page.locator(TILE).nth(3)
    first.hover()
    first.locator(".dl-sel").click()
    page.locator(".dl-selected", has_text="1 selected").wait_for()
    fourth.hover()
    fourth.locator(".dl-sel").click(modifiers=["Shift"])
    page.locator(".dl-selected", has_text="4 selected").wait_for()
    page.wait_for_function(
        "(sel) => document.querySelectorAll(sel + ' .dl-sel[aria-checked=\"true\"]').length === 4", arg=TILE
    )
    page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_the_grid_passes_axe(server: str, browser, device: str, scheme: str) -> None:  # type: ignore[no-untyped-def]
    viewport = DESKTOP if device == "desktop" else PHONE
    page = _open(browser, server + "/?q=a+bird", viewport, color_scheme=scheme)
    page.locator(TILE).nth(1).hover()  # one photo's chrome showing
    page.locator(TILE).nth(2).locator(".dl-open").focus()
    assert _axe_violations(page) == []
    page.close()

"""A new user's defects of the justified grid (ui/frontend/src/grid.js) in a real headless Chromium on
real shared photos: Show more keeps the page where it was (the grid redrawn with more photos used to
empty for a moment and scroll the page to the top), and Esc after the viewer's Next gives the focus to
the photo seen last, not the one first opened; the viewer's details wrap between words on a phone.

The collection: the first ``N_PHOTOS`` shared imagenet-sample photos, ``PAGE_SIZE`` a page, so that
a Similar page has Show more. Skips cleanly without the shared data or Debian chromium.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.ui_fixtures import build_collection  # noqa: E402
from tests.helpers.ui_photo_server import IMAGENET, serve  # noqa: E402
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _context  # noqa: E402

N_PHOTOS = 100
PAGE_SIZE = 48
DESKTOP = {"width": 1440, "height": 900}
TILE = ".dl-jg .dl-tile"
SCROLLED = "() => document.querySelector('[data-testid=\"stMain\"]').scrollTop"

pytestmark = [
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not IMAGENET.is_dir(), reason="needs the shared imagenet-sample photos"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("ui-nu2")
    photos, data = base / "photos", base / "data"
    photos.mkdir()
    for source in sorted(IMAGENET.glob("*.JPEG"))[:N_PHOTOS]:
        shutil.copyfile(source, photos / source.name)
    build_collection(data, photos, Path("default"), None, "--no-ocr")
    with serve(data, base / "streamlit.log", DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _similar_page(browser, url: str):  # type: ignore[no-untyped-def]
    """A fresh desktop page of photos similar to photo 1, its first page of tiles laid out."""
    page = browser.new_page(viewport=DESKTOP)
    page.set_default_timeout(60_000)
    page.goto(url + "/?similar=1")
    _context(page, "Photos similar to").wait_for()
    page.wait_for_function(
        "(sel) => { const t = Array.from(document.querySelectorAll(sel));"
        " return t.length >= 20 && t.every(x => x.style.width); }",
        arg=TILE,
    )
    return page


def test_show_more_keeps_the_page_scrolled_where_it_was(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _similar_page(browser, server)
    shown = page.locator(TILE).count()
    more = page.get_by_role("button", name="Show more")
    more.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    before = page.evaluate(SCROLLED)
    assert before > 100
    more.click()
    page.wait_for_function(
        "([sel, n]) => { const t = Array.from(document.querySelectorAll(sel));"
        " return t.length > n && t.every(x => x.style.width); }",
        arg=[TILE, shown],
    )
    page.wait_for_timeout(500)  # the last paint
    assert page.evaluate(SCROLLED) == pytest.approx(before, abs=40)
    page.close()


def test_esc_after_next_gives_the_focus_to_the_photo_seen_last(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _similar_page(browser, server)
    page.locator(f"{TILE} .dl-open").nth(0).click()
    dialog = page.locator('[data-testid="stDialog"]')
    dialog.get_by_text("Find similar photos").wait_for()
    seen = page.evaluate("() => new URLSearchParams(location.search).get('photo')")
    for _ in range(2):  # twice: the second Next comes after the rerun of the first
        dialog.get_by_role("button", name="Next").click()
        page.wait_for_function(
            "(id) => { const p = new URLSearchParams(location.search).get('photo'); return p && p !== id; }",
            arg=seen,
        )
        seen = page.evaluate("() => new URLSearchParams(location.search).get('photo')")
        dialog.get_by_text("Find similar photos").wait_for()
    page.wait_for_timeout(500)  # the viewer drawn with the next photo
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    page.wait_for_function(
        "(id) => document.activeElement && document.activeElement.closest('.dl-tile')?.dataset.id === id",
        arg=seen,
        timeout=10_000,
    )
    page.close()


def test_the_viewers_details_wrap_between_words_on_a_phone(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.set_default_timeout(60_000)
    page.goto(server + "/?similar=1&photo=1")
    page.locator('[data-testid="stDialog"] .dl-meta').wait_for()
    split = page.evaluate(  # words (not long paths) of the details drawn on more than one line
        "() => { const out = [];"
        " for (const td of document.querySelectorAll('.dl-meta td:last-child')) {"
        "  const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);"
        "  for (let n = walk.nextNode(); n; n = walk.nextNode()) {"
        "   for (const m of n.data.matchAll(/\\S+/g)) {"
        "    if (m[0].length > 20) continue;"
        "    const r = document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);"
        "    const tops = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));"
        "    if (tops.size > 1) out.push(m[0]); } } }"
        " return out; }"
    )
    assert page.evaluate("() => document.querySelectorAll('.dl-meta td').length") > 10
    assert split == []
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    page.close()

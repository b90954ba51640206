"""Issue #28's defects of the search page, each driven in a real headless Chromium against real
photos: 48 of the shared imagenet-sample (one a day from 2020-01-01 as their file dates), indexed
with the offline default model, pages of 12 and a cap of 24 photos.

Skips cleanly without Debian's chromium or the shared photos. Screenshots go to
``$DUALENS_UI_SCREENSHOTS`` when it names a folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.test_ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    _context,
    _free_port,
    _page,
    _result_names,
    _results,
    _shot,
    _wait_healthy,
)

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.ui_fixtures import build_collection  # noqa: E402
from ui.commands import streamlit_argv  # noqa: E402

IMAGENET = next(  # the shared data beside the checkout, or beside the folder of worktrees
    (
        up / "shared" / "datasets" / "imagenet-sample"
        for up in Path(__file__).resolve().parents[2:4]
        if (up / "shared" / "datasets" / "imagenet-sample").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-sample",
)
N_PHOTOS, PAGE_SIZE, MAX_RESULTS = 48, 12, 24
GOLDFISH = "n01443537_goldfish.JPEG"
FIRST_DAY = datetime(2020, 1, 1, 12, 0)

pytestmark = [
    # a real browser on a shared 2-core machine: a click can land during a rerun of the page
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not IMAGENET.is_dir(), reason="needs the shared imagenet-sample photos"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("ui-defects")
    photos, data = base / "photos", base / "data"
    photos.mkdir()
    for day, source in enumerate(sorted(IMAGENET.glob("*.JPEG"))[:N_PHOTOS]):
        copy = photos / source.name
        shutil.copyfile(source, copy)
        stamp = FIRST_DAY.timestamp() + day * 86_400
        os.utime(copy, (stamp, stamp))
    build_collection(data, photos, Path("default"))
    port = _free_port()
    env = dict(
        os.environ,
        DUALENS_DATA=str(data),
        DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE),
        DUALENS_UI_MAX_RESULTS=str(MAX_RESULTS),
        HF_HUB_OFFLINE="1",
    )
    log = (base / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        streamlit_argv(data, "127.0.0.1", port), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _page_of(browser) -> object:  # type: ignore[no-untyped-def]
    page = _page(browser, DESKTOP)
    page.set_default_timeout(20_000)
    return page


GRID_IMAGES = ".dl-jg .dl-tile img"


def _grid_full(page, n: int = PAGE_SIZE) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[GRID_IMAGES, n])


def _focused_on(page, selector: str, text: str = "") -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "([sel, text]) => { const a = document.activeElement;"
        " return a && a.closest(sel) !== null && a.innerText.includes(text); }",
        arg=[selector, text],
        timeout=10_000,
    )


def _upload(page, path: Path) -> None:  # type: ignore[no-untyped-def]
    expander = page.get_by_text("Search with a photo instead")
    chooser = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    if not chooser.count():
        expander.click()
    chooser.set_input_files(str(path))


def test_a_query_in_the_url_is_shown_literally_never_as_a_link_or_bold(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    query = "[Your session expired - sign in again](http://login.example.invalid/) **bold** :red[x] a@b.com"
    page = _page_of(browser)
    page.goto(f"{server}/?q={urllib.parse.quote_plus(query)}")
    banner = page.locator('[data-testid="stAlert"]', has_text="No good matches for")
    banner.wait_for()
    assert query in banner.inner_text().replace("\u2060", "")  # an invisible joiner keeps URLs text
    assert page.locator('a[href*="login.example.invalid"]').count() == 0
    assert "bold" not in [t.strip() for t in banner.locator("strong, em").all_inner_texts()]
    # the way back from a Similar names the query too, on a button (Markdown as well)
    page.locator(".dl-jg .dl-tile").first.hover()
    page.locator(".dl-jg .dl-sim").first.click()
    back = page.locator(".st-key-back button")
    back.wait_for()
    assert query in back.inner_text().replace("\u2060", "")
    assert back.locator("a, strong").count() == 0
    _shot(page, "desktop-literal-query", tmp_path)
    page.close()


def test_esc_closes_a_viewer_opened_by_clicking_its_thumbnail(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(server)
    _results(page, "goldfish")
    _grid_full(page)
    page.locator(".dl-jg .dl-tile img").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("1 of").wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=10_000)
    page.close()


def test_a_new_search_takes_the_previous_photos_away_at_once(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(server)
    _results(page, "goldfish")
    _grid_full(page)
    # every photo node of the first results is marked; while the page changes, any marked node that
    # still shows its old photo, visible, under the new heading is recorded
    page.evaluate(
        """() => {
        const imgs = () => document.querySelectorAll('.dl-jg .dl-tile img');
        imgs().forEach((img) => { img.__old = img.src; });
        const shown = (el) => { let o = 1; for (let e = el; e; e = e.parentElement) {
            const s = getComputedStyle(e); if (s.display === 'none' || s.visibility === 'hidden') return 0;
            o *= parseFloat(s.opacity); } return o; };
        window.__stale = 0;
        const check = () => {
          const line = document.querySelector('.dl-context');
          if (!line || !line.innerText.includes('a red car')) return;
          imgs().forEach((img) => { if (img.__old === img.src && shown(img) > 0.5) window.__stale += 1; });
        };
        new MutationObserver(check).observe(document.body, {subtree: true, childList: true,
            attributes: true, characterData: true});
    }"""
    )
    _results(page, "a red car")
    _grid_full(page)
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__stale") == 0
    page.close()


def test_find_similar_in_the_viewer_brings_the_new_results_line_into_view_with_the_focus(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(server)
    _results(page, "goldfish")
    _grid_full(page)
    page.locator(".dl-jg .dl-open").last.click()  # the page scrolled down
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"{PAGE_SIZE} of {PAGE_SIZE}").wait_for()
    dialog.get_by_role("button", name="Find similar photos").click()
    _context(page, "Photos similar to").wait_for()
    _focused_on(page, ".dl-context", "Photos similar to")
    box = page.locator(".dl-context").bounding_box()
    assert box is not None and 0 <= box["y"] < DESKTOP["height"]
    _shot(page, "desktop-viewer-similar", tmp_path)
    page.close()


def test_a_photo_viewed_over_an_upload_never_stays_in_the_url(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(server)
    _results(page, "goldfish")
    _upload(page, IMAGENET / GOLDFISH)
    _context(page, "Photos like").wait_for()
    _grid_full(page)
    page.locator(".dl-jg .dl-open").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("1 of").wait_for()
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="detached")
    page.go_back()
    page.locator(".st-key-q input").wait_for()
    page.wait_for_timeout(1_000)  # the page a Back reloads, drawn
    assert "photo=" not in page.url
    assert page.get_by_role("dialog").count() == 0
    _results(page, "a red car")
    assert "photo=" not in page.url
    assert page.get_by_role("dialog").count() == 0
    page.close()


def test_focus_follows_a_removed_filter_chip_to_the_results_line_and_clear_to_the_search_box(
    server: str, browser
) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(f"{server}/?q=goldfish&from=2020-01-01&to=2020-01-20")
    chip = page.get_by_role("button", name="Taken 2020-01-01 – 2020-01-20")
    chip.wait_for()
    chip.click()
    chip.wait_for(state="detached")
    _focused_on(page, ".dl-context", "Results for")
    page.locator(".st-key-clear button").click()
    _focused_on(page, ".st-key-q")
    page.close()


def test_a_refused_upload_keeps_the_results_of_the_earlier_one(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is a text file, not a photo\n")
    page = _page_of(browser)
    page.goto(server)
    _upload(page, IMAGENET / GOLDFISH)
    _context(page, "Photos like").wait_for()
    _grid_full(page)
    before = _result_names(page)
    _upload(page, fake)
    page.get_by_text("not an image").wait_for()
    page.wait_for_timeout(1_000)  # the rerun, drawn
    _context(page, f"Photos like {GOLDFISH}").wait_for(timeout=5_000)
    assert _result_names(page) == before
    page.close()


def test_viewer_next_loads_the_next_page_and_the_cap_replaces_show_more_with_a_note(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(server)
    _results(page, "a fish")
    page.get_by_text(f"{PAGE_SIZE} of {N_PHOTOS} photos").wait_for()
    page.locator(".dl-jg .dl-open").last.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"{PAGE_SIZE} of {PAGE_SIZE}").wait_for()
    dialog.get_by_role("button", name="Next").click(timeout=5_000)
    dialog.get_by_text(f"{PAGE_SIZE + 1} of {MAX_RESULTS}").wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    page.get_by_text(f"{MAX_RESULTS} of {N_PHOTOS} photos").wait_for()
    page.get_by_text(f"The best {MAX_RESULTS} photos are shown").wait_for()
    assert page.get_by_role("button", name="Show more").count() == 0
    _shot(page, "desktop-result-cap", tmp_path)
    page.close()


def test_a_typed_date_range_applies_on_enter(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page_of(browser)
    page.goto(server)
    _results(page, "goldfish")
    page.get_by_text(f"{PAGE_SIZE} of {N_PHOTOS} photos").wait_for()
    page.locator('.st-key-f_dates [role="spinbutton"]').first.click()
    page.keyboard.type("20200101")
    page.keyboard.press("Tab")  # to the end date
    page.keyboard.type("20200110")
    page.keyboard.press("Enter")
    page.get_by_text("10 of 10 photos").wait_for(timeout=10_000)  # a photo a day
    assert "from=2020-01-01&to=2020-01-10" in page.url
    page.get_by_role("button", name="Taken 2020-01-01 – 2020-01-10").wait_for()
    page.close()

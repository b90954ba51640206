"""End to end in a real headless Chromium: `streamlit run` on a free localhost port; the loading
state of a cold start, a query, Similar and its way back, the photo viewer, Back and Forward, a
phone's layout, nonsense and broken quotes, and an axe-core accessibility scan of each page.

Skips cleanly without Debian's chromium (``.ci/run`` installs it). Screenshots of desktop and phone
(query, viewer, empty state, filters) go to ``$DUALENS_UI_SCREENSHOTS`` when it names a folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.ui_fixtures import build_collection, make_photos  # noqa: E402
from ui.commands import streamlit_argv  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_SIZE = 12
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 1000}

pytestmark = [
    # a real browser on a shared 2-core machine: a click can land during a rerun of the page
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


# a JS predicate: the image is on the screen now (the grid's tiles below it load lazily, when scrolled near)
IN_VIEW = "(img) => { const r = img.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; }"


def _page(browser, viewport: dict[str, int] = DESKTOP, scale: float = 1):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport=viewport, device_scale_factor=scale, accept_downloads=True)
    page.set_default_timeout(60_000)
    return page


def _shot(page, name: str, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A screenshot, kept in $DUALENS_UI_SCREENSHOTS when set."""
    path = tmp_path / f"{name}.png"
    page.wait_for_function(  # every widget drawn (no placeholder skeletons), every image in view loaded
        "() => !document.querySelector('[data-testid*=\"Skeleton\"]') && Array.from(document.images)"
        f".filter({IN_VIEW}).every(img => img.complete && img.naturalWidth > 0)"
    )
    page.wait_for_timeout(300)  # the last paint
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5_000
    keep = os.environ.get("DUALENS_UI_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(keep) / path.name)
    return path


def _axe_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Serious and critical axe-core violations of the page as it is now."""
    axe = pytest.importorskip("axe_playwright_python")
    page.add_script_tag(path=str(Path(axe.__file__).parent / "axe.min.js"))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, node: v.nodes[0] && v.nodes[0].html}))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['node']}" for v in found if v["impact"] in ("serious", "critical")
    ]


def _results(page, text: str) -> None:  # type: ignore[no-untyped-def]
    box = page.locator(".st-key-q input")
    box.fill(text)
    box.press("Enter")
    _context(page, "Results for").wait_for()
    page.locator(".dl-jg .dl-tile img").first.wait_for()
    page.wait_for_function("() => !document.querySelector('.st-key-timeline .dl-jg')")  # the start page gone
    page.wait_for_function(  # the grid laid out: every tile placed in its row
        "() => { const t = Array.from(document.querySelectorAll('.dl-jg .dl-tile'));"
        " return t.length > 0 && t.every(x => x.style.width); }"
    )


def _context(page, text: str):  # type: ignore[no-untyped-def]
    """The line above the results saying what they are."""
    return page.locator(".dl-context", has_text=text).first


def _columns(page) -> int:  # type: ignore[no-untyped-def]
    """Photos in the grid's first row."""
    return int(
        page.evaluate(
            "() => { const tops = Array.from(document.querySelectorAll("
            "'.dl-jg .dl-tile img'))"
            ".map(i => Math.round(i.getBoundingClientRect().top));"
            " return tops.filter(t => t === tops[0]).length; }"
        )
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[str]:
    base = tmp_path_factory.mktemp("ui-browser")
    photos, data = base / "photos", base / "data"
    make_photos(photos, n=30)
    build_collection(data, photos, tiny_model_dir)
    port = _free_port()
    # PyTorch for the model: its import and load make a cold start take seconds, as a user's does
    env = dict(
        os.environ,
        DUALENS_DATA=str(data),
        DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE),
        HF_HUB_OFFLINE="1",
        DUALENS_BACKEND="torch",
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


def _result_names(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [n.strip() for n in page.locator(".dl-name").all_inner_texts()]


def test_a_cold_start_shows_its_loading_state_then_focuses_search(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    # what the page says while it starts, however briefly: recorded as it appears
    page.add_init_script(
        "window.__said = []; new MutationObserver(() => {"
        " const t = document.body ? document.body.innerText : '';"
        " if (/Starting dualens|Loading the model|Loading the collection/.test(t))"
        " window.__said.push(t.slice(0, 200)); })"
        ".observe(document, {subtree: true, childList: true, characterData: true});"
    )
    page.goto(server)  # the first page of this server: the model layer is not imported yet
    page.locator(".st-key-q input").wait_for()
    assert page.evaluate("() => window.__said.length") > 0
    page.wait_for_function("() => document.activeElement && document.activeElement.closest('.st-key-q')")
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.closest('.st-key-q') !== null")
    page.close()


def test_query_then_similar_in_a_real_browser(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    box = page.get_by_placeholder("Describe a photo", exact=False)
    box.fill("a red car")
    box.press("Enter")
    _context(page, "Results for").wait_for()
    page.locator(".dl-name").nth(PAGE_SIZE - 1).wait_for()
    thumbs = page.locator(".dl-jg .dl-tile img")
    # names and thumbnails are separate elements, rendered one after another: wait for the last
    thumbs.nth(PAGE_SIZE - 1).wait_for()
    assert thumbs.count() >= PAGE_SIZE
    first = _result_names(page)
    assert len(first) == PAGE_SIZE
    page.get_by_text("12 of 30 photos").wait_for()

    source = first[0]
    page.get_by_role("button", name="Similar").first.click()
    _context(page, "Photos similar to").wait_for()
    # wait for the whole new grid (Streamlit re-renders it element by element)
    page.wait_for_function(
        "([name, n]) => { const names = Array.from(document.querySelectorAll('.dl-name'));"
        " return names.length === n && !names.some(e => e.innerText.trim() === name); }",
        arg=[source, PAGE_SIZE],
    )
    second = _result_names(page)
    assert len(second) == PAGE_SIZE
    assert source not in second
    assert second != first
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.dl-jg .dl-tile img'))"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    assert "Traceback" not in page.content()
    _shot(page, "desktop-similar", tmp_path)
    page.close()


def test_similar_offers_the_way_back_and_browser_back_and_forward_restore_each_page(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    _results(page, "a red car")
    first = _result_names(page)
    # each card's buttons name their photo; the focus follows the click to the new results
    page.get_by_role("button", name=f"Similar to {first[0]}").wait_for()
    page.get_by_role("button", name=f"View {first[0]}").wait_for()
    page.locator(".dl-jg .dl-tile").first.hover()
    page.locator(".dl-jg .dl-sim").first.click()
    _context(page, "Photos similar to").wait_for()
    assert "similar=" in page.url
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.classList.contains('dl-context')"
        " && document.activeElement.innerText.includes('Photos similar to')"
    )
    page.get_by_role("button", name=re.compile("Back to results for")).click()
    _context(page, "Results for").wait_for()
    page.wait_for_function("() => document.querySelector('.st-key-q input')?.value === 'a red car'")
    page.locator(".dl-jg .dl-tile").first.hover()
    page.locator(".dl-jg .dl-sim").first.click()
    _context(page, "Photos similar to").wait_for()
    _results(page, "a blue boat")
    page.go_back()
    _context(page, "Photos similar to").wait_for()
    page.go_back()
    _context(page, "Results for").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.dl-name').length >= 12")
    page.wait_for_function("() => document.querySelector('.st-key-q input')?.value === 'a red car'")
    assert _result_names(page) == first
    page.go_forward()
    _context(page, "Photos similar to").wait_for()
    page.close()


def test_viewer_steps_with_the_arrow_keys_downloads_the_original_and_closes_with_esc(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    _results(page, "a red car")
    _shot(page, "desktop-query", tmp_path)
    assert _columns(page) >= 6
    assert _axe_violations(page) == []
    names = _result_names(page)
    page.locator(".dl-jg .dl-tile img").first.click()  # the thumbnail itself
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"1 of {len(names)}").wait_for()
    assert re.search(r"photo=\d+", page.url)
    alt = dialog.locator('[data-testid="stImage"] img').get_attribute("alt") or ""
    assert alt.startswith(names[0])
    with page.expect_download() as download:
        dialog.get_by_role("button", name="Download original").click()
    saved = tmp_path / "download"
    download.value.save_as(saved)
    assert saved.read_bytes()[:2] == b"\xff\xd8"  # the JPEG itself
    page.keyboard.press("ArrowRight")
    dialog.get_by_text(f"2 of {len(names)}").wait_for()
    assert names[1] in dialog.inner_text()
    _shot(page, "desktop-viewer", tmp_path)
    assert _axe_violations(page) == []
    page.keyboard.press("ArrowLeft")
    dialog.get_by_text(f"1 of {len(names)}").wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    page.wait_for_function("() => !window.location.search.includes('photo=')")
    page.close()


def test_a_phone_gets_three_photos_a_row_and_a_reachable_search_box(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, PHONE, scale=3)
    page.goto(server)
    box = page.locator(".st-key-q input")
    box.wait_for()
    assert box.is_visible() and box.bounding_box()["y"] < PHONE["height"]
    _results(page, "a red car")
    assert _columns(page) >= 3
    _shot(page, "phone-query", tmp_path)
    # sharp at the phone's pixel ratio: every thumbnail on screen (those below load lazily) has at
    # least as many pixels as it covers, or is its whole original (the fixture's are at most 96 px: a
    # thumbnail never blows one up)
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.dl-jg .dl-tile img'))"
        ".filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth)"
    )
    assert page.evaluate(
        "() => Array.from(document.querySelectorAll('.dl-jg .dl-tile img'))"
        ".filter(i => i.getBoundingClientRect().top < innerHeight).every(img => {"
        " const has = Math.max(img.naturalWidth, img.naturalHeight);"
        " const needs = Math.max(img.clientWidth, img.clientHeight) * window.devicePixelRatio;"
        " return has >= needs || has <= 96; })"
    )
    assert _axe_violations(page) == []
    page.locator(".dl-jg .dl-open").first.click()
    page.get_by_role("dialog").get_by_text("1 of").wait_for()
    _shot(page, "phone-viewer", tmp_path)
    page.close()


def test_nonsense_gets_no_good_matches_and_broken_quotes_are_plain_text(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    _results(page, "xqzvbnm plorf wubble")
    page.get_by_text("No good matches for").wait_for()
    _results(page, '"golden retriever puppy')
    assert page.get_by_text("expected + or -").count() == 0
    assert len(_result_names(page)) > 0
    page.close()


def test_filters_come_from_the_url_and_an_empty_page_offers_a_reset(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(f"{server}/?q=a+red+car&place=Paris")
    _context(page, "Results for").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.dl-name').length > 0")
    assert len(_result_names(page)) == 6  # every fifth of the 30 photos was taken in Paris
    _shot(page, "desktop-filters", tmp_path)
    page.goto(f"{server}/?q=a+red+car&place=Paris&match=strong")
    page.get_by_text("No photos match").wait_for()
    _shot(page, "desktop-empty", tmp_path)
    assert _axe_violations(page) == []
    page.get_by_role("button", name="Reset filters").click()
    page.wait_for_function("() => document.querySelectorAll('.dl-name').length >= 12")
    phone = _page(browser, PHONE, scale=3)
    phone.goto(f"{server}/?q=a+red+car&place=Paris")
    phone.get_by_role("button", name="Place: Paris").wait_for()  # the filter, removable, above the results
    _shot(phone, "phone-filters", tmp_path)
    phone.goto(f"{server}/?q=a+red+car&place=Paris&match=strong")
    phone.get_by_text("No photos match").wait_for()
    _shot(phone, "phone-empty", tmp_path)
    phone.close()
    page.close()


def test_an_upload_after_a_bad_file_replaces_it_and_shows_the_photo_searched_with(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    bad, good = tmp_path / "broken.jpg", tmp_path / "mine.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    Image.new("RGB", (300, 200), (200, 30, 30)).save(good, quality=90)
    page = _page(browser)
    page.goto(server)
    _results(page, "a red car")
    before = _result_names(page)
    page.get_by_text("Search with a photo instead").click()
    chooser = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    chooser.set_input_files(str(bad))
    page.get_by_text("not an image").wait_for()
    assert _result_names(page) == before  # a failed upload leaves the results alone
    chooser.set_input_files(str(good))
    _context(page, "Photos like").wait_for()
    page.wait_for_function("() => !document.body.innerText.includes('not an image')")
    assert page.locator('[data-testid="stFileChip"]').count() == 1  # the bad file replaced, not kept
    preview = page.locator('img[alt="your photo mine.jpg"]')
    preview.wait_for()
    assert preview.bounding_box()["width"] >= 120
    page.close()

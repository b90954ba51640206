"""End to end in a real headless Chromium: `streamlit run` on a free localhost port, type a query,
see thumbnails, click "Similar", see new results, save a screenshot.

Skips cleanly without Debian's chromium (``.ci/run`` installs it). Set ``DUALENS_UI_SCREENSHOT``
to a file path to keep a copy of the screenshot.
"""

from __future__ import annotations

import os
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

pytestmark = [
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
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[str]:
    base = tmp_path_factory.mktemp("ui-browser")
    photos, data = base / "photos", base / "data"
    make_photos(photos, n=30)
    build_collection(data, photos, tiny_model_dir)
    port = _free_port()
    env = dict(os.environ, DUALENS_DATA=str(data), DUALENS_UI_PAGE_SIZE=str(PAGE_SIZE), HF_HUB_OFFLINE="1")
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


def test_query_then_similar_in_a_real_browser(server: str, tmp_path: Path) -> None:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(server)
            box = page.get_by_placeholder("Describe a photo", exact=False)
            box.fill("a red car")
            box.press("Enter")
            page.get_by_text("Results for").wait_for()
            page.locator(".dl-name").nth(PAGE_SIZE - 1).wait_for()
            thumbs = page.locator('[data-testid="stImage"] img')
            # names and thumbnails are separate elements, rendered one after another: wait for the last
            thumbs.nth(PAGE_SIZE - 1).wait_for()
            assert thumbs.count() >= PAGE_SIZE
            first = _result_names(page)
            assert len(first) == PAGE_SIZE
            page.get_by_text("12+ results").wait_for()

            source = first[0]
            page.get_by_role("button", name="Similar").first.click()
            page.get_by_text("Photos similar to").wait_for()
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
                "() => Array.from(document.querySelectorAll('[data-testid=\"stImage\"] img'))"
                ".every(img => img.complete && img.naturalWidth > 0)"
            )
            assert "Traceback" not in page.content()
            shot = tmp_path / "ui-screenshot.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("DUALENS_UI_SCREENSHOT")
            if keep:
                shutil.copyfile(shot, keep)
        finally:
            browser.close()

"""The page before its collection has loaded, in a real headless Chromium (ui/warmup.py).

The server runs ``ui/app.py`` through a wrapper script that holds the backend's first load until the
test opens a gate file, so "still loading" is a state the test controls, not a race: the search box
must be usable at once, a query typed then must run as soon as the load ends, and a collection that
cannot be loaded must still say so in its one-line message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.ui_fixtures import build_collection, make_photos  # noqa: E402
from tests.test_ui_browser import (  # noqa: E402
    CHROMIUM,
    _context,
    _free_port,
    _page,
    _wait_healthy,
    browser,
)

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared

ROOT = Path(__file__).resolve().parents[1]
BOX = ".st-key-q input"
LOADING = "Loading the collection"
GATED_APP = """
import runpy, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from ui import warmup

if not getattr(warmup, "_held_by_test", False):  # once per server: every page run comes here
    _real_run = warmup._run

    def _held(*args):
        while not Path({gate!r}).exists():
            time.sleep(0.05)
        _real_run(*args)

    warmup._run, warmup._held_by_test = _held, True
runpy.run_path({app!r}, run_name="__main__")
"""

pytestmark = [
    pytest.mark.flaky(reruns=1, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


@contextmanager
def _held_server(base: Path, data: Path, gate: Path) -> Iterator[str]:
    """``streamlit run`` of the page with its first backend load held until ``gate`` exists."""
    app = base / "held_app.py"
    app.write_text(GATED_APP.format(root=str(ROOT), gate=str(gate), app=str(ROOT / "ui" / "app.py")))
    port = _free_port()
    env = dict(os.environ, DUALENS_DATA=str(data), HF_HUB_OFFLINE="1", DUALENS_UI_PAGE_SIZE="12")
    env.pop("DUALENS_API_URL", None)
    argv = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless=true"]
    argv += [f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"]
    with (base / "streamlit.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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


@pytest.fixture(scope="module")
def photos_and_data(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ui-start")
    photos, data = base / "photos", base / "data"
    make_photos(photos, n=12)
    build_collection(data, photos, tiny_model_dir)
    return photos, data


def test_a_query_typed_while_the_collection_loads_runs_once_it_is_loaded(  # type: ignore[no-untyped-def]
    photos_and_data: tuple[Path, Path], tmp_path: Path, browser
) -> None:
    gate = tmp_path / "open"
    with _held_server(tmp_path, photos_and_data[1], gate) as url:
        page = _page(browser)
        page.goto(url)
        box = page.locator(BOX)
        box.wait_for()
        assert box.is_enabled()
        page.get_by_text(LOADING).first.wait_for()  # the load is held: the box came before it
        box.fill("a red photo")
        box.press("Enter")
        page.wait_for_timeout(500)  # the query reached the server while it still loads
        assert page.get_by_text(LOADING).first.is_visible()
        gate.touch()
        _context(page, "Results for").wait_for(timeout=45_000)
        page.locator(".dl-jg .dl-tile img").first.wait_for()  # a result photo in the grid
        assert page.locator(BOX).input_value() == "a red photo"
        assert page.get_by_text(LOADING).count() == 0
        assert "Traceback" not in page.inner_text("body")
        page.close()


def test_a_broken_collection_still_says_so_after_the_search_box_came_first(  # type: ignore[no-untyped-def]
    photos_and_data: tuple[Path, Path], tmp_path: Path, browser
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert (photos_and_data[1] / "dualens.sqlite").is_file()
    (data / "dualens.sqlite").write_bytes(b"this is not a database" * 100)
    gate = tmp_path / "open"
    with _held_server(tmp_path, data, gate) as url:
        page = _page(browser)
        page.goto(url)
        page.locator(BOX).wait_for()
        page.get_by_text(LOADING).first.wait_for()
        gate.touch()
        page.locator(BOX).wait_for(state="detached", timeout=45_000)
        body = page.inner_text("body")
        assert "Traceback" not in body and LOADING not in body
        assert "The collection cannot be opened" in body
        page.close()

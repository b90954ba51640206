"""Add photos from the page in a real headless Chromium, on real photos: a collection of 4 of
../shared/datasets/imagenet-sample (the offline default model), then a folder of 20 more added from
the sidebar; its progress is shown live and reaches done, and a search finds the new photos without
a restart. A folder outside what the server may read is refused in one line. Skips without
chromium or the shared photos.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.test_ui_browser import CHROMIUM, _page, _results, browser  # noqa: E402
from tests.test_ui_browser_review import _shared, _streamlit  # noqa: E402

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared

IMAGENET = _shared("imagenet-sample")
FIRST, ADDED = 4, 20

pytestmark = [
    # a real browser on a shared 2-core machine: a click can land during a rerun of the page
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(IMAGENET is None, reason="../shared/datasets/imagenet-sample is absent"),
]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(data directory of 4 indexed photos, a folder of 20 other photos not indexed yet)."""
    from ui.cli import main

    assert IMAGENET is not None
    sources = sorted(IMAGENET.glob("*.JPEG"))
    photos, new, data = tmp_path / "photos", tmp_path / "new", tmp_path / "data"
    photos.mkdir()
    new.mkdir()
    for source in sources[:FIRST]:
        shutil.copy2(source, photos / source.name)
    for source in sources[100 : 100 + ADDED]:
        shutil.copy2(source, new / source.name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    assert main(["index", "--data", str(data), "--model", "default", "--no-progress", str(photos)]) == 0
    return data, new


@pytest.fixture
def server(world: tuple[Path, Path]) -> Iterator[str]:
    with _streamlit(world[0], DUALENS_UI_ADD_FOLDERS=str(world[1].parent)) as url:
        yield url


def _add(page, folder: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_label("Folder to add", exact=True)
    if not box.is_visible():
        page.get_by_text("Add photos").click()
    box.fill(folder)
    box.press("Enter")
    page.wait_for_timeout(500)  # the typed folder reaches the server before Start
    page.get_by_role("button", name="Start").click()


def test_a_folder_added_from_the_page_shows_progress_and_its_photos_are_found(
    server: str, world: tuple[Path, Path], browser
) -> None:  # type: ignore[no-untyped-def]
    _, new = world
    page = _page(browser)
    page.add_init_script(  # what the status line said while the run went on, however briefly
        "window.__said = []; new MutationObserver(() => {"
        " const t = document.body ? document.body.innerText : '';"
        " const m = t.match(/Indexing: \\d+ of \\d+ photos[^\\n]*/); if (m) window.__said.push(m[0]); })"
        ".observe(document, {subtree: true, childList: true, characterData: true});"
    )
    page.goto(server)
    page.get_by_text(f"{FIRST}", exact=True).first.wait_for()
    _add(page, "/etc")
    page.get_by_text("outside the folders this server may read", exact=False).wait_for()
    _add(page, str(new))
    page.get_by_text("Done: indexed 20,", exact=False).wait_for(timeout=150_000)
    said = page.evaluate("() => window.__said")
    assert any(f"of {ADDED} photos" in line for line in said), said
    name = sorted(new.glob("*.JPEG"))[0].name  # "n0…_<class>.JPEG": search for its class
    _results(page, name.split("_", 1)[1].rsplit(".", 1)[0].replace("_", " "))
    page.get_by_text(f"of {FIRST + ADDED} photos").first.wait_for()
    assert name in [n.strip() for n in page.locator(".dl-name").all_inner_texts()]
    page.close()

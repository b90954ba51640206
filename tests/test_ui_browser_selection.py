"""Multi-select in a real headless Chromium on real photos (24 of ../shared/datasets/imagenet-sample,
indexed with the offline default model): three photos selected and downloaded as a zip that holds
exactly their originals, byte for byte; their paths to copy; two moved aside and put back with Undo;
axe-core clean with the selection bar shown, on a desktop and a phone. Skips without chromium or
the shared photos.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.test_ui_browser import (  # noqa: E402
    CHROMIUM,
    DESKTOP,
    PHONE,
    _axe_violations,
    _page,
    _results,
    _shot,
    browser,
)
from tests.test_ui_browser_review import _shared, _streamlit  # noqa: E402

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared

IMAGENET = _shared("imagenet-sample")
N_PHOTOS = 24

pytestmark = [
    # a real browser on a shared 2-core machine: a click can land during a rerun of the page
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(IMAGENET is None, reason="../shared/datasets/imagenet-sample is absent"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data directory, photos root): real photos, indexed with the offline default model."""
    from ui.cli import main

    assert IMAGENET is not None
    base = tmp_path_factory.mktemp("selection")
    photos, data = base / "photos", base / "data"
    photos.mkdir()
    for source in sorted(IMAGENET.glob("*.JPEG"))[:N_PHOTOS]:
        shutil.copy2(source, photos / source.name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    assert main(["index", "--data", str(data), "--model", "default", "--no-progress", str(photos)]) == 0
    return data, photos


@pytest.fixture(scope="module")
def server(world: tuple[Path, Path]) -> Iterator[str]:
    with _streamlit(world[0], DUALENS_UI_PAGE_SIZE="12") as url:
        yield url


def _select(page, n: int) -> None:  # type: ignore[no-untyped-def]
    """Tick the Select box of the first ``n`` cards, one at a time (each click reruns the page)."""
    for i in range(n):
        page.locator(".dl-jg .dl-tile").nth(i).hover()  # its Select shows on hover
        page.locator(".dl-jg .dl-sel").nth(i).click()
        page.get_by_text(f"{i + 1} selected", exact=True).wait_for()
        page.wait_for_function(  # the grid redrawn with the selection (not only the bar)
            "(n) => document.querySelectorAll('.dl-jg .dl-sel[aria-checked=\"true\"]').length === n",
            arg=i + 1,
        )


def _selected_paths(page) -> list[str]:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Copy paths").click()
    code = page.locator('[data-testid="stPopoverBody"] code').first
    code.wait_for()
    paths = [line.strip() for line in code.inner_text().splitlines() if line.strip()]
    page.keyboard.press("Escape")
    return paths


def _count_line(page) -> str:  # type: ignore[no-untyped-def]
    return str(page.locator(".dl-count").first.inner_text())


def test_three_selected_photos_download_as_a_zip_of_exactly_their_originals(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    _results(page, "a fish")
    _select(page, 3)
    paths = _selected_paths(page)
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
    with page.expect_download() as event:
        page.get_by_role("button", name="Download 3 as zip").click()
    saved = tmp_path / "selection.zip"
    event.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == sorted(Path(p).name for p in paths)
        for p in paths:
            assert archive.read(Path(p).name) == Path(p).read_bytes()
    page.close()


def test_two_photos_moved_aside_leave_at_once_and_undo_brings_them_back(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    _results(page, "a bird")
    page.get_by_text(f"of {N_PHOTOS} photos").first.wait_for()
    _select(page, 2)
    paths = _selected_paths(page)
    page.get_by_role("button", name="Move aside").click()
    page.get_by_role("button", name="Move 2 aside").click()
    page.get_by_text("Moved 2 photo(s) aside", exact=False).wait_for()
    page.get_by_text(f"of {N_PHOTOS - 2} photos").first.wait_for()
    assert not any(Path(p).exists() for p in paths)
    names = [n.strip() for n in page.locator(".dl-name").all_inner_texts()]
    assert not set(names) & {Path(p).name for p in paths}
    page.get_by_role("button", name="Undo the move").click()
    page.get_by_text("Put back 2 photo(s), 2 in the collection again", exact=False).wait_for()
    page.get_by_text(f"of {N_PHOTOS} photos").first.wait_for()
    assert all(Path(p).is_file() for p in paths)
    page.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_selection_bar_passes_axe(server: str, browser, viewport: dict[str, int], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser, viewport, scale=3 if viewport is PHONE else 1)
    page.goto(server)
    _results(page, "a dog")
    _select(page, 2)
    page.locator(".st-key-sel-zip button").wait_for()
    assert _axe_violations(page) == []
    _shot(page, f"selection-{'phone' if viewport is PHONE else 'desktop'}", tmp_path)
    page.close()


def test_shift_click_selects_every_photo_between_two_boxes(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = _page(browser)
    page.goto(server)
    _results(page, "a cat")
    boxes = page.locator(".dl-jg .dl-sel")
    tiles = page.locator(".dl-jg .dl-tile")
    tiles.nth(0).hover()
    boxes.nth(0).click()
    page.get_by_text("1 selected", exact=True).wait_for()
    tiles.nth(4).hover()
    boxes.nth(4).click(modifiers=["Shift"])
    page.get_by_text("5 selected", exact=True).wait_for()
    checked = page.locator('.dl-jg .dl-sel[aria-checked="true"]')
    page.wait_for_function(
        "() => document.querySelectorAll('.dl-jg .dl-sel[aria-checked=\"true\"]').length === 5"
    )
    assert checked.count() == 5
    assert page.locator(".dl-jg .dl-sel").nth(5).is_checked() is False
    page.close()

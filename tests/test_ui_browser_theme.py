"""Light and dark (ui/theme.py) in a real headless Chromium whose colour scheme is set on the context:
the page follows it, and the timeline, real results (strong, good and weak labels visible), the
viewer and the duplicates page have no serious or critical axe-core violation in either theme, on a
desktop and a phone. The collection is test_ui_browser_review's: 130 shared imagenet-sample photos
with planted duplicates. Skips without chromium or the data.
"""

from __future__ import annotations

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tests.helpers.band_pages import scan_band_pages  # noqa: E402
from tests.test_ui_browser import CHROMIUM, DESKTOP, PHONE, _axe_violations, _context  # noqa: E402
from tests.test_ui_browser_review import (  # noqa: E402, F401  (the collection and its server)
    IMAGENET,
    _open_first_in_viewer,
    browser,
    server,
    world,
)

pytestmark = [
    # a real browser on a shared 2-core machine: a click can land during a rerun of the page
    pytest.mark.flaky(reruns=2, reruns_delay=1),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
    pytest.mark.skipif(IMAGENET is None, reason="../shared/datasets/imagenet-sample is absent"),
]

# the first of these class queries whose page shows every label is the one scanned
LUMINANCE = """(sel) => { const c = getComputedStyle(document.querySelector(sel)).backgroundColor
    .match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }"""


def _themed_page(chromium, scheme: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
    context = chromium.new_context(
        viewport=viewport, device_scale_factor=3 if viewport is PHONE else 1, color_scheme=scheme
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def _settled(page) -> None:  # type: ignore[no-untyped-def]
    """The run of the page over: no element faded as stale (axe would measure the fade), every image
    loaded."""
    page.wait_for_function(
        "() => !document.querySelector('[data-stale=\"true\"]')"
        " && Array.from(document.images).every(i => i.complete)"
    )
    page.wait_for_timeout(300)  # the fade's transition


def _results(page) -> None:  # type: ignore[no-untyped-def]
    _context(page, "Results for").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.dl-name').length >= 24")
    _settled(page)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_page_follows_the_system_theme_and_passes_axe_in_it(
    server: str,  # noqa: F811
    browser,  # noqa: F811
    scheme: str,
    viewport: dict[str, int],
) -> None:  # type: ignore[no-untyped-def]
    page = _themed_page(browser, scheme, viewport)
    page.goto(server)
    _context(page, "Your photos, newest first").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.dl-month').length >= 1")
    _settled(page)
    background = page.evaluate(LUMINANCE, ".stApp")
    assert (background < 0.05) if scheme == "dark" else (background > 0.9), background
    assert _axe_violations(page) == [], "timeline"
    seen, scanned = scan_band_pages(page, server, _results, _axe_violations)
    assert all(seen.values()), seen  # every band's label seen on a real results page
    assert [(query, found) for query, found in scanned if found] == [], "results"
    _open_first_in_viewer(page)
    assert _axe_violations(page) == [], "viewer"
    page.goto(f"{server}/?view=duplicates")
    page.get_by_text("Group 1").wait_for()
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    assert _axe_violations(page) == [], "duplicates"
    page.context.close()

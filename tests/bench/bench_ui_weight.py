"""Page weight of the first page (``make bench-ui-weight``): the bytes a real headless Chromium
transfers to show the start page (the timeline's first 24 photos) and a query's first page, with
grid thumbnails sized to their slot (ui/thumbsize.py) against the same server with one size for all
(``DUALENS_UI_SLOT_SIZING=0``, 384 px: the behaviour before), in the same run.

Each figure sums Playwright's ``request.sizes()`` (headers and body as transferred) of every
request the page made until its grid's images were loaded; thumbnails (Streamlit's ``/media/``
files) are also counted alone. Visits: a desktop (1440×900, device pixel ratio 1) and a phone
(390×844, ratio 3), each fresh (no cookie yet: 384 px) and again (the slot's size known).
The collection: 25 shared imagenet-sample photos (tests/helpers/ui_photo_server.py).

Target: on the desktop at ratio 1, the thumbnails of a revisit weigh at most half of before.
Run: ``python -m tests.bench.bench_ui_weight``.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Browser, Page, Request, sync_playwright

from tests.helpers.ui_photo_server import plant_collection, serve
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, IN_VIEW

TARGET_RATIO = 0.5
GRID = ".dl-jg .dl-tile img"
PHONE_AGENT = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
DEVICES = {
    "desktop 1x": {"viewport": {"width": 1440, "height": 900}, "device_scale_factor": 1},
    "phone 3x": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "user_agent": PHONE_AGENT,
    },
}


@dataclass(frozen=True)
class Weight:
    total: int
    thumbs: int
    n_thumbs: int


def _visit(page: Page, url: str, query: str | None) -> Weight:
    requests: list[Request] = []

    def finished(request: Request) -> None:
        requests.append(request)

    page.on("requestfinished", finished)
    page.goto(url)
    if query:
        box = page.locator(".st-key-q input")
        box.fill(query)
        box.press("Enter")
        page.locator(".dl-context", has_text="Results for").wait_for()
    page.wait_for_function("(sel) => document.querySelectorAll(sel).length >= 24", arg=GRID)
    page.wait_for_function(
        f"(sel) => Array.from(document.querySelectorAll(sel)).filter({IN_VIEW})"
        ".every(i => i.complete && i.naturalWidth)",
        arg=GRID,
    )
    page.wait_for_timeout(500)
    page.remove_listener("requestfinished", finished)
    sizes = [(r.url, r.sizes()) for r in requests]
    weigh = [s["responseBodySize"] + s["responseHeadersSize"] for _, s in sizes]
    # Streamlit's media files (the thumbnails), not its fonts under /static/media/
    thumbs = [w for (u, _), w in zip(sizes, weigh, strict=True) if urlparse(u).path.startswith("/media/")]
    return Weight(sum(weigh), sum(thumbs), len(thumbs))


def _measure(browser: Browser, url: str) -> dict[str, Weight]:
    out: dict[str, Weight] = {}
    for device, options in DEVICES.items():
        context = browser.new_context(**options)  # type: ignore[arg-type]
        for visit in ("first visit", "revisit"):
            for what, query in (("start page", None), ("query", "a dog")):
                page = context.new_page()
                page.set_default_timeout(120_000)
                out[f"{device}, {visit}, {what}"] = _visit(page, url, query)
                page.close()
        context.close()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ui-weight-") as tmp:
        planted = plant_collection(Path(tmp))
        results: dict[str, dict[str, Weight]] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            for name, sizing in (("before (one 384-px size)", "0"), ("after (sized to the slot)", "1")):
                log = Path(tmp) / f"streamlit-{sizing}.log"
                with serve(planted.data, log, DUALENS_UI_SLOT_SIZING=sizing) as url:
                    results[name] = _measure(browser, url)
            browser.close()
    before, after = results.values()
    print(f"page weight, {datetime.now(UTC):%Y-%m-%d}, {platform.node()} (2-core CPU, no GPU), Chromium")
    for key in before:
        b, a = before[key], after[key]
        print(
            f"{key}: total {a.total / 1e6:.2f} MB vs {b.total / 1e6:.2f} MB before "
            f"({a.total / b.total:.2f}x); "
            f"thumbnails {a.thumbs / 1e3:.0f} KB vs {b.thumbs / 1e3:.0f} KB ({a.thumbs / b.thumbs:.2f}x, "
            f"{a.n_thumbs} files)"
        )
    key = "desktop 1x, revisit, start page"
    ratio = after[key].thumbs / before[key].thumbs
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    print(f"target: desktop 1x revisit thumbnails <= {TARGET_RATIO:.2f}x before: {ratio:.2f}x {verdict}")


if __name__ == "__main__":
    main()

"""The justified grid against the card grid before it (``make bench-ui-weight`` runs this after the
page-weight table): photos wholly above the fold and the bytes of the first page, in a real headless
Chromium, on the same collection in the same run.

"Before" is the UI of ``BASE`` (the commit before the justified grid), unpacked with ``git archive``
into a temporary folder and served from there; "after" is this checkout. Pages: a query ("a dog")
and a Similar search, on a desktop (1440×900, ratio 1) and a phone (390×844, ratio 3), each a fresh
visit. The collection: 85 shared imagenet-sample photos (tests/helpers/ui_photo_server.py).

Targets: >= 30 photos above the fold on the desktop's Similar page (one grid under the search bar);
>= 3 photos a row on the phone. Run: ``python -m tests.bench.bench_ui_grid``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Browser, Request, sync_playwright

from tests.bench.bench_ui_weight import DEVICES
from tests.helpers.ui_photo_server import plant_collection
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, IN_VIEW, _free_port, _wait_healthy

BASE = "b56479b"
ROOT = Path(__file__).resolve().parents[2]
PHOTOS = '.dl-jg .dl-tile img, [data-testid="stGrid"] [data-testid="stImage"] img'
TARGET_ABOVE = 30


@contextmanager
def _serve(code: Path, data: Path, log: Path) -> Iterator[str]:
    """`streamlit run` of the UI in ``code`` (its own indexer/search/ui) on ``data``."""
    port = _free_port()
    env = dict(os.environ, DUALENS_DATA=str(data), HF_HUB_OFFLINE="1", PYTHONPATH=str(code))
    argv = [
        str(ROOT / ".venv/bin/python"),
        "-m",
        "ui.launch",
        "run",
        str(code / "ui/app.py"),
        "--server.headless=true",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        "--",
        "--data",
        str(data),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _before(tmp: Path) -> Path:
    code = tmp / "before"
    code.mkdir()
    archive = subprocess.run(
        ["git", "archive", BASE, "indexer", "search", "ui"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    (code / "data").symlink_to(ROOT / "data")
    return code


def _measure(browser: Browser, url: str, path: str) -> dict[str, tuple[int, int, float, int]]:
    """Per device: (photos wholly above the fold, photos a row, total MB, thumbnail KB)."""
    out = {}
    for device, options in DEVICES.items():
        context = browser.new_context(**options)  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(120_000)
        requests: list[Request] = []
        page.on("requestfinished", lambda r, seen=requests: seen.append(r))  # Playwright wraps it
        page.goto(url + path)
        page.wait_for_function("(sel) => document.querySelectorAll(sel).length >= 24", arg=PHOTOS)
        page.wait_for_function(
            f"(sel) => Array.from(document.querySelectorAll(sel)).filter({IN_VIEW})"
            ".every(i => i.complete && i.naturalWidth)",
            arg=PHOTOS,
        )
        page.wait_for_timeout(1500)
        above, per_row = page.evaluate(
            "(sel) => { const r = Array.from(document.querySelectorAll(sel))"
            ".map(i => i.getBoundingClientRect()); const tops = r.map(b => Math.round(b.top));"
            " return [r.filter(b => b.bottom <= innerHeight).length,"
            " tops.filter(t => t === tops[0]).length]; }",
            PHOTOS,
        )
        sizes = [(r.url, r.sizes()) for r in requests]
        weigh = [s["responseBodySize"] + s["responseHeadersSize"] for _, s in sizes]
        thumbs = sum(
            w for (u, _), w in zip(sizes, weigh, strict=True) if urlparse(u).path.startswith("/media/")
        )
        out[device] = (int(above), int(per_row), sum(weigh) / 1e6, thumbs // 1000)
        context.close()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ui-grid-") as name:
        tmp = Path(name)
        planted = plant_collection(tmp / "photos-and-data", n_real=80)
        first = "1"
        pages = {"query": "/?q=a+dog", "similar": f"/?similar={first}"}
        results: dict[str, dict[str, dict[str, tuple[int, int, float, int]]]] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            for label, code in (("before", _before(tmp)), ("after", ROOT)):
                with _serve(code, planted.data, tmp / f"{label}.log") as url:
                    results[label] = {what: _measure(browser, url, path) for what, path in pages.items()}
            browser.close()
    print(f"justified grid, {datetime.now(UTC):%Y-%m-%d}, {platform.node()} (2-core CPU, no GPU), Chromium")
    for what in pages:
        for device in DEVICES:
            b, a = results["before"][what][device], results["after"][what][device]
            print(
                f"{what}, {device}: above the fold {a[0]} vs {b[0]} before ({a[0] / max(b[0], 1):.1f}x); "
                f"first row {a[1]} vs {b[1]}; page {a[2]:.2f} MB vs {b[2]:.2f} MB ({a[2] / b[2]:.2f}x); "
                f"thumbnails {a[3]} KB vs {b[3]} KB"
            )
    above = results["after"]["similar"]["desktop 1x"][0]
    print(
        f"target: >= {TARGET_ABOVE} photos above the fold (desktop, Similar): {above} "
        f"{'MET' if above >= TARGET_ABOVE else 'NOT MET'}"
    )
    row = results["after"]["similar"]["phone 3x"][1]
    print(f"target: >= 3 photos a row on a phone: {row} {'MET' if row >= 3 else 'NOT MET'}")


if __name__ == "__main__":
    main()

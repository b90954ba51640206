"""Start of the web UI (``make bench-ui``): how soon after ``dualens ui`` starts a person can search.

A collection of shared photos (flickr8k-train, never a reporting set; generated photos when absent)
is indexed once with the default model into a temp dir. Each round then starts, in a new process:

    baseline   a minimal Streamlit app (a text box; a typed query shows one photo), the same flags
    dualens    ``dualens ui --data DIR --port P``   (and, with ``--baseline-tree``, that tree's)

and measures in headless Debian chromium (launched before the rounds, not timed) the seconds from
process start to the search box usable (visible and enabled) and to the first typed query's first
photo painted (loaded, with a size), and the server's peak RSS (VmHWM) once the results are shown.
Targets (issue #31): box <= 3 s, results <= 4 s.

Run: ``python -m tests.bench.bench_ui_start [--rounds 3] [--photos 200] [--baseline-tree DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.bench.bench_cold import dualens, wall
from tests.helpers.images import pattern, save_jpeg

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path("/work/shared/datasets/flickr8k-train/images")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/test_ui_browser.py
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BOX_TARGET_S, RESULTS_TARGET_S = 3.0, 4.0
QUERY = "a dog running on the grass"
BOX = ".st-key-q input"
BOX_USABLE = f"() => {{ const b = document.querySelector('{BOX}'); return b && !b.disabled; }}"
PHOTO_PAINTED = (
    "() => Array.from(document.querySelectorAll('[data-testid=\"stImage\"] img'))"
    ".some(img => img.complete && img.naturalWidth > 0)"
)
MINIMAL_APP = """
import streamlit as st
q = st.text_input("Search", key="q", placeholder="Describe a photo")
if q:
    st.image({photo!r}, width=200)
"""
FLAGS = ["--server.headless=true", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"]


@dataclass
class Start:
    box_s: float
    results_s: float
    peak_rss_mb: float


def photos_for(folder: Path, n: int) -> Path:
    """``n`` shared photos (copies: the indexer does not follow links out of a root), else generated ones."""
    folder.mkdir()
    shared = sorted(SHARED.glob("*.jpg"))[:n] if SHARED.is_dir() else []
    for i in range(n):
        if len(shared) == n:
            shutil.copyfile(shared[i], folder / shared[i].name)
        else:
            save_jpeg(folder / f"photo_{i:04d}.jpg", pattern((320, 240), seed=i))
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no server at {url}")


def measure(browser: object, argv: list[str], cwd: Path, port: int, env: dict[str, str], log: Path) -> Start:
    """Start ``argv`` (a server on ``port``), then time the box and the first results in a new page."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, proc)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
            page.set_default_timeout(int(os.environ.get("BENCH_UI_TIMEOUT_MS", "120000")))
            page.goto(url)
            _wait_or_say(page, BOX_USABLE, log)
            box_s = time.perf_counter() - start
            box = page.locator(BOX)
            box.fill(QUERY)
            box.press("Enter")
            _wait_or_say(page, PHOTO_PAINTED, log)
            results_s = time.perf_counter() - start
            rss = peak_rss_mb(proc.pid)
            page.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return Start(box_s, results_s, rss)


def _wait_or_say(page: object, condition: str, log: Path) -> None:
    """Wait for ``condition``; on a timeout, stop with what the page and the server said."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition)  # type: ignore[attr-defined]
    except PlaywrightTimeout:
        shown = page.inner_text("body")[:800]  # type: ignore[attr-defined]
        said = log.read_text(errors="replace")[-1500:]
        raise SystemExit(f"timed out waiting for {condition}\npage: {shown}\nserver: {said}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--baseline-tree", type=Path, default=None, help="another checkout, timed alike")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(f"needs Debian chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp_name:
        tmp = Path(tmp_name)
        photos, data = photos_for(tmp / "photos", args.photos), tmp / "data"
        wall(
            dualens(ROOT, ["index", "--data", str(data), "--model", "default", "--no-progress", str(photos)]),
            ROOT,
        )
        app = tmp / "minimal_app.py"
        app.write_text(MINIMAL_APP.format(photo=str(next(iter(sorted(photos.iterdir()))).resolve())))
        env = {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        runs: dict[str, tuple[list[str], Path]] = {
            "baseline (minimal app)": (
                [sys.executable, "-m", "streamlit", "run", str(app), *FLAGS],
                ROOT,
            )
        }
        trees = {"dualens ui (this tree)": ROOT}
        if args.baseline_tree:
            trees["dualens ui (baseline tree)"] = args.baseline_tree.resolve()
        for label, tree in trees.items():
            runs[label] = (dualens(tree, ["ui", "--data", str(data), "--port", "{port}"]), tree)
        results: dict[str, list[Start]] = {label: [] for label in runs}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                for _ in range(args.rounds):
                    for label, (line, cwd) in runs.items():
                        port = free_port()
                        command = [a.replace("{port}", str(port)) for a in line]
                        if "streamlit" in command:
                            command.append(f"--server.port={port}")
                        results[label].append(measure(browser, command, cwd, port, env, tmp / "server.log"))
            finally:
                browser.close()
        shutil.rmtree(data, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}; {args.rounds} rounds, {args.photos} photos")
    report(results)
    return 0


def report(results: dict[str, list[Start]]) -> None:
    base = next(iter(results.values()))
    base_box = statistics.median(s.box_s for s in base)
    base_results = statistics.median(s.results_s for s in base)
    for label, starts in results.items():
        box = statistics.median(s.box_s for s in starts)
        shown = statistics.median(s.results_s for s in starts)
        rss = max(s.peak_rss_mb for s in starts)
        line = (
            f"ui start {label:28s} box p50 {box:5.2f} s ({box / base_box:4.2f}x baseline) | "
            f"first results p50 {shown:5.2f} s ({shown / base_results:4.2f}x) | peak RSS {rss:6.0f} MB"
        )
        if label.startswith("dualens"):
            line += (
                f" | box <= {BOX_TARGET_S:.0f} s: {'MET' if box <= BOX_TARGET_S else 'NOT MET'}, "
                f"results <= {RESULTS_TARGET_S:.0f} s: {'MET' if shown <= RESULTS_TARGET_S else 'NOT MET'}"
            )
        print(line)


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of dualens's long-running commands (``make bench-memory``).

Each figure is a peak resident set size, sampled from ``/proc`` every 20 ms for the command's whole
process tree (the process and every descendant, summed: decode workers included) and read from the
kernel's own high-water mark (VmHWM) of each process at its end:

    dualens index (local)   at each size of --sizes (default 1000 and 5000 photos): generated,
                            seeded 160x120 JPEGs in a temp dir, the default model. It should stay
                            flat with the collection's size: the ratio largest/smallest is printed.
    dualens index --engine ray   the Ray driver's own peak (the main process; Ray's local cluster,
                            started by it, is in the tree figure) at each size of --ray-sizes
                            (default 1000), the same photos
    dualens serve           per worker (--workers 2), after 20 text searches spread over the workers
    baseline                python -c "import onnxruntime, tokenizers, faiss, sqlalchemy, numpy"

``dualens ui``'s peak is printed by ``make bench-ui`` (tests/bench/bench_ui_start.py), measured
after its first results are shown in a real browser.

Run: ``python -m tests.bench.bench_memory [--sizes 1000,5000] [--ray-sizes 1000] [--no-ocr]``
(``--no-ocr``: the index runs without the text stage, to reach larger sizes on a slow machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.bench.bench_cold import BARE_IMPORT, dualens
from tests.bench.bench_ui_start import free_port
from tests.helpers.images import pattern, save_jpeg

ROOT = Path(__file__).resolve().parents[2]
FLAT_RATIO = 1.25  # the indexer's peak at the largest size vs the smallest: "flat"
SAMPLE_S = 0.02


def tree_rss_mb(pid: int) -> float:
    """Resident MB of ``pid`` and all its descendants now (0 when they are gone)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class PeakSampler:
    """The largest :func:`tree_rss_mb` of a process while it runs (a sampling thread), and the largest
    of the process alone (``own_peak_mb``)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb, self.own_peak_mb = pid, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            self.own_peak_mb = max(self.own_peak_mb, _rss_mb(self.pid))
            time.sleep(SAMPLE_S)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_peak(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(peak tree RSS MB, peak RSS MB of the process itself, seconds) of a command, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = PeakSampler(proc.pid)
    _, err = proc.communicate()
    peak = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{err.decode()[-2000:]}")
    return peak, sampler.own_peak_mb, time.perf_counter() - start


def make_photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        sub = folder / f"p{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        save_jpeg(sub / f"photo_{i:06d}.jpg", pattern((160, 120), seed=i))
    return folder


def serve_workers(data: Path, env: dict[str, str], workers: int = 2, queries: int = 20) -> list[float]:
    """Each worker's peak RSS (VmHWM, MB) after ``queries`` text searches."""
    port = free_port()
    argv = dualens(ROOT, ["serve", "--data", str(data), "--port", str(port), "--workers", str(workers)])
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        for i in range(queries):
            with urllib.request.urlopen(f"{url}/search?q=a+red+shape+{i}&k=10", timeout=60) as answer:
                json.load(answer)
        workers = [pid for pid in _descendants(proc.pid) if "resource_tracker" not in _cmdline(pid)]
        return [_hwm_mb(pid) for pid in workers] or [_hwm_mb(proc.pid)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _descendants(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="collection sizes for `dualens index`")
    parser.add_argument(
        "--ray-sizes", default="1000", help="sizes for `dualens index --engine ray` ('': none)"
    )
    parser.add_argument("--no-ocr", action="store_true", help="index without the text stage")
    parser.add_argument(
        "--model",
        default="default",
        help="'default', or 'tiny': a tiny random model (fast: the growth alone)",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    ray_sizes = sorted(int(s) for s in args.ray_sizes.split(",") if s)
    env = {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    if args.no_ocr:
        env["DUALENS_OCR"] = "off"
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    bare, _, _ = run_peak([sys.executable, "-c", BARE_IMPORT], env)
    print(f"memory baseline  python -c {BARE_IMPORT!r}: peak RSS {bare:6.0f} MB")
    peaks: dict[int, float] = {}
    own: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        model = args.model
        if model == "tiny":
            from tests.helpers.tiny_models import make_tiny_dual_encoder

            model = str(make_tiny_dual_encoder(Path(tmp) / "tiny-model"))
        print(f"model {args.model}, text stage {'off' if args.no_ocr else 'on'}")
        warm = make_photos(Path(tmp) / "photos-warm", 8)  # one-time work (a model's ONNX export) kept out
        run_peak(
            dualens(ROOT, ["index", "--data", str(Path(tmp) / "data-warm"), "--model", model, str(warm)]), env
        )
        for n in sorted({*sizes, *ray_sizes}):
            photos = make_photos(Path(tmp) / f"photos-{n}", n)
            for engine in (["local"] if n in sizes else []) + (["ray"] if n in ray_sizes else []):
                data = Path(tmp) / (f"data-{n}" if engine == "local" else f"data-ray-{n}")
                index = ["index", "--data", str(data), "--model", model, "--no-progress", str(photos)]
                tree, main, took = run_peak(dualens(ROOT, [*index, "--engine", engine]), env)
                if engine == "local":
                    peaks[n], own[n] = tree, main
                what = "index   " if engine == "local" else "ray driver"
                print(
                    f"memory {what} {n:6d} photos: peak RSS {tree:6.0f} MB (process tree), "
                    f"{main:6.0f} MB (main process) | {tree / bare:4.1f}x baseline | {n / took:5.1f} photos/s"
                )
        ratio = peaks[sizes[-1]] / peaks[sizes[0]]
        verdict = "MET" if ratio <= FLAT_RATIO else "NOT MET"
        print(
            f"memory index {sizes[-1]} vs {sizes[0]} photos: {ratio:4.2f}x | flat <= {FLAT_RATIO}x: {verdict}"
        )
        workers = serve_workers(Path(tmp) / f"data-{sizes[0]}", env)
        shown = ", ".join(f"{w:.0f}" for w in workers)
        print(f"memory serve    per worker ({len(workers)} workers, {sizes[0]} photos): peak RSS {shown} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

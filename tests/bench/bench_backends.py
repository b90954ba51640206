"""The ONNX Runtime backend against the torch backend, same model, same inputs, same run.

    python -m tests.bench.bench_backends index    (part of `make bench-index`)
        model only: ms per photo of each backend on the same preprocessed batch
        end to end: `dualens index` images/s with each backend, 12-megapixel JPEGs and imagenet-sample
    python -m tests.bench.bench_backends search   (part of `make bench-search`)
        `dualens search "..."` and `dualens similar ID` in a new process, p50 over >= 10 runs
        text query encoding inside a warm process, p50

Not a test: it prints figures and ratios (torch is the baseline). The default model is used.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.bench.bench_index import IMAGENET, twelve_megapixel_set

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("torch", "onnx")
QUERY = "a photo of a goldfish"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def model_only(photos: list[Path], batch: int = 64, repeats: int = 3) -> dict[str, float]:
    """ms per photo of embed_pixels on one batch of real photos (threads: all cores), best of
    ``repeats``; and the smallest cosine between the two backends' vectors of those photos."""
    from indexer.core.models import DualEncoder
    from indexer.core.models.preprocess import picture_pixels

    out: dict[str, float] = {}
    reference: np.ndarray | None = None
    for backend in BACKENDS:
        encoder = DualEncoder("default", backend=backend, threads=os.cpu_count() or 2)
        cfg = encoder.preprocess_config
        pixels = np.stack([picture_pixels(p, cfg)[1] for p in photos[:batch]])
        vectors = encoder.embed_pixels(pixels)  # load, warm up, and the vectors to compare
        reference = vectors if reference is None else reference
        cosine = float((vectors * reference).sum(axis=1).min())
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder.embed_pixels(pixels)
            times.append(time.perf_counter() - start)
        out[backend] = min(times) / batch * 1000
        print(
            f"  {backend:5} model only: {out[backend]:.1f} ms/photo "
            f"(batch {batch}; min cosine to torch {cosine:.6f})"
        )
    return out


def index_rate(folder: Path, backend: str) -> tuple[float, str]:
    from indexer.pipeline import IndexOptions, run_index

    with tempfile.TemporaryDirectory(prefix="dualens-bench-") as tmp:
        start = time.perf_counter()
        summary = run_index(Path(tmp) / "data", [folder], IndexOptions(backend=backend))
        seconds = time.perf_counter() - start
    return summary.embedded / seconds, summary.lines()[2]


def bench_index() -> int:
    print(f"backends, indexing: {_load()}", flush=True)
    sets = [("12-megapixel JPEGs", twelve_megapixel_set(int(os.environ.get("BENCH_COUNT", "200"))))]
    ms = model_only(sorted(sets[0][1].glob("*.jpg")))
    print(f"  model only: onnx {ms['torch'] / ms['onnx']:.2f}x the torch rate (target >= 2x)", flush=True)
    if IMAGENET.is_dir():
        sets.append(("imagenet-sample", IMAGENET))
    for name, folder in sets:
        rates = {}
        for backend in BACKENDS:
            rates[backend], stages = index_rate(folder, backend)
            print(
                f"  {backend:5} dualens index, {name}: {rates[backend]:.1f} images/s  ({stages})", flush=True
            )
        print(
            f"  end to end, {name}: onnx {rates['onnx'] / rates['torch']:.2f}x the torch rate "
            f"(target >= 1.5x); {_load()}",
            flush=True,
        )
    return 0


def _cli_seconds(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs + 1):  # the first run warms the page cache and is not counted
        start = time.perf_counter()
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "dualens"), *argv], cwd=REPO, check=True, capture_output=True
        )
        times.append(time.perf_counter() - start)
    return times[1:]


def bench_search() -> int:
    from indexer.core.models import DualEncoder
    from indexer.pipeline import IndexOptions, run_index

    runs = int(os.environ.get("BENCH_RUNS", "10"))
    print(f"backends, searching: {_load()}", flush=True)
    folder = IMAGENET if IMAGENET.is_dir() else twelve_megapixel_set(50)
    with tempfile.TemporaryDirectory(prefix="dualens-bench-") as tmp:
        data = Path(tmp) / "data"
        run_index(data, [folder], IndexOptions(backend="onnx"))
        p50: dict[str, float] = {}
        for backend in BACKENDS:
            for what, argv in (
                ("search", ["search", "--data", str(data), "--backend", backend, QUERY]),
                ("similar", ["similar", "--data", str(data), "--backend", backend, "1"]),
            ):
                times = _cli_seconds(argv, runs)
                p50[f"{backend} {what}"] = statistics.median(times)
                print(
                    f"  {backend:5} `dualens {what}` in a new process: p50 {statistics.median(times):.2f} s, "
                    f"min {min(times):.2f} s, max {max(times):.2f} s ({runs} runs)",
                    flush=True,
                )
        print(
            f"  new process: onnx search p50 {p50['onnx search']:.2f} s (target <= 1.0 s), "
            f"{p50['torch search'] / p50['onnx search']:.1f}x faster than torch; "
            f"similar p50 {p50['onnx similar']:.2f} s (target <= 1.0 s)"
        )
    warm: dict[str, float] = {}
    for backend in BACKENDS:
        encoder = DualEncoder("default", backend=backend, threads=1)
        encoder.embed_texts(["warm up"])
        times = []
        for i in range(200):
            start = time.perf_counter()
            encoder.embed_texts([f"{QUERY} {i}"])
            times.append(time.perf_counter() - start)
        warm[backend] = statistics.median(times) * 1000
        print(f"  {backend:5} text query encoding in a warm process: p50 {warm[backend]:.2f} ms (1 thread)")
    print(
        f"  warm encoding: onnx p50 {warm['onnx']:.2f} ms (target <= 5 ms), "
        f"{warm['torch'] / warm['onnx']:.1f}x faster than torch; {_load()}"
    )
    return 0


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in ("index", "search"):
        print("usage: python -m tests.bench.bench_backends index|search", file=sys.stderr)
        sys.exit(2)
    sys.exit(bench_index() if which == "index" else bench_search())

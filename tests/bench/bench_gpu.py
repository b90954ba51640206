"""`make bench-gpu`: absolute indexing throughput on a GPU, and how busy the GPU was.

Indexes generated 12-megapixel JPEGs (see bench_index) with the default model on the GPU (PyTorch
fp16, or ONNX Runtime's CUDA provider with --backend onnx) while `nvidia-smi` samples utilisation
every 0.2 s. On a machine without a GPU it says so and exits 0. Not a test: it prints figures.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def gpu_present() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def sample_utilisation(stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip():
            out.append(float(done.stdout.strip().splitlines()[0]))
        stop.wait(0.2)


def main() -> int:
    if not gpu_present():
        print(
            "bench-gpu: no CUDA GPU on this machine (torch.cuda.is_available() is false); nothing to measure"
        )
        return 0
    from indexer.pipeline import IndexOptions, run_index
    from tests.bench.bench_index import twelve_megapixel_set

    backend = sys.argv[1] if len(sys.argv) > 1 else "torch"
    folder = twelve_megapixel_set(int(os.environ.get("BENCH_COUNT", "1000")))
    samples: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=sample_utilisation, args=(stop, samples), daemon=True)
    with tempfile.TemporaryDirectory(prefix="dualens-bench-gpu-") as tmp:
        watcher.start() if shutil.which("nvidia-smi") else None
        start = time.perf_counter()
        summary = run_index(Path(tmp) / "data", [folder], IndexOptions(backend=backend))
        seconds = time.perf_counter() - start
        stop.set()
    print(f"bench-gpu ({backend}): {summary.embedded / seconds:.1f} images/s over {summary.embedded} photos")
    for line in summary.lines():
        print(f"    {line}")
    if samples:
        print(f"    GPU utilisation: median {statistics.median(samples):.0f} %, max {max(samples):.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-index`: dualens' indexer against the naive transformers-docs loop, same model, same run.

    (a) naive: PIL open, processor(images=batch), get_image_features, batches of 32, one process
    (b) dualens index: the pipeline with default settings, into a fresh data directory

on >= 200 twelve-megapixel JPEGs (4032x3024, quality 90) upscaled from ../shared/datasets/flickr8k-1k
(generated once into a temp dir and cached), then a second `dualens index` over the unchanged folder,
then a first vs no-change index of ../shared/datasets/imagenet-sample. Not a test: it prints figures.

Options (environment): BENCH_COUNT (default 200), BENCH_NAIVE_COUNT (default 96: the naive loop is slow,
so its rate is measured on the first images only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared" / "datasets").resolve()
FLICKR = SHARED / "flickr8k-1k" / "images"
IMAGENET = SHARED / "imagenet-sample"
SIZE = (4032, 3024)
QUALITY = 90


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def _upscale(job: tuple[Path, Path]) -> None:
    from PIL import Image

    src, dst = job
    with Image.open(src) as image:
        image.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC).save(dst, "JPEG", quality=QUALITY)


def twelve_megapixel_set(count: int) -> Path:
    """Generate (or reuse) ``count`` 4032x3024 JPEGs upscaled from the Flickr photos."""
    out = Path(tempfile.gettempdir()) / f"dualens-bench-12mp-{count}"
    done = out / ".complete"
    if done.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sources = sorted(p for p in FLICKR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    jobs = [(sources[i % len(sources)], out / f"photo_{i:04d}.jpg") for i in range(count)]
    print(f"generating {count} 12-megapixel JPEGs into {out} (once) ...", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_upscale, jobs, chunksize=4))
    done.touch()
    print(f"  generated in {time.perf_counter() - start:.0f}s", flush=True)
    return out


def naive_loop(files: list[Path], location: str, batch_size: int = 32) -> float:
    """Images/s of the loop from the transformers docs (model and processor loaded beforehand)."""
    import torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    import indexer.core.models  # noqa: F401  (registers the default model's towers)

    processor = AutoProcessor.from_pretrained(location)
    model = AutoModel.from_pretrained(location).eval()
    start = time.perf_counter()
    for i in range(0, len(files), batch_size):
        images = [Image.open(p) for p in files[i : i + batch_size]]
        inputs = processor(images=images, return_tensors="pt")
        with torch.no_grad():
            model.get_image_features(**inputs)
    return len(files) / (time.perf_counter() - start)


def timed_index(data: Path, folder: Path, encoder) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    from indexer.pipeline import IndexOptions, run_index

    start = time.perf_counter()
    summary = run_index(data, [folder], IndexOptions(), encoder=encoder)
    return time.perf_counter() - start, summary


def cli_seconds(data: Path, folder: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ui.cli", "index", "--data", str(data), "--no-progress", str(folder)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> int:
    if not FLICKR.is_dir():
        print(f"skipped: {FLICKR} is absent")
        return 0
    count = int(os.environ.get("BENCH_COUNT", "200"))
    naive_count = min(count, int(os.environ.get("BENCH_NAIVE_COUNT", "96")))
    folder = twelve_megapixel_set(count)
    files = sorted(folder.glob("*.jpg"))

    from indexer.core.models import load_encoder

    encoder = load_encoder("default")
    print(f"model {encoder.model_id} (dim {encoder.dim}); {_load()}", flush=True)

    naive = naive_loop(files[:naive_count], encoder.location)
    print(f"(a) naive transformers loop: {naive:.2f} images/s ({naive_count} images, batch 32, one process)")
    print(f"    {_load()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="dualens-bench-") as tmp:
        data = Path(tmp) / "data"
        first, summary = timed_index(data, folder, encoder)
        fast = len(files) / first
        print(f"(b) dualens index: {fast:.2f} images/s ({len(files)} images in {first:.1f}s)")
        for line in summary.lines():  # type: ignore[attr-defined]
            print(f"    {line}")
        print(f"    ratio (b)/(a): {fast / naive:.1f}x (target >= 5x); {_load()}", flush=True)
        tuned = naive_loop(files[:32], encoder.location)
        print(
            f"    (a') the naive loop again, now with dualens' allocator setting (indexer/alloc.py): "
            f"{tuned:.2f} images/s (32 images); (b)/(a'): {fast / tuned:.1f}x"
        )
        again, _ = timed_index(data, folder, encoder)
        print(
            f"    no-change re-index of the same {len(files)} photos: {again:.3f}s "
            f"({first / again:.0f}x faster)"
        )

    if IMAGENET.is_dir():
        with tempfile.TemporaryDirectory(prefix="dualens-bench-") as tmp:
            data = Path(tmp) / "data"
            first, summary = timed_index(data, IMAGENET, encoder)
            again, _ = timed_index(data, IMAGENET, encoder)
            n = summary.seen  # type: ignore[attr-defined]
            print(
                f"imagenet-sample ({n} photos): first index {first:.1f}s ({n / first:.1f} images/s), "
                f"no-change re-index {again:.3f}s: {first / again:.0f}x faster (target >= 50x)"
            )
            cli = cli_seconds(data, IMAGENET)
            print(
                f"    the same no-change re-index through the `dualens index` command: {cli:.1f}s wall "
                "(mostly Python, torch and transformers start-up)"
            )
    else:
        print(f"imagenet-sample skipped: {IMAGENET} is absent")
    print(_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())

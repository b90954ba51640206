"""`make bench-index`: dualens' indexer against the naive transformers-docs loop, same model, same run.

    (a) naive: PIL open, processor(images=batch), get_image_features, batches of 32, one process
    (b) dualens index: the pipeline with default settings, into a fresh data directory

on >= 200 twelve-megapixel JPEGs (4032x3024, quality 90) upscaled from ../shared/datasets/flickr8k-1k
(generated once into a temp dir and cached), then a second `dualens index` over the unchanged folder,
then a first vs no-change index of ../shared/datasets/imagenet-sample, then the int8 rows (below).
Not a test: it prints figures.

int8 rows (``--precision int8`` against fp32, both on ONNX Runtime, in the same run): images/s of a
first index of imagenet-sample, p50 ms of one-caption query encodings (the two interleaved), and
quality: flickr8k-1k text-to-image recall@10, imagenet-sample zero-shot top-1 ("a photo of a {}."),
and the overlap of each caption's top-10 images with fp32's. The fp32 vectors come through the
usual evaluation cache (data/cache/eval); the int8 ones are computed (that cache is keyed by model
files, not precision). Decision rule (issue 31): int8 becomes the default only if >= 1.5x faster at
<= 0.5 points recall@10 loss. ``BENCH_ONLY=int8`` runs these rows alone.

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


def int8_rows() -> None:
    """The int8 rows: speed and quality against fp32 in the same run (see the module docstring)."""
    from indexer.core.models import DualEncoder

    if not (IMAGENET.is_dir() and FLICKR.is_dir()):
        print("int8 rows skipped: imagenet-sample or flickr8k-1k is absent")
        return
    fp32 = DualEncoder("default", backend="onnx")
    int8 = DualEncoder("default", backend="onnx", precision="int8")
    fp32.load()
    start = time.perf_counter()
    int8.load()  # quantised on first use (cached beside the fp32 export)
    print(f"int8 towers ready in {time.perf_counter() - start:.1f}s; {_load()}", flush=True)
    rates = index_rates({"fp32": fp32, "int8": int8})
    speedup = rates["int8"] / rates["fp32"]
    print(
        f"int8 index of imagenet-sample: {rates['int8']:.1f} images/s, fp32 {rates['fp32']:.1f} images/s "
        f"(same run): {speedup:.2f}x (target >= 1.5x: {'MET' if speedup >= 1.5 else 'NOT MET'})",
        flush=True,
    )
    fp32_ms, int8_ms = query_ms(fp32, int8)
    print(
        f"int8 query encoding p50 {int8_ms:.1f} ms, fp32 {fp32_ms:.1f} ms (one caption at a time, "
        f"interleaved): {fp32_ms / int8_ms:.2f}x",
        flush=True,
    )
    loss = int8_quality(fp32, int8)
    default = speedup >= 1.5 and loss <= 0.5
    print(
        f"decision (>= 1.5x faster at <= 0.5 points recall@10 loss): "
        f"{'MET: int8 may be the default' if default else 'NOT MET: fp32 stays the default'}; {_load()}"
    )


def index_rates(encoders: dict) -> dict[str, float]:  # type: ignore[type-arg]
    """Images/s of each encoder indexing imagenet-sample (copied) into its own collection, in two halves run
    A B B A (fp32 first half, int8 first half, int8 second half, fp32 second half): a machine whose
    load drifts during the run favours neither."""
    photos = sorted(p for p in IMAGENET.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory(prefix="dualens-bench-") as tmp:
        halves = [Path(tmp) / "a", Path(tmp) / "b"]
        for half, part in zip(halves, (photos[::2], photos[1::2]), strict=True):
            half.mkdir()
            for photo in part:
                shutil.copyfile(photo, half / photo.name)  # the scanner keeps to files under a root
        (first, second) = encoders
        seconds = dict.fromkeys(encoders, 0.0)
        for name, half in ((first, 0), (second, 0), (second, 1), (first, 1)):
            elapsed, _ = timed_index(Path(tmp) / f"data-{name}-{half}", halves[half], encoders[name])
            seconds[name] += elapsed
    return {name: len(photos) / spent for name, spent in seconds.items()}


def query_ms(fp32, int8) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """p50 ms of encoding one caption, fp32 and int8 taking turns on the same 100 captions."""
    import csv

    import numpy as np

    with open(FLICKR.parent / "captions.csv", encoding="utf-8", newline="") as fh:
        captions = [row["caption"] for row in csv.DictReader(fh)][:500:5]
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    fp32.embed_texts(["warm up"]), int8.embed_texts(["warm up"])
    for caption in captions:
        for name, encoder in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            encoder.embed_texts([caption])
            times[name].append(time.perf_counter() - start)
    return 1000 * float(np.median(times["fp32"])), 1000 * float(np.median(times["int8"]))


def int8_quality(fp32, int8) -> float:  # type: ignore[no-untyped-def]
    """Print recall@10, zero-shot top-1 and top-10 overlap of int8 against fp32; return the R@10 loss."""
    import numpy as np

    from indexer.quality.data import labels_from_filenames, load_caption_dataset
    from indexer.quality.evaluate import (
        EvalOptions,
        class_embeddings,
        embed_image_files,
        embed_texts,
        eval_cache_dir,
    )
    from indexer.quality.metrics import retrieval_metrics, zero_shot_metrics

    captions = load_caption_dataset(FLICKR, FLICKR.parent / "captions.csv")
    labelled = labels_from_filenames(IMAGENET)
    cached, uncached = EvalOptions(cache_dir=eval_cache_dir(REPO / "data")), EvalOptions()
    found = {}
    for name, encoder, options in (("fp32", fp32, cached), ("int8", int8, uncached)):
        similarity = (
            embed_texts(encoder, captions.captions, options)
            @ embed_image_files(encoder, captions.images, options).T
        )
        recall = retrieval_metrics(similarity, captions.caption_image).text_to_image.recall_at_10
        classes = class_embeddings(encoder, labelled.classes, ("a photo of a {}.",), options)
        images = embed_image_files(encoder, labelled.images, options)
        top1 = zero_shot_metrics(images @ classes.T, labelled.labels).top1
        found[name] = (recall, top1, np.argsort(-similarity, axis=1)[:, :10])
    overlap = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(found["fp32"][2], found["int8"][2], strict=True)]
    )
    loss = found["fp32"][0] - found["int8"][0]
    print(
        f"int8 flickr8k-1k text->image R@10 {found['int8'][0]:.1f}, fp32 {found['fp32'][0]:.1f} "
        f"(loss {loss:+.1f} points; target <= 0.5: {'MET' if loss <= 0.5 else 'NOT MET'}); "
        f"imagenet-sample zero-shot top-1 {found['int8'][1]:.1f}, fp32 {found['fp32'][1]:.1f} "
        f"({found['int8'][1] - found['fp32'][1]:+.1f}); top-10 overlap with fp32 {100 * overlap:.0f}%",
        flush=True,
    )
    return float(loss)


def main() -> int:
    if os.environ.get("BENCH_ONLY") == "int8":
        int8_rows()
        return 0
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
    int8_rows()
    print(_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())

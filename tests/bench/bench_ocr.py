"""`make bench-ocr`: text in photos, measured with its baselines in the same run.

    engines     word recall (text >= 20 px) and ms/photo of rapidocr-onnxruntime vs Tesseract, on rendered
                words over flickr8k-train and imagenet-sample backgrounds (indexer/quality/ocr_bench.py)
    search      precision@10 of word queries over an indexed rendered set, OCR on vs off
    fusion      flickr8k-1k text->image recall@10 with fusion on vs off (the eval code and its cache)
    throughput  indexing photos/s with OCR on vs off: an imagenet-sample subset and the text-heavy set

Sets are generated into a temp dir (seeded), never into the repository. Not a test: it prints figures.
Options (environment): BENCH_OCR_COUNT (photos per rendered set, default 60), BENCH_OCR_STAGES
(comma-separated, default all), BENCH_OCR_SEED (default 1; the engines were tuned on seed 7).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _shared() -> Path:
    for parent in (REPO, *REPO.parents):
        candidate = parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return REPO / ".." / "shared" / "datasets"


SHARED = _shared()
SETS = {"flickr8k-train": SHARED / "flickr8k-train" / "images", "imagenet-sample": SHARED / "imagenet-sample"}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def rendered_set(name: str, count: int, seed: int) -> Path:
    from indexer.quality import ocr_bench

    out = Path(tempfile.gettempdir()) / f"dualens-bench-ocr-{name}-{count}-{seed}"
    if not (out / ocr_bench.TRUTH_FILE).exists():
        ocr_bench.generate(out, ocr_bench.backgrounds(SETS[name]), count, seed)
    return out


def engines(count: int, seed: int) -> None:
    from indexer.quality import ocr_bench

    edges = [20, 30, 45, 60, 81]
    for name in SETS:
        photos = ocr_bench.load(rendered_set(name, count, seed))
        results = [
            ocr_bench.measure("rapidocr-onnxruntime 1.4.4", ocr_bench.rapidocr_engine(), photos),
            ocr_bench.measure("tesseract 5 (psm 11)", ocr_bench.tesseract_engine(11), photos),
        ]
        base = results[1]
        for result in results:
            buckets = ", ".join(
                f"{lo}-{hi - 1}px {r:.2f}"
                for lo, hi, r in zip(
                    edges, edges[1:], ocr_bench.recall_by_size(result, photos, edges), strict=False
                )
                if not math.isnan(r)
            )
            print(
                f"engines [{name}, {len(photos)} photos, {result.words} words >= 20 px] {result.name}: "
                f"word recall {result.recall:.3f} ({buckets}); {result.ms_per_photo:.0f} ms/photo; {_load()}"
            )
        best = results[0]
        print(
            f"  rapidocr vs tesseract: recall {best.recall:.3f} vs {base.recall:.3f}, "
            f"time ratio {best.ms_per_photo / max(base.ms_per_photo, 1e-9):.2f}x; "
            f"target word recall >= 0.90: {_verdict(best.recall >= 0.9)}",
            flush=True,
        )


STAGES = {"engines": engines}


def main() -> int:
    if not all(path.is_dir() for path in SETS.values()):
        print(f"skipped: the shared datasets are absent under {SHARED}")
        return 0
    count = int(os.environ.get("BENCH_OCR_COUNT", "60"))
    seed = int(os.environ.get("BENCH_OCR_SEED", "1"))
    wanted = os.environ.get("BENCH_OCR_STAGES", ",".join(STAGES)).split(",")
    print(
        f"bench-ocr: {count} photos per rendered set, seed {seed}; 2-core CPU, no GPU; {_load()}", flush=True
    )
    for stage in wanted:
        STAGES[stage.strip()](count, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

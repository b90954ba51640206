"""`make bench-relevance`: does the "weaker matches" divider separate real queries from nonsense?

    python -m tests.bench.bench_relevance            report on ../shared/datasets/flickr8k-1k
    python -m tests.bench.bench_relevance --select   the same on 1,000 photos of flickr8k-train,
                                                     for several floor quantiles (how the constants
                                                     in search/relevance.py were chosen)

The collection is the dataset's photos embedded by the offline default model (the indexer's own
pixels); its relevance bands are calibrated exactly as `Searcher.relevance` does (nonsense queries,
seed 0). Measured: for real captions, how often the described photo is on the first page (24) *above
the divider*, and how often a real caption wrongly gets "no good matches"; for held-out nonsense
queries (another seed), how often they get "no good matches". Not a test: it prints figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared" / "datasets").resolve()
PAGE = 24
HELD_OUT = 300


def measure(dataset: Path, n_photos: int | None, quantiles: list[float]) -> None:
    from indexer.core.models import DualEncoder
    from indexer.quality.data import load_caption_dataset
    from indexer.quality.evaluate import EvalOptions, embed_image_files, embed_texts, eval_cache_dir
    from search import relevance

    data = load_caption_dataset(dataset / "images", dataset / "captions.csv")
    if n_photos is not None:
        data = data.subset(np.arange(min(n_photos, len(data.images))))
    encoder = DualEncoder("default")
    options = EvalOptions(cache_dir=eval_cache_dir())
    start = time.perf_counter()
    photos = embed_image_files(encoder, data.images, options)
    captions = embed_texts(encoder, list(data.captions), options)
    background = encoder.embed_texts(relevance.nonsense_queries(relevance.BACKGROUND_QUERIES, seed=0))
    held_out = encoder.embed_texts(relevance.nonsense_queries(HELD_OUT, seed=1))
    print(
        f"{dataset.name}: {len(data.images)} photos, {len(data.captions)} captions, "
        f"{HELD_OUT} held-out nonsense queries; model {encoder.model_id} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    scores = captions @ photos.T
    correct = scores[np.arange(len(scores)), data.caption_image]
    rank = (scores > correct[:, None]).sum(axis=1)
    real_top = scores.max(axis=1)
    nonsense_top = (held_out @ photos.T).max(axis=1)
    background_top = (background @ photos.T).max(axis=1).astype(np.float64)
    for q in quantiles:
        spread = np.subtract(*np.quantile(background_top, [0.75, 0.25]))
        floor = float(np.quantile(background_top, q))
        bands = relevance.calibrate(background_top) if q == relevance.FLOOR_QUANTILE else None
        if bands is not None:
            assert abs(bands.floor - floor) < 1e-6  # the bench computes what the Searcher computes
        shown = (rank < PAGE) & (correct >= floor)
        print(
            f"  floor quantile {q:.2f} (cosine {floor:.3f}, spread {spread:.3f}): described photo on page 1 "
            f"above the divider {shown.mean():6.1%} (on page 1 at all {(rank < PAGE).mean():6.1%}); "
            f"real captions with 'no good matches' {(real_top < floor).mean():6.1%}; "
            f"nonsense with 'no good matches' {(nonsense_top < floor).mean():6.1%}"
            + ("   <- search/relevance.py" if bands is not None else "")
        )


def main(argv: list[str]) -> int:
    from search.relevance import FLOOR_QUANTILE

    if not SHARED.is_dir():
        print(f"bench-relevance: {SHARED} is missing; nothing measured")
        return 0
    print(f"bench-relevance {time.strftime('%Y-%m-%d %H:%M')}")
    if "--select" in argv:
        measure(SHARED / "flickr8k-train", 1000, [0.5, 0.75, 0.9, 0.95, 0.99])
    else:
        measure(SHARED / "flickr8k-1k", None, [FLOOR_QUANTILE])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

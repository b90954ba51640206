"""`make bench-quality`: the offline default v4 (LiT-trained head) against v3 (untrained), same run.

    (a) v3: EfficientNet-Lite2 ConSE mixture, nothing trained — built from the same packaged towers
        into a temp dir (`DEFAULT_SPEC` without the features and the head)
    (b) the current default (`DEFAULT_SPEC`: v4, the head trained by `make train-default`)
    (c) with ``--lite0``: the fast variant, Lite0 with its own trained head

each evaluated with `dualens eval`'s own functions on ../shared/datasets/flickr8k-1k (text→image and
image→text recall) and ../shared/datasets/imagenet-sample (zero-shot top-1/top-5, "a photo of a {}.").
Targets (issue #16): Flickr8k-1k text→image recall@10 >= 45 and recall@1 >= 12, zero-shot top-1
>= 87.5, embedding speed unchanged within noise. Not a test: it prints figures. Embeddings go to a
fresh temp cache, so every number is measured now.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from indexer.core.models.default_spec import DEFAULT_MODEL_ID, DEFAULT_SPEC, DefaultModelSpec, default_head

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared" / "datasets").resolve()
FLICKR = SHARED / "flickr8k-1k"
IMAGENET = SHARED / "imagenet-sample"
TARGET_RECALL_AT_10 = 45.0
TARGET_RECALL_AT_1 = 12.0
TARGET_TOP1 = 87.5

V3 = replace(DEFAULT_SPEC, features=False, head="")
LITE0 = replace(DEFAULT_SPEC, vision="efficientnet-lite0", head=default_head("efficientnet-lite0"))


@dataclass(frozen=True)
class Row:
    name: str
    t2i: tuple[float, float, float, float]  # R@1, R@5, R@10, median rank
    i2t_r10: float
    top1: float
    top5: float
    images_per_second: float


def measure(name: str, spec: DefaultModelSpec | None, work: Path) -> Row:
    from indexer.core.models import load_encoder
    from indexer.core.models.default_model import build_default_model
    from indexer.quality.data import labels_from_filenames, load_caption_dataset
    from indexer.quality.evaluate import EvalOptions, evaluate_retrieval, evaluate_zero_shot

    slug = name.split()[0]  # "(a)", "(b)", ...: this model's directory and cache names
    if spec is None:
        encoder = load_encoder(None)
    else:
        model_dir = work / slug
        build_default_model(model_dir, spec, force=True)
        encoder = load_encoder(str(model_dir))
    encoder.load()
    options = EvalOptions(cache_dir=work / f"cache-{slug}")
    started = time.perf_counter()
    retrieval = evaluate_retrieval(
        encoder, load_caption_dataset(FLICKR / "images", FLICKR / "captions.csv"), options
    )
    labelled = labels_from_filenames(IMAGENET)
    zero_shot = evaluate_zero_shot(encoder, labelled, ("a photo of a {}.",), options)
    seconds = time.perf_counter() - started
    n_images = retrieval.n_images + zero_shot.n_images
    t = retrieval.text_to_image
    return Row(
        name,
        (t.recall_at_1, t.recall_at_5, t.recall_at_10, t.median_rank),
        retrieval.image_to_text.recall_at_10,
        zero_shot.top1,
        zero_shot.top5,
        n_images / seconds,
    )


def main(argv: list[str]) -> int:
    if not (FLICKR.is_dir() and IMAGENET.is_dir()):
        print(f"skipped: {SHARED} is absent (needs flickr8k-1k and imagenet-sample)")
        return 0
    one, five, _ = os.getloadavg()
    print(f"bench-quality: load average {one:.2f} {five:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="dualens-bench-quality-") as tmp:
        work = Path(tmp)
        rows = [
            measure("(a) dualens-default-v3: Lite2 ConSE, untrained", V3, work),
            measure(f"(b) {DEFAULT_MODEL_ID} (default): Lite2 + trained head", None, work),
        ]
        if "--lite0" in argv:
            rows.append(measure("(c) the fast variant: Lite0 + its trained head", LITE0, work))
    columns = ("R@1", 5), ("R@5", 5), ("R@10", 5), ("med", 4), ("i2t@10", 6), ("top1", 5), ("top5", 5)
    print(f"{'model':58} " + " ".join(f"{name:>{width}}" for name, width in columns) + "  img/s")
    for r in rows:
        r1, r5, r10, med = r.t2i
        print(
            f"{r.name:58} {r1:5.1f} {r5:5.1f} {r10:5.1f} {med:4.0f} {r.i2t_r10:6.1f} "
            f"{r.top1:5.1f} {r.top5:5.1f} {r.images_per_second:6.1f}"
        )
    old, new = rows[0], rows[1]
    gain = f"{new.t2i[2] / old.t2i[2]:.2f}x"
    checks = [
        (
            f"text→image recall@10 {new.t2i[2]:.1f} (v3 {old.t2i[2]:.1f}, {gain})",
            new.t2i[2],
            TARGET_RECALL_AT_10,
        ),
        (f"text→image recall@1 {new.t2i[0]:.1f} (v3 {old.t2i[0]:.1f})", new.t2i[0], TARGET_RECALL_AT_1),
        (
            f"zero-shot top-1 {new.top1:.1f} (v3 {old.top1:.1f}, {new.top1 - old.top1:+.1f})",
            new.top1,
            TARGET_TOP1,
        ),
    ]
    for line, value, target in checks:
        print(f"{line} >= {target:g}: {'MET' if value >= target else 'NOT MET'}")
    print(
        f"embedding speed: {new.images_per_second:.1f} vs v3 {old.images_per_second:.1f} images/s "
        f"({new.images_per_second / old.images_per_second:.2f}x), decode included"
    )
    return 0 if all(value >= target for _, value, target in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

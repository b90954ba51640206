"""`make bench-similar`: near-duplicates and "more like this" on edited copies of real photos.

    python -m tests.bench.bench_similar            report: 200 photos of ../shared/datasets
                                                   (flickr8k-1k, imagenet-sample) edited five ways,
                                                   mixed into the rest of both sets (2,000 photos)
    python -m tests.bench.bench_similar --select   the same on flickr8k-train, with a threshold
                                                   sweep (how search/duplicates.DEFAULT_THRESHOLD
                                                   was chosen); never select on the report sets

Each source photo gets five copies (JPEG quality 40; resized to 50 %; centre crop keeping 90 % of
each side; rotated 5 degrees; brightness and contrast x1.2), indexed by `dualens index` with the
default model. Measured: near-duplicate recall (copies grouped with their original) and precision
(grouped pairs that are truly one photo) of `dualens duplicates` at the default threshold; how often
an edited copy's first `similar` hit is its original or another copy of it, in the visual space
(what `similar` uses) and in the joint space (the baseline, same run). Then four stronger edits
(JPEG 20, 33 %, 80 % crop, 10 degrees) of the same photos are added, as information.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared" / "datasets").resolve()
N_SOURCES = 200
SEED = 0
RECALL_TARGET, PRECISION_TARGET, SIMILAR_TARGET = 0.98, 0.99, 0.99

Edit = Callable[[Image.Image], tuple[Image.Image, str]]  # the copy, and its file format


def _jpeg(quality: int) -> Edit:
    def edit(image: Image.Image) -> tuple[Image.Image, str]:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), "jpg"

    return edit


def _resize(scale: float) -> Edit:
    def edit(image: Image.Image) -> tuple[Image.Image, str]:
        w, h = image.size
        return image.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS
        ), "jpg"

    return edit


def _crop(keep: float) -> Edit:
    def edit(image: Image.Image) -> tuple[Image.Image, str]:
        w, h = image.size
        cw, ch = round(w * keep), round(h * keep)
        left, top = (w - cw) // 2, (h - ch) // 2
        return image.crop((left, top, left + cw, top + ch)), "jpg"

    return edit


def _rotate(degrees: float) -> Edit:
    def edit(image: Image.Image) -> tuple[Image.Image, str]:
        return image.rotate(degrees, resample=Image.Resampling.BICUBIC), "jpg"

    return edit


def _brighter(factor: float) -> Edit:
    def edit(image: Image.Image) -> tuple[Image.Image, str]:
        return ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(factor)).enhance(factor), "png"

    return edit


EDITS: dict[str, Edit] = {
    "jpeg40": _jpeg(40),
    "resize50": _resize(0.5),
    "crop90": _crop(0.9),
    "rotate5": _rotate(5),
    "bright1.2": _brighter(1.2),  # saved as PNG: a format-converted copy as well
}
STRONG_EDITS: dict[str, Edit] = {
    "jpeg20": _jpeg(20),
    "resize33": _resize(1 / 3),
    "crop80": _crop(0.8),
    "rotate10": _rotate(10),
}


def write_copies(sources: list[Path], edits: dict[str, Edit], out: Path) -> dict[str, int]:
    """Write every edit of every source under ``out``; returns copy path -> source number."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for n, source in enumerate(sources):
        with Image.open(source) as opened:
            image = opened.convert("RGB")
        for name, edit in edits.items():
            copy, fmt = edit(image)
            path = out / f"{n:04d}-{name}.{fmt}"
            copy.save(path, quality=95) if fmt == "jpg" else copy.save(path)
            truth[str(path)] = n
    return truth


def link_photos(photos: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for n, photo in enumerate(photos):
        (out / f"{n:05d}{photo.suffix.lower()}").symlink_to(photo)


def choose(select: bool) -> tuple[list[Path], list[Path]]:
    """(sources to edit, other distinct photos), seeded."""
    if select:
        pool = sorted((SHARED / "flickr8k-train" / "images").glob("*.jpg"))
        pool = [pool[i] for i in np.random.default_rng(SEED).permutation(len(pool))[: N_SOURCES + 1800]]
    else:
        pool = sorted((SHARED / "flickr8k-1k" / "images").glob("*.jpg"))
        pool += sorted((SHARED / "imagenet-sample").glob("*.JPEG"))
        pool = [pool[i] for i in np.random.default_rng(SEED).permutation(len(pool))]
    return pool[:N_SOURCES], pool[N_SOURCES:]


def source_of(paths: dict[int, str], truth: dict[str, int], originals: dict[str, int]) -> dict[int, int]:
    """Photo id -> source number, for originals and copies alike (others absent)."""
    out = {}
    for photo_id, path in paths.items():
        if path in truth:
            out[photo_id] = truth[path]
        elif path in originals:
            out[photo_id] = originals[path]
    return out


def duplicate_scores(
    groups: list[list[int]], source: dict[int, int], copies: set[int]
) -> tuple[float, float]:
    """(recall: copies grouped with their source's original, precision: grouped pairs of one photo)."""
    group_of = {i: g for g, ids in enumerate(groups) for i in ids}
    original = {s: i for i, s in source.items() if i not in copies}
    found = sum(
        1 for c in copies if c in group_of and group_of.get(original.get(source[c], -1)) == group_of[c]
    )
    pairs = true_pairs = 0
    for ids in groups:
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                pairs += 1
                sa, sb = source.get(ids[a]), source.get(ids[b])
                true_pairs += sa is not None and sa == sb
    return found / max(1, len(copies)), (true_pairs / pairs if pairs else 1.0)


def similar_rate(collection, copies: set[int], source: dict[int, int], space) -> float:  # type: ignore[no-untyped-def]
    """How often a copy's first hit (itself excluded) is its original or another copy of it."""
    index = collection.load_index(space)
    ids = sorted(copies)
    found_ids, vectors = collection.indexed_vectors(ids, space=space)
    result = index.search(vectors, 2)
    good = 0
    for me, hits in zip(found_ids, result.ids, strict=True):
        first = next(int(h) for h in hits if int(h) != int(me))
        good += source.get(first) == source[int(me)]
    return good / len(ids)


def main(argv: list[str] | None = None) -> int:
    from indexer.core.storage.collection import JOINT, Collection
    from indexer.core.storage.schema import Photo
    from indexer.pipeline import IndexOptions, run_index
    from search.duplicates import DEFAULT_THRESHOLD, duplicate_id_groups

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", action="store_true", help="flickr8k-train, with a threshold sweep")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"no datasets in {SHARED}; nothing to measure", file=sys.stderr)
        return 0
    sources, others = choose(args.select)
    thresholds = (
        [0.78, 0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.88, 0.90] if args.select else [DEFAULT_THRESHOLD]
    )
    with tempfile.TemporaryDirectory(prefix="dualens-bench-similar-") as tmp:
        root, data = Path(tmp) / "photos", Path(tmp) / "data"
        link_photos(sources, root / "originals")
        link_photos(others, root / "others")
        originals = {str(root / "originals" / f"{n:05d}{p.suffix.lower()}"): n for n, p in enumerate(sources)}
        start = time.perf_counter()
        truth = write_copies(sources, EDITS, root / "copies")
        made = time.perf_counter() - start
        summary = run_index(data, [root], IndexOptions())
        print(
            f"{'flickr8k-train' if args.select else 'flickr8k-1k + imagenet-sample'}: {len(sources)} photos "
            f"x {len(EDITS)} edits = {len(truth)} copies among {len(sources) + len(others)} distinct photos "
            f"(copies made in {made:.0f} s, indexed in {summary.times.total:.0f} s); model {summary.model_id}"
        )
        with Collection.open(data) as collection:
            space = collection.similarity_space()
            with collection.session() as s:
                paths = {int(i): str(p) for i, p in s.query(Photo.id, Photo.path).all()}
            source = source_of(paths, truth, originals)
            copies = {i for i, p in paths.items() if p in truth}
            for threshold in thresholds:
                groups = duplicate_id_groups(collection, threshold)
                recall, precision = duplicate_scores(groups, source, copies)
                marks = (
                    ""
                    if args.select
                    else (
                        f"  (targets >= {RECALL_TARGET:.0%}, >= {PRECISION_TARGET:.0%}: "
                        f"{'met' if recall >= RECALL_TARGET and precision >= PRECISION_TARGET else 'MISSED'})"
                    )
                )
                print(
                    f"duplicates at threshold {threshold:.2f} ({space.name} space): "
                    f"recall {recall:.1%}, precision {precision:.1%}{marks}"
                )
            visual = similar_rate(collection, copies, source, space)
            joint = similar_rate(collection, copies, source, JOINT)
            print(
                f"similar: first hit of an edited copy is its original or a copy of it: {visual:.1%} "
                f"({space.name} space) vs {joint:.1%} (joint space, the baseline), "
                f"ratio {visual / joint:.3f}; "
                f"target >= {SIMILAR_TARGET:.0%}: {'met' if visual >= SIMILAR_TARGET else 'MISSED'}"
            )
            for name in EDITS:
                edited = {
                    i for i in copies if paths[i].endswith(tuple(f"-{name}.{e}" for e in ("jpg", "png")))
                }
                print(
                    f"  {name:>10}: {similar_rate(collection, edited, source, space):.1%} "
                    f"vs {similar_rate(collection, edited, source, JOINT):.1%}"
                )
        strong = write_copies(sources, STRONG_EDITS, root / "strong")
        run_index(data, [root], IndexOptions())
        with Collection.open(data) as collection:
            with collection.session() as s:
                paths = {int(i): str(p) for i, p in s.query(Photo.id, Photo.path).all()}
            truth_all = {**truth, **strong}
            source = source_of(paths, truth_all, originals)
            for name in STRONG_EDITS:
                edited = {i for i, p in paths.items() if p in strong and f"-{name}." in p}
                print(
                    f"  stronger {name:>10}: {similar_rate(collection, edited, source, space):.1%} "
                    f"vs {similar_rate(collection, edited, source, JOINT):.1%} (information)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

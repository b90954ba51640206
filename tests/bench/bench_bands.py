"""`make bench-bands`: how often is a "strong" or "good" match the right photo?

    python -m tests.bench.bench_bands            report on flickr8k-1k and imagenet-sample
    python -m tests.bench.bench_bands --select   choose Z_GOOD / Z_STRONG of search/relevance.py on
                                                 flickr8k-train (the only set they may be chosen on)

Each data set becomes labelled text queries over a collection of its photos (the default offline
model, vectors through the evaluation cache, so only the first run embeds):

- flickr8k-1k: each of the 5,000 captions -> its photo (the one right photo of 1,000);
- imagenet-sample: "a photo of a {class}" and "{class}" -> the photo of that class (one per class);
- flickr8k-train (``--select`` only): seven collections of ~1,013 of its photos, their captions.

Every query's first page (:data:`PAGE` hits) is banded twice, in the same run: by the old rule (the
nonsense calibration alone, ``Relevance.band``) and by the new one (``Relevance.cutoffs`` of the
query's :data:`~search.relevance.TOP_SCORES` best cosines), both calibrated exactly as
``Searcher.relevance`` does. A band's precision is the share of its hits that are a right photo (a
photo another caption would describe as well counts as wrong: precision is a lower bound). Targets:
strong >= 90 %, good >= 70 %. Also shown: how many right photos on page 1 get each band, and the
share of held-out nonsense queries whose page has no good match (the "No good matches" banner).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search.relevance import Cutoffs, Relevance

if TYPE_CHECKING:
    from indexer.core.models import DualEncoder
    from indexer.quality.evaluate import EvalOptions

REPO = Path(__file__).resolve().parents[2]
PAGE = 24
HELD_OUT = 300
TARGETS = {"strong": 0.90, "good": 0.70}


def shared_datasets() -> Path | None:
    """``../shared/datasets`` of the repository (or of the directory holding its worktree)."""
    for candidate in (REPO.parent / "shared" / "datasets", REPO.parent.parent / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


@dataclass(frozen=True)
class Labelled:
    """Photos and text queries, each with a label: a hit is right when the labels are equal."""

    name: str
    photos: np.ndarray  # (n_photos, dim), L2-normalised
    photo_label: np.ndarray  # (n_photos,)
    queries: np.ndarray  # (n_queries, dim)
    query_label: np.ndarray  # (n_queries,)


@dataclass
class Tally:
    hits: int = 0
    right: int = 0

    @property
    def precision(self) -> float:
        return self.right / self.hits if self.hits else float("nan")


def _encoder_and_options() -> tuple[DualEncoder, EvalOptions]:
    from indexer.core.models import DualEncoder
    from indexer.quality.evaluate import EvalOptions, eval_cache_dir

    return DualEncoder("default"), EvalOptions(cache_dir=eval_cache_dir())


def captions_set(dataset: Path, encoder: DualEncoder, options: EvalOptions) -> Labelled:
    from indexer.quality.data import load_caption_dataset
    from indexer.quality.evaluate import embed_image_files, embed_texts

    data = load_caption_dataset(dataset / "images", dataset / "captions.csv")
    photos = embed_image_files(encoder, data.images, options)
    queries = embed_texts(encoder, list(data.captions), options)
    return Labelled(dataset.name, photos, np.arange(len(photos)), queries, np.asarray(data.caption_image))


def imagenet_set(dataset: Path, encoder: DualEncoder, options: EvalOptions) -> Labelled:
    from indexer.quality.evaluate import embed_image_files, embed_texts

    paths = sorted(dataset.glob("*.JPEG"))
    names = [p.stem.split("_", 1)[1].replace("_", " ") for p in paths]
    classes = sorted(set(names))
    label = {c: i for i, c in enumerate(classes)}
    texts = [f"a photo of a {c}" for c in classes] + classes
    photos = embed_image_files(encoder, paths, options)
    queries = embed_texts(encoder, texts, options)
    query_label = np.array([label[c] for c in classes] * 2)
    return Labelled(dataset.name, photos, np.array([label[n] for n in names]), queries, query_label)


def validation_split(data: Labelled) -> list[Labelled]:
    """The photos of flickr8k-train the default model's head was not trained on (the validation
    split of `make train-default`: indexer/quality/train.py, its default fraction and seed), as one
    collection: its training photos score far better than any collection a user has."""
    from indexer.quality.train import split_images
    from indexer.quality.train_config import TrainConfig

    config = TrainConfig(images=Path(), captions=Path(), out=Path())
    _, validation = split_images(len(data.photos), config.val_fraction, config.seed)
    return split(data, 1, photos=validation)


def split(data: Labelled, parts: int, seed: int = 0, photos: np.ndarray | None = None) -> list[Labelled]:
    """``parts`` disjoint collections of the photos (or of ``photos``), each with the queries of its
    own photos."""
    order = np.random.default_rng(seed).permutation(len(data.photos) if photos is None else photos)
    out = []
    for i, chunk in enumerate(np.array_split(order, parts)):
        keep = np.isin(data.query_label, data.photo_label[chunk])
        out.append(
            Labelled(
                f"{data.name}[{i}]",
                data.photos[chunk],
                data.photo_label[chunk],
                data.queries[keep],
                data.query_label[keep],
            )
        )
    return out


@dataclass(frozen=True)
class Pages:
    """Every query's first page over one collection, with what both rules need."""

    cosines: np.ndarray  # (n_queries, PAGE), descending
    right: np.ndarray  # (n_queries, PAGE) bool
    top: np.ndarray  # (n_queries, TOP_SCORES): the query's best cosines over the collection
    nonsense_pages: np.ndarray  # (HELD_OUT, PAGE) cosines of held-out nonsense queries
    nonsense_top: np.ndarray  # (HELD_OUT, TOP_SCORES)
    relevance: Relevance  # calibrated as the Searcher does


def pages(data: Labelled, background: np.ndarray, held_out: np.ndarray) -> Pages:
    from search import relevance

    def best(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ data.photos.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, : relevance.TOP_SCORES]
        return np.take_along_axis(scores, order, axis=1).astype(np.float64), order

    top, order = best(data.queries)
    right = data.photo_label[order[:, :PAGE]] == data.query_label[:, None]
    nonsense_top, _ = best(held_out)
    calibrated = relevance.calibrate((background @ data.photos.T).max(axis=1))
    return Pages(top[:, :PAGE], right, top, nonsense_top[:, :PAGE], nonsense_top, calibrated)


def tally(all_pages: list[Pages], rule: str, z: tuple[float, float] | None = None) -> dict[str, Tally]:
    """Hits and right hits per band under the old rule ("old") or the new one ("new"; ``z``
    overrides its (Z_GOOD, Z_STRONG))."""
    out = {b: Tally() for b in ("strong", "good", "weak")}
    for p in all_pages:
        rel = p.relevance
        if z is not None:
            rel = replace(rel, z_good=z[0], z_strong=z[1])
        for q in range(len(p.cosines)):
            cut = rel.cutoffs(p.top[q]) if rule == "new" else Cutoffs(rel.floor, rel.strong)
            for c, ok in zip(p.cosines[q], p.right[q], strict=True):
                t = out[cut.band(float(c)).value]
                t.hits += 1
                t.right += int(ok)
    return out


def nonsense_without_good(all_pages: list[Pages], rule: str) -> float:
    quiet = total = 0
    for p in all_pages:
        rel = p.relevance
        for q in range(len(p.nonsense_pages)):
            cut = rel.cutoffs(p.nonsense_top[q]) if rule == "new" else Cutoffs(rel.floor, rel.strong)
            quiet += all(cut.band(float(c)).value == "weak" for c in p.nonsense_pages[q])
            total += 1
    return quiet / total


def report(name: str, all_pages: list[Pages]) -> None:
    from search.relevance import Z_GOOD, Z_STRONG

    right = sum(int(p.right.sum()) for p in all_pages)
    queries = sum(len(p.cosines) for p in all_pages)
    print(f"{name}: {queries} queries, {right} right photos on their page 1 (of {PAGE} hits)")
    rules = (("old", "old (nonsense only)"), ("new", f"new (z {Z_GOOD:g}/{Z_STRONG:g})"))
    for rule, label in rules:
        bands = tally(all_pages, rule)
        parts = []
        for band in ("strong", "good"):
            t = bands[band]
            met = "MET" if t.precision >= TARGETS[band] else "NOT MET"
            parts.append(
                f"{band} {t.precision:6.1%} of {t.hits:6d} hits ({t.right} right) "
                f"[>= {TARGETS[band]:.0%} {met}]"
            )
        weak = bands["weak"]
        parts.append(f"weak {weak.precision:5.1%} of {weak.hits}")
        parts.append(f"nonsense with no good match {nonsense_without_good(all_pages, rule):6.1%}")
        print(f"  {label:22s} " + "; ".join(parts))


def _grid_counts(all_pages: list[Pages], z_good: float, z_strong: float) -> tuple[int, int, int, int]:
    """(strong hits, right ones, good hits, right ones) of the new rule, vectorised for the grid
    (``report`` then checks the chosen constants through ``Relevance.cutoffs`` itself)."""
    from search.relevance import MIN_SCORES

    counts = np.zeros(4, dtype=np.int64)
    for p in all_pages:
        rel = p.relevance
        mu, sigma = p.top.mean(axis=1, keepdims=True), p.top.std(axis=1, keepdims=True)
        stands = p.top.shape[1] >= MIN_SCORES
        good_cut = np.maximum(rel.floor, mu + z_good * sigma if stands else -np.inf)
        above = mu + z_strong * sigma if stands else -np.inf
        strong_cut = np.maximum(np.maximum(good_cut, rel.strong), above)
        strong = p.cosines >= strong_cut
        good = (p.cosines >= good_cut) & ~strong
        counts += [strong.sum(), (strong & p.right).sum(), good.sum(), (good & p.right).sum()]
    return tuple(int(c) for c in counts)  # type: ignore[return-value]


def select(train: Labelled, background: np.ndarray, held_out: np.ndarray) -> None:
    """The grid the constants were chosen from (pooled over the flickr8k-train collections)."""
    all_pages = [pages(part, background, held_out) for part in validation_split(train)]
    grid = np.arange(0.0, 12.01, 0.5)
    size = len(all_pages[0].cosines) // 5
    print(f"flickr8k-train validation split: {size} photos, their captions as queries")
    for z_good in grid:
        for z_strong in grid[grid >= z_good]:
            s_hits, s_right, g_hits, g_right = _grid_counts(all_pages, float(z_good), float(z_strong))
            print(
                f"  z_good {z_good:4.1f} z_strong {z_strong:4.1f}: "
                f"strong {s_right / max(s_hits, 1):6.1%} of {s_hits:5d}, "
                f"good {g_right / max(g_hits, 1):6.1%} of {g_hits:5d}, "
                f"right photos good or better {s_right + g_right}"
            )
    report("flickr8k-train (the constants of search/relevance.py)", all_pages)


def main(argv: list[str]) -> int:
    shared = shared_datasets()
    if shared is None:
        print("bench-bands: ../shared/datasets is missing; nothing measured")
        return 0
    from search import relevance

    print(f"bench-bands {time.strftime('%Y-%m-%d %H:%M')}")
    encoder, options = _encoder_and_options()
    background = encoder.embed_texts(relevance.nonsense_queries(relevance.BACKGROUND_QUERIES, seed=0))
    held_out = encoder.embed_texts(relevance.nonsense_queries(HELD_OUT, seed=1))
    if "--select" in argv:
        select(captions_set(shared / "flickr8k-train", encoder, options), background, held_out)
        return 0
    for data in (captions_set(shared / "flickr8k-1k", encoder, options),
                 imagenet_set(shared / "imagenet-sample", encoder, options)):  # fmt: skip
        report(data.name, [pages(data, background, held_out)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

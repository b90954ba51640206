"""The text gate's recipe (``indexer/ocr_gate.py``): a logistic probe on the default image tower's
visual vector, trained on flickr8k-train only. ``python -m tests.bench.train_ocr_gate [WORK [OUT]]``.

Data (everything derived from ``flickr8k-train``, seeded):

* natural photos: the first :data:`NATURAL` flickr8k-train photos by name, as they are, labelled
  by the real OCR stage (``indexer/ocr.py``'s engine
  through ``read_texts``): text when the engine read at least one word of two or more letters or
  digits;
* rendered photos: flickr8k-train photos upscaled to a long side of :data:`UPSCALE` px (so the rendered
  text is 20-80 px on a photo of a few hundred px, as on real photos and the bench's sets) with
  1-3 words drawn on them by :mod:`indexer.quality.ocr_bench`'s generator (another seed than the
  bench's): text whenever a word was placed.

Both sets are indexed by ``dualens index`` (OCR off) into a throw-away collection, so the probe sees
exactly the vectors the stage reads. A seeded 20 % of the flickr8k-train photos (by name; a rendered
photo goes where its background goes) is held out: the threshold is the highest score keeping
:data:`TARGET_RECALL` of the held-out text photos. Nothing but ``main`` prints; it writes
``indexer/ocr_gate_lite2.npz`` (5 KB).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.ocr_gate import GATE_FILE, save_gate
from indexer.quality import ocr_bench


def _train_images() -> Path:
    root = Path(__file__).resolve().parents[2]
    for parent in (root, *root.parents):
        if (parent / "shared" / "datasets").is_dir():
            return parent / "shared" / "datasets" / "flickr8k-train" / "images"
    return root / "shared" / "datasets" / "flickr8k-train" / "images"


TRAIN_IMAGES = _train_images()

RECIPE = "probe-lite2-1"
UPSCALE = (320, 1024)
NATURAL = 5400
RENDERED = 1000
RENDER_SEED = 101  # the bench renders with seed 1 (reported) and 7 (engine tuning)
HELD_OUT = 5  # one photo in HELD_OUT is held out (by the hash of its name)
TARGET_RECALL = 0.98
L2 = 1e-3
STEPS = 2000
LEARNING_RATE = 0.5


@dataclass(frozen=True)
class Example:
    name: str  # the flickr8k-train photo it comes from
    rendered: bool
    text: bool
    vector: np.ndarray


def held_out(name: str) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % HELD_OUT == 0


def upscaled_backgrounds(images: list[Path], out: Path, count: int, seed: int) -> list[Path]:
    """``count`` of ``images`` (seeded), each resized to a random long side in :data:`UPSCALE`."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for path in rng.sample(images, count):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        side = rng.randint(*UPSCALE)
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        target = out / path.name
        image.resize(size, Image.Resampling.BICUBIC).save(target, "JPEG", quality=90)
        made.append(target)
    return made


def index_folder(data: Path, folder: Path, *, read_text: bool) -> tuple[dict[str, np.ndarray], set[str]]:
    """Index ``folder`` into a new collection at ``data`` (default model, OCR off): the visual vector
    of each photo by its path and, ``read_text``: the paths in which the OCR stage then read a word of
    two or more letters or digits."""
    from indexer.core.models import load_encoder
    from indexer.pipeline import IndexOptions, run_index

    run_index(data, [folder], IndexOptions(ocr=False), encoder=load_encoder("default"))
    return stored(data, read_text=read_text)


def stored(data: Path, *, read_text: bool) -> tuple[dict[str, np.ndarray], set[str]]:
    """:func:`index_folder`'s answer from the collection at ``data``, its photos indexed."""
    from sqlalchemy import select

    from indexer.core.storage.collection import Collection
    from indexer.core.storage.schema import Photo
    from indexer.core.storage.spaces import VISUAL
    from indexer.core.storage.text import tokens
    from indexer.ocr import read_texts

    collection = Collection.open(data)
    try:
        with collection.session() as s:
            path_of = {int(r.id): str(r.path) for r in s.execute(select(Photo.id, Photo.path))}
        ids, matrix = collection.indexed_vectors(list(path_of), space=VISUAL)
        vectors = {path_of[int(i)]: matrix[n] for n, i in enumerate(ids)}
        texts: dict[int, str] = {}
        if read_text:
            read_texts(collection, gate=False)
            texts = collection.photo_texts(list(path_of))
    finally:
        collection.close()
    text = {path_of[i] for i, found in texts.items() if any(len(t) >= 2 for t in tokens(found))}
    return vectors, text


def build(work: Path, rendered: int = RENDERED, natural: int = NATURAL) -> list[Example]:
    """The examples (the first ``natural`` flickr8k-train photos and ``rendered`` rendered ones),
    cached as ``examples.npz`` in ``work``."""
    cached = work / "examples.npz"
    if cached.exists():
        saved = np.load(cached)
        return [
            Example(str(n), bool(r), bool(t), v)
            for n, r, t, v in zip(
                saved["name"], saved["rendered"], saved["text"], saved["vector"], strict=True
            )
        ]
    images = ocr_bench.backgrounds(TRAIN_IMAGES)
    backgrounds = upscaled_backgrounds(images, work / "backgrounds", rendered, RENDER_SEED)
    rng = random.Random(RENDER_SEED)
    fonts = ocr_bench.fonts()
    (work / "rendered").mkdir(exist_ok=True)
    origin = {}
    for i, background in enumerate(backgrounds):
        photo = ocr_bench.render_photo(work / "rendered" / f"text_{i:05d}.jpg", background, rng, fonts)
        origin[str(photo.path.resolve())] = (background.name, bool(photo.words))
    (work / "natural").mkdir(exist_ok=True)
    for path in images[:natural]:  # copies: the scan follows no link out of a root
        shutil.copyfile(path, work / "natural" / path.name)
    plain, text = index_folder(work / "data-natural", work / "natural", read_text=True)
    drawn, _ = index_folder(work / "data-rendered", work / "rendered", read_text=False)
    examples = [Example(Path(p).name, False, p in text, v) for p, v in plain.items()]
    examples += [Example(origin[p][0], True, origin[p][1], v) for p, v in drawn.items() if p in origin]
    np.savez(
        cached,
        name=np.array([e.name for e in examples]),
        rendered=np.array([e.rendered for e in examples]),
        text=np.array([e.text for e in examples]),
        vector=np.stack([e.vector for e in examples]),
    )
    return examples


@dataclass(frozen=True)
class Probe:
    weights: np.ndarray
    bias: float
    threshold: float
    l2: float


@dataclass(frozen=True)
class Split:
    x: np.ndarray
    y: np.ndarray
    rendered: np.ndarray


def split(examples: list[Example], *, held: bool) -> Split:
    chosen = [e for e in examples if held_out(e.name) == held]
    return Split(
        np.stack([e.vector for e in chosen]).astype(np.float32),
        np.array([e.text for e in chosen]),
        np.array([e.rendered for e in chosen]),
    )


def fit(data: Split, l2: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """Class-balanced L2-regularised logistic regression by full-batch gradient descent on
    standardised features; returned as weights and bias on the raw vectors."""
    mean, std = data.x.mean(0), data.x.std(0) + 1e-6
    z = (data.x - mean) / std
    y = data.y.astype(np.float32)
    weight = np.where(data.y, 0.5 / max(1, data.y.sum()), 0.5 / max(1, (~data.y).sum())).astype(np.float32)
    w = np.random.default_rng(seed).normal(0.0, 0.01, z.shape[1]).astype(np.float32)
    b = 0.0
    for _ in range(STEPS):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        g = weight * (p - y)
        w -= LEARNING_RATE * (z.T @ g + l2 * w)
        b -= LEARNING_RATE * float(g.sum())
    raw = w / std
    return raw.astype(np.float32), float(b - raw @ mean)


def threshold_for(scores: np.ndarray, recall: float) -> float:
    """The highest threshold keeping ``recall`` of the positive ``scores`` at or above it."""
    ordered = np.sort(scores)
    return float(ordered[int(np.floor((1.0 - recall) * len(ordered)))])


def evaluate(probe: Probe, data: Split) -> dict[str, float]:
    keep = data.x @ probe.weights + probe.bias >= probe.threshold
    out = {
        "text photos kept (recall)": float(keep[data.y].mean()),
        "rendered kept": float(keep[data.y & data.rendered].mean()),
        "natural text kept": float(keep[data.y & ~data.rendered].mean())
        if (data.y & ~data.rendered).any()
        else float("nan"),
        "no-text photos skipped": float((~keep[~data.y]).mean()),
        "precision of kept": float(data.y[keep].mean()) if keep.any() else float("nan"),
    }
    return out


def train(
    examples: list[Example], l2s: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
) -> tuple[Probe, dict[str, float]]:
    """The probe of the ``l2`` that skips the most held-out no-text photos at TARGET_RECALL."""
    learn, held = split(examples, held=False), split(examples, held=True)
    best: tuple[Probe, dict[str, float]] | None = None
    for l2 in l2s:
        weights, bias = fit(learn, l2)
        scores = held.x @ weights + bias
        probe = Probe(weights, bias, threshold_for(scores[held.y], TARGET_RECALL), l2)
        figures = evaluate(probe, held)
        if best is None or figures["no-text photos skipped"] > best[1]["no-text photos skipped"]:
            best = (probe, figures)
    assert best is not None
    return best


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "dualens-ocr-gate-train"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    examples = build(work)
    texts = sum(e.text for e in examples)
    print(f"{len(examples)} examples, {texts} with text, {time.perf_counter() - start:.0f}s")
    probe, figures = train(examples)
    held = split(examples, held=True)
    scores = held.x @ probe.weights + probe.bias
    for recall in (0.95, 0.97, 0.98, 0.99):
        other = Probe(probe.weights, probe.bias, threshold_for(scores[held.y], recall), probe.l2)
        print(
            f"  at held-out recall {recall}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in evaluate(other, held).items())
        )
    print(f"held-out flickr8k-train (l2 {probe.l2}, threshold {probe.threshold:.3f}):")
    for name, value in figures.items():
        print(f"  {name}: {value:.3f}")
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else GATE_FILE
    save_gate(out, RECIPE, probe.weights, probe.bias, probe.threshold)
    print(f"saved {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

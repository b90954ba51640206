"""Tiny captioned photo sets and configurations for the LiT training tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.quality.train_config import TrainConfig


def write_captioned(
    root: Path, n: int, size: tuple[int, int], seed: int, captions: Callable[[int], list[str]]
) -> tuple[Path, Path]:
    """``n`` photos of seeded solid colours in ``root/images`` and ``root/captions.csv`` giving
    photo i the captions ``captions(i)``; returns (images dir, captions file)."""
    (root / "images").mkdir()
    rng = np.random.default_rng(seed)
    rows = ["image,caption"]
    for i in range(n):
        name = f"img{i:02d}.png"
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        Image.new("RGB", size, colour).save(root / "images" / name)
        rows += [f"{name},{caption}" for caption in captions(i)]
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root / "images", root / "captions.csv"


def lit_config(images: Path, captions: Path, base: Path, out: Path, **kw: Any) -> TrainConfig:
    """A small-batch, seeded training run of ``base`` with its cache next to ``out``."""
    defaults = {"batch_size": 12, "seed": 0, "data": out.parent / "data"}
    return TrainConfig(images=images, captions=captions, out=out, base=str(base), **{**defaults, **kw})

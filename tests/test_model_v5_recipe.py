"""The v5 LiT recipe on synthetic locked-tower vectors: it learns, selects on held-out data, saves a head."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.quality.train_distill import class_names
from indexer.quality.train_v5 import V5Features, V5Recipe, V5Trainer, ridge_map, save_head

DIM = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One thread: on a shared, busy CPU two threads are several times slower (docs/models.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def features() -> V5Features:
    """Captions are a hidden linear map of their photo's vector plus noise; class prompts likewise
    (small sizes: 32-d "v4.2" vectors, 64-d "USE" vectors)."""
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(DIM, 32))
    images = _unit(rng.normal(size=(300, 32)))
    caption_image = np.repeat(np.arange(300), 2)
    captions = _unit(images[caption_image] @ hidden.T + 0.5 * rng.normal(size=(600, DIM)))
    names = class_names()
    anchors_v42 = _unit(rng.normal(size=(1000, 32)))
    return V5Features(
        images=images,
        captions=captions,
        caption_image=caption_image,
        caption_texts=[f"a dog next to a {names[i % 1000]}" for i in caption_image],
        anchors_v42=anchors_v42,
        anchors_use=_unit(anchors_v42 @ hidden.T),
    )


def test_ridge_map_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(1)
    source, true = rng.normal(size=(500, 8)), rng.normal(size=(4, 8))
    np.testing.assert_allclose(ridge_map(source, source @ true.T, 1e-6), true, atol=1e-4)


def test_training_improves_held_out_recall_and_keeps_the_zero_shot_floor(features: V5Features) -> None:
    recipe = replace(V5Recipe(), dim=DIM, steps=60, batch_size=64, eval_every=20, lr=1e-2)
    trainer = V5Trainer(features, recipe)
    before, best, _ = trainer.fit()
    assert best.score >= before.score
    assert best.zero_shot_top1 >= before.zero_shot_top1
    assert trainer.validate(best.step).score == pytest.approx(best.score)  # the best state is kept


def test_saved_head_composes_the_visual_map_with_v4_2s_projection(
    features: V5Features, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    trainer = V5Trainer(features, replace(V5Recipe(), dim=DIM, steps=0))
    v42 = torch.randn(32, 2280)
    save_head(trainer.head, v42, tmp_path / "head.safetensors")
    saved = load_file(str(tmp_path / "head.safetensors"))
    assert saved["visual_projection.weight"].shape == (DIM, 2280)
    torch.testing.assert_close(saved["visual_projection.weight"], saved["v42_visual_map"] @ v42)
    assert saved["text_projection.weight"].shape == (DIM, DIM) and saved["logit_scale"].shape == ()

"""Training-time augmentation: prompt-style caption twins, aspect views of square-resized photos,
and the held-out zero-shot check with unlocked text layers (the class prompts move with them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.core.errors import UsageError
from indexer.core.models import PreprocessConfig
from indexer.quality.train import fit
from indexer.quality.train_augment import PROMPT_TEMPLATES, prompt_style, prompt_twins
from indexer.quality.train_distill import anchor_prompts
from indexer.quality.train_features import image_pixels, load_base, text_features
from tests.helpers.training import lit_config


def test_prompt_style_wraps_a_caption_as_a_query_would_read():
    assert (
        prompt_style("A dog runs on the beach .", "a photo of {}.") == "a photo of a dog runs on the beach."
    )
    assert prompt_style("Two girls play.", "an image of {}.") == "an image of two girls play."
    assert prompt_style("UK flag on a pole", "a picture of {}.") == "a picture of UK flag on a pole."
    assert prompt_style("I think it is a cat", "a photo of {}.") == "a photo of I think it is a cat."


def test_prompt_twins_are_seeded_and_use_every_template():
    captions = [f"A dog number {i} ." for i in range(60)]
    twins = prompt_twins(captions, seed=3)
    assert twins == prompt_twins(captions, seed=3) and twins != prompt_twins(captions, seed=4)
    assert {t.split(" a dog")[0] for t in twins} == {t.split(" {}")[0] for t in PROMPT_TEMPLATES}
    assert all(t.endswith(f"a dog number {i}.") for i, t in enumerate(twins))


def _striped(path: Path) -> Path:
    """A square photo: red outer eighths left and right, blue outer eighths top and bottom, grey inside."""
    pixels = np.full((64, 64, 3), 128, dtype=np.uint8)
    pixels[:, :8] = pixels[:, -8:] = (255, 0, 0)
    pixels[:8, 8:-8] = pixels[-8:, 8:-8] = (0, 0, 255)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize(("factor", "red_kept", "blue_kept"), [(1.0, True, True), (4 / 3, False, True),
                                                              (3 / 4, True, False)])  # fmt: skip
def test_an_aspect_view_stretches_the_square_back_before_the_centre_crop(
    tmp_path, factor, red_kept, blue_kept
):
    # CLIP-style preprocessing (shortest edge 32, centre crop 32): a 4:3 stretch crops the sides away,
    # a 3:4 stretch the top and bottom, exactly as for a real landscape or portrait photo
    cfg = PreprocessConfig((32, 32), 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), Image.Resampling.BILINEAR, 1 / 255)
    pixels = image_pixels(_striped(tmp_path / "s.png"), cfg, factor)
    red = (pixels[0] > 0.8) & (pixels[2] < 0.2)
    blue = (pixels[2] > 0.8) & (pixels[0] < 0.2)
    assert bool(red[:, 0].all()) is red_kept and bool(red.any()) is red_kept
    assert bool(blue[0, 8:-8].all()) is blue_kept and bool(blue.any()) is blue_kept


def test_augmentation_options_are_checked():
    config = lit_config(Path(), Path(), Path(), Path("out"), caption_prompts=1.5)
    with pytest.raises(UsageError, match="caption-prompts"):
        config.validate()
    with pytest.raises(UsageError, match="aspect-views"):
        lit_config(Path(), Path(), Path(), Path("out"), aspect_views=3).validate()


def test_training_draws_views_and_twins_for_training_photos_only(captioned, base_dir, tmp_path):
    config = lit_config(*captioned, base_dir, tmp_path / "out", val_fraction=0.25, steps=6, lr=1e-2,
                     aspect_views=2, caption_prompts=0.5)  # fmt: skip
    trainer, result = fit(config)
    views = trainer.views
    assert views is not None and views.shape[:2] == (3, len(trainer.data.images))
    held_out = torch.from_numpy(trainer.val_idx)
    for view in views[1:]:  # held-out photos are validated as given, never stretched
        torch.testing.assert_close(view[held_out], trainer.image_feats[held_out])
    twin_rows = trainer.twin_row[trainer.twin_row >= 0]
    assert len(twin_rows) == 2 * len(trainer.train_idx)  # two captions per training photo
    cache = tmp_path / "data" / "cache" / "train"
    assert len(list(cache.glob("vision-pooled-aspect*.npz"))) == 2  # one cache per view
    # a step mixes captions and twins: the text features it trains on are some of each
    feats = trainer.training_texts(np.array(sorted(np.flatnonzero(trainer.twin_row >= 0))[:40]))
    plain = trainer.pooled_texts(np.array(sorted(np.flatnonzero(trainer.twin_row >= 0))[:40]))
    same = torch.isclose(feats, plain).all(dim=-1)
    assert 0 < int(same.sum()) < 40
    records = [json.loads(line) for line in result.log_file.read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "step"]
    assert len(losses) == 6 and all(np.isfinite(losses))


def test_keep_zero_shot_with_unlocked_text_layers_re_embeds_the_class_prompts(
    class_captioned, base_dir, tmp_path
):
    config = lit_config(*class_captioned, base_dir, tmp_path / "out", val_fraction=0.5, steps=8,
                     eval_every=4, text_lr=1e-1, lr=1e-2, unlock_text_layers=1, keep_zero_shot=True,
                     keep_last=True)  # fmt: skip
    trainer, result = fit(config)
    assert trainer.zero_shot is not None and len(trainer.zero_shot) == 12
    assert all(v.zero_shot is not None for v in result.history)
    prompts = anchor_prompts()
    before = torch.from_numpy(text_features(load_base(str(base_dir), "cpu"), prompts, None))
    with torch.no_grad():
        now = trainer.base.pooled_text(prompts)  # the trained (last) state of the unlocked layer
    torch.testing.assert_close(trainer.zero_shot.anchors, now)
    assert (trainer.zero_shot.anchors - before).abs().max() > 1e-3

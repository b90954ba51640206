"""LiT training on a tiny random dual encoder: the loss falls, early stopping fires, the saved
model reloads and embeds exactly like the trained one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from indexer.core.errors import UsageError
from indexer.core.models import DualEncoder
from indexer.quality.train import captions_of, fit, split_images, train
from indexer.quality.train_config import TrainConfig
from indexer.quality.train_head import LiTHead, ResidualProjection
from indexer.quality.train_save import save_trained
from tests.helpers.training import lit_config
from ui.cli import main


def _config(captioned, base_dir, out: Path, **kw) -> TrainConfig:
    return lit_config(*captioned, base_dir, out, **kw)


def _losses(log_file: Path) -> list[float]:
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [r["loss"] for r in records if r["event"] == "step"]


def test_split_is_seeded_disjoint_and_complete():
    train_a, val_a = split_images(100, 0.2, seed=3)
    train_b, val_b = split_images(100, 0.2, seed=3)
    assert np.array_equal(train_a, train_b) and np.array_equal(val_a, val_b)
    assert len(val_a) == 20 and not set(train_a) & set(val_a)
    assert sorted([*train_a, *val_a]) == list(range(100))
    assert not np.array_equal(val_a, split_images(100, 0.2, seed=4)[1])


def test_captions_of_maps_captions_to_positions_in_the_subset():
    ids, pos = captions_of(np.array([0, 0, 1, 2, 2, 3]), np.array([2, 0]))
    assert ids.tolist() == [0, 1, 3, 4] and pos.tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("rank", [0, 4])
def test_residual_projection_starts_exactly_at_the_base_projection(rank: int):
    torch.manual_seed(0)
    base = nn.Linear(8, 5, bias=False)
    proj = ResidualProjection(base, rank)
    x = torch.randn(3, 8)
    torch.testing.assert_close(proj(x), base(x))
    assert float(proj.penalty().detach()) == 0.0


def test_training_lowers_the_contrastive_loss(captioned, base_dir, tmp_path):
    config = _config(captioned, base_dir, tmp_path / "out", val_fraction=0.0, steps=60, rank=0, lr=1e-2,
                     init_decay=0.0)  # fmt: skip
    result = train(config)
    losses = _losses(result.log_file)
    assert len(losses) == 60
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])


def test_early_stopping_fires_when_validation_stops_improving(captioned, base_dir, tmp_path):
    # A learning rate this small cannot move validation recall: every validation is "no better".
    config = _config(captioned, base_dir, tmp_path / "out", val_fraction=0.25, steps=500, lr=1e-12,
                     eval_every=2, patience=3)  # fmt: skip
    result = train(config)
    assert result.stopped_early
    assert result.steps == 6  # three validations without improvement, two steps apart
    assert result.best is not None and result.before is not None and result.best.step == 0
    records = [json.loads(line) for line in result.log_file.read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "validation"] == [0, 2, 4, 6]


def test_validation_improves_on_learnable_captions(captioned, base_dir, tmp_path):
    config = _config(captioned, base_dir, tmp_path / "out", val_fraction=0.25, epochs=40, lr=1e-2,
                     rank=0, init_decay=0.0, patience=40)  # fmt: skip
    result = train(config)
    assert result.best is not None and result.before is not None
    assert result.best.score >= result.before.score


@pytest.mark.parametrize("unlock", [0, 1])
def test_saved_model_reloads_and_embeds_like_the_trained_one(captioned, base_dir, tmp_path, unlock):
    out = tmp_path / "out"
    config = _config(captioned, base_dir, out, val_fraction=0.0, steps=15, lr=1e-2, rank=2,
                     unlock_text_layers=unlock)  # fmt: skip
    trainer, result = fit(config)
    save_trained(trainer.base, trainer.head, config, result)
    with torch.no_grad():
        want_images = trainer.head.image_embeds(trainer.image_feats[:5]).numpy()
        texts = list(trainer.data.captions[:5])
        want_texts = trainer.head.text_embeds(trainer.base.pooled_text(texts)).numpy()
    encoder = DualEncoder(out, device="cpu")
    images = [Image.open(p).convert("RGB") for p in trainer.data.images[:5]]
    np.testing.assert_allclose(encoder.embed_images(images), want_images, atol=1e-5)
    np.testing.assert_allclose(encoder.embed_texts(texts), want_texts, atol=1e-5)
    assert encoder.logit_scale == pytest.approx(float(trainer.head.logit_scale.detach()), abs=1e-6)
    base = DualEncoder(base_dir, device="cpu")
    assert not np.allclose(base.embed_texts(texts), want_texts, atol=1e-4)  # training changed something


def test_head_without_training_reproduces_the_base_model(captioned, base_dir, tmp_path):
    trainer, _ = fit(_config(captioned, base_dir, tmp_path / "o", val_fraction=0.0, steps=1, lr=1e-12))
    head = LiTHead(trainer.base.model.visual_projection, trainer.base.model.text_projection, 0.0, rank=3)
    with torch.no_grad():
        got = head.image_embeds(trainer.image_feats[:4]).numpy()
    base = DualEncoder(base_dir, device="cpu")
    images = [Image.open(p).convert("RGB") for p in trainer.data.images[:4]]
    np.testing.assert_allclose(got, base.embed_images(images), atol=1e-5)


def test_train_command_saves_a_model_that_eval_loads(captioned, base_dir, tmp_path, capsys):
    out = tmp_path / "trained"
    common = [
        "--data",
        str(tmp_path / "data"),
        "--images",
        str(captioned[0]),
        "--captions",
        str(captioned[1]),
    ]
    assert main(["train", *common, "--out", str(out), "--base", str(base_dir), "--steps", "4",
                 "--batch-size", "8", "--val-fraction", "0.25"]) == 0  # fmt: skip
    assert "validation" in capsys.readouterr().out
    assert (out / "dualens_train.json").is_file() and (out / "train_log.jsonl").is_file()
    assert main(["eval", *common, "--model", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 36


def test_out_dir_holding_something_else_is_refused(captioned, base_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        train(_config(captioned, base_dir, out, steps=1))


def _last_agreement(out: Path) -> float:
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r["val_zero_shot_agreement"] for r in records if r["event"] == "validation"][-1]


def test_distillation_keeps_the_base_models_zero_shot_ranking(captioned, base_dir, tmp_path):
    common = {"val_fraction": 0.25, "steps": 40, "eval_every": 20, "lr": 3e-2, "init_decay": 0.0,
              "keep_last": True}  # fmt: skip
    off = train(_config(captioned, base_dir, tmp_path / "off", **common))
    assert off.before is not None and off.before.agreement is None  # only measured with --distill
    # a negligible weight: the agreement is measured, the training is the undistilled one
    free = train(_config(captioned, base_dir, tmp_path / "free", distill=1e-9, **common))
    kept = train(_config(captioned, base_dir, tmp_path / "kept", distill=5.0, **common))
    assert kept.before is not None and kept.before.agreement == 100.0  # the base agrees with itself
    assert _last_agreement(kept.out) == kept.history[-1].agreement
    assert _last_agreement(free.out) < _last_agreement(kept.out)


def test_distillation_needs_a_locked_text_tower(captioned, base_dir, tmp_path):
    with pytest.raises(UsageError, match="locked text tower"):
        _config(captioned, base_dir, tmp_path / "out", distill=1.0, unlock_text_layers=1).validate()


def test_class_names_are_found_as_whole_words_in_captions():
    from indexer.quality.train_distill import classes_named

    names = ["soccer ball", "German shepherd", "orange", "ball"]
    assert classes_named("Two boys kick a soccer ball past German shepherds.", names) == {0, 1, 3}
    assert classes_named("A girl drinks orangeade", names) == set()
    assert classes_named("oranges on a table", names) == {2}


def test_a_scaled_input_is_folded_into_the_saved_weight():
    torch.manual_seed(0)
    base = nn.Linear(6, 4, bias=False)
    scale = torch.tensor([1.0, 1.0, 1.0, 0.1, 0.1, 0.1])
    proj = ResidualProjection(base, rank=0, input_scale=scale)
    with torch.no_grad():
        proj.full.normal_()
    x = torch.randn(5, 6)
    torch.testing.assert_close(proj(x), nn.functional.linear(x * scale, proj.weight()))
    torch.testing.assert_close(proj(x), x @ proj.merged_weight().T)


def test_feature_scale_needs_a_feature_carrying_base(captioned, base_dir, tmp_path):
    with pytest.raises(UsageError, match="--features"):
        fit(_config(captioned, base_dir, tmp_path / "out", steps=1, feature_scale=0.1))
    with pytest.raises(UsageError, match="feature-scale"):
        _config(captioned, base_dir, tmp_path / "out", feature_scale=0.0).validate()


def test_keep_zero_shot_accepts_only_states_that_classify_held_out_photos_as_well():
    from indexer.quality.train import Validation, zero_shot_kept

    def v(top1: float, top5: float) -> Validation:
        return Validation(0, 0.0, 1.0, None, None, (top1, top5))  # type: ignore[arg-type]

    before = v(20.0, 30.0)
    assert zero_shot_kept(v(20.0, 31.0), before)
    assert not zero_shot_kept(v(19.9, 40.0), before)
    assert not zero_shot_kept(v(25.0, 29.0), before)


def test_keep_zero_shot_refuses_captions_that_name_no_class(captioned, base_dir, tmp_path):
    # the captions name cats, skies and sunsets: none is an ImageNet class name, so nothing to check
    with pytest.raises(UsageError, match="names an ImageNet class"):
        fit(_config(captioned, base_dir, tmp_path / "out", steps=1, keep_zero_shot=True))

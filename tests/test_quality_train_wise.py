"""``dualens train --wise-ft ALPHA``: the saved model is the weight-space ensemble of the base and
the trained model (WiSE-FT), validated, logged, and undone when it fails the zero-shot check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from indexer.core.errors import UsageError
from indexer.quality.train import Validation, fit, train, weight_space_ensemble
from tests.helpers.training import lit_config


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("rank", [0, 2])
def test_wise_ft_saves_base_plus_alpha_times_the_trained_change(captioned, base_dir, tmp_path, rank):
    common = {
        "val_fraction": 0.0,
        "steps": 8,
        "lr": 1e-2,
        "text_lr": 1e-2,
        "rank": rank,
        "unlock_text_layers": 1,
    }
    train(lit_config(*captioned, base_dir, tmp_path / "trained", **common))
    train(lit_config(*captioned, base_dir, tmp_path / "wise", wise_ft=0.25, **common))
    base, trained, wise = (_weights(d) for d in (base_dir, tmp_path / "trained", tmp_path / "wise"))
    changed = [k for k in base if not torch.equal(base[k], trained[k])]
    kinds = {k.split(".")[0] for k in changed}
    assert {"visual_projection", "text_projection", "logit_scale", "text_model"} <= kinds
    assert not any(k.startswith("vision_model") for k in changed)  # the image tower stays locked
    for key in base:
        want = base[key] + 0.25 * (trained[key] - base[key])
        torch.testing.assert_close(wise[key], want, atol=1e-6, rtol=1e-5, msg=key)


def test_wise_ft_is_validated_logged_and_recorded(captioned, base_dir, tmp_path):
    out = tmp_path / "out"
    result = train(lit_config(*captioned, base_dir, out, val_fraction=0.25, steps=12, eval_every=4, lr=1e-2,
                              wise_ft=0.5))  # fmt: skip
    assert result.wise is not None and result.best is not None and not result.wise_rejected
    assert result.wise.step == result.best.step
    records = [json.loads(line) for line in result.log_file.read_text().splitlines()]
    (wise,) = [r for r in records if r["event"] == "wise_ft"]
    assert wise["alpha"] == 0.5 and wise["val_mean_recall"] == pytest.approx(result.wise.score)
    meta = json.loads((out / "dualens_train.json").read_text())
    assert meta["wise_ft"]["alpha"] == 0.5 and meta["wise_ft"]["validation"]["score"] == result.wise.score
    assert "WiSE-FT" in result.summary()


def test_wise_ft_failing_the_zero_shot_check_keeps_the_trained_state(class_captioned, base_dir, tmp_path):
    config = lit_config(*class_captioned, base_dir, tmp_path / "out", val_fraction=0.5, steps=8, eval_every=4,
                        lr=1e-2, keep_zero_shot=True, keep_last=True, wise_ft=0.5)  # fmt: skip
    trainer, _ = fit(config)
    trained = trainer.snapshot()
    assert trainer.zero_shot is not None
    metrics = trainer.validate(0, 0.0)
    assert metrics is not None
    unbeatable = Validation(0, 0.0, 0.0, metrics.metrics, zero_shot=(101.0, 101.0))
    v, rejected = weight_space_ensemble(trainer, 8, unbeatable)
    assert rejected and v is not None and v.zero_shot is not None
    for key, value in trainer.snapshot()["head"].items():
        torch.testing.assert_close(value, trained["head"][key])
    reachable = Validation(0, 0.0, 0.0, metrics.metrics, zero_shot=(0.0, 0.0))
    _, rejected = weight_space_ensemble(trainer, 8, reachable)
    assert not rejected
    torch.testing.assert_close(trainer.head.visual.delta(), 0.5 * trained["head"]["visual.full"])


@pytest.mark.parametrize("alpha", [0.0, -0.5, 1.5])
def test_wise_ft_alpha_outside_zero_to_one_is_refused(alpha):
    with pytest.raises(UsageError, match="wise-ft"):
        lit_config(Path(), Path(), Path(), Path("out"), wise_ft=alpha).validate()

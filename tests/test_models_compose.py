"""`dualens build-model`: composing a VisionTextDualEncoderModel from two pretrained towers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.core.errors import ModelError
from indexer.core.models import load_encoder
from indexer.core.models.compose import build_model
from tests.helpers.tiny_models import IMAGE_SIZE, tiny_bert_config, tiny_bert_tokenizer, tiny_vit_config
from ui.cli import main


@pytest.fixture(scope="module")
def towers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny pretrained ViT (+ image processor) and a tiny BERT (+ tokenizer), each in its own dir."""
    from transformers import BertModel, ViTImageProcessorPil, ViTModel

    torch.manual_seed(0)
    vision = tmp_path_factory.mktemp("vit")
    ViTModel(tiny_vit_config()).save_pretrained(vision)
    ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(vision)
    text = tmp_path_factory.mktemp("bert")
    tokenizer = tiny_bert_tokenizer()
    BertModel(tiny_bert_config(len(tokenizer))).save_pretrained(text)
    tokenizer.save_pretrained(text)
    return vision, text


def test_composed_model_loads_as_vtde_keeps_tower_weights_and_embeds(
    towers: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import BertModel, VisionTextDualEncoderModel, ViTModel

    vision, text = towers
    out = tmp_path / "composed"
    result = build_model(vision, text, out, projection_dim=24)
    assert result.path == out
    model: Any = VisionTextDualEncoderModel.from_pretrained(out)
    assert model.config.projection_dim == 24
    source_vit: Any = ViTModel.from_pretrained(vision)
    source_bert: Any = BertModel.from_pretrained(text)
    torch.testing.assert_close(
        model.vision_model.embeddings.patch_embeddings.projection.weight,
        source_vit.embeddings.patch_embeddings.projection.weight,
    )
    torch.testing.assert_close(
        model.text_model.embeddings.word_embeddings.weight, source_bert.embeddings.word_embeddings.weight
    )
    encoder = load_encoder(out, device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    assert encoder.embed_images([image]).shape == (1, 24)
    assert encoder.embed_texts(["a cat", "a dog"]).shape == (2, 24)


def test_projections_are_seeded(towers: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    vision, text = towers
    first = build_model(vision, text, tmp_path / "a", projection_dim=8, seed=3).path
    second = build_model(vision, text, tmp_path / "b", projection_dim=8, seed=3).path
    third = build_model(vision, text, tmp_path / "c", projection_dim=8, seed=4).path
    weights = [load_file(p / "model.safetensors")["visual_projection.weight"] for p in (first, second, third)]
    torch.testing.assert_close(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_cli_builds_model_and_refuses_to_overwrite_without_force(
    towers: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vision, text = towers
    out = tmp_path / "cli"
    args = ["build-model", "--vision", str(vision), "--text", str(text), "--out", str(out)]
    assert main([*args, "--projection-dim", "16"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    assert "projections random" in capsys.readouterr().out
    assert main(args) == 1
    assert "not empty" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_missing_tower_is_a_model_error(towers: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot compose"):
        build_model(tmp_path / "empty-vision", towers[1], tmp_path / "out")

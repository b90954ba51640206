"""Compose a new VisionTextDualEncoderModel from a pretrained vision and a pretrained text model."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from indexer.core.errors import ModelError


@dataclass(frozen=True)
class ComposedModel:
    path: Path
    vision: str
    text: str
    projection_dim: int


def build_model(
    vision: str | os.PathLike[str],
    text: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    projection_dim: int = 512,
    seed: int = 0,
    force: bool = False,
) -> ComposedModel:
    """As ``VisionTextDualEncoderModel.from_vision_text_pretrained`` does: both towers keep their
    pretrained weights, the projections and logit scale are new (random, seeded) until trained.
    Saves the model and a ``VisionTextDualEncoderProcessor`` (the vision model's image processor,
    the text model's tokenizer) into ``out``."""
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        VisionTextDualEncoderModel,
        VisionTextDualEncoderProcessor,
    )

    import indexer.core.models.towers  # noqa: F401  (the default's towers can be composed too)

    out_path = Path(out)
    if out_path.exists() and any(out_path.iterdir()) and not force:
        raise ModelError(f"{out_path} is not empty; pass --force to overwrite it")
    if projection_dim < 1:
        raise ModelError(f"projection dimension must be positive, got {projection_dim}")
    vision_src, text_src = os.fspath(vision), os.fspath(text)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    try:
        image_processor = AutoImageProcessor.from_pretrained(vision_src)
        tokenizer = AutoTokenizer.from_pretrained(text_src)
        model = VisionTextDualEncoderModel.from_vision_text_pretrained(
            vision_src, text_src, projection_dim=projection_dim
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot compose {vision_src!r} + {text_src!r}: {exc}") from exc
    if out_path.exists():
        shutil.rmtree(out_path)
    out_path.mkdir(parents=True)
    model.eval().save_pretrained(out_path)
    VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        out_path
    )
    return ComposedModel(out_path, vision_src, text_src, projection_dim)

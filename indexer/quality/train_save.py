"""Save a LiT-trained model as a plain Hugging Face checkpoint that ``dualens index --model DIR`` loads."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

import torch

from indexer.core.errors import ModelError
from indexer.core.models import PreprocessConfig

if TYPE_CHECKING:
    from indexer.quality.train_config import TrainConfig
    from indexer.quality.train_features import BaseModel
    from indexer.quality.train_head import LiTHead

log = logging.getLogger(__name__)

META_NAME = "dualens_train.json"


@torch.no_grad()
def merge_into(model: Any, head: LiTHead) -> None:
    """Write the trained projections and logit scale into the model (the residuals folded in)."""
    model.visual_projection.weight.copy_(head.visual.merged_weight())
    model.text_projection.weight.copy_(head.text.merged_weight())
    model.logit_scale.copy_(head.logit_scale.detach().clamp(0.0, float(torch.log(torch.tensor(100.0)))))


def _image_processor_for(cfg: PreprocessConfig) -> Any:
    """A standard image processor that reproduces ``cfg`` exactly (for bases without a processor file)."""
    from transformers import CLIPImageProcessor, ViTImageProcessor

    common: dict[str, Any] = {
        "image_mean": list(cfg.mean),
        "image_std": list(cfg.std),
        "resample": cfg.resample,
        "rescale_factor": cfg.rescale_factor,
    }
    height, width = cfg.size
    if cfg.resize_shortest_edge is None:
        return ViTImageProcessor(size={"height": height, "width": width}, **common)
    return CLIPImageProcessor(
        size={"shortest_edge": cfg.resize_shortest_edge},
        crop_size={"height": height, "width": width},
        do_center_crop=True,
        **common,
    )


def save_processor(base: BaseModel, out: Any) -> None:
    """Tokenizer and image processor, checked to preprocess exactly as the base model did."""
    from transformers import AutoImageProcessor

    base.tokenizer.save_pretrained(out)
    try:
        AutoImageProcessor.from_pretrained(base.location).save_pretrained(out)
        if PreprocessConfig.from_pretrained(out) == base.preprocess:
            return
    except (OSError, ValueError, KeyError, ModelError) as exc:
        log.debug("base image processor not reusable (%s); writing an equivalent one", exc)
    _image_processor_for(base.preprocess).save_pretrained(out)
    if PreprocessConfig.from_pretrained(out) != base.preprocess:
        raise ModelError("could not save an image processor equivalent to the base model's")


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | bool | str) else str(value)


class RunSummary(Protocol):
    """What the metadata file records of a training run (``train.TrainResult`` has it)."""

    steps: int
    stopped_early: bool
    before: Any
    best: Any
    wise: Any
    wise_rejected: bool


def save_trained(base: BaseModel, head: LiTHead, config: TrainConfig, result: RunSummary) -> None:
    """``save_pretrained`` the merged model + processor into ``config.out``, with a metadata file."""
    merge_into(base.model, head)
    for p in base.model.parameters():
        p.requires_grad_(True)  # saved as an ordinary trainable checkpoint
    base.model.save_pretrained(config.out)
    save_processor(base, config.out)
    meta = {
        "base": base.model_id,
        "config": {k: _plain(v) for k, v in asdict(config).items()},
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "before": asdict(result.before) if result.before else None,
        "best": asdict(result.best) if result.best else None,
    }
    if config.wise_ft < 1.0:
        wise = asdict(result.wise) if result.wise else None
        meta["wise_ft"] = {"alpha": config.wise_ft, "validation": wise, "rejected": result.wise_rejected}
    (config.out / META_NAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")

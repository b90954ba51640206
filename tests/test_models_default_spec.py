"""Fast checks of the default model's ingredients: class list, id/fingerprint, staleness, resolving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.core.errors import NotFoundError
from indexer.core.models.default_model import MARKER_FILE, is_current
from indexer.core.models.default_spec import (
    DEFAULT_MODEL_ID,
    DEFAULT_PREPROCESS,
    DEFAULT_SPEC,
    DEFAULT_SPEC_FINGERPRINT,
    DefaultModelSpec,
    spec_fingerprint,
)
from indexer.core.models.imagenet import classes_from_filenames, imagenet_classes, parse_filename
from indexer.core.models.resolve import resolve_model

IMAGENET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-sample"


def test_vendored_classes_are_1000_unique_names_in_sorted_synset_order() -> None:
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert [c.index for c in classes] == list(range(1000))
    synsets = [c.synset for c in classes]
    assert synsets == sorted(synsets) and len(set(synsets)) == 1000
    assert len({c.name for c in classes}) == 1000
    assert classes[0].name == "tench" and classes[999].name == "toilet tissue"
    names = {c.synset: c.name for c in classes}
    assert names["n02012849"] == "crane bird" and names["n03126707"] == "construction crane"
    assert names["n03710637"] != names["n03710721"]


def test_vendored_classes_match_the_imagenet_sample_file_names() -> None:
    if not IMAGENET.is_dir():
        pytest.skip("../shared/datasets/imagenet-sample is absent")
    rows = classes_from_filenames([p.name for p in IMAGENET.iterdir()])
    assert rows == [(c.synset, c.name) for c in imagenet_classes()]


def test_file_names_parse_into_synset_and_spaced_name() -> None:
    assert parse_filename("n01484850_great_white_shark.JPEG") == ("n01484850", "great white shark")
    assert parse_filename("README.md") is None


def test_default_build_changes_need_a_new_model_id() -> None:
    assert spec_fingerprint(DEFAULT_SPEC, DEFAULT_PREPROCESS) == DEFAULT_SPEC_FINGERPRINT, (
        "the default model's build changed: bump DEFAULT_MODEL_ID and update DEFAULT_SPEC_FINGERPRINT"
    )
    assert spec_fingerprint(DefaultModelSpec(prompt_templates=("a {}.",))) != DEFAULT_SPEC_FINGERPRINT


def _fake_build(path: Path, model_id: str = DEFAULT_MODEL_ID, spec: DefaultModelSpec = DEFAULT_SPEC) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    (path / MARKER_FILE).write_text(json.dumps({"model_id": model_id, "spec": spec.as_json()}))
    return path


def test_only_a_complete_build_of_this_version_and_spec_is_current(tmp_path: Path) -> None:
    assert is_current(_fake_build(tmp_path / "ok"))
    assert not is_current(_fake_build(tmp_path / "old", model_id="dualens-default-v0"))
    other = DefaultModelSpec(prompt_templates=("a {}.",))
    assert not is_current(_fake_build(tmp_path / "other", spec=other))
    assert is_current(tmp_path / "other", other)
    assert not is_current(tmp_path / "missing")
    partial = _fake_build(tmp_path / "partial")
    (partial / "model.safetensors").unlink()
    assert not is_current(partial)


def test_resolving_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALENS_DEFAULT_MODEL_DIR", str(tmp_path / "default"))
    for name in (None, "default", DEFAULT_MODEL_ID, "dualens-default-v1"):  # an old default: never the hub
        resolved = resolve_model(name)
        assert resolved.is_default and resolved.model_id == DEFAULT_MODEL_ID
        assert resolved.location == str(tmp_path / "default") and resolved.preprocess == DEFAULT_PREPROCESS
    hub = resolve_model("openai/clip-vit-base-patch32")
    assert (hub.location, hub.model_id, hub.is_default) == ("openai/clip-vit-base-patch32",) * 2 + (False,)
    local = resolve_model(tmp_path)
    assert local.model_id == str(tmp_path.resolve()) and not local.is_default
    (tmp_path / "file.txt").write_text("x")
    for bad in (tmp_path / "nope", tmp_path / "file.txt", "a/b/c", "not a model!"):
        with pytest.raises(NotFoundError):
            resolve_model(bad)


def test_default_model_dir_that_cannot_be_created_is_a_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.core.errors import ModelError
    from indexer.core.models import DualEncoder

    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("DUALENS_DEFAULT_MODEL_DIR", str(tmp_path / "a-file" / "default"))
    encoder = DualEncoder()
    assert encoder.model_id == DEFAULT_MODEL_ID and encoder.preprocess_config == DEFAULT_PREPROCESS
    with pytest.raises(ModelError, match="cannot build the default model"):
        encoder.load()


def test_importing_the_model_layer_loads_neither_torch_nor_transformers() -> None:
    import subprocess
    import sys

    code = "import sys, indexer.core.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_unknown_vision_tower_is_a_usage_error() -> None:
    from indexer.core.errors import UsageError

    with pytest.raises(UsageError, match="efficientnet-lite0, efficientnet-lite2"):
        DefaultModelSpec(vision="efficientnet-b7")


def test_each_vision_tower_has_its_own_preprocessing_and_fingerprint() -> None:
    from dataclasses import replace

    from indexer.core.models.default_spec import VISION_TOWERS

    lite0 = replace(DEFAULT_SPEC, vision="efficientnet-lite0")
    assert DEFAULT_SPEC.vision == "efficientnet-lite2" and DEFAULT_PREPROCESS.size == (260, 260)
    assert lite0.tower.preprocess().size == (224, 224)
    assert lite0.tower.preprocess().resize_shortest_edge == 256  # the TF reference 256/224 ratio
    fingerprints = {
        spec_fingerprint(replace(DEFAULT_SPEC, vision=v), VISION_TOWERS[v].preprocess())
        for v in VISION_TOWERS
    }
    assert len(fingerprints) == len(VISION_TOWERS)


def test_mixed_class_distribution_blends_the_sharp_and_the_truncated_flat_distribution() -> None:
    import numpy as np
    import torch

    from indexer.core.models.towers import EfficientNetLiteConfig, mixed_class_distribution

    logits = torch.tensor([[4.0, 2.0, 1.0, 0.0, -1.0]])

    def softmax(x: np.ndarray, t: float) -> np.ndarray:
        e = np.exp(x / t)
        return e / e.sum()

    x = logits[0].numpy().astype(np.float64)
    sharp = softmax(x, 1.2)
    flat = softmax(x, 5.0)
    flat[3:] = 0.0  # top 3 kept
    flat /= flat.sum()
    cfg = EfficientNetLiteConfig(
        num_classes=5, temperature=1.2, mix_weight=0.3, mix_temperature=5.0, mix_top_k=3
    )
    mixed = mixed_class_distribution(logits, cfg)[0].numpy()
    np.testing.assert_allclose(mixed, 0.7 * sharp + 0.3 * flat, atol=1e-6)
    assert mixed.sum() == pytest.approx(1.0, abs=1e-6)
    assert mixed[0] < sharp[0]  # mass moved from the top class to its runners-up
    plain = EfficientNetLiteConfig(num_classes=5, temperature=1.2)
    np.testing.assert_allclose(mixed_class_distribution(logits, plain)[0].numpy(), sharp, atol=1e-6)

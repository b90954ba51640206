"""The ONNX Runtime backend: exported once per model version, equal to torch, and torch-free at query time."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder, onnx_backend
from indexer.core.models.resolve import local_fingerprint
from indexer.pipeline import IndexOptions, run_index
from tests.helpers.images import pattern, save_jpeg
from tests.helpers.tiny_models import make_tiny_dual_encoder

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["a dog on a beach", "x", "two cats sleeping on a very long red sofa in the sun", "Zürich, 1999"]


def _images() -> list:  # type: ignore[type-arg]
    return [pattern((64, 48), seed=1), pattern((30, 90), seed=2), pattern((200, 200), seed=3)]


@pytest.fixture(params=["vtde", "clip", "siglip"])
def model_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_tiny_dual_encoder(tmp_path / request.param, request.param)


def test_onnx_vectors_equal_torch_vectors_for_every_model_family(model_dir: Path) -> None:
    torch_encoder = DualEncoder(model_dir, backend="torch")
    onnx_encoder = DualEncoder(model_dir, backend="onnx")
    assert onnx_encoder.backend == "onnx"
    for got, want in (
        (onnx_encoder.embed_images(_images()), torch_encoder.embed_images(_images())),
        (onnx_encoder.embed_texts(TEXTS), torch_encoder.embed_texts(TEXTS)),
        (onnx_encoder.embed_texts(TEXTS[:1]), torch_encoder.embed_texts(TEXTS[:1])),
    ):
        assert got.dtype == np.float32 and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
        assert (got * want).sum(axis=1).min() >= 0.9999
    assert (onnx_encoder.dim, onnx_encoder.is_sigmoid) == (torch_encoder.dim, torch_encoder.is_sigmoid)
    assert onnx_encoder.logit_scale == pytest.approx(torch_encoder.logit_scale)


def test_the_export_is_made_once_keyed_by_the_model_s_content(tmp_path: Path) -> None:
    model = make_tiny_dual_encoder(tmp_path / "m", "vtde", seed=0)
    DualEncoder(model, backend="onnx").embed_texts(["a dog"])
    first = onnx_backend.export_dir(str(model), local_fingerprint(model))
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["fingerprint"] == local_fingerprint(model) and manifest["min_cosine"] >= 0.9999
    stamp = (first / "text.onnx").stat().st_mtime_ns
    DualEncoder(model, backend="onnx").embed_texts(["a dog"])  # reused, not exported again
    assert (first / "text.onnx").stat().st_mtime_ns == stamp
    shutil.rmtree(model)
    make_tiny_dual_encoder(model, "vtde", seed=3)  # retrained in place: another version
    retrained = DualEncoder(model, backend="onnx")
    want = DualEncoder(model, backend="torch").embed_texts(["a dog"])
    assert (retrained.embed_texts(["a dog"]) * want).sum() >= 0.9999
    assert onnx_backend.export_dir(str(model), local_fingerprint(model)) != first


def test_an_export_that_does_not_match_torch_falls_back_to_torch_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_tiny_dual_encoder(tmp_path / "m", "vtde")
    monkeypatch.setattr(onnx_backend, "MIN_COSINE", 1.5)  # no export can pass this
    encoder = DualEncoder(model, backend="auto")
    with caplog.at_level(logging.WARNING):
        vectors = encoder.embed_texts(["a dog"])
    assert encoder.backend == "torch" and vectors.shape[0] == 1
    warnings = [r.getMessage() for r in caplog.records if "ONNX" in r.getMessage()]
    assert len(warnings) == 1 and "using torch" in warnings[0]
    exports = model / ".dualens-onnx"
    assert not exports.exists() or not any(exports.iterdir())  # nothing half-written left behind


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


_MODULES_AFTER = (
    "import sys\n"
    "from ui.cli import main\n"
    "code = main({argv!r})\n"
    "print('RC', code, sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
)


def test_a_search_on_a_collection_with_an_export_never_imports_torch(tmp_path: Path) -> None:
    model = make_tiny_dual_encoder(tmp_path / "m", "vtde")
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(3):
        save_jpeg(photos / f"p{i}.jpg", seed=i)
    run_index(data, [photos], IndexOptions(model=str(model), workers=0, backend="onnx"))
    for argv in (
        ["search", "--data", str(data), "a dog"],
        ["similar", "--data", str(data), "1"],
        ["similar", "--data", str(data), str(photos / "p0.jpg")],
        ["classify", "--data", str(data), str(photos / "p1.jpg"), "--labels", "dog,cat"],
    ):
        done = _run_python(_MODULES_AFTER.format(argv=argv))
        assert done.stdout.strip().splitlines()[-1] == "RC 0 []", (argv, done.stdout, done.stderr)


def test_help_and_argument_errors_import_neither_torch_nor_transformers(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ui.cli import main\n"
        "for argv in (['search', '--data', {data!r}, ''], ['similar', '--data', {data!r}, '/no/such.jpg']):\n"
        "    main(argv)\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED', sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    ).format(data=str(tmp_path))
    done = _run_python(code)
    assert done.stdout.strip().splitlines()[-1] == "LOADED []", done.stderr
    assert "dualens: error:" in done.stderr and "Traceback" not in done.stderr


def test_a_text_query_never_starts_the_image_tower(tmp_path: Path) -> None:
    model = make_tiny_dual_encoder(tmp_path / "m", "vtde")
    DualEncoder(model, backend="onnx").embed_texts(["export it"])
    encoder = DualEncoder(model, backend="onnx")
    encoder.embed_texts(["a dog"])
    towers = encoder._engine.towers  # type: ignore[union-attr]
    assert towers._text is not None and towers._image is None


@pytest.mark.slow  # the real default model (built once, then exported: ~30 s)
def test_the_default_model_runs_on_onnx_with_the_torch_vectors(default_encoder: DualEncoder) -> None:
    from tests.test_models_default import _sanity_photos

    onnx_default = DualEncoder("default", backend="onnx")
    assert onnx_default.backend == "onnx"
    images = list(_sanity_photos().values())  # real photos (scikit-image's samples)
    texts = ["a photo of a goldfish", "a red sports car", "a dog on a beach at sunset"]
    assert (onnx_default.embed_images(images) * default_encoder.embed_images(images)).sum(1).min() >= 0.9999
    assert (onnx_default.embed_texts(texts) * default_encoder.embed_texts(texts)).sum(1).min() >= 0.9999


def test_the_web_ui_loads_the_text_tower_when_it_opens(tmp_path: Path) -> None:
    from ui.backend import Backend
    from ui.config import UiConfig

    model = make_tiny_dual_encoder(tmp_path / "m", "vtde")
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(2):
        save_jpeg(photos / f"p{i}.jpg", seed=i)
    run_index(data, [photos], IndexOptions(model=str(model), workers=0))
    backend = Backend.open(data, UiConfig())  # what the page does once, under its loading spinner
    try:
        encoder = backend.searcher.encoder
        assert encoder.is_loaded and encoder.backend == "onnx"
        assert encoder._engine.towers._text is not None  # type: ignore[union-attr]
    finally:
        backend.close()

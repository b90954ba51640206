"""int8 towers: quantised once beside the fp32 export, normalised float32 at the boundary, close to
fp32, and a collection's precision is part of its model identity (another one needs --reindex)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.core.errors import ModelError, ModelMismatchError
from indexer.core.models import DualEncoder, onnx_backend, quantize
from indexer.core.storage.collection import Collection
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import pattern, save_jpeg
from ui.cli import main

TEXTS = ["a dog on a beach", "x", "two cats sleeping on a very long red sofa in the sun"]


class Int8Fake(FakeEncoder):
    """The fake encoder, claiming int8 towers (what the collection records is under test)."""

    precision = "int8"


def _photos(tmp_path: Path, n: int = 4) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    return root


def _index(data: Path, root: Path, encoder: FakeEncoder, **kw: bool) -> IndexSummary:
    return run_index(data, [root], IndexOptions(workers=0, batch_size=4, **kw), encoder=encoder)


def test_the_collection_remembers_the_precision_it_was_indexed_at(
    tmp_path: Path, database: str | None
) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root, Int8Fake())
    _index(data, root, Int8Fake())  # the same precision again: an ordinary run
    with Collection.open(data) as collection:
        assert collection.database.facts().precision == "int8"


def test_another_precision_is_refused_in_one_line_and_reindex_switches_to_it(
    tmp_path: Path, database: str | None
) -> None:
    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root, FakeEncoder())
    with pytest.raises(ModelMismatchError, match="--reindex") as refused:
        _index(data, root, Int8Fake())
    assert "fp32 precision, not int8" in str(refused.value) and "\n" not in str(refused.value)
    with Collection.open(data) as collection:
        assert collection.database.facts().precision == "fp32"  # nothing changed
    reindexed = Int8Fake()
    summary = _index(data, root, reindexed, reindex=True)
    assert summary.updated == 4 and reindexed.n_embedded == 4
    with Collection.open(data) as collection:
        assert collection.database.facts().precision == "int8"


def test_a_search_at_another_precision_than_the_collection_s_is_refused_in_one_line(
    tmp_path: Path, database: str | None
) -> None:
    from search.searcher import Searcher

    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root, FakeEncoder())
    with pytest.raises(ModelMismatchError, match="--precision int8 --reindex") as refused:
        Searcher.open(data, precision="int8")
    assert "\n" not in str(refused.value)


def test_an_unknown_precision_is_a_one_line_option_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["index", str(tmp_path)], ["search", "a dog"]):
        assert main(["--data", str(tmp_path / "data"), *command, "--precision", "int4"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dualens: error: unknown choice for --precision 'int4'")
        assert err.count("\n") == 1 and "int8" in err


def test_an_unknown_precision_is_refused_by_the_encoder(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="unknown precision 'int4'"):
        DualEncoder(tiny_model_dir, precision="int4")


def test_int8_without_onnx_is_refused_rather_than_run_at_fp32(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="needs the ONNX backend, not the torch backend asked for"):
        DualEncoder(tiny_model_dir, backend="torch", precision="int8").load()


def test_int8_towers_are_made_once_beside_the_export_and_give_unit_float32_vectors(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calibration = tmp_path / "calibration"
    for i in range(6):
        save_jpeg(calibration / f"c{i}.jpg", seed=100 + i)
    monkeypatch.setenv(quantize.CALIBRATION_ENV, str(calibration))
    encoder = DualEncoder(tiny_model_dir, backend="onnx", precision="int8")
    images = encoder.embed_images([pattern((64, 48), seed=1), pattern((30, 90), seed=2)])
    texts = encoder.embed_texts(TEXTS)
    for vectors in (images, texts):
        assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    towers = encoder._state_engine().towers  # type: ignore[union-attr]
    assert towers.precision == "int8" and towers.graph("text").name == "text.int8.onnx"
    made = quantize.Int8Manifest.read(towers.folder)
    assert made is not None and made.image_method == "static" and made.calibration_photos == 6
    assert min(made.min_cosine_image, made.min_cosine_text) >= quantize.MIN_INT8_COSINE
    stamp = towers.graph("image").stat().st_mtime_ns
    again = DualEncoder(tiny_model_dir, backend="onnx", precision="int8")
    assert np.array_equal(again.embed_texts(TEXTS), texts)  # the cached graphs, not made again
    assert towers.graph("image").stat().st_mtime_ns == stamp
    assert not list(towers.folder.glob(".int8-*"))  # no work folder left behind


def _default_export() -> onnx_backend.OnnxTowers | None:
    encoder = DualEncoder("default", backend="onnx")
    return encoder._existing_export() if onnx_backend.available() else None


def _shared(name: str) -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "datasets" / name
        if candidate.is_dir():
            return candidate
    return None


@pytest.mark.slow  # quantises the default model once (~2 min on 2 cores), then reuses it
def test_int8_vectors_of_real_photos_and_captions_stay_close_to_fp32() -> None:
    """Bounds below what was measured on these 8 flickr8k-1k photos and captions (never used for
    calibration): smallest cosine joint 0.882, visual 0.993, text 0.992 (docs/models.md)."""
    import csv

    from PIL import Image

    flickr = _shared("flickr8k-1k")
    if flickr is None or _default_export() is None or quantize._calibration_dir() is None:
        pytest.skip("needs the default model's ONNX export and the shared flickr8k data")
    with open(flickr / "captions.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:40:5]
    photos = [Image.open(flickr / "images" / row["image"]).convert("RGB") for row in rows]
    captions = [row["caption"] for row in rows]
    fp32 = DualEncoder("default", backend="onnx")
    int8 = DualEncoder("default", backend="onnx", precision="int8")
    (joint, visual), (joint8, visual8) = fp32.embed_images_pair(photos), int8.embed_images_pair(photos)
    assert visual is not None and visual8 is not None
    assert (joint * joint8).sum(axis=1).min() >= 0.85
    assert (visual * visual8).sum(axis=1).min() >= 0.98
    assert (fp32.embed_texts(captions) * int8.embed_texts(captions)).sum(axis=1).min() >= 0.98


def test_queries_are_embedded_at_the_precision_the_collection_was_indexed_at(
    tmp_path: Path, database: str | None
) -> None:
    from search.searcher import Searcher

    root, data = _photos(tmp_path), tmp_path / "data"
    _index(data, root, Int8Fake())
    with Searcher.open(data) as searcher:  # no --precision: the collection's
        assert searcher.encoder.precision == "int8"
    with Searcher.open(data, precision="int8") as searcher:
        assert searcher.encoder.precision == "int8"

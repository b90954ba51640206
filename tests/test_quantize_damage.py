"""A damaged int8 graph beside an export (truncated, overwritten, or unloadable under an older
manifest) is detected and quantised again, with a one-line warning, instead of failing every start."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models import DualEncoder, quantize
from tests.helpers.images import save_jpeg

TEXTS = ["a dog on a beach", "two cats on a red sofa"]


@pytest.fixture()
def int8_folder(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, np.ndarray]:
    """The tiny model's int8 towers, made once here (calibrated on a few photos); their text vectors."""
    calibration = tmp_path / "calibration"
    for i in range(4):
        save_jpeg(calibration / f"c{i}.jpg", seed=200 + i)
    monkeypatch.setenv(quantize.CALIBRATION_ENV, str(calibration))
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)  # its own export folder: the session's model stays intact
    encoder = DualEncoder(model, backend="onnx", precision="int8")
    vectors = encoder.embed_texts(TEXTS)
    folder = encoder._state_engine().towers.folder  # type: ignore[union-attr]
    assert quantize.Int8Manifest.read(folder) is not None
    return folder, vectors


def _reopened(folder: Path) -> np.ndarray:
    model = folder
    while not (model / "config.json").is_file():
        model = model.parent
    return DualEncoder(model, backend="onnx", precision="int8").embed_texts(TEXTS)


def _damage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "damaged" in r.getMessage()
    ]


@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_a_damaged_int8_graph_is_made_again_with_a_one_line_warning(
    int8_folder: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture, how: str
) -> None:
    folder, before = int8_folder
    graph = folder / quantize.TEXT_INT8
    body = graph.read_bytes()
    graph.write_bytes(body[: len(body) // 2] if how == "truncated" else bytes(len(body)))
    with caplog.at_level(logging.WARNING):
        after = _reopened(folder)
    (warning,) = _damage_warnings(caplog)
    assert "\n" not in warning and quantize.TEXT_INT8 in warning
    assert np.allclose(after, before, atol=1e-5)  # the rebuilt tower, not a broken one
    assert graph.read_bytes() != bytes(len(body)) and quantize.is_built(folder, _fingerprint(folder))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _reopened(folder)
    assert _damage_warnings(caplog) == []  # intact now: used as it is


def test_an_unloadable_graph_under_an_older_manifest_is_made_again(
    int8_folder: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    folder, before = int8_folder
    (folder / quantize.INT8_RECORD).unlink()  # as an older release left it: no sizes or hashes to compare
    (folder / quantize.IMAGE_INT8).write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING):
        after = _reopened(folder)
    (warning,) = _damage_warnings(caplog)
    assert quantize.IMAGE_INT8 in warning and "cannot be loaded" in warning
    assert np.allclose(after, before, atol=1e-5)
    assert set(quantize.graph_records(folder)) == {quantize.IMAGE_INT8, quantize.TEXT_INT8}  # recorded now


def _fingerprint(folder: Path) -> str:
    made = quantize.Int8Manifest.read(folder)
    assert made is not None
    return made.fingerprint


def test_an_intact_graph_with_another_time_is_used_as_it_is_and_recorded_again(
    int8_folder: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    folder, before = int8_folder
    graph = folder / quantize.TEXT_INT8
    os.utime(graph, ns=(1_000_000_000, 1_000_000_000))  # copied without its times: same bytes
    with caplog.at_level(logging.WARNING):
        after = _reopened(folder)
    assert _damage_warnings(caplog) == [] and np.array_equal(after, before)
    assert quantize.graph_records(folder)[quantize.TEXT_INT8][1] == 1_000_000_000  # no hash next time


@pytest.mark.parametrize("entry", [[1], "text", None, [1, 2, 3, 4], ["a", "b", "c"]])
def test_a_damaged_record_of_the_int8_graphs_reads_as_no_record_instead_of_failing_every_start(
    int8_folder: tuple[Path, np.ndarray], entry: object
) -> None:
    folder, before = int8_folder
    record = quantize.graph_records(folder)
    (folder / quantize.INT8_RECORD).write_text(json.dumps({**record, quantize.TEXT_INT8: entry}))
    assert quantize.TEXT_INT8 not in quantize.graph_records(folder)
    assert np.allclose(_reopened(folder), before, atol=1e-5)

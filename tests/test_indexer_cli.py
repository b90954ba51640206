"""The indexer's CLI (points 8-9): index with a real tiny model, summary, check, errors, rebuild-index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.core.storage.collection import Collection
from tests.helpers.images import Exif, marked, save_jpeg, write_text_as_image, write_truncated_jpeg
from ui.cli import main

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL


@pytest.fixture
def indexed(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(5):
        save_jpeg(photos / f"p{i}.jpg", seed=i)
    write_truncated_jpeg(photos / "bad" / "cut.jpg")
    write_text_as_image(photos / "bad" / "notes.png")
    rc = main(["index", "--data", str(data), "--model", str(tiny_model_dir), "--workers", "1", str(photos)])
    assert rc == 0
    return photos, data


def test_index_prints_counts_and_stage_times(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = capsys.readouterr().out
    assert "indexed 5, unchanged 0, updated 0, moved 0, removed 0, failed 2" in out
    assert all(f"{stage} " in out for stage in ("scan", "decode", "embed", "write")) and "images/s" in out


def test_second_run_uses_the_collections_model(indexed: tuple[Path, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    photos, data = indexed
    capsys.readouterr()
    assert main(["index", "--data", str(data), str(photos)]) == 0  # no --model: the recorded one
    assert "indexed 0, unchanged 5" in capsys.readouterr().out


def test_check_passes_and_fails_on_a_tampered_index(indexed: tuple[Path, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    _, data = indexed
    capsys.readouterr()
    assert main(["check", "--data", str(data)]) == 0
    assert capsys.readouterr().out.startswith("OK: 5 indexed photos, 5 vectors")
    with Collection.open(data) as c:
        index = c.load_index()
        stray = np.zeros((1, index.dim), np.float32)
        stray[0, 0] = 1.0
        index.add(np.array([999], np.int64), stray)
        index.remove(index.ids()[:1])
        index.save(c.paths.vector_index)
    assert main(["check", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "without an indexed row: ids 999" in out and "missing from the index" in out
    assert main(["rebuild-index", "--data", str(data)]) == 0
    assert main(["check", "--data", str(data)]) == 0


def test_errors_lists_each_failed_file_with_its_reason(indexed: tuple[Path, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert main(["errors", "--data", str(indexed[1])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert "cut.jpg\ttruncated image: image file is truncated" in lines[0]
    assert "notes.png\tnot an image" in lines[1]


def test_missing_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "--data", str(tmp_path / "d"), str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"dualens: error: folder not found: {tmp_path / 'nowhere'}"


def test_check_without_a_collection_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--data", str(tmp_path / "empty")]) == 1
    assert "no collection in" in capsys.readouterr().err


def test_exif_orientation_reaches_the_stored_vector(tmp_path: Path, tiny_model_dir: Path) -> None:
    upright = marked((96, 64))
    photos, data = tmp_path / "photos", tmp_path / "data"
    photos.mkdir()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # shown upright after orientation 6
    stored.save(photos / "r.png", "PNG", exif=Exif(orientation=6).to_bytes())
    upright.save(photos / "u.png", "PNG")
    assert (
        main(["index", "--data", str(data), "--model", str(tiny_model_dir), "--workers", "0", str(photos)])
        == 0
    )
    with Collection.open(data) as c:
        rotated, plain = (c.photo_by_path(photos.resolve() / n) for n in ("r.png", "u.png"))
        assert rotated is not None and plain is not None
        assert (rotated.width, rotated.height) == (96, 64)
        a, b = c.vectors([rotated.id, plain.id])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_run_names_its_model_and_only_the_offline_default_gets_a_hint() -> None:
    from indexer.core.models.default_spec import CLIP_SUGGESTION
    from indexer.pipeline import IndexSummary

    default = IndexSummary(model_id="dualens-default-v3", indexed=3)
    assert default.lines()[0] == "model dualens-default-v3"
    (note,) = default.notes()
    assert "1,000 everyday objects" in note and "captioned photos" in note
    assert f"--model {CLIP_SUGGESTION}" in note
    assert IndexSummary(model_id="openai/clip-vit-base-patch32", indexed=3).notes() == []
    assert IndexSummary(model_id="dualens-default-v3").notes() == []  # nothing embedded: nothing to say


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["index", "--workers", "-1", "photos"], "--workers"),
        (["index", "--batch-size", "0", "photos"], "--batch-size"),
        (["index", "--threads", "0", "photos"], "--threads"),
        (["index", "--gpus-per-worker", "-1", "photos"], "--gpus-per-worker"),
        (["index", "--decode-timeout", "0", "photos"], "--decode-timeout"),
        (["train", "--images", "i", "--captions", "c", "--out", "o", "--batch-size", "-1"], "--batch-size"),
        (["train", "--images", "i", "--captions", "c", "--out", "o", "--patience", "0"], "--patience"),
        (["eval", "--images", "i", "--captions", "c", "--batch-size", "0"], "--batch-size"),
        (
            ["build-model", "--vision", "v", "--text", "t", "--out", "o", "--projection-dim", "0"],
            "--projection-dim",
        ),
    ],
)
def test_counts_and_sizes_out_of_range_are_refused_in_one_line_before_anything_runs(
    argv: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"dualens: error: {flag} must be")
    assert not (tmp_path / "data").exists()

"""The text gate ahead of the text-recognition stage (indexer/ocr_gate.py): which photos it lets the
engine read, what it records for those it skips, and when they are judged again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

import indexer.ocr as ocr
import indexer.ocr_gate as ocr_gate
from indexer.core.models.default_spec import DEFAULT_MODEL_ID, FEATURE_DIM, V5_MODEL_ID
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import PhotoText
from indexer.core.storage.spaces import VISUAL
from indexer.core.storage.text import TextStatus, text_counts
from indexer.ocr import RecognisedText, read_texts
from indexer.ocr_gate import TextGate, gate_for, load_gate, save_gate
from indexer.pipeline import IndexOptions, run_index
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

DIM = 8


class ScriptedReader:
    """Reads ``said`` from every photo; raises for photos whose mean colour is ``fail_on``."""

    def __init__(self, said: str = "hello world", fail_on: float | None = None) -> None:
        self.name, self.said, self.fail_on, self.reads = "scripted 1", said, fail_on, 0

    def load(self) -> None:
        pass

    def read(self, pixels: np.ndarray) -> RecognisedText:
        self.reads += 1
        if self.fail_on is not None and abs(float(pixels.mean()) - self.fail_on) < 1:
            raise RuntimeError("the engine broke on this photo")
        return RecognisedText((self.said,), (((0.0, 0.0),) * 4,), (0.9,))


def _gate(threshold: float, version: str = "test-1", weights: np.ndarray | None = None) -> TextGate:
    return TextGate(version, np.ones(DIM, np.float32) if weights is None else weights, 0.0, threshold)


SKIP_ALL = _gate(float("inf"))
READ_ALL = _gate(float("-inf"), "test-2")


def _index(data: Path, root: Path, model_id: str = "fake-encoder-v1", **kw: object) -> None:
    options = IndexOptions(workers=0, batch_size=4, **kw)  # type: ignore[arg-type]  # ocr: $DUALENS_OCR
    run_index(data, [root], options, encoder=FakeEncoder(model_id=model_id, visual_dim=DIM))


def _photos(root: Path, values: tuple[int, ...] = (40, 128, 200)) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"p{i}.png" for i in range(len(values))]
    for path, value in zip(paths, values, strict=True):
        Image.new("RGB", (200, 150), (value, value // 2, 255 - value)).save(path)
    return paths


def _engines(c: Collection) -> list[str]:
    with c.session() as s:
        return sorted(str(e) for e in s.scalars(select(PhotoText.engine)))


def test_photos_the_gate_skips_are_stored_as_read_with_no_text_by_the_gate_and_not_read_again(
    tmp_path: Path,
) -> None:
    for i in range(3):
        save_jpeg(tmp_path / "photos" / f"p{i}.jpg", seed=i)
    _index(tmp_path / "data", tmp_path / "photos")
    reader = ScriptedReader()
    with Collection.open(tmp_path / "data") as c:
        run = read_texts(c, reader, gate=SKIP_ALL)
        assert (run.read, run.skipped, reader.reads) == (3, 3, 0)
        assert text_counts(c.database) == {TextStatus.NONE: 3}
        assert _engines(c) == ["gate test-1 / scripted 1"] * 3
        assert read_texts(c, reader, gate=SKIP_ALL).read == 0 and reader.reads == 0


def test_a_skipped_photo_is_judged_again_when_the_gate_version_changes(tmp_path: Path) -> None:
    for i in range(3):
        save_jpeg(tmp_path / "photos" / f"p{i}.jpg", seed=i)
    _index(tmp_path / "data", tmp_path / "photos")
    reader = ScriptedReader()
    with Collection.open(tmp_path / "data") as c:
        read_texts(c, reader, gate=SKIP_ALL)
        run = read_texts(c, reader, gate=READ_ALL)  # another version: it lets every photo through
        assert (run.read, run.skipped, reader.reads) == (3, 0, 3)
        assert text_counts(c.database) == {TextStatus.OK: 3} and len(c.text_matches("hello", 10)) == 3


def test_only_the_photos_the_gate_lets_through_are_read_and_a_failing_one_is_recorded(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "photos")
    _index(tmp_path / "data", tmp_path / "photos")
    reader = ScriptedReader(fail_on=float(np.mean([128, 64, 127])))  # p1 breaks the engine
    with Collection.open(tmp_path / "data") as c:
        skipped = c.photo_by_path(paths[2])
        assert skipped is not None
        vector = c.vectors([skipped.id], space=VISUAL)[0]
        gate = _gate(-0.999, weights=-vector)  # scores -cos(photo, p2): only p2 falls below
        run = read_texts(c, reader, gate=gate)
        assert (run.read, run.skipped, reader.reads) == (3, 1, 2)
        assert text_counts(c.database) == {TextStatus.OK: 1, TextStatus.FAILED: 1, TextStatus.NONE: 1}
        assert read_texts(c, reader, gate=gate).read == 0  # the failure is not retried by the same engine


def test_the_gate_runs_when_dualens_ocr_asks_for_it_and_all_reads_every_photo_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "gate.npz"
    save_gate(weights, "skip-all", np.ones(DIM, np.float32), 0.0, float("inf"))
    monkeypatch.setattr(ocr_gate, "GATE_FILE", weights)
    reader = ScriptedReader()
    monkeypatch.setattr(ocr, "RapidOcrReader", lambda threads=None: reader)
    _photos(tmp_path / "photos")
    monkeypatch.setenv("DUALENS_OCR", "gate")
    _index(tmp_path / "data", tmp_path / "photos", model_id=DEFAULT_MODEL_ID)
    assert reader.reads == 0  # the default model's collection: its gate skipped all three
    monkeypatch.setenv("DUALENS_OCR", "all")
    _index(tmp_path / "data", tmp_path / "photos", model_id=DEFAULT_MODEL_ID)  # ocr from $DUALENS_OCR
    assert reader.reads == 3
    with Collection.open(tmp_path / "data") as c:
        assert text_counts(c.database) == {TextStatus.OK: 3}


def test_the_gate_is_opt_in_and_serves_only_the_models_and_precision_it_was_trained_for() -> None:
    asked = {"DUALENS_OCR": "gate"}
    gate = gate_for(DEFAULT_MODEL_ID, environ=asked)
    assert gate is not None and gate.weights.shape == (FEATURE_DIM,)
    v5 = gate_for(V5_MODEL_ID, environ=asked)  # v5 has v4.2's image side
    assert v5 is not None and v5.version == gate.version == load_gate().version
    assert gate.version.startswith("probe-lite2-")
    assert gate_for("openai/clip-vit-base-patch32", environ=asked) is None
    assert gate_for(DEFAULT_MODEL_ID, "int8", environ=asked) is None
    assert gate_for(DEFAULT_MODEL_ID, environ={"DUALENS_OCR": "all"}) is None
    assert gate_for(DEFAULT_MODEL_ID, environ={}) is None  # opt-in: by default every photo is read


def _shared_photo(name: str) -> Path:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "datasets" / "imagenet-sample" / name
        if candidate.is_file():
            return candidate
    pytest.skip("the shared datasets are absent")


@pytest.mark.slow
def test_the_default_gate_skips_a_real_photo_without_text_and_reads_it_with_a_sign_on_it(
    tmp_path: Path, default_encoder: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUALENS_OCR", "gate")
    source = _shared_photo(PLAIN_PHOTO)
    root = tmp_path / "photos"
    root.mkdir()
    with Image.open(source) as opened:
        plain = opened.convert("RGB")
    plain.save(root / "plain.jpg", quality=95)
    signed = plain.copy()
    draw = ImageDraw.Draw(signed)
    draw.rounded_rectangle((60, 90, 440, 230), radius=16, fill=(200, 20, 20))
    draw.text((95, 105), "STOP", fill=(255, 255, 255), font=ImageFont.load_default(size=100))
    signed.save(root / "sign.jpg", quality=95)
    options = IndexOptions(workers=0, ocr=True)
    summary = run_index(tmp_path / "data", [root], options, encoder=default_encoder)  # type: ignore[arg-type]
    assert summary.texts_read == 2
    with Collection.open(tmp_path / "data") as c:
        sign, photo = c.photo_by_path(root / "sign.jpg"), c.photo_by_path(root / "plain.jpg")
        assert sign is not None and photo is not None
        assert [m.photo_id for m in c.text_matches("stop", 10)] == [sign.id]
        engines = dict(zip((photo.id, sign.id), _engines_of(c, [photo.id, sign.id]), strict=True))
        assert engines[photo.id].startswith("gate probe-lite2-")
        assert engines[sign.id] == ocr.RapidOcrReader.name


PLAIN_PHOTO = "n01440764_tench.JPEG"


def _engines_of(c: Collection, ids: list[int]) -> list[str]:
    with c.session() as s:
        rows = s.execute(select(PhotoText.photo_id, PhotoText.engine).where(PhotoText.photo_id.in_(ids)))
        found = {int(r.photo_id): str(r.engine) for r in rows}
    return [found[i] for i in ids]

"""The text-recognition stage of `dualens index`: what it stores, when it reads again, how it fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import indexer.ocr as ocr
from indexer.core.storage.collection import Collection
from indexer.core.storage.text import TextStatus, text_counts
from indexer.ocr import RapidOcrReader, RecognisedText, read_texts
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL


class ScriptedReader:
    """Reads a fixed text from every photo; raises for photos whose mean colour is in ``fail_on``."""

    def __init__(
        self, name: str = "scripted 1", said: str = "hello world", fail_on: float | None = None
    ) -> None:
        self.name, self.said, self.fail_on, self.reads = name, said, fail_on, 0

    def load(self) -> None:
        pass

    def read(self, pixels: np.ndarray) -> RecognisedText:
        self.reads += 1
        if self.fail_on is not None and abs(float(pixels.mean()) - self.fail_on) < 1:
            raise RuntimeError("the engine broke on this photo")
        return RecognisedText((self.said,), (((0.0, 0.0),) * 4,), (0.9,))


def _index(data: Path, root: Path, **kw: object) -> IndexSummary:
    options = IndexOptions(workers=0, batch_size=4, **{"ocr": True, **kw})  # type: ignore[arg-type]
    return run_index(data, [root], options, encoder=FakeEncoder())


def _sign(path: Path, words: str) -> Path:
    image = Image.new("RGB", (900, 300), (250, 250, 245))
    ImageDraw.Draw(image).text((40, 100), words, fill=(10, 10, 10), font=ImageFont.load_default(size=72))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _plain(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (200, 150), (value, value, value)).save(path)
    return path


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedReader:
    reader = ScriptedReader()
    monkeypatch.setattr(ocr, "RapidOcrReader", lambda threads=None: reader)
    return reader


def test_rendered_words_are_read_stored_and_found_and_a_plain_photo_has_none(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _sign(root / "sign.png", "STOP Parking 2023")
    _plain(root / "wall.png", 128)
    summary = _index(tmp_path / "data", root)
    assert summary.texts_read == 2 and "texts read 2" in summary.lines()[1]
    with Collection.open(tmp_path / "data") as c:
        sign = c.photo_by_path(root / "sign.png")
        assert sign is not None
        assert [m.photo_id for m in c.text_matches("stop parking", 10)] == [sign.id]
        assert c.text_matches("stop", 10)[0].words == ("STOP",)
        assert "2023" in c.photo_texts([sign.id])[sign.id]
        assert text_counts(c.database) == {TextStatus.OK: 1, TextStatus.NONE: 1}
        assert c.text_matches("wall", 10) == []


def test_a_second_run_reads_nothing_and_a_new_engine_reads_everything_again(
    tmp_path: Path, scripted: ScriptedReader
) -> None:
    root = tmp_path / "photos"
    for i in range(3):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    assert _index(tmp_path / "data", root).texts_read == 3
    assert _index(tmp_path / "data", root).texts_read == 0 and scripted.reads == 3
    with Collection.open(tmp_path / "data") as c:
        better = ScriptedReader("scripted 2", said="better words")
        assert read_texts(c, better).read == 3 and better.reads == 3
        assert len(c.text_matches("better", 10)) == 3 and c.text_matches("hello", 10) == []


def test_a_changed_file_is_read_again(tmp_path: Path, scripted: ScriptedReader) -> None:
    root = tmp_path / "photos"
    save_jpeg(root / "a.jpg", seed=1)
    save_jpeg(root / "b.jpg", seed=2)
    _index(tmp_path / "data", root)
    save_jpeg(root / "a.jpg", seed=3)
    assert _index(tmp_path / "data", root).texts_read == 1


def test_a_photo_that_breaks_the_engine_is_recorded_and_the_run_goes_on(
    tmp_path: Path, scripted: ScriptedReader
) -> None:
    root = tmp_path / "photos"
    for i, value in enumerate((40, 128, 200)):
        _plain(root / f"p{i}.png", value)
    scripted.fail_on = 128
    summary = _index(tmp_path / "data", root)
    assert summary.texts_read == 3 and summary.indexed == 3
    with Collection.open(tmp_path / "data") as c:
        assert text_counts(c.database) == {TextStatus.OK: 2, TextStatus.FAILED: 1}
    assert _index(tmp_path / "data", root).texts_read == 0  # not tried again by the same engine


def test_an_unreadable_file_is_a_failed_reading_not_an_error(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    photo = _plain(root / "p.png", 90)
    _index(tmp_path / "data", root, ocr=False)
    photo.write_bytes(b"not an image any more")  # changed after embedding, before the text is read
    with Collection.open(tmp_path / "data") as c:
        assert read_texts(c, ScriptedReader()).read == 1
        assert text_counts(c.database) == {TextStatus.FAILED: 1}


def test_no_ocr_stores_nothing_and_the_next_run_reads_the_existing_collection(
    tmp_path: Path, scripted: ScriptedReader
) -> None:
    root = tmp_path / "photos"
    for i in range(2):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    summary = _index(tmp_path / "data", root, ocr=False)
    assert summary.texts_read == 0 and scripted.reads == 0
    with Collection.open(tmp_path / "data") as c:
        assert text_counts(c.database) == {}
    assert _index(tmp_path / "data", root).texts_read == 2


def test_removed_photos_lose_their_text(tmp_path: Path, scripted: ScriptedReader) -> None:
    root = tmp_path / "photos"
    for i in range(2):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    _index(tmp_path / "data", root)
    (root / "p0.jpg").unlink()
    assert _index(tmp_path / "data", root).removed == 1
    with Collection.open(tmp_path / "data") as c:
        assert len(c.text_matches("hello", 10)) == 1
        assert sum(text_counts(c.database).values()) == 1


def test_control_characters_and_escapes_from_the_engine_are_never_stored(
    tmp_path: Path, scripted: ScriptedReader
) -> None:
    root = tmp_path / "photos"
    save_jpeg(root / "p.jpg", seed=1)
    scripted.said = "\x1b]0;pwned\x07 red\x1b[31m \u202egnp.exe\x00 \x9b2J"
    _index(tmp_path / "data", root)
    with Collection.open(tmp_path / "data") as c:
        (stored,) = c.photo_texts([p.id for p in c.photos(range(1, 10)).values()]).values()
    assert stored.isprintable() and not any(ch in stored for ch in "\x1b\x07\x00\x9b\u202e")


def test_a_killed_run_keeps_its_stored_batches_and_the_next_one_finishes(
    tmp_path: Path, scripted: ScriptedReader
) -> None:
    root = tmp_path / "photos"
    for i in range(5):
        save_jpeg(root / f"p{i}.jpg", seed=i)
    _index(tmp_path / "data", root, ocr=False)

    class Killed(BaseException):
        pass

    def dies_on_the_fourth(pixels: np.ndarray) -> RecognisedText:
        if scripted.reads == 3:
            raise Killed
        return ScriptedReader.read(scripted, pixels)

    with Collection.open(tmp_path / "data") as c:
        scripted.read = dies_on_the_fourth  # type: ignore[method-assign]
        with pytest.raises(Killed):
            ocr.fill_texts(c, scripted, batch=2)
        assert sum(text_counts(c.database).values()) == 2  # the first batch; the second rolled back
        del scripted.read
        assert ocr.fill_texts(c, scripted, batch=2) == 3


@pytest.mark.sqlite_only  # the database plays no part; spawning two engines is slow enough once
def test_worker_processes_read_the_same_text_as_this_process(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _sign(root / "a.png", "EXIT 42")
    _sign(root / "b.png", "OPEN DAILY")
    _plain(root / "c.png", 70)
    _index(tmp_path / "data", root, ocr=False)
    with Collection.open(tmp_path / "data") as c:
        assert ocr.fill_texts(c, RapidOcrReader(), workers=2) == 3
        texts = sorted(c.photo_texts([p.id for p in c.photos(range(1, 10)).values()]).values())
    assert texts == ["EXIT 42", "OPEN DAILY"]


def test_dualens_ocr_says_whether_indexing_reads_text_and_refuses_other_values() -> None:
    from indexer.core.errors import UsageError
    from indexer.core.settings import ocr_enabled

    assert ocr_enabled({}) and ocr_enabled({"DUALENS_OCR": "on"}) and ocr_enabled({"DUALENS_OCR": "1"})
    assert not ocr_enabled({"DUALENS_OCR": "off"}) and not ocr_enabled({"DUALENS_OCR": " False "})
    with pytest.raises(UsageError, match="DUALENS_OCR must be on or off"):
        ocr_enabled({"DUALENS_OCR": "sometimes"})
    assert IndexOptions().ocr is ocr_enabled()  # the library's default follows it too


@pytest.mark.sqlite_only  # no database involved
def test_text_reader_processes_exit_when_the_indexer_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed `dualens index` leaves no text-reading process behind (each watches its parent)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("rapidocr_onnxruntime")
    script = tmp_path / "killed_indexer.py"
    script.write_text(
        "import os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from indexer import ocr\n"
        "if __name__ == '__main__':\n"
        "    start = dict(initializer=ocr._start_worker, initargs=(os.getpid(),))\n"
        "    pool = ProcessPoolExecutor(1, ocr._SPAWN, **start)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(600)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=repo)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.2)
        assert not _alive(worker), "a text reader outlived the killed indexer"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_text_stage_reports_its_progress_from_zero_to_every_photo(
    tmp_path: Path, scripted: ScriptedReader
) -> None:
    root = tmp_path / "photos"
    for i in range(5):
        _plain(root / f"p{i}.png", 40 * i)
    told: list[tuple[int, int]] = []
    _index(tmp_path / "data", root, on_text_progress=lambda done, total: told.append((done, total)))
    assert told[0] == (0, 5) and told[-1] == (5, 5)
    assert [d for d, _ in told] == sorted(d for d, _ in told)

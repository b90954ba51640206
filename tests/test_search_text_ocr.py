"""End to end: a folder with a rendered STOP sign, an invoice screenshot and plain photos is indexed,
its text read by the OCR engine (rapidocr-onnxruntime), and word queries find the photos with their
words shown, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from indexer.core.models import DualEncoder
from indexer.pipeline import IndexOptions, run_index
from search import Searcher
from search.render import format_hits

pytest.importorskip("rapidocr_onnxruntime")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
pytestmark = [
    pytest.mark.slow,  # the OCR engine reads every photo
    pytest.mark.skipif(not FONT.is_file(), reason="needs Debian's fonts-dejavu-core"),
]


def _sign(path: Path) -> None:
    image = Image.new("RGB", (480, 360), (90, 130, 80))
    draw = ImageDraw.Draw(image)
    draw.regular_polygon((240, 180, 150), 8, rotation=22.5, fill=(200, 20, 30))
    draw.text((240, 180), "STOP", font=ImageFont.truetype(str(FONT), 80), fill="white", anchor="mm")
    image.save(path)


def _invoice(path: Path) -> None:
    image = Image.new("RGB", (640, 400), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 36)
    for n, line in enumerate(("ACME Ltd", "Invoice 2023", "Total 42.00")):
        draw.text((40, 40 + 90 * n), line, font=font, fill="black")
    image.save(path)


def _read_text_into(data: Path, db_url: str | None) -> None:
    """What the OCR stage stores, for a branch whose indexer has no OCR stage yet (IndexOptions.ocr)."""
    from rapidocr_onnxruntime import RapidOCR

    from indexer.core.storage.collection import Collection
    from indexer.core.storage.schema import TextStatus
    from indexer.core.storage.text import TextResult

    engine = RapidOCR()
    collection = Collection.open(data, db_url=db_url)
    try:
        todo = collection.texts_to_read("rapidocr-onnxruntime 1.4.4")
        results = []
        for item in todo:
            found, _ = engine(item.path)
            text = " ".join(str(box[1]) for box in found or ())
            status = TextStatus.OK if text else TextStatus.NONE
            results.append(
                TextResult(item.photo_id, item.content_hash, "rapidocr-onnxruntime 1.4.4", status, text)
            )
        collection.write_texts(results)
    finally:
        collection.close()


@pytest.fixture()
def indexed(tmp_path: Path, tiny_clip_dir: Path, database: str | None) -> tuple[Path, DualEncoder]:
    root = tmp_path / "photos"
    root.mkdir()
    _sign(root / "sign.png")
    _invoice(root / "screenshot.png")
    rng = np.random.default_rng(5)
    for n in range(4):
        pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"photo_{n}.jpg")
    encoder = DualEncoder(tiny_clip_dir)
    with_ocr: dict[str, Any] = {"ocr": True} if "ocr" in IndexOptions.__dataclass_fields__ else {}
    run_index(
        tmp_path / "data", [root], IndexOptions(workers=0, **with_ocr), encoder=encoder, db_url=database
    )
    if not with_ocr:
        _read_text_into(tmp_path / "data", database)
    return tmp_path / "data", encoder


def test_a_word_query_finds_the_sign_and_the_text_term_the_screenshot(indexed, database):
    data, encoder = indexed
    with Searcher.open(data, encoder=encoder, db_url=database) as searcher:
        stop = searcher.search("stop", k=3)
        assert Path(stop[0].path).name == "sign.png" and stop[0].text_words == ("STOP",)
        assert stop[0].relevance in ("good", "strong")
        invoice = searcher.search('text:"invoice 2023"', k=5)
        assert [Path(h.path).name for h in invoice] == ["screenshot.png"]
        assert set(invoice[0].text_words) == {"Invoice", "2023"}
        assert "words" in format_hits(invoice).splitlines()[0]
        assert searcher.search('text:"invoice 2024"', k=5) == []

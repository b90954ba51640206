"""End to end: a folder with a rendered STOP sign, an invoice screenshot and plain photos is indexed,
its text read by the indexer's OCR stage (rapidocr-onnxruntime), and word queries find the photos with their
words shown, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

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
    options = IndexOptions(workers=0, ocr=True)
    summary = run_index(tmp_path / "data", [root], options, encoder=encoder, db_url=database)
    assert summary.texts_read == 6 and summary.ocr_problem is None
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

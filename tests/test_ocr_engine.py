"""The text-recognition engine behind TextReader: reads rendered words, bounded on odd images."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from indexer.ocr import MAX_WORDS, READ_SIDE, RapidOcrReader, RecognisedText, downscale


def _rendered(words: str, size: tuple[int, int] = (900, 300), angle: float = 0) -> np.ndarray:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((40, size[1] // 3), words, fill="black", font=ImageFont.load_default(size=72))
    return np.asarray(image.rotate(angle, expand=True, fillcolor="white"))


def test_the_engine_reads_a_rendered_sign_and_its_name_says_engine_and_version() -> None:
    found = RapidOcrReader(threads=1).read(_rendered("EXIT 42"))
    assert "EXIT" in found.text and "42" in found.text
    assert len(found.words) == len(found.boxes) == len(found.confidence) and min(found.confidence) >= 0.5
    assert "rapidocr-onnxruntime 1.4.4" in RapidOcrReader.name


def test_upside_down_text_is_read() -> None:
    assert "EXIT" in RapidOcrReader(threads=1).read(_rendered("EXIT 42", angle=180)).text


def test_flat_grey_tiny_and_extreme_images_give_no_text_and_no_error() -> None:
    reader = RapidOcrReader(threads=1)
    start = time.monotonic()
    for pixels in (
        np.full((400, 600), 90, np.uint8),  # greyscale
        np.zeros((1, 1, 3), np.uint8),
        np.full((3, 5000, 3), 255, np.uint8),
        np.full((6000, 4, 4), 30, np.uint8),  # RGBA
    ):
        assert reader.read(pixels).words == ()
    assert time.monotonic() - start < 60


def test_a_large_photo_is_read_downscaled() -> None:
    big = np.asarray(Image.fromarray(_rendered("OPEN")).resize((4500, 1500)))
    assert downscale(big, READ_SIDE).shape[:2] == (533, 1600)
    assert "OPEN" in RapidOcrReader(threads=1).read(big).text


def test_recognised_text_is_capped_in_words_and_safe() -> None:
    many = RecognisedText(tuple(f"w{i} " * 100 for i in range(50)))
    assert len(many.text.split()) == MAX_WORDS
    assert RecognisedText(("a\x1b[2Jb\x00c",)).text == "a [2Jb c"


def test_recognition_stops_at_its_time_budget_keeping_what_it_read() -> None:
    image = Image.new("RGB", (1200, 1500), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=36)
    for i in range(24):
        draw.text((40 + 400 * (i % 2), 20 + 60 * (i // 2)), f"line{i}", fill="black", font=font)
    pixels = np.asarray(image)
    assert len(RapidOcrReader(threads=1).read(pixels).words) > 16
    assert 0 < len(RapidOcrReader(threads=1, time_budget=0).read(pixels).words) <= 16

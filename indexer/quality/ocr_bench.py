"""The rendered-text photo set and the OCR engine comparison (``make bench-ocr``).

A seeded generator draws words from :data:`VOCABULARY` onto shared photos: fonts that ship in Debian's
``fonts-dejavu-core`` (sans, serif, mono, bold, oblique, condensed), font sizes 20-80 px, angles
-15..15 degrees, light or dark text on a plate ("sign") or straight on the photo with an outline.
Each image's words are recorded with their size, so word recall can be reported for text >= 20 px.

Invariants: the same seed, backgrounds and count give the same images and the same truth; the set is
written where the caller says (a temp dir, never the repository); nothing here prints.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_NAMES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
)
VOCABULARY = (
    "stop", "exit", "open", "closed", "sale", "invoice", "receipt", "total", "parking", "hotel",
    "coffee", "bakery", "pharmacy", "station", "danger", "welcome", "museum", "library", "garage",
    "tickets", "platform", "entrance", "office", "market", "2023", "1984", "taxi", "police", "pizza",
    "bridge",
)  # fmt: skip
MIN_SIZE, MAX_SIZE = 20, 80
MAX_ANGLE = 15.0
MAX_SIDE = 1024
TRUTH_FILE = "truth.json"
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class RenderedWord:
    word: str
    size: int  # font size in pixels (the em height the word is set in)
    angle: float


@dataclass(frozen=True)
class TextPhoto:
    path: Path
    words: tuple[RenderedWord, ...]


def fonts() -> list[Path]:
    """The packaged fonts the generator uses (those present on this machine)."""
    return [FONT_DIR / name for name in FONT_NAMES if (FONT_DIR / name).is_file()]


def backgrounds(folder: Path) -> list[Path]:
    """Photos under ``folder`` (recursively), sorted so a seed picks the same ones everywhere."""
    suffixes = {".jpg", ".jpeg", ".png"}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)


def generate(out: Path, sources: Sequence[Path], count: int, seed: int) -> list[TextPhoto]:
    """Render ``count`` photos with 1-3 words each into ``out`` and write their truth beside them."""
    font_files = fonts()
    if not font_files:
        raise FileNotFoundError(f"no fonts in {FONT_DIR} (Debian package fonts-dejavu-core)")
    if not sources:
        raise FileNotFoundError("no background photos")
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    photos = [
        _render_one(out / f"text_{i:04d}.jpg", rng.choice(sources), rng, font_files) for i in range(count)
    ]
    truth = {p.path.name: [[w.word, w.size, w.angle] for w in p.words] for p in photos}
    (out / TRUTH_FILE).write_text(json.dumps(truth, indent=0))
    return photos


def load(folder: Path) -> list[TextPhoto]:
    """A set written by :func:`generate`."""
    truth = json.loads((folder / TRUTH_FILE).read_text())
    return [
        TextPhoto(folder / name, tuple(RenderedWord(w, int(s), float(a)) for w, s, a in words))
        for name, words in sorted(truth.items())
    ]


def render_photo(path: Path, source: Path, rng: random.Random, font_files: list[Path]) -> TextPhoto:
    """``source`` with 1-3 words of the vocabulary drawn on it as :func:`generate` draws them, saved at
    ``path``."""
    return _render_one(path, source, rng, font_files)


def _render_one(path: Path, source: Path, rng: random.Random, font_files: list[Path]) -> TextPhoto:
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    taken: list[tuple[int, int, int, int]] = []
    words: list[RenderedWord] = []
    for word in rng.sample(VOCABULARY, rng.randint(1, 3)):
        text = word.upper() if rng.random() < 0.5 else word.capitalize()
        size = rng.randint(MIN_SIZE, MAX_SIZE)
        angle = round(rng.uniform(-MAX_ANGLE, MAX_ANGLE), 1)
        font = ImageFont.truetype(str(rng.choice(font_files)), size)
        patch = _word_patch(text, font, rng)
        patch = patch.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
        box = _free_spot(patch.size, image.size, taken, rng)
        if box is None:
            continue
        image.paste(patch, box[:2], patch)
        taken.append(box)
        words.append(RenderedWord(word, size, angle))
    image.save(path, "JPEG", quality=90)
    return TextPhoto(path, tuple(words))


def _word_patch(text: str, font: ImageFont.FreeTypeFont, rng: random.Random) -> Image.Image:
    """The word as an RGBA patch: on a plate (a sign) or with an outline straight on the photo."""
    left, top, right, bottom = font.getbbox(text)
    pad = max(4, int(font.size) // 4)
    size = (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad)
    patch = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(patch)
    dark = rng.random() < 0.5
    ink = _colour(rng, dark)
    if rng.random() < 0.5:
        draw.rounded_rectangle(
            (0, 0, size[0] - 1, size[1] - 1), radius=pad, fill=(*_colour(rng, not dark), 255)
        )
        draw.text((pad - left, pad - top), text, font=font, fill=(*ink, 255))
    else:
        halo = (*_colour(rng, not dark), 255)
        stroke = max(1, int(font.size) // 20)
        draw.text(
            (pad - left, pad - top), text, font=font, fill=(*ink, 255), stroke_width=stroke, stroke_fill=halo
        )
    return patch


def _colour(rng: random.Random, dark: bool) -> tuple[int, int, int]:
    low, high = (0, 90) if dark else (170, 255)
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def _free_spot(
    patch: tuple[int, int],
    canvas: tuple[int, int],
    taken: list[tuple[int, int, int, int]],
    rng: random.Random,
) -> tuple[int, int, int, int] | None:
    width, height = patch
    if width >= canvas[0] or height >= canvas[1]:
        return None
    for _ in range(30):
        x, y = rng.randint(0, canvas[0] - width), rng.randint(0, canvas[1] - height)
        box = (x, y, x + width, y + height)
        if not any(_overlap(box, other) for other in taken):
            return box
    return None


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ------------------------------------------------------------------ engines and recall

Engine = Callable[[Path], str]


def rapidocr_engine() -> Engine:
    """rapidocr-onnxruntime (PP-OCRv4 mobile detection + recognition, models inside the wheel)."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()

    def read(path: Path) -> str:
        result, _ = engine(str(path))
        return " ".join(str(item[1]) for item in result or ())

    return read


def tesseract_engine(psm: int = 11) -> Engine:
    """Tesseract 5 (Debian ``tesseract-ocr``) through pytesseract; psm 11: sparse text, any layout."""
    import pytesseract

    def read(path: Path) -> str:
        with Image.open(path) as image:
            return str(pytesseract.image_to_string(image, lang="eng", config=f"--psm {psm}"))

    return read


def tokens(text: str) -> set[str]:
    """Lower-case alphanumeric words of recognised text (what a word query matches)."""
    return set(_TOKEN.findall(text.lower()))


@dataclass(frozen=True)
class EngineResult:
    name: str
    words: int  # rendered words >= min_size
    found: int
    ms_per_photo: float
    texts: dict[str, str]  # file name -> recognised text

    @property
    def recall(self) -> float:
        return self.found / self.words if self.words else 0.0


def measure(name: str, engine: Engine, photos: Iterable[TextPhoto], min_size: int = MIN_SIZE) -> EngineResult:
    """Word recall (a rendered word counts when it is among the recognised words) and ms per photo."""
    words = found = 0
    texts: dict[str, str] = {}
    elapsed = 0.0
    for photo in photos:
        start = time.perf_counter()
        text = engine(photo.path)
        elapsed += time.perf_counter() - start
        texts[photo.path.name] = text
        seen = tokens(text)
        for word in photo.words:
            if word.size >= min_size:
                words += 1
                found += word.word in seen
    n = max(1, len(texts))
    return EngineResult(name, words, found, 1000.0 * elapsed / n, texts)


def recall_by_size(result: EngineResult, photos: Iterable[TextPhoto], edges: Sequence[int]) -> list[float]:
    """Recall per size bucket [edges[i], edges[i+1])."""
    hits = np.zeros(len(edges) - 1)
    totals = np.zeros(len(edges) - 1)
    for photo in photos:
        seen = tokens(result.texts.get(photo.path.name, ""))
        for word in photo.words:
            bucket = int(np.searchsorted(edges, word.size, side="right")) - 1
            if 0 <= bucket < len(totals):
                totals[bucket] += 1
                hits[bucket] += word.word in seen
    return [float(h / t) if t else float("nan") for h, t in zip(hits, totals, strict=True)]

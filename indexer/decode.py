"""Stage 2: read, hash and decode one photo into model-ready pixels (runs in worker processes).

Each file is read once: the bytes are hashed (BLAKE2b) and decoded from memory. JPEGs use draft
mode (DCT scaling), so a 12-megapixel photo is decoded at 1/8 scale straight away; other formats
are pre-shrunk with ``Image.reduce`` before the model's own resize. EXIF orientation is applied,
width and height are the original ones after orientation. A file that cannot be used gives a
:class:`DecodeFailure` with a reason, never an exception.
"""

from __future__ import annotations

import enum
import hashlib
import io
import os
import stat
import time
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from indexer.core.models.preprocess import PreprocessConfig, preprocess_image
from indexer.exif import PhotoMeta, read_meta
from indexer.limits import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS

HASH_BYTES = 16

# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class FailureKind(enum.StrEnum):
    EMPTY = "empty file"
    NOT_IMAGE = "not an image"
    TRUNCATED = "truncated image"
    CORRUPT = "corrupt image"
    TOO_LARGE = "too large"
    UNSUPPORTED = "unsupported image"
    UNREADABLE = "unreadable file"
    VANISHED = "file vanished"
    CRASHED = "decoder crashed"


@dataclass(frozen=True)
class DecodeOptions:
    cfg: PreprocessConfig
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    transfer_dtype: str = "float16"  # halves the bytes sent back from worker processes


@dataclass(frozen=True)
class DecodeTask:
    item_no: int
    path: str
    old_hash: str | None = None  # content the existing row already holds: skip decoding if unchanged


@dataclass(frozen=True)
class FileFacts:
    """What was actually read (the file may have changed since the scan)."""

    size: int
    mtime_ns: int
    content_hash: str | None


@dataclass(frozen=True)
class Decoded:
    item_no: int
    facts: FileFacts
    width: int
    height: int
    meta: PhotoMeta
    pixels: np.ndarray  # (3, H, W), transfer dtype
    seconds: float


@dataclass(frozen=True)
class KnownContent:
    """The content hash is already indexed (a move, a duplicate or a touched file): not decoded."""

    item_no: int
    facts: FileFacts
    seconds: float


@dataclass(frozen=True)
class DecodeFailure:
    item_no: int
    kind: FailureKind
    detail: str
    facts: FileFacts | None
    seconds: float

    @property
    def reason(self) -> str:
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value


DecodeResult = Decoded | KnownContent | DecodeFailure


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=HASH_BYTES).hexdigest()


def read_file(path: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The bytes and the stat of the same open file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        if st.st_size > max_bytes:
            return b"", st
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 22)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8-bit (Pillow's own convert() would clip them to white)."""
    if image.mode.startswith("I;16"):
        arr = np.asarray(image, dtype=np.uint16)
        return Image.fromarray((arr >> 8).astype(np.uint8), "L")
    if image.mode in ("I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = float(np.nanmax(arr)) if arr.size else 0.0
        scale = 255.0 / top if top > 255.0 else 1.0
        return Image.fromarray(np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8), "L")
    return image


def _decode_pixels(data: bytes, opts: DecodeOptions) -> tuple[int, int, PhotoMeta, np.ndarray]:
    cfg = opts.cfg
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if width * height > opts.max_pixels:
            raise _TooLarge(f"{width}x{height} pixels is above the limit of {opts.max_pixels} (--max-pixels)")
        meta = read_meta(image)
        need = max(cfg.draft_size())  # square: safe whatever the orientation
        if image.format == "JPEG":
            image.draft("RGB", (need, need))
        image.load()
        work = to_8bit(image)
        factor = min(work.size) // (2 * need)
        if factor >= 2:
            work = work.reduce(factor)
        transpose = _TRANSPOSE.get(meta.orientation)
        if transpose is not None:
            work = work.transpose(transpose)
        if meta.orientation >= 5:
            width, height = height, width
        pixels = preprocess_image(work, cfg, original_size=(width, height))
    return width, height, meta, pixels.astype(opts.transfer_dtype, copy=False)


class _TooLarge(Exception):
    pass


def _classify(exc: BaseException) -> tuple[FailureKind, str]:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        return FailureKind.TOO_LARGE, f"{text} (see --max-pixels)"
    if isinstance(exc, _TooLarge | MemoryError):
        return FailureKind.TOO_LARGE, text
    if isinstance(exc, UnidentifiedImageError):
        return FailureKind.NOT_IMAGE, "cannot identify the image format"
    if isinstance(exc, OSError) and "truncated" in text.lower():
        return FailureKind.TRUNCATED, text
    if isinstance(exc, ValueError | KeyError) and "mode" in text.lower():
        return FailureKind.UNSUPPORTED, text
    return FailureKind.CORRUPT, text


def decode_file(
    task: DecodeTask, opts: DecodeOptions, known_hashes: frozenset[str] = frozenset()
) -> DecodeResult:
    """Read, hash and decode one file. Never raises for a bad file."""
    start = time.perf_counter()

    def took() -> float:
        return time.perf_counter() - start

    try:
        data, st = read_file(task.path, opts.max_file_bytes)
    except FileNotFoundError:
        return DecodeFailure(
            task.item_no, FailureKind.VANISHED, "deleted before it could be read", None, took()
        )
    except OSError as exc:
        return DecodeFailure(task.item_no, FailureKind.UNREADABLE, exc.strerror or str(exc), None, took())
    if st.st_size > opts.max_file_bytes:
        facts = FileFacts(st.st_size, st.st_mtime_ns, None)
        detail = f"{st.st_size} bytes is above the limit of {opts.max_file_bytes}"
        return DecodeFailure(task.item_no, FailureKind.TOO_LARGE, detail, facts, took())
    facts = FileFacts(len(data), st.st_mtime_ns, content_hash(data) if data else None)
    if not data:
        return DecodeFailure(task.item_no, FailureKind.EMPTY, "0 bytes", facts, took())
    if facts.content_hash == task.old_hash or facts.content_hash in known_hashes:
        return KnownContent(task.item_no, facts, took())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF and decompression-bomb warnings: handled here
            width, height, meta, pixels = _decode_pixels(data, opts)
    except Exception as exc:  # any decoder error is a property of this file
        kind, detail = _classify(exc)
        return DecodeFailure(task.item_no, kind, detail, facts, took())
    return Decoded(task.item_no, facts, width, height, meta, pixels, took())

"""Stage 2: read, hash and decode one photo into model-ready pixels (runs in worker processes).

Each file is read once: the bytes are hashed (BLAKE2b) and decoded from memory. JPEGs use draft
mode (DCT scaling), so a 12-megapixel photo is decoded at 1/8 scale straight away; other formats
are pre-shrunk with ``Image.reduce`` before the model's own resize. EXIF orientation is applied,
width and height are the original ones after orientation. A file that cannot be used gives a
:class:`DecodeFailure` with a reason, never an exception.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.core.errors import ImageError, ImageProblem
from indexer.core.exif import PhotoMeta
from indexer.core.imaging import read_file
from indexer.core.limits import DEFAULT_DECODE_TIMEOUT, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS
from indexer.core.models.preprocess import PreprocessConfig, picture_pixels

HASH_BYTES = 16

FailureKind = ImageProblem  # the reasons a file is recorded as failed


@dataclass(frozen=True)
class DecodeOptions:
    cfg: PreprocessConfig
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    transfer_dtype: str = "float16"  # halves the bytes sent back from worker processes
    timeout: float = DEFAULT_DECODE_TIMEOUT  # wall-clock seconds one file may take (--decode-timeout)


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


def _decode_pixels(data: bytes, opts: DecodeOptions) -> tuple[int, int, PhotoMeta, np.ndarray]:
    picture, pixels = picture_pixels(data, opts.cfg, name="the file", max_pixels=opts.max_pixels)
    return picture.width, picture.height, picture.meta, pixels.astype(opts.transfer_dtype, copy=False)


def decode_file(
    task: DecodeTask, opts: DecodeOptions, known_hashes: frozenset[str] = frozenset()
) -> DecodeResult:
    """Read, hash and decode one file. Never raises for a bad file."""
    start = time.perf_counter()

    def took() -> float:
        return time.perf_counter() - start

    try:
        data, st = read_file(Path(task.path), "the file", opts.max_file_bytes)
    except ImageError as exc:
        return DecodeFailure(task.item_no, exc.kind, exc.detail, None, took())
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
        width, height, meta, pixels = _decode_pixels(data, opts)
    except ImageError as exc:
        return DecodeFailure(task.item_no, exc.kind, exc.detail, facts, took())
    return Decoded(task.item_no, facts, width, height, meta, pixels, took())


def too_slow(item_no: int, timeout: float) -> DecodeFailure:
    """The failure of a file whose decoding went past ``timeout`` seconds."""
    detail = f"decoding took more than {timeout:g} s"
    return DecodeFailure(item_no, FailureKind.TOO_SLOW, detail, None, timeout)


def decode_file_within(
    task: DecodeTask,
    opts: DecodeOptions,
    known_hashes: frozenset[str] = frozenset(),
) -> DecodeResult:
    """:func:`decode_file` in this process, given up after ``opts.timeout`` seconds on the wall clock.

    For callers that have no decoder process to kill (``--workers 0``, a Ray task): the decode runs
    on a daemon thread (Pillow's decoders release the GIL) and a file that is not done in time is
    recorded as too slow; its decode is abandoned and ends on its own in the background (the decode
    cost checks bound it), or with the process.
    """
    outcome: list[DecodeResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(decode_file(task, opts, known_hashes))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, name=f"decode-{task.item_no}", daemon=True)
    worker.start()
    worker.join(opts.timeout)
    if not outcome:
        return too_slow(task.item_no, opts.timeout)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]

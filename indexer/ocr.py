"""Text in photos: the recognition engine behind a small interface, and the indexing stage that fills
``photo_text`` (``indexer.core.storage.text``) after embedding, like the places stage.

Engine: RapidOCR (``rapidocr-onnxruntime``), PP-OCRv4 detection and recognition and the 180-degree
direction classifier, ONNX models inside the wheel (nothing is downloaded), run by ONNX Runtime. Its
recognition model reads Chinese and English (Latin letters without most diacritics, digits,
punctuation). Work per photo is bounded:

- recognition reads the photo downscaled to a long side of at most :data:`READ_SIDE` (1600 px: text a
  person can read on a phone screen stays >= 10 px high, and every crop the recogniser sees is of
  bounded size), detection a copy of at most :data:`DETECT_SIDE` (detection cost grows with the pixel
  count, and the detector still finds text lines of ~10 px at that scale). A photo without text pays
  detection alone;
- at most :data:`MAX_BOXES` text boxes are recognised, in batches, and recognition stops at the
  :data:`TIME_BUDGET` of CPU time (the text read so far is kept); stored text is capped
  (``storage.text.safe_text``).

The stage reads photos whose stored text is missing, of another engine, or of another content of the
file, ``BATCH`` photos per transaction (a killed run loses at most its batch); a photo the engine or
the image reader fails on is recorded as failed and the run goes on. Before the engine, the text gate
(``indexer/ocr_gate.py``; opt-in, ``$DUALENS_OCR=gate``; the default model's collections) records the
photos it judges to hold no text as read with none, ``GATE_BATCH`` per transaction, from the vectors
embedding stored: they cost no decoding and no engine, and the engine (and its worker processes)
starts only for the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from indexer.core.imaging import open_image
from indexer.core.storage.collection import Collection
from indexer.core.storage.spaces import VISUAL
from indexer.core.storage.text import MAX_TEXT_CHARS, TextResult, TextStatus, TextTodo, safe_text
from indexer.decode_pool import watch_parent
from indexer.ocr_gate import TextGate, gate_for, split

READ_SIDE = 1600
DETECT_SIDE = 960
MAX_BOXES = 400
MAX_WORDS = 2000
# CPU seconds of recognition per photo (detection of a <= 960 px image comes first); CPU time, not wall
# time, so a busy machine reads the same text, only slower
TIME_BUDGET = 20.0
MIN_SCORE = 0.5  # recognised lines below this confidence are dropped
BATCH = 16  # photos per transaction
MIN_PHOTOS_PER_WORKER = 8  # a worker process loads its engine (~2 s): fewer photos are read in this process
ENGINE_VERSION = "1.4.4"
GATE_BATCH = 512  # photos judged by the gate per transaction (a vector read and a dot product each)


@dataclass(frozen=True)
class RecognisedText:
    """What a reader found: one entry per text box, in reading order (``boxes``: four corner points
    each, in the pixels given; ``confidence`` in 0..1)."""

    words: tuple[str, ...] = ()
    boxes: tuple[tuple[tuple[float, float], ...], ...] = ()
    confidence: tuple[float, ...] = ()

    @property
    def text(self) -> str:
        """The recognised text, one box per line, safe to store and show, capped in words and length."""
        kept: list[str] = []
        count = 0
        for line in self.words:
            words = line.split()[: MAX_WORDS - count]
            if words:
                kept.append(" ".join(words))
                count += len(words)
        return safe_text("\n".join(kept)[:MAX_TEXT_CHARS])


class TextReader(Protocol):
    """A text recognition engine. ``name``: engine, version and settings; stored with each photo's
    text, a new name reads every photo again. ``load`` is called before the first ``read`` (lazy:
    importing this module loads no model)."""

    name: str

    def load(self) -> None: ...

    def read(self, pixels: np.ndarray) -> RecognisedText: ...


def downscale(pixels: np.ndarray, side: int) -> np.ndarray:
    """``pixels`` (H x W x 3, uint8) with its long side at most ``side`` (area-averaged), else itself."""
    h, w = pixels.shape[:2]
    if max(h, w) <= side:
        return pixels
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))


class RapidOcrReader:
    """PP-OCRv4 through RapidOCR, detection on a <= DETECT_SIDE copy, recognition on <= READ_SIDE."""

    name = f"rapidocr-onnxruntime {ENGINE_VERSION}/ppocr-v4 det{DETECT_SIDE} read{READ_SIDE}"

    def __init__(self, threads: int | None = None, time_budget: float = TIME_BUDGET) -> None:
        self.threads = threads
        self.time_budget = time_budget
        self._engine: Any = None

    def load(self) -> None:
        if self._engine is None:
            self._engine = _rapidocr(-1 if self.threads is None else max(1, self.threads))

    def read(self, pixels: np.ndarray) -> RecognisedText:
        self.load()
        engine = self._engine
        rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]
        image = downscale(np.ascontiguousarray(rgb, dtype=np.uint8), READ_SIDE)
        small = downscale(image, DETECT_SIDE)
        boxes, _ = engine.text_det(small)
        if boxes is None or len(boxes) == 0:
            return RecognisedText()
        scale = np.array([image.shape[1] / small.shape[1], image.shape[0] / small.shape[0]], np.float32)
        boxes = engine.sorted_boxes(np.asarray(boxes, np.float32) * scale)[:MAX_BOXES]
        crops = engine.get_crop_img_list(image, boxes)
        crops, _, _ = engine.text_cls(crops)
        return self._recognise(crops, boxes)

    def _recognise(self, crops: list[np.ndarray], boxes: list[np.ndarray]) -> RecognisedText:
        deadline = time.process_time() + self.time_budget
        words: list[str] = []
        kept: list[tuple[tuple[float, float], ...]] = []
        confidence: list[float] = []
        step = 16
        for start in range(0, len(crops), step):
            results, _ = self._engine.text_rec(crops[start : start + step])
            for (found, score), box in zip(results, boxes[start : start + step], strict=True):
                if score >= MIN_SCORE and found.strip():
                    words.append(found)
                    kept.append(tuple((float(x), float(y)) for x, y in box))
                    confidence.append(float(score))
            if time.process_time() > deadline:
                break
        return RecognisedText(tuple(words), tuple(kept), tuple(confidence))


_DEFAULT_READER = RapidOcrReader  # what worker processes run
_LOADED: dict[int, Any] = {}  # one engine per thread count and process: a run loads it once (~2 s)


def _rapidocr(threads: int) -> Any:
    if threads not in _LOADED:
        from rapidocr_onnxruntime import RapidOCR

        _LOADED[threads] = RapidOCR(intra_op_num_threads=threads, det_limit_type="max")
    return _LOADED[threads]


def read_photo(reader: TextReader, path: str) -> RecognisedText:
    """The text in the photo at ``path``, read with THE image reader (upright, RGB). Raises
    ImageError for a file that cannot be read, and whatever the engine raises."""
    picture = open_image(Path(path), name=path, min_side=READ_SIDE // 2)
    return reader.read(np.asarray(picture.image))


def _result(reader: TextReader, todo: TextTodo) -> TextResult:
    try:
        found = read_photo(reader, todo.path).text
    except Exception:  # ImageError, or anything the engine raises: recorded, and the run goes on
        return TextResult(todo.photo_id, todo.content_hash, reader.name, TextStatus.FAILED)
    status = TextStatus.OK if found else TextStatus.NONE
    return TextResult(todo.photo_id, todo.content_hash, reader.name, status, found)


class _Readers:
    """Reads batches of photos: in this process, or (``workers`` > 1, the default engine) in worker
    processes running a one-thread engine each. A pool that breaks (a worker killed) is given up: the
    rest of the run reads in this process."""

    def __init__(self, reader: TextReader, workers: int) -> None:
        self.reader = reader
        self.workers = workers if isinstance(reader, _DEFAULT_READER) else 0  # workers make their own
        self._executor: ProcessPoolExecutor | None = None

    def read(self, todo: Sequence[TextTodo]) -> list[TextResult]:
        if self.workers > 1:
            try:
                if self._executor is None:
                    self._executor = ProcessPoolExecutor(
                        self.workers, _SPAWN, initializer=_start_worker, initargs=(os.getpid(),)
                    )
                return list(self._executor.map(_read_in_worker, todo))
            except BrokenProcessPool:
                self.close()
                self.workers = 0
        self.reader.load()
        return [_result(self.reader, t) for t in todo]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


_WORKER_READER: RapidOcrReader | None = None
# spawned, not forked: the parent runs ONNX Runtime and torch sessions whose threads a fork would not copy
_SPAWN = multiprocessing.get_context("spawn")


def _start_worker(parent_pid: int) -> None:
    """A text reader's process: its one-thread engine, and gone when the indexer dies (a SIGKILL too)."""
    global _WORKER_READER
    threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True).start()
    _WORKER_READER = RapidOcrReader(threads=1)
    _WORKER_READER.load()


def _read_in_worker(todo: TextTodo) -> TextResult:
    assert _WORKER_READER is not None
    return _result(_WORKER_READER, todo)


def fill_texts(
    collection: Collection,
    reader: TextReader,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
    workers: int = 0,
    gate: TextGate | None = None,
) -> int:
    """Read the text of every photo whose stored text is not ``reader``'s reading of its current
    content (nor ``gate``'s skip, when given), ``batch`` photos per transaction; returns how many
    photos were read (failures included). ``progress`` is told each batch's size once it is stored.
    ``workers`` > 1: in that many processes."""
    after, read = 0, 0
    readers = _Readers(reader, workers)
    try:
        while True:
            todo = collection.texts_to_read(done_by(reader, gate), after=after, limit=batch)
            if not todo:
                return read
            read += collection.write_texts(readers.read(todo))
            after = todo[-1].photo_id
            if progress is not None:
                progress(len(todo))
    finally:
        readers.close()


def done_by(reader: TextReader, gate: TextGate | None) -> tuple[str, ...]:
    """The stored engine names that count as ``reader``'s reading: its own, and ``gate``'s skip."""
    return (reader.name,) if gate is None else (reader.name, gate.engine_for(reader.name))


def skip_without_text(
    collection: Collection, gate: TextGate, reader: TextReader, *, batch: int = GATE_BATCH
) -> int:
    """Store as read with no text (by ``gate`` for ``reader``) every photo still to read that ``gate``
    judges to hold none, ``batch`` photos per transaction; returns how many. Photos without a
    stored visual vector of the gate's size are left to the engine."""
    names = done_by(reader, gate)
    after = skipped = 0
    while todo := collection.texts_to_read(names, after=after, limit=batch):
        ids, matrix = collection.indexed_vectors([t.photo_id for t in todo], space=VISUAL)
        vectors = (
            {int(i): matrix[n] for n, i in enumerate(ids)} if matrix.shape[1:] == gate.weights.shape else {}
        )
        _, skip = split(gate, [t.photo_id for t in todo], vectors)
        chosen = set(skip)
        skipped += collection.write_texts(
            [
                TextResult(t.photo_id, t.content_hash, names[1], TextStatus.NONE)
                for t in todo
                if t.photo_id in chosen
            ]
        )
        after = todo[-1].photo_id
    return skipped


def collection_gate(collection: Collection) -> TextGate | None:
    """The text gate for the collection's model when ``$DUALENS_OCR=gate`` (``indexer/ocr_gate.py``),
    or None."""
    facts = collection.database.facts()
    return gate_for(facts.model_id, facts.precision)


@dataclass(frozen=True)
class TextRun:
    """The stage's outcome: photos read (those the gate skipped included; ``skipped`` of them), and
    why it could not run (None: it ran)."""

    read: int = 0
    problem: str | None = None
    skipped: int = 0


def read_texts(
    collection: Collection,
    reader: TextReader | None = None,
    *,
    threads: int | None = None,
    workers: int | None = None,
    progress: Callable[[int], tqdm] | None = None,
    gate: TextGate | bool = True,
) -> TextRun:
    """The indexing stage: :func:`fill_texts` with the default engine. ``workers``: processes to read
    in (None: one per core; 0 or 1: this process, its engine on ``threads`` threads, None: ONNX
    Runtime's default). One-thread engines in one process per core read about twice the photos of one
    engine on every thread (measured on 2 cores: docs/usage.md); a run with few photos reads them here.
    An engine that cannot be loaded is reported, not raised: the photos just indexed stay indexed,
    and the next run tries again. ``progress``: given the number of photos to read, the progress bar
    to update (closed at the end). ``gate``: True the collection's text gate (:func:`collection_gate`),
    False none (every photo is read), or that gate; the photos it skips are not counted in ``progress``."""
    reader = reader or RapidOcrReader(threads=threads)
    chosen = collection_gate(collection) if gate is True else (gate or None)
    skipped = skip_without_text(collection, chosen, reader) if chosen is not None else 0
    total = collection.count_texts_to_read(done_by(reader, chosen))
    if not total:
        return TextRun(read=skipped, skipped=skipped)
    processes = (os.cpu_count() or 1) if workers is None else workers
    processes = min(processes, total // MIN_PHOTOS_PER_WORKER)
    try:
        if processes > 1:
            import rapidocr_onnxruntime  # noqa: F401  (each worker loads its own engine)
        else:
            reader.load()
    except (ImportError, OSError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return TextRun(
            read=skipped,
            problem=f"text recognition is unavailable ({detail}); photos were indexed without it",
            skipped=skipped,
        )
    if progress is None:
        read = fill_texts(collection, reader, workers=processes, gate=chosen)
    else:
        with progress(total) as bar:
            read = fill_texts(collection, reader, progress=bar.update, workers=processes, gate=chosen)
    return TextRun(read=read + skipped, skipped=skipped)

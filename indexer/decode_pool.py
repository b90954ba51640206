"""Run :func:`indexer.decode.decode_file` in worker processes with a bounded number of tasks in flight.

Decoding overlaps inference: while the main process embeds a batch, the workers keep decoding the
tasks already submitted. At most ``max_in_flight`` chunks are outstanding, so memory stays bounded
whatever the collection size. A file that kills its worker (a decoder segfault, the OOM killer) is
isolated by re-running the suspects one at a time and recorded as a failure; the run goes on.

The decode timeout holds per file on the wall clock: each worker publishes, in shared memory, the
file it is decoding and since when; a file past the timeout gets its worker killed and is recorded
as too slow, and the other outstanding files are decoded again by fresh workers. With ``workers=0``
each file is decoded on a thread of this process and given up after the timeout.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from ctypes import c_double
from dataclasses import replace
from itertools import chain
from typing import Any

from PIL import Image

from indexer.core.imaging import register_optional_plugins
from indexer.decode import (
    DecodeFailure,
    DecodeOptions,
    DecodeResult,
    DecodeTask,
    FailureKind,
    decode_file,
    decode_file_within,
    too_slow,
)

log = logging.getLogger(__name__)

_OPTS: DecodeOptions | None = None
_KNOWN: frozenset[str] = frozenset()
# Per worker slot: [item_no, started] (time.monotonic(), system-wide on Linux; 0: idle). Written by
# the worker only, read by the indexer: shared memory without a lock, so a killed worker cannot
# leave a lock held.
_SLOTS: Any = None
_SLOT = -1


def watch_parent(parent_pid: int) -> None:
    """Exit when the indexer dies (SIGKILL included) instead of lingering as an orphan (run it in a
    daemon thread of each worker process: decoders, text readers)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _init_worker(opts: DecodeOptions, known: frozenset[str], parent_pid: int, slots: Any, taken: Any) -> None:
    global _OPTS, _KNOWN, _SLOTS, _SLOT
    _OPTS, _KNOWN = opts, known
    with taken.get_lock():  # a slot of its own (a pool never starts more workers than slots)
        _SLOT, taken.value = taken.value, taken.value + 1
    _SLOTS = slots if len(slots) > 2 * _SLOT + 1 else None
    Image.MAX_IMAGE_PIXELS = None  # decode_file checks --max-pixels itself, right after reading the header
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the indexer's to handle; it stops the pool
    register_optional_plugins()
    threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True).start()


def _decode_chunk(tasks: list[DecodeTask]) -> list[DecodeResult]:
    assert _OPTS is not None, "worker not initialised"
    results = []
    for task in tasks:
        _publish(task.item_no, time.monotonic())
        try:
            results.append(decode_file(task, _OPTS, _KNOWN))
        finally:
            _publish(task.item_no, 0.0)
    return results


def _publish(item_no: int, started: float) -> None:
    """Tell the indexer which file this worker decodes since when (``started`` 0: none).

    The start time goes to 0 before the item changes and is set last, so a reader that sees the
    same non-zero start before and after reading the item has read a consistent pair.
    """
    if _SLOTS is not None:
        base = 2 * _SLOT
        _SLOTS[base + 1] = 0.0
        _SLOTS[base] = float(item_no)
        _SLOTS[base + 1] = started


def _busy_files(slots: Any) -> list[tuple[int, float]]:
    """(item_no, started) of every file a worker is decoding now."""
    busy = []
    for base in range(0, len(slots), 2):
        for _ in range(3):  # a worker that moves on between the reads: read again
            started, item_no, again = slots[base + 1], slots[base], slots[base + 1]
            if started == again:
                if started > 0:
                    busy.append((int(item_no), started))
                break
    return busy


def default_workers(gpu: bool = False, *, light_model: bool = False) -> int:
    """Decoder processes for this machine.

    With CPU inference the model needs most cores (a 12-megapixel JPEG decodes in draft mode in far
    less time than one CPU inference), so a third of the cores decode, at least one. With a GPU,
    decoding is the bottleneck: every core but the main process's (a GPU embeds thousands of photos
    a second; each core decodes ~40-100 twelve-megapixel JPEGs a second in draft mode).
    ONNX Runtime runs the default model ~5x faster than torch on a CPU (``light_model``: measured by
    `make bench-index`), so decoding gets half the cores there. On two cores both rules give one
    decoder; the stage times `dualens index` prints show whether inference waits for decoding.
    """
    cores = os.cpu_count() or 2
    if gpu:
        return max(1, cores - 1)
    return max(1, cores // 2 if light_model else cores // 3)


def _context() -> multiprocessing.context.BaseContext:
    # fork: workers start in milliseconds and inherit the imported modules; they never touch torch
    # or the database. Elsewhere (macOS, Windows) spawn.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


class DecoderPool:
    """Decode tasks in ``workers`` processes (0: in this process), yielding results as they complete."""

    def __init__(
        self,
        opts: DecodeOptions,
        known_hashes: frozenset[str] = frozenset(),
        *,
        workers: int | None = None,
        chunk_size: int = 4,
        max_in_flight: int | None = None,
        decode_timeout: float | None = None,
    ) -> None:
        """``decode_timeout``: wall-clock seconds per file (default: ``opts.timeout``)."""
        self.opts = opts if decode_timeout is None else replace(opts, timeout=decode_timeout)
        self.decode_timeout = self.opts.timeout
        self.known = known_hashes
        self.workers = default_workers() if workers is None else max(0, workers)
        self.chunk_size = max(1, chunk_size)
        self.max_in_flight = max_in_flight or max(8, 4 * self.workers)
        self._executor: ProcessPoolExecutor | None = None
        self._slots: Any = None  # the running pool's worker slots (see _publish)
        self.busy_seconds = 0.0  # decode time summed over all workers

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = _context()
            self._slots = context.RawArray(c_double, 2 * self.workers)
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.opts, self.known, os.getpid(), self._slots, context.Value("i", 0)),
            )
        return self._executor

    def _restart(self, kill: bool = False) -> None:
        """Shut the pool down (``kill``: its workers first, one of them being stuck)."""
        if self._executor is not None:
            if kill:
                for process in list(getattr(self._executor, "_processes", {}).values()):
                    process.kill()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            self._slots = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self._slots = None

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ decoding
    def decode(self, tasks: Iterable[DecodeTask]) -> Iterator[DecodeResult]:
        if self.workers == 0:
            for task in tasks:
                result = decode_file_within(task, self.opts, self.known)
                self.busy_seconds += result.seconds
                yield result
            return
        yield from self._decode_parallel(_chunks(tasks, self.chunk_size))

    def _decode_parallel(self, chunks: Iterator[list[DecodeTask]]) -> Iterator[DecodeResult]:
        pending: dict[Future[list[DecodeResult]], list[DecodeTask]] = {}
        exhausted = False
        quiet_since = time.monotonic()  # the last time a chunk completed
        while True:
            while not exhausted and len(pending) < self.max_in_flight:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                pending[self._start().submit(_decode_chunk, chunk)] = chunk
            if not pending:
                return
            done, _ = wait(pending, timeout=self._until_next_deadline(), return_when=FIRST_COMPLETED)
            broken: list[DecodeTask] = []
            for future in done:
                chunk = pending.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    broken.extend(chunk)
                    continue
                quiet_since = time.monotonic()
                yield from self._account(results)
            if broken:
                for future, chunk in pending.items():  # every outstanding task is a suspect
                    future.cancel()
                    broken.extend(chunk)
                pending.clear()
                yield from self._isolate(broken)
                continue
            late = self._late_files()
            if late:  # those files are too slow; the others are decoded again by fresh workers
                again = [task for chunk in pending.values() for task in chunk if task.item_no not in late]
                pending.clear()
                self._restart(kill=True)
                for item_no in sorted(late):
                    yield too_slow(item_no, self.decode_timeout)
                chunks = chain(_chunks(sorted(again, key=lambda t: t.item_no), self.chunk_size), chunks)
                exhausted, quiet_since = False, time.monotonic()
            elif pending and time.monotonic() - quiet_since > self.decode_timeout * (self.chunk_size + 1):
                # nothing completed and no worker says what it is stuck on (a worker that never
                # started): every outstanding task is a suspect
                suspects = [task for chunk in pending.values() for task in chunk]
                pending.clear()
                self._restart(kill=True)
                yield from self._isolate(suspects)
                quiet_since = time.monotonic()

    def _until_next_deadline(self) -> float:
        """Seconds until the first file being decoded is past the timeout (at most the timeout)."""
        now = time.monotonic()
        starts = [started for _, started in _busy_files(self._slots)] if self._slots is not None else []
        wait_s = min((started + self.decode_timeout - now for started in starts), default=self.decode_timeout)
        return min(self.decode_timeout, max(0.01, wait_s))

    def _late_files(self) -> set[int]:
        """Files a worker has been decoding for longer than the timeout."""
        if self._slots is None:
            return set()
        now = time.monotonic()
        busy = _busy_files(self._slots)
        return {item_no for item_no, started in busy if now - started > self.decode_timeout}

    def _account(self, results: list[DecodeResult]) -> Iterator[DecodeResult]:
        for result in results:
            self.busy_seconds += result.seconds
            yield result

    def _isolate(self, suspects: list[DecodeTask]) -> Iterator[DecodeResult]:
        """Re-run the tasks of a broken pool one at a time; the one that breaks it again failed."""
        log.warning("a decoder process died or hung; re-checking %d file(s) one at a time", len(suspects))
        self._restart()
        for task in sorted(suspects, key=lambda t: t.item_no):
            future = self._start().submit(_decode_chunk, [task])
            try:
                results = future.result(timeout=self.decode_timeout)
            except BrokenProcessPool:
                self._restart()
                yield DecodeFailure(task.item_no, FailureKind.CRASHED, "the decoder process died", None, 0.0)
                continue
            except FutureTimeout:
                self._restart(kill=True)
                yield too_slow(task.item_no, self.decode_timeout)
                continue
            yield from self._account(results)


def _chunks(tasks: Iterable[DecodeTask], size: int) -> Iterator[list[DecodeTask]]:
    chunk: list[DecodeTask] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

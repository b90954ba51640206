"""The indexing run: scan -> decode -> embed -> write, one module per stage, joined and timed here.

    scan      stat walk of the roots; diff with the database (unchanged files are never opened)
    decode    worker processes read, hash and decode files (bounded tasks in flight)
    embed     DualEncoder.embed_pixels_pair on batches of decoded pixels (joint + visual vectors)
    write     one database transaction per batch; at the end the FAISS file is updated atomically

Moves and duplicates are recognised by content hash after the read, before any decoding or
embedding, and keep/copy the stored vector.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from tqdm import tqdm

from indexer.alloc import keep_large_blocks_in_heap
from indexer.collection_setup import record_model
from indexer.core.errors import UsageError
from indexer.core.limits import DEFAULT_BATCH_SIZE, DEFAULT_DECODE_TIMEOUT, DEFAULT_MAX_PIXELS
from indexer.core.models import DualEncoder
from indexer.core.models.default_spec import model_hint
from indexer.core.models.interface import Encoder
from indexer.core.settings import CollectionPaths, ocr_enabled
from indexer.core.storage.indexes import IndexState
from indexer.core.storage.locks import exclusive_indexing
from indexer.core.storage.runs import finish_run, switch_model
from indexer.core.text import printable
from indexer.decode import Decoded, DecodeFailure, DecodeOptions, DecodeResult, DecodeTask, KnownContent
from indexer.decode_pool import DecoderPool, default_workers
from indexer.geocode import fill_places
from indexer.ocr import read_texts
from indexer.plan import Plan, WorkItem, make_plan
from indexer.ray_engine import RayOptions
from indexer.scan import normalise_roots, scan, stored_roots
from indexer.writer import BatchWriter, Embedded, Failed, Reused, Touched, WriteOp

log = logging.getLogger(__name__)

MAX_OPS_WITHOUT_EMBED = 256
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class IndexOptions:
    model: str | None = None  # None: the collection's model, or the default model for a new one
    batch_size: int | None = None  # None: DEFAULT_BATCH_SIZE on a CPU, from free memory on a GPU
    workers: int | None = None  # decoder processes; None: a third of the cores (GPU: all but one); 0: none
    threads: int | None = None  # torch CPU threads; None: the cores the decoders leave free
    max_pixels: int = DEFAULT_MAX_PIXELS
    reindex: bool = False
    progress: bool = False
    decode_timeout: float = DEFAULT_DECODE_TIMEOUT  # seconds per file in the decoder processes
    backend: str = "auto"  # inference backend: auto, torch or onnx
    precision: str | None = None  # fp32 or int8 towers; None: the collection's (fp32 for a new one)
    prune: bool = False  # also remove the photos of folders that cannot be read or came back empty
    retry_failed: bool = False  # read failed files again even when their size and mtime are unchanged
    ocr: bool = field(default_factory=ocr_enabled)  # read the text in photos (indexer/ocr.py); $DUALENS_OCR
    engine: str = "local"  # local: this process and its decoder processes; ray: a Ray cluster
    ray: RayOptions = field(default_factory=RayOptions)  # where and how wide (engine "ray")
    on_progress: Callable[[int, int], None] | None = None  # (files done, files to do): 0 first, then each
    on_text_progress: Callable[[int, int], None] | None = None  # (photos read, to read) of the text stage


@dataclass
class StageTimes:
    scan: float = 0.0
    decode: float = 0.0  # time the main process waited for decoded files
    decode_busy: float = 0.0  # decoding time summed over the worker processes (overlaps the rest)
    embed: float = 0.0
    write: float = 0.0
    ocr: float = 0.0  # text recognition (indexer/ocr.py)
    total: float = 0.0


@dataclass
class IndexSummary:
    roots: tuple[str, ...] = ()
    seen: int = 0
    indexed: int = 0  # new files embedded
    updated: int = 0  # changed (or previously failed / pending) files embedded again
    reused: int = 0  # content already indexed (duplicate, touched file): vector copied, no embedding
    moved: int = 0  # renamed or moved: the row keeps its id and vector
    unchanged: int = 0
    removed: int = 0
    failed: int = 0  # files in error after the run, those not read again (known_failed) included
    known_failed: int = 0  # failed before, unchanged since: not read again (see --retry-failed)
    times: StageTimes = field(default_factory=StageTimes)
    model_id: str = ""
    kept_unreachable: int = 0  # photos kept although their folder could not be read (see --prune)
    unreachable_folders: tuple[str, ...] = ()
    placed: int = 0  # photos whose GPS position got a place (city, region, country) this run
    texts_read: int = 0  # photos whose text was read this run (those without text and failures included)
    ocr_problem: str | None = None  # why text recognition could not run

    def notes(self) -> list[str]:
        """What is worth knowing about the run's model (the offline default's limits)."""
        hint = model_hint(self.model_id) if self.embedded else None
        return [hint] if hint else []

    def warnings(self) -> list[str]:
        """What the user must know although the run succeeded."""
        if self.ocr_problem:
            return [self.ocr_problem, *self._unreachable()]
        return self._unreachable()

    def _unreachable(self) -> list[str]:
        if not self.unreachable_folders or not self.kept_unreachable:  # --prune removed them: nothing kept
            return []
        shown = ", ".join(printable(f) for f in self.unreachable_folders[:3])
        more = f" and {len(self.unreachable_folders) - 3} more" if len(self.unreachable_folders) > 3 else ""
        return [
            f"could not read {shown}{more} (unreadable, missing, or empty where it held photos: "
            f"a disk not mounted?); kept its {self.kept_unreachable} indexed photo(s). "
            "Fix the folder and index again, or run with --prune to remove them"
        ]

    @property
    def embedded(self) -> int:
        return self.indexed + self.updated

    def lines(self) -> list[str]:
        t = self.times
        rate = self.embedded / (t.total or 1e-9)
        return [
            f"model {self.model_id}" if self.model_id else "model: none yet (no photo embedded)",
            f"indexed {self.indexed}, unchanged {self.unchanged}, updated {self.updated}, "
            f"moved {self.moved}, removed {self.removed}, failed {self.failed}"
            + (f" ({self.known_failed} unchanged since, not read again)" if self.known_failed else "")
            + (f", reused {self.reused}" if self.reused else "")
            + (f", placed {self.placed}" if self.placed else "")
            + (f", texts read {self.texts_read}" if self.texts_read else ""),
            f"time {t.total:.2f}s: scan {t.scan:.2f}s, decode {t.decode:.2f}s waited "
            f"({t.decode_busy:.2f}s in workers), embed {t.embed:.2f}s, write {t.write:.2f}s"
            + (f", text {t.ocr:.2f}s" if t.ocr else "")
            + (f" — {rate:.1f} images/s" if self.embedded else ""),
        ]


@dataclass
class _RunState:
    plan: Plan
    writer: BatchWriter
    summary: IndexSummary
    claimed: set[int] = field(default_factory=set)  # missing rows taken over by a move
    missing_by_hash: dict[str, list[int]] = field(default_factory=dict)  # unclaimed move sources
    added: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)


class _Timer:
    def __init__(self, times: StageTimes) -> None:
        self.times = times

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self.times, name, getattr(self.times, name) + time.perf_counter() - start)


def _progress(total: int, enabled: bool, desc: str = "indexing") -> tqdm:
    disable = not enabled or total == 0 or bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(total=total, unit="img", desc=desc, disable=disable, file=sys.stderr, smoothing=0.1)


def _text_progress(options: IndexOptions, total: int) -> tqdm:
    """The text stage's bar, also told to ``options.on_text_progress`` (0 first, then each batch)."""
    bar = _progress(total, enabled=options.progress, desc="reading text")
    report = options.on_text_progress
    if report is None:
        return bar
    report(0, total)
    done, update = [0], bar.update

    def told(n: float | None = 1) -> bool | None:
        done[0] += int(n or 0)
        report(done[0], total)
        return update(n)

    bar.update = told
    return bar


def make_encoder(model: str, options: IndexOptions, precision: str = "fp32") -> DualEncoder:
    batch = options.batch_size or DEFAULT_BATCH_SIZE
    precision = options.precision or precision
    return DualEncoder(
        model, threads=options.threads, batch_size=batch, backend=options.backend, precision=precision
    )


def run_index(
    data: str | os.PathLike[str] | None,
    dirs: Sequence[str | os.PathLike[str]],
    options: IndexOptions = IndexOptions(),
    *,
    encoder: Encoder | None = None,
    db_url: str | None = None,
) -> IndexSummary:
    """Index ``dirs`` (default: the collection's roots) into the collection in ``data``, its database
    at ``db_url`` (default: ``$DUALENS_DB_URL``, else the data directory's SQLite file)."""
    summary = IndexSummary()
    timer = _Timer(summary.times)
    start = time.perf_counter()
    given = normalise_roots(dirs) if dirs else ()  # a missing folder fails before anything is created
    paths = CollectionPaths.from_option(data, db_url)
    if not given and not paths.exists():  # nothing to index and no collection: create nothing
        raise UsageError(f"give at least one folder to index (there is no collection in {paths.root} yet)")
    # The locks first: of two indexers started at once, the second says so before it touches anything.
    if options.engine not in ENGINES:
        raise UsageError(f"unknown engine {options.engine!r}; choose one of {', '.join(ENGINES)}")
    if options.engine == "ray":  # Ray installed and the cluster reachable, before anything is written
        from indexer.ray_engine import preflight

        preflight(options.ray)
    with exclusive_indexing(data, create=bool(given), db_url=db_url) as collection:
        with timer.stage("scan"):
            known_roots = [str(r) for r in collection.rows.roots()]
            roots = given or stored_roots(known_roots)  # as recorded: a root never moves by a symlink
            facts = collection.database.facts()  # an unfinished re-index's model goes on by default
            model = options.model or facts.next_model_id or facts.model_id or "default"
            if encoder is None:
                encoder = make_encoder(
                    model, options, facts.next_precision if facts.next_model_id else facts.precision
                )
            if options.engine == "ray" and getattr(encoder, "precision", "fp32") != "fp32":
                raise UsageError("int8 precision is not available with --engine ray yet; use --engine local")
            begun = record_model(collection, encoder, reindex=options.reindex)
            if begun.staging:
                roots = stored_roots([*roots, *known_roots])
            collection.rows.record_roots(roots)
            was_current = collection.indexes.state()
            scanned = scan(roots, exclude=[collection.paths.root])
            plan = make_plan(
                scanned,
                collection.rows.rows_to_plan(),
                prune=options.prune,
                want_visual=encoder.visual_dim > 0,
                retry_failed=options.retry_failed,
                staging=begun.staging,
            )
        summary.roots, summary.seen, summary.unchanged = roots, len(scanned.files), plan.unchanged
        summary.model_id = encoder.model_id
        summary.failed = summary.known_failed = plan.known_failed
        state = _RunState(plan, BatchWriter(collection, begun.run, staging=begun.staging), summary)
        for row in plan.move_sources:  # a renamed folder's photos move, though the folder looks emptied
            if plan.lends(row) and row.content_hash:
                state.missing_by_hash.setdefault(row.content_hash, []).append(row.id)
        if options.on_progress is not None:
            options.on_progress(0, len(plan.todo))
        if plan.todo and options.engine == "ray":
            _process_on_ray(state, encoder, model, options, timer)
        elif plan.todo:
            _process(state, encoder, options, timer)
        with timer.stage("write"):
            gone, summary.kept_unreachable, summary.unreachable_folders = plan.settle(state.claimed)
            removed = state.writer.sweep(gone, state.claimed)
            summary.removed = sum(r.id not in state.claimed for r in gone)
            state.removed.update(removed)
            if begun.staging and switch_model(collection.database):  # complete: serve the new model
                was_current = IndexState(frozenset())  # every file rebuilt from the swapped vectors
            collection.indexes.update(was_current, state.removed, state.added)
            summary.placed = fill_places(collection)  # new GPS positions, and those of older releases
            finish_run(collection.database)
        if options.ocr:  # after the run is complete: searches serve the new photos while text is read
            with timer.stage("ocr"):
                bar = partial(_text_progress, options)
                run = read_texts(collection, threads=options.threads, workers=options.workers, progress=bar)
                summary.texts_read, summary.ocr_problem = run.read, run.problem
    summary.times.total = time.perf_counter() - start
    return summary


def _process(state: _RunState, encoder: Encoder, options: IndexOptions, timer: _Timer) -> None:
    plan = state.plan
    opts = DecodeOptions(
        cfg=encoder.preprocess_config, max_pixels=options.max_pixels, timeout=options.decode_timeout
    )
    tasks = (DecodeTask(i, item.file.path, item.old_hash) for i, item in enumerate(plan.todo))
    pixels: list[tuple[WorkItem, Decoded]] = []
    ops: list[WriteOp] = []

    def flush() -> None:
        batch_ops = list(ops)
        ops.clear()
        if pixels:
            with timer.stage("embed"):
                stacked = np.stack([r.pixels for _, r in pixels]).astype(np.float32)
                vectors, visual = encoder.embed_pixels_pair(stacked)
            batch_ops.extend(
                Embedded(item, r, vectors[n], None if visual is None else visual[n])
                for n, (item, r) in enumerate(pixels)
            )
            pixels.clear()
        _write(state, batch_ops, timer)

    gpu = _on_gpu(encoder)
    light = isinstance(encoder, DualEncoder) and not gpu and encoder.runs_on_onnx()
    workers = options.workers if options.workers is not None else default_workers(gpu, light_model=light)
    threads = options.threads
    if threads is None and not gpu and workers > 0:
        threads = max(1, (os.cpu_count() or 2) - workers)  # the cores the decoders leave free
    if threads is not None and isinstance(encoder, DualEncoder):
        encoder.set_threads(threads)  # ONNX Runtime takes them at session start, torch at load
    batch_size = options.batch_size or DEFAULT_BATCH_SIZE
    if options.batch_size is None and gpu and isinstance(encoder, DualEncoder):
        batch_size = encoder.batch_size = encoder.suggest_batch_size(DEFAULT_BATCH_SIZE)
    if not gpu:
        keep_large_blocks_in_heap()
    pool = DecoderPool(opts, plan.missing_hashes, workers=workers, decode_timeout=options.decode_timeout)
    with pool, _torch_threads(threads), _progress(len(plan.todo), options.progress) as bar:
        results = pool.decode(tasks)
        done = 0
        while True:
            with timer.stage("decode"):
                result = next(results, None)
            if result is None:
                break
            bar.update(1)
            done += 1
            if options.on_progress is not None:
                options.on_progress(done, len(plan.todo))
            item = plan.todo[result.item_no]
            op = _route(state, item, result)
            if op is not None:
                ops.append(op)
            else:
                assert isinstance(result, Decoded)
                pixels.append((item, result))
            if len(pixels) >= batch_size or len(ops) >= MAX_OPS_WITHOUT_EMBED:
                flush()
        flush()
    state.summary.times.decode_busy = pool.busy_seconds


def _process_on_ray(
    state: _RunState, encoder: Encoder, model: str, options: IndexOptions, timer: _Timer
) -> None:
    """Decode and embed on a Ray cluster; commit here, a transaction per batch (see ray_engine: on
    PostgreSQL the actors stage the new files' rows and each batch moves them in one statement)."""
    from indexer.core.storage.staging import StagedRowWriter, staging_table
    from indexer.ray_engine import EmbedSpec, embedded_results, ray_session

    plan = state.plan
    opts = DecodeOptions(
        cfg=encoder.preprocess_config, max_pixels=options.max_pixels, timeout=options.decode_timeout
    )
    tasks = [DecodeTask(i, item.file.path, item.old_hash) for i, item in enumerate(plan.todo)]
    batch_size = options.batch_size or DEFAULT_BATCH_SIZE
    spec = EmbedSpec(
        model=model,
        backend=options.backend,
        model_id=encoder.model_id,
        fingerprint=getattr(encoder, "fingerprint", None),
        batch_size=batch_size,
    )
    ops: list[WriteOp] = []
    rows = state.writer.rows
    files = [(i.file.root, i.file.file_type, i.existing_id is not None) for i in plan.todo]

    with (
        ray_session(options.ray),
        staging_table(rows.database, rows.run, rows.staging) as stage,
        _progress(len(plan.todo), options.progress) as bar,
    ):
        staged = None if stage is None else StagedRowWriter(rows.database, stage)
        if staged is not None:
            state.writer.rows = staged
        results = embedded_results(tasks, opts, plan.missing_hashes, spec, options.ray, stage, files)
        done = 0
        while True:
            with timer.stage("embed"):  # waiting for the cluster: decoding and embedding overlap there
                pair = next(results, None)
            if pair is None:
                break
            result, vector, visual, token = pair
            bar.update(1)
            done += 1
            if options.on_progress is not None:
                options.on_progress(done, len(state.plan.todo))
            state.summary.times.decode_busy += result.seconds  # spent decoding on the cluster
            item = plan.todo[result.item_no]
            op = _route(state, item, result)
            if op is None:
                assert isinstance(result, Decoded)
                op = Embedded(item, result, vector, visual)
                if token and staged is not None:  # a new file whose row the actor staged
                    staged.expect(item.file.path, result.item_no, token)
            ops.append(op)
            if len(ops) >= batch_size:
                _write(state, ops, timer)
                ops.clear()
        _write(state, ops, timer)


def _route(state: _RunState, item: WorkItem, result: DecodeResult) -> WriteOp | None:
    """The write for a failed file or already-indexed content; None (counted as new or updated)
    when the file's pixels must be embedded. Shared by the local and the Ray engine."""
    if isinstance(result, DecodeFailure):
        state.summary.failed += 1
        return Failed(item, result)
    if isinstance(result, KnownContent) or result.facts.content_hash in state.plan.by_hash:
        return _route_known(state, item, result)
    if item.existing_id is None:
        state.summary.indexed += 1
    else:
        state.summary.updated += 1
    return None


def _write(state: _RunState, ops: Sequence[WriteOp], timer: _Timer) -> None:
    """One transaction; remember what it changed in the index and which contents it indexed."""
    with timer.stage("write"):
        outcome = state.writer.write(ops)
    state.added.update(outcome.added_ids)
    state.removed.update(outcome.removed_ids)
    for h, row_id in outcome.new_hashes.items():
        state.plan.by_hash.setdefault(h, row_id)


def _on_gpu(encoder: Encoder) -> bool:
    """Whether inference runs on a GPU, without forcing the model to load (it loads while decoding starts)."""
    return isinstance(encoder, DualEncoder) and encoder.uses_gpu()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (two cores: one decodes while the other runs the model);
    nothing to do when no torch model is in use (ONNX Runtime got them at its session's start)."""
    torch = sys.modules.get("torch")
    if n is None or torch is None:
        yield
        return

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _route_known(state: _RunState, item: WorkItem, result: KnownContent | Decoded) -> WriteOp:
    """A file whose content is already indexed: keep (touch), take over (move) or copy a vector."""
    known = KnownContent(result.item_no, result.facts, result.seconds)
    content = result.facts.content_hash or ""
    if content == item.old_hash:
        state.summary.reused += 1
        return Touched(item, known)
    movable = state.missing_by_hash.get(content)
    if item.existing_id is None and movable:
        source = movable.pop()
        state.claimed.add(source)
        state.summary.moved += 1
        return Reused(item, known, source, move=True)
    state.summary.reused += 1
    return Reused(item, known, state.plan.by_hash[content], move=False)

"""Subcommands of ``dualens`` contributed by the indexer: index, check, errors, rebuild-index."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from indexer.core import options as opts
from indexer.core.errors import UsageError
from indexer.core.settings import ocr_enabled
from indexer.core.text import printable

if TYPE_CHECKING:
    from indexer.pipeline import IndexOptions, IndexSummary


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands. Each subparser sets ``func(args) -> int``."""
    from indexer.core.limits import DEFAULT_BATCH_SIZE, DEFAULT_DECODE_TIMEOUT, DEFAULT_MAX_PIXELS

    p = subparsers.add_parser(
        "index",
        parents=[common],
        help="index folders of photos (incremental: only new and changed files are read)",
        description="Index photos into the collection. Unchanged files are skipped without being opened; "
        "moved files keep their vectors; deleted files are removed. Safe to interrupt and re-run.",
    )
    p.add_argument(
        "dirs", nargs="*", metavar="DIR", help="folders to index (default: the collection's roots)"
    )
    p.add_argument(
        "--model", default=None, help="model directory, hub id or 'default' (default: the collection's)"
    )
    opts.add_count(
        p,
        "--batch-size",
        high=opts.MAX_BATCH,
        help=f"images per inference batch (default {DEFAULT_BATCH_SIZE}; on a GPU, from its free memory)",
    )
    opts.add_count(
        p,
        "--workers",
        low=0,
        high=opts.MAX_WORKERS,
        help="local engine: decoder and text-recognition processes (default: from the cores; 0: in-process); "
        "ray engine: embedding actors (default: one per GPU, else one)",
    )
    opts.add_engine(
        p,
        "local: this machine's processes; ray: decode and embed on a Ray cluster (docs/scale-out.md)",
        "Ray cluster to join (HOST:PORT, ray://HOST:PORT or auto); default: start Ray on this machine",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=opts.float_in(0, 64),
        default=0.0,
        metavar="G",
        help="GPUs per embedding actor of the ray engine (e.g. 1, or 0.5 for two per GPU; default 0: CPU)",
    )
    opts.add_count(p, "--threads", high=opts.MAX_THREADS, help="CPU threads for inference")
    opts.add_count(
        p,
        "--max-pixels",
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images above this many pixels (decompression bombs; default {DEFAULT_MAX_PIXELS})",
    )
    p.add_argument(
        "--decode-timeout",
        type=opts.float_in(0, 1e6, low_open=True),
        default=DEFAULT_DECODE_TIMEOUT,
        metavar="SECONDS",
        help=f"record a file as failed when decoding it takes longer (default {DEFAULT_DECODE_TIMEOUT:g})",
    )
    opts.add_backend(p)
    opts.add_precision(
        p,
        "fp32 or int8 towers (int8: quantised, faster on a CPU; docs/models.md); default: the "
        "collection's, fp32 for a new one; another than the collection's needs --reindex",
    )
    p.add_argument("--reindex", action="store_true", help="re-embed every photo (e.g. with a new --model)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--progress-lines",
        action="store_true",
        help="print 'progress DONE TOTAL' on stdout after each file (the web page's Add photos reads them)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="keep indexing: after each burst of changes under the folders, until Ctrl-C",
    )
    p.add_argument(
        "--debounce",
        type=opts.float_in(0, 3600),
        default=2.0,
        metavar="S",
        help="--watch: quiet seconds before a run (2)",
    )
    p.add_argument(
        "--rescan-every",
        type=opts.float_in(0, 1e7, low_open=True),
        default=600.0,
        metavar="S",
        help="--watch: a full rescan at least every S seconds, events or not (600)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="read the files that failed before again, even when they have not changed since",
    )
    p.add_argument(
        "--no-ocr",
        action="store_true",
        help="do not read the text in photos (it is read after embedding, and searched by `text:`); "
        "$DUALENS_OCR=off does the same",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="also remove the photos of folders that cannot be read or are empty (e.g. a disk not mounted); "
        "by default they are kept",
    )
    p.set_defaults(func=cmd_index, names_collection=True)

    p = subparsers.add_parser(
        "check", parents=[common], help="verify that the database and the vector index agree exactly"
    )
    p.set_defaults(func=cmd_check, names_collection=True)

    p = subparsers.add_parser("errors", parents=[common], help="list the files that could not be indexed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_errors, names_collection=True)

    p = subparsers.add_parser(
        "rebuild-index",
        parents=[common],
        help="rebuild the FAISS vector index from the database (and choose its type)",
        description="Rebuild the vector index from the database. --index and --memory-budget are "
        "remembered by the collection for later builds. auto: exact up to 50,000 photos, IVF-Flat "
        "while it fits the budget, IVF-PQ with exact re-ranking above (docs/scale-out.md).",
    )
    p.add_argument("--index", choices=("auto", "flat", "ivf", "ivfpq"), default=None, help="index type")
    p.add_argument(
        "--memory-budget",
        default=None,
        metavar="SIZE",
        help="RAM for the index, e.g. 8G (default: 1/4 of RAM)",
    )
    opts.add_engine(
        p,
        "where an IVF-PQ build adds its shards: this machine's processes, or Ray tasks",
        "Ray cluster to join (HOST:PORT or auto; the data directory on storage every node shares)",
    )
    p.set_defaults(func=cmd_rebuild_index, names_collection=True)


def cmd_index(args: argparse.Namespace) -> int:
    from indexer.pipeline import IndexOptions, run_index
    from indexer.ray_engine import RayOptions

    if not 0 < args.decode_timeout < 1e6:
        raise UsageError("--decode-timeout must be a positive number of seconds")
    if args.engine != "ray" and (args.ray_address or args.gpus_per_worker):
        raise UsageError("--ray-address and --gpus-per-worker need --engine ray")
    if not 0 <= args.gpus_per_worker <= 64:
        raise UsageError("--gpus-per-worker must be between 0 and 64")
    ray = args.engine == "ray"
    options = IndexOptions(
        model=args.model,
        batch_size=args.batch_size,
        workers=None if ray else args.workers,
        threads=args.threads,
        max_pixels=args.max_pixels,
        reindex=args.reindex,
        progress=not args.no_progress,
        on_progress=_print_progress if args.progress_lines else None,
        on_text_progress=_print_text_progress if args.progress_lines else None,
        prune=args.prune,
        retry_failed=args.retry_failed,
        ocr=not args.no_ocr and ocr_enabled(),
        decode_timeout=args.decode_timeout,
        backend=args.backend,
        precision=args.precision,
        engine=args.engine,
        ray=RayOptions(
            address=args.ray_address,
            workers=args.workers or None if ray else None,
            gpus_per_worker=args.gpus_per_worker,
        ),
    )
    if args.watch:
        return _watch(args, options)
    _report(run_index(args.settings.data_dir, args.dirs, options, db_url=args.settings.db_url))
    return 0


def _print_progress(done: int, total: int) -> None:
    print(f"progress {done} {total}", flush=True)


def _print_text_progress(done: int, total: int) -> None:
    print(f"text {done} {total}", flush=True)


def _report(summary: IndexSummary, *, quiet_if_unchanged: bool = False) -> None:
    failed = summary.failed - summary.known_failed  # read this run and failed
    changed = summary.embedded or summary.moved or summary.removed or failed or summary.reused
    if quiet_if_unchanged and not changed:
        return
    stamp = f"[{time.strftime('%H:%M:%S')}] " if quiet_if_unchanged else ""
    for line in summary.lines():
        print(stamp + line, flush=True)
    for line in summary.notes():
        print(f"dualens: note: {line}", file=sys.stderr)
    for line in summary.warnings():
        print(f"dualens: warning: {line}", file=sys.stderr)


def _watch(args: argparse.Namespace, options: IndexOptions) -> int:
    """Index now, then after each burst of changes; Ctrl-C or SIGTERM stops at once, a run in flight
    as plain ``index`` stops (its open batch rolled back, every committed one kept)."""
    from indexer.watch import WatchOptions, watch

    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(*_: object) -> None:
        if not stop.is_set():  # the first signal interrupts; more while it unwinds do not
            stop.set()
            raise KeyboardInterrupt

    first = [True]

    def report(summary: IndexSummary) -> None:
        _report(summary, quiet_if_unchanged=not first[0])
        if first[0]:
            print(f"watching {', '.join(summary.roots) or 'the collection'} (Ctrl-C to stop)", flush=True)
        first[0] = False

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        settings = WatchOptions(debounce_s=args.debounce, rescan_s=args.rescan_every)
        watch(args.settings.data_dir, args.dirs, options, settings, report, stop, db_url=args.settings.db_url)
    except KeyboardInterrupt:
        pass  # the stop asked for
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped watching", flush=True)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from indexer.check import check_collection
    from indexer.core.storage.collection import Collection

    with Collection.open(args.settings.data_dir, db_url=args.settings.db_url) as collection:
        report = check_collection(collection)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_errors(args: argparse.Namespace) -> int:
    from indexer.core.storage.collection import Collection

    with Collection.open(args.settings.data_dir, db_url=args.settings.db_url) as collection:
        rows = collection.rows.failed_files()
    if args.json:
        json.dump([{"path": r.path, "error": r.error} for r in rows], sys.stdout, indent=2)
        print()
        return 0
    for r in rows:
        print(f"{printable(r.path)}\t{printable(r.error or '')}")
    print(f"{len(rows)} file(s) could not be indexed", file=sys.stderr)
    return 0


def cmd_rebuild_index(args: argparse.Namespace) -> int:
    from indexer.core.storage.compressed import parse_size
    from indexer.core.storage.locks import exclusive_indexing
    from indexer.ray_engine import RayOptions, RayShardExecutor, preflight, ray_session

    if args.engine != "ray" and args.ray_address:
        raise UsageError("--ray-address needs --engine ray")
    if args.engine == "ray":
        preflight(RayOptions(address=args.ray_address))  # Ray missing, an address that does not answer

    with exclusive_indexing(args.settings.data_dir, db_url=args.settings.db_url) as collection:
        indexes = collection.indexes
        if args.index or args.memory_budget:
            budget = parse_size(args.memory_budget) if args.memory_budget else None
            indexes.choose(args.index or "auto", budget)
        for space in indexes.spaces_to_save():
            if args.engine == "ray":
                with ray_session(RayOptions(address=args.ray_address)) as ray:
                    index = indexes.rebuild(RayShardExecutor(ray), space=space)
            else:
                index = indexes.rebuild(space=space)
            what = f"{index.ntotal} vectors (generation {index.generation}), {index.describe().label}"
            print(f"rebuilt {space.path(collection.paths)}: {what}")
    return 0

"""Scale-out figures: the Ray engine against the local one, PostgreSQL against SQLite.

    python -m tests.bench.bench_scale      (`make bench-scale`)
        index the same 400 photos with the local engine and with the Ray engine (1 and 2 embedding
        actors, Ray started on this machine): images/s, and the Ray speed-ups against 1 actor
        bulk write of 100,000 synthetic photo rows with vectors through the indexer's batch writer
        (a transaction per 256 rows) into SQLite and into a PostgreSQL server: rows/s of the bulk
        path (COPY / executemany) against the row-at-a-time ORM path in the same run (MET/NOT MET:
        >= 10x on PostgreSQL, >= 3x on SQLite), then 1 and 2 concurrent writer processes on
        PostgreSQL (MET/NOT MET: 2 >= 1.7x one)

Not a test: it prints figures and ratios (the local engine and SQLite are the baselines). The photos
are imagenet-sample's first 400 when ../shared is there, else generated JPEGs. The default model.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from tests.bench.bench_index import IMAGENET

N_PHOTOS = int(os.environ.get("BENCH_PHOTOS", "400"))
N_ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
DIM = 384
WRITE_BATCH = 256


def _photos(tmp: Path) -> tuple[Path, str]:
    """N_PHOTOS photos in ``tmp``: linked from imagenet-sample, or generated."""
    folder = tmp / "photos"
    folder.mkdir()
    if IMAGENET.is_dir():
        for path in sorted(IMAGENET.glob("*.JPEG"))[:N_PHOTOS]:
            (folder / path.name).symlink_to(path)
        return folder, "imagenet-sample"
    from tests.helpers.images import pattern, save_jpeg

    for i in range(N_PHOTOS):
        save_jpeg(folder / f"p{i:04d}.jpg", pattern((500, 375), seed=i))
    return folder, "generated 500x375 JPEGs"


def engines(tmp: Path) -> None:
    from indexer.pipeline import IndexOptions, run_index
    from indexer.ray_engine import RayOptions

    folder, what = _photos(tmp)
    print(f"engines: {N_PHOTOS} photos ({what}), default model, {os.cpu_count()} cores")
    runs = [
        ("local engine", IndexOptions(progress=False)),
        ("ray, 1 actor", IndexOptions(progress=False, engine="ray", ray=RayOptions(workers=1))),
        ("ray, 2 actors", IndexOptions(progress=False, engine="ray", ray=RayOptions(workers=2))),
    ]
    rates: dict[str, float] = {}
    for name, options in runs:
        data = tmp / f"data-{len(rates)}"
        start = time.perf_counter()
        summary = run_index(data, [folder], options)
        seconds = time.perf_counter() - start
        rates[name] = summary.embedded / seconds
        startup = ", Ray start-up included" if options.engine == "ray" else ""
        took = f"{summary.embedded} embedded in {seconds:.1f} s{startup}"
        print(f"  {name:14s} {rates[name]:6.1f} images/s  ({took})")
    one, two = rates["ray, 1 actor"], rates["ray, 2 actors"]
    print(f"  ray 1 actor vs local engine: {one / rates['local engine']:.2f}x")
    print(f"  ray 2 actors vs 1 actor: {two / one:.2f}x (scaling efficiency {two / one / 2:.0%})")


def _ops(start: int, n: int, rng: np.random.Generator) -> list:
    from indexer.core.exif import PhotoMeta
    from indexer.decode import Decoded, FileFacts
    from indexer.plan import WorkItem
    from indexer.scan import ScannedFile
    from indexer.writer import Embedded

    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ops = []
    for k in range(n):
        i = start + k
        path = f"/photos/{i % 1000:03d}/IMG_{i:07d}.jpg"
        item = WorkItem(ScannedFile(path, "/photos", "jpeg", 2_500_000, 1_700_000_000_000_000_000 + i), None)
        facts = FileFacts(2_500_000, 1_700_000_000_000_000_000 + i, f"{i:032x}")
        meta = PhotoMeta(taken_at=datetime(2020, 1, 1 + i % 28), camera_make="Canon", camera_model="EOS")
        result = Decoded(k, facts, 4000, 3000, meta, np.zeros(0, np.float16), 0.0)
        ops.append(Embedded(item, result, vectors[k]))
    return ops


def bulk_write(data: Path, db_url: str | None, *, bulk: bool) -> float:
    """Rows/s of N_ROWS rows written by the indexer's RowWriter, WRITE_BATCH per transaction
    (``bulk``: COPY / executemany; False: the row-at-a-time ORM path, the baseline)."""
    from indexer.core.storage.collection import Collection
    from indexer.writer import BatchWriter

    rng = np.random.default_rng(0)
    batches = [_ops(s, min(WRITE_BATCH, N_ROWS - s), rng) for s in range(0, N_ROWS, WRITE_BATCH)]
    with Collection.open(data, create=True, db_url=db_url) as collection:
        writer = BatchWriter(collection, run=1)
        writer.rows.bulk = bulk
        start = time.perf_counter()
        for ops in batches:
            writer.write(ops)
        seconds = time.perf_counter() - start
        assert collection.info().n_indexed == N_ROWS
    return N_ROWS / seconds


def _verdict(name: str, after: float, before: float, target: float) -> None:
    ratio = after / before
    met = "MET" if ratio >= target else "NOT MET"
    print(f"  {name}: {after:8.0f} rows/s bulk vs {before:8.0f} row-at-a-time: {ratio:5.1f}x  "
          f"(target >= {target:g}x: {met})")  # fmt: skip


def databases(tmp: Path, *, sqlite_only: bool = False) -> None:
    from tests.helpers.postgres import PostgresServer

    print(f"bulk write: {N_ROWS} photo rows with {DIM}-d vectors, {WRITE_BATCH} rows a transaction")
    sqlite_before = bulk_write(tmp / "sqlite-orm", None, bulk=False)
    sqlite = bulk_write(tmp / "sqlite", None, bulk=True)
    _verdict("SQLite (WAL, synchronous=NORMAL), executemany", sqlite, sqlite_before, 3)
    if sqlite_only:
        return
    try:
        server = PostgresServer().start()
    except (FileNotFoundError, KeyError, RuntimeError) as exc:
        print(f"  PostgreSQL: not measured ({exc})")
        return
    try:
        server.execute("ALTER SYSTEM SET fsync = on")
        server.execute("ALTER SYSTEM SET synchronous_commit = on")
        server.execute("SELECT pg_reload_conf()")
        pg_before = bulk_write(tmp / "pg-orm", server.url(server.new_database()), bulk=False)
        pg = bulk_write(tmp / "pg", server.url(server.new_database()), bulk=True)
        _verdict("PostgreSQL 15 (unix socket, fsync on), COPY", pg, pg_before, 10)
        writers(tmp, server)
    finally:
        server.stop()


def _write_share(job: tuple[Path, str, int, int]) -> tuple[float, float]:
    """One writer process: rows ``start`` .. ``start + n`` in batches; (first, last) wall-clock time."""
    data, url, start, n = job
    from indexer.core.storage.collection import Collection
    from indexer.writer import BatchWriter

    rng = np.random.default_rng(start)
    batches = [_ops(start + s, min(WRITE_BATCH, n - s), rng) for s in range(0, n, WRITE_BATCH)]
    with Collection.open(data, create=True, db_url=url) as collection:
        writer = BatchWriter(collection, run=1)
        began = time.time()
        for ops in batches:
            writer.write(ops)
        return began, time.time()


def _writers_rate(tmp: Path, url: str, count: int) -> float:
    import multiprocessing

    data = tmp / f"pg-writers-{count}"
    from indexer.core.storage.collection import Collection

    with Collection.open(data, create=True, db_url=url):
        pass  # created once, before the writers race
    _write_share((data, url, 10 * N_ROWS, 1))  # records the dimension once (as a run's start would)
    share = N_ROWS // count
    jobs = [(data, url, k * share, share) for k in range(count)]
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        spans = pool.map(_write_share, jobs)
    return share * count / (max(e for _, e in spans) - min(b for b, _ in spans))


def writers(tmp: Path, server: object) -> None:
    """Concurrent writer processes (as Ray workers writing their own batches would be) into one
    PostgreSQL database: does ingest scale with writers?"""
    one = _writers_rate(tmp, server.url(server.new_database()), 1)  # type: ignore[attr-defined]
    two = _writers_rate(tmp, server.url(server.new_database()), 2)  # type: ignore[attr-defined]
    met = "MET" if two / one >= 1.7 else "NOT MET"
    print(f"  PostgreSQL, 1 writer process  {one:8.0f} rows/s")
    print(f"  PostgreSQL, 2 writer processes {two:8.0f} rows/s: {two / one:.2f}x one (target >= 1.7x: {met})")


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "all"
    tmp = Path(tempfile.mkdtemp(prefix="dualens-bench-scale-"))
    try:
        when = f"{datetime.now():%Y-%m-%d %H:%M}"
        print(f"bench-scale {when}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        if what in ("all", "engines"):
            engines(tmp)
        if what in ("all", "databases", "sqlite"):
            databases(tmp, sqlite_only=what == "sqlite")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

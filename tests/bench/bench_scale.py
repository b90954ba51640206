"""Scale-out figures: the Ray engine against the local one, PostgreSQL against SQLite.

    python -m tests.bench.bench_scale      (`make bench-scale`)
        index the same 400 photos with the local engine and with the Ray engine (1 and 2 embedding
        actors, Ray started on this machine): images/s, and the Ray speed-ups against 1 actor
        bulk write of 100,000 synthetic photo rows with vectors through the indexer's batch writer
        (a transaction per 256 rows) into SQLite and into a PostgreSQL server: rows/s of the bulk
        path (COPY / executemany) against the row-at-a-time ORM path in the same run (MET/NOT MET:
        >= 10x on PostgreSQL, >= 3x on SQLite), then 1 and 2 concurrent writer processes on
        PostgreSQL (MET/NOT MET: 2 >= 1.7x one), then the Ray engine's write path with 1 and 2 writer
        actors on PostgreSQL: the actors COPY their rows into the run's staging table and the driver
        commits each batch with one INSERT … SELECT, against the driver-funnel path (the actors
        send their vectors back and the driver COPYs them) in the same run (MET/NOT MET: 2 writers
        >= 1.7x one); synthetic rows, no model, so the figure is the ingest path's own

Not a test: it prints figures and ratios (the local engine and SQLite are the baselines). The photos
are imagenet-sample's first 400 when ../shared is there, else generated JPEGs. The default model.
"""

from __future__ import annotations

import logging
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
WRITER_WAIT_S = float(os.environ.get("BENCH_WRITER_WAIT_MS", "0.5")) / 1000  # the Ray writers' model stand-in


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
        ray_writers(server)
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


def _row(i: int, vector: np.ndarray) -> object:
    """Photo row ``i`` of the Ray write benchmark as the driver's writer gets it (no vector: staged)."""
    from indexer.core.storage.batches import FileState, NewVectors, PhotoFacts

    path = f"/photos/{i % 1000:03d}/IMG_{i:07d}.jpg"
    file = FileState(path, "/photos", "jpeg", 2_500_000, 1_700_000_000_000_000_000 + i, f"{i:064x}", True)
    facts = PhotoFacts(4000, 3000, datetime(2020, 1, 1 + i % 28), "Canon", "EOS")
    return NewVectors(None, file, facts, vector)


class _SyntheticWriter:
    """A Ray actor standing for an embedding actor: synthetic unit vectors for its batch, then either
    staged by itself (``stage``) or sent back to the driver (the funnel). ``wait_s``: a wait a row
    first, standing for a model on a device (time the host's CPUs are free)."""

    def __init__(self, stage: object | None, wait_s: float) -> None:
        from indexer.core.storage.staging import StageSink

        self.sink = None if stage is None else StageSink(stage)  # type: ignore[arg-type]
        self.wait_s = wait_s

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = batch["id"]
        time.sleep(self.wait_s * len(ids))
        vectors = np.random.default_rng(int(ids[0])).standard_normal((len(ids), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        if self.sink is None:
            return {"id": ids, "vector": vectors}
        token = self.sink.write([(int(i), _row(int(i), v)) for i, v in zip(ids, vectors, strict=True)])
        return {"id": ids, "token": np.array([token] * len(ids), dtype=object)}


def _ray_write_rate(url: str, actors: int, staged: bool, wait_s: float) -> tuple[float, float]:
    """Rows/s of N_ROWS synthetic rows through the Ray engine's write path, WRITE_BATCH a transaction:
    from the first batch the driver commits to the last (Ray's start-up and the actors' left out); and
    rows/s of the driver's commits alone (what one driver could take with writers enough)."""
    import ray.data

    from indexer.core.storage.batches import RowWriter
    from indexer.core.storage.collection import Collection
    from indexer.core.storage.staging import StagedRowWriter, staging_table

    data = Path(tempfile.mkdtemp(prefix="dualens-bench-ray-"))
    empty = np.zeros(0, np.float32)
    with Collection.open(data, create=True, db_url=url) as c, staging_table(c.database, 1, False) as stage:
        assert stage is not None
        writer = StagedRowWriter(c.database, stage) if staged else RowWriter(c.database, 1)
        dataset = ray.data.range(N_ROWS, override_num_blocks=max(1, N_ROWS // WRITE_BATCH)).map_batches(
            _SyntheticWriter,
            fn_constructor_kwargs={"stage": stage if staged else None, "wait_s": wait_s},
            batch_size=WRITE_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        began, done, committing = 0.0, 0, 0.0
        for batch in dataset.iter_batches(batch_size=WRITE_BATCH, batch_format="numpy"):
            ids = [int(i) for i in batch["id"]]
            commit = time.perf_counter()
            if staged:
                rows = [_row(i, empty) for i in ids]
                for row, i, token in zip(rows, ids, batch["token"], strict=True):
                    writer.expect(row.file.path, i, str(token))  # type: ignore[attr-defined]
                writer.write(rows)  # type: ignore[arg-type]
            else:
                writer.write([_row(i, v) for i, v in zip(ids, batch["vector"], strict=True)])  # type: ignore[misc]
            if not began:
                began = time.perf_counter()
            else:
                done += len(ids)
                committing += time.perf_counter() - commit
        seconds = time.perf_counter() - began
        assert c.info().n_indexed == N_ROWS
    shutil.rmtree(data, ignore_errors=True)
    return done / seconds, done / committing


def ray_writers_only() -> None:
    """``python -m tests.bench.bench_scale ray-writers``: only the Ray write path's rows."""
    from tests.helpers.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        server.execute("ALTER SYSTEM SET fsync = on")
        server.execute("ALTER SYSTEM SET synchronous_commit = on")
        server.execute("SELECT pg_reload_conf()")
        ray_writers(server)
    finally:
        server.stop()


def ray_writers(server: object) -> None:
    """The Ray engine's ingest on PostgreSQL: 1 and 2 writer actors, staged against the driver funnel."""
    import ray.data  # ray.data.DataContext below

    from indexer.ray_engine import RayOptions, ray_session

    new_url = lambda: server.url(server.new_database())  # type: ignore[attr-defined]  # noqa: E731
    cores = os.cpu_count()
    print(f"ray write path: {N_ROWS} synthetic rows, {WRITE_BATCH} a transaction, PostgreSQL, {cores} cores")
    with ray_session(RayOptions(workers=2)) as ray:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ray.data.DataContext.get_current().print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        keys = [(k, staged) for staged in (False, True) for k in (1, 2)]
        found = {w: {key: _ray_write_rate(new_url(), *key, w) for key in keys} for w in (0.0, WRITER_WAIT_S)}
    for wait_s, runs in found.items():  # printed here: a Ray session sends stdout to the debug log
        what = f"writers waiting {wait_s * 1000:g} ms a row (a model on a device)" if wait_s else "no model"
        print(f" {what}:")
        _print_ray_rates(runs)


def _print_ray_rates(runs: dict[tuple[int, bool], tuple[float, float]]) -> None:
    rates = {key: rate for key, (rate, _) in runs.items()}
    for staged in (False, True):
        name = "workers stage, driver INSERT … SELECT" if staged else "driver funnel (baseline)            "
        one, two = rates[(1, staged)], rates[(2, staged)]
        alone = max(runs[(1, staged)][1], runs[(2, staged)][1])
        print(f"  {name}: 1 writer {one:6.0f} rows/s, 2 writers {two:6.0f} rows/s: {two / one:.2f}x; "
              f"the driver's commits alone {alone:6.0f} rows/s")  # fmt: skip
    staged_two, funnel_two = rates[(2, True)], rates[(2, False)]
    ratio = rates[(2, True)] / rates[(1, True)]
    met = "MET" if ratio >= 1.7 else "NOT MET"
    print(f"  ray, 2 writers vs 1, staged: {ratio:.2f}x (target >= 1.7x: {met}); "
          f"staged vs funnel at 2 writers: {staged_two / funnel_two:.2f}x")  # fmt: skip


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
        if what == "ray-writers":
            ray_writers_only()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

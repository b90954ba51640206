"""Scale-out figures: the Ray engine against the local one, PostgreSQL against SQLite.

    python -m tests.bench.bench_scale      (`make bench-scale`)
        index the same 400 photos with the local engine and with the Ray engine (1 and 2 embedding
        actors, Ray started on this machine): images/s, and the Ray speed-ups against 1 actor
        bulk write of 100,000 synthetic photo rows with vectors through the indexer's batch writer
        (a transaction per 256 rows) into SQLite and into a PostgreSQL server: rows/s

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


def bulk_write(data: Path, db_url: str | None) -> float:
    """Rows/s of N_ROWS rows written by the indexer's BatchWriter, WRITE_BATCH per transaction."""
    from indexer.core.storage.collection import Collection
    from indexer.writer import BatchWriter

    rng = np.random.default_rng(0)
    batches = [_ops(s, min(WRITE_BATCH, N_ROWS - s), rng) for s in range(0, N_ROWS, WRITE_BATCH)]
    with Collection.open(data, create=True, db_url=db_url) as collection:
        writer = BatchWriter(collection, run=1)
        start = time.perf_counter()
        for ops in batches:
            writer.write(ops)
        seconds = time.perf_counter() - start
        assert collection.info().n_indexed == N_ROWS
    return N_ROWS / seconds


def databases(tmp: Path) -> None:
    from tests.helpers.postgres import PostgresServer

    print(f"bulk write: {N_ROWS} photo rows with {DIM}-d vectors, {WRITE_BATCH} rows a transaction")
    sqlite = bulk_write(tmp / "sqlite", None)
    print(f"  SQLite (WAL, synchronous=NORMAL)        {sqlite:8.0f} rows/s")
    try:
        server = PostgresServer().start()
    except (FileNotFoundError, KeyError, RuntimeError) as exc:
        print(f"  PostgreSQL: not measured ({exc})")
        return
    try:
        server.execute("ALTER SYSTEM SET fsync = on")
        server.execute("ALTER SYSTEM SET synchronous_commit = on")
        server.execute("SELECT pg_reload_conf()")
        name = server.new_database()
        pg = bulk_write(tmp / "pg", server.url(name))
    finally:
        server.stop()
    print(f"  PostgreSQL 15 (unix socket, fsync on)   {pg:8.0f} rows/s  ({pg / sqlite:.2f}x SQLite)")


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "all"
    tmp = Path(tempfile.mkdtemp(prefix="dualens-bench-scale-"))
    try:
        when = f"{datetime.now():%Y-%m-%d %H:%M}"
        print(f"bench-scale {when}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        if what in ("all", "engines"):
            engines(tmp)
        if what in ("all", "databases"):
            databases(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

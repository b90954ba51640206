"""Search at scale: IVF-PQ (merged on disk, memory-mapped, exact re-ranking) against flat and
IVF-Flat on the same seeded *clustered* synthetic vectors; then the HTTP API against in-process.

    python -m tests.bench.bench_search_scale [N]     (`make bench-search-scale N=...`, default 1M)
    python -m tests.bench.bench_search_scale --reuse FOLDER   (an index left by an interrupted run:
                                                     calibrate it again and measure, no rebuild)
    python -m tests.bench.bench_search_scale --http   (the HTTP part alone)

Per index: build time, index bytes, time to open, RSS of a fresh process after opening it, p50/p99
of a query (the default model's warm text encoding + the index search + re-ranking), recall@10
against exact search. The float vectors live in a memory-mapped file (N x 384 x 4 bytes: 1.5 GB at
1M, 15 GB at 10M), which also serves the re-ranking as the database does in a collection.
Not a test: it prints figures and ratios.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DIM = 384
N_QUERIES = 200
CHUNK = 250_000


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _vectors(tmp: Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from tests.helpers.synthetic_vectors import Mixture

    mixture = Mixture.make(dim=DIM, n_clusters=1000, seed=0)
    x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, CHUNK):
        x[start : start + CHUNK] = mixture.sample(min(CHUNK, n - start), seed=1 + start // CHUNK)
    x.flush()
    ids = np.arange(n, dtype=np.int64)
    return ids, np.load(tmp / "x.npy", mmap_mode="r"), mixture.queries(N_QUERIES, seed=99)


def _truth(x: np.ndarray, queries: np.ndarray) -> np.ndarray:
    from indexer.core.storage.vector_index import exact_topk_positions

    return exact_topk_positions(x, queries, 10, block=CHUNK)


def _latencies(search, queries: np.ndarray, encode) -> tuple[float, float, np.ndarray]:  # type: ignore[no-untyped-def]
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        encode()
        found.append(search(q))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), float(np.percentile(times, 99)), np.array(found)


OPEN_SCRIPT = """
import sys, time, json
t = time.perf_counter()
from indexer.core.storage.vector_index import VectorIndex
import_s = time.perf_counter() - t
t = time.perf_counter()
index = VectorIndex.load(__import__('pathlib').Path(sys.argv[1]))
opened = time.perf_counter() - t
with open('/proc/self/status') as fh:
    rss = [int(l.split()[1]) / 1024 for l in fh if l.startswith('VmRSS:')][0]
print(json.dumps({"open_s": opened, "rss_mb": rss, "ntotal": index.ntotal}))
"""


def _open_in_fresh_process(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", OPEN_SCRIPT, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def indexes(n: int, tmp: Path) -> None:
    from indexer.core.models import DualEncoder
    from indexer.core.storage.compressed import build_compressed, plan_index
    from indexer.core.storage.vector_index import IndexKind, VectorIndex, recall_at_k

    ids, x, queries = _vectors(tmp, n)
    print(f"vectors: {n:,} x {DIM} clustered (1000 clusters), {n * DIM * 4 / 2**30:.2f} GiB of float32")
    truth = ids[_truth(x, queries)]
    encoder = DualEncoder("default")
    encoder.embed_texts(["warm up"])

    def encode() -> None:
        encoder.embed_texts(["a photo of a dog on a beach at sunset"])

    def source(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wanted = np.sort(wanted)
        return wanted, np.asarray(x[wanted])

    free_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**30
    plan = plan_index(n, DIM, "ivfpq")
    plan = type(plan)("ivfpq", plan.nlist, plan.pq_bytes, on_disk=True)
    candidates = [("IVF-PQ, on disk", plan)]
    if n * DIM * 4 * 2.5 / 2**30 < free_gib:
        candidates = [("flat (exact)", IndexKind.FLAT), ("IVF-Flat", IndexKind.IVF), *candidates]
    results = {}
    for name, kind in candidates:
        start = time.perf_counter()
        if isinstance(kind, IndexKind):
            index = VectorIndex.build(ids, np.asarray(x), DIM, 1, kind=kind)
        else:
            index = build_compressed(ids, x, kind, 1, directory=tmp)
        build_s = time.perf_counter() - start
        path = tmp / f"{name.split()[0].lower().strip(',')}.faiss"
        index.save(path)
        file_bytes = path.stat().st_size + sum(p.stat().st_size for p in tmp.glob(f"{path.stem}.*.ivfdata"))
        if hasattr(index, "ivfdata") and index.ivfdata is not None:
            file_bytes = path.stat().st_size + index.ivfdata.stat().st_size
        opened = _open_in_fresh_process(path)
        loaded = VectorIndex.load(path)
        if hasattr(loaded, "rerank_source"):
            loaded.rerank_source = source
        p50, p99, found = _latencies(
            lambda q, ix=loaded: ix.search(q.reshape(1, -1), 10).ids[0], queries, encode
        )
        recall = recall_at_k(found, truth, 10)
        results[name] = p50
        print(
            f"  {name:16s} build {build_s:7.1f} s  index {file_bytes / 2**20:8.1f} MiB "
            f"({file_bytes / (n * DIM * 4):6.1%} of the floats)  open {opened['open_s'] * 1000:7.1f} ms  "
            f"RSS after open {opened['rss_mb']:7.0f} MiB  query p50 {p50:6.2f} ms p99 {p99:6.2f} ms  "
            f"recall@10 {recall:.3f}  ({loaded.describe().label})"
        )
        del index, loaded
    if "flat (exact)" in results:
        pq = results["IVF-PQ, on disk"]
        print(f"  IVF-PQ query p50 vs flat: {results['flat (exact)'] / pq:.1f}x faster; vs IVF-Flat: "
              f"{results['IVF-Flat'] / pq:.1f}x")  # fmt: skip


def http(tmp: Path, n_photos: int = 20_000, rounds: int = 300) -> None:
    """p50 of `GET /search` against the same search in-process, and queries/s with 16 clients.

    The two are measured interleaved (one in-process call, then one request, ``rounds`` times), so
    a noisy machine slows both alike; the overhead is the median of the paired differences.
    """
    import httpx

    from indexer.core.models import DualEncoder
    from search import Searcher
    from tests.helpers.search_collection import FakePhoto, make_collection

    rng = np.random.default_rng(3)
    model_id = DualEncoder("default").model_id
    photos = [FakePhoto(f"d{i % 50}/{i}.jpg", rng.standard_normal(DIM)) for i in range(n_photos)]
    data = tmp / "api-data"
    make_collection(data, tmp / "api-photos", photos, model_id=model_id)
    query = "a photo of a dog on a beach at sunset"
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--data", str(data), "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with Searcher.open(data) as searcher, httpx.Client(base_url=url, timeout=30) as client:
            for i in range(20):  # warm: both cache the ten query vectors
                searcher.search(f"{query} {i % 10}", k=20)
                client.get("/search", params={"q": f"{query} {i % 10}", "k": 20})
            local, remote = [], []
            for i in range(rounds):
                text = f"{query} {i % 10}"
                start = time.perf_counter()
                searcher.search(text, k=20)
                middle = time.perf_counter()
                client.get("/search", params={"q": text, "k": 20}).raise_for_status()
                local.append((middle - start) * 1000)
                remote.append((time.perf_counter() - middle) * 1000)
        overhead = statistics.median(r - loc for r, loc in zip(remote, local, strict=True))
        done, stop = [0], time.perf_counter() + 10

        def client_loop() -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                while time.perf_counter() < stop:
                    c.get("/search", params={"q": query, "k": 20}).raise_for_status()
                    done[0] += 1

        threads = [threading.Thread(target=client_loop) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"HTTP API ({n_photos:,} photos, default model, 2 server workers, {rounds} interleaved pairs):")
    local_p50, remote_p50 = statistics.median(local), statistics.median(remote)
    print(f"  in-process Searcher.search p50 {local_p50:.2f} ms; GET /search p50 {remote_p50:.2f} ms; "
          f"overhead {overhead:.2f} ms (median of paired differences)")  # fmt: skip
    print(f"  16 concurrent clients: {done[0] / 10:.1f} queries/s")


def recalibrated(folder: Path) -> None:
    """``--reuse FOLDER``: the IVF-PQ index an earlier run left in FOLDER (its x.npy and
    ivf-pq.faiss), calibrated again with today's code (no rebuild), then measured as in a full run."""
    from indexer.core.storage.compressed import chunked
    from indexer.core.storage.vector_index import VectorIndex, recall_at_k
    from tests.helpers.synthetic_vectors import Mixture

    x = np.load(folder / "x.npy", mmap_mode="r")
    n = len(x)
    ids = np.arange(n, dtype=np.int64)
    queries = Mixture.make(dim=DIM, n_clusters=1000, seed=0).queries(N_QUERIES, seed=99)
    print(f"vectors: {n:,} x {DIM} clustered (1000 clusters), reused from {folder}")
    truth = ids[_truth(x, queries)]
    index = VectorIndex.load(folder / "ivf-pq.faiss")

    def source(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wanted = np.sort(wanted)
        return wanted, np.asarray(x[wanted])

    index.rerank_source = source  # type: ignore[attr-defined]
    start = time.perf_counter()
    index.recalibrate(lambda: chunked(ids, x, CHUNK), n)  # type: ignore[attr-defined]
    print(f"  recalibrated in {time.perf_counter() - start:.1f} s: {index.describe().label}")
    index.save(folder / "ivf-pq.faiss")
    opened = _open_in_fresh_process(folder / "ivf-pq.faiss")
    encoder = _warm_encoder()
    p50, p99, found = _latencies(lambda q: index.search(q.reshape(1, -1), 10).ids[0], queries, encoder)
    print(
        f"  IVF-PQ, on disk  open {opened['open_s'] * 1000:.1f} ms  "
        f"RSS after open {opened['rss_mb']:.0f} MiB  query p50 {p50:.2f} ms p99 {p99:.2f} ms  "
        f"recall@10 {recall_at_k(found, truth, 10):.3f}"
    )


def _warm_encoder():  # type: ignore[no-untyped-def]
    from indexer.core.models import DualEncoder

    encoder = DualEncoder("default")
    encoder.embed_texts(["warm up"])
    return lambda: encoder.embed_texts(["a photo of a dog on a beach at sunset"])


def main(argv: list[str]) -> None:
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"bench-search-scale {when}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    if argv[:1] == ["--reuse"]:
        folder = Path(argv[1])
        recalibrated(folder)
        http(folder)
        return
    if argv[:1] == ["--http"]:  # only the HTTP service against the in-process call
        with tempfile.TemporaryDirectory(prefix="dualens-bench-http-") as folder:
            http(Path(folder))
        return
    n = int(float(argv[0])) if argv else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="dualens-bench-scale-", dir=os.environ.get("BENCH_TMP")))
    try:
        indexes(n, tmp)
        http(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Search benchmark (``make bench-search``): full text-query latency and recall at 10k, 100k and 1M.

For each size, in one run:

1. seeded synthetic L2-normalised vectors at dim 384 (the default model's), with cluster
   structure like real embeddings (tests/helpers/synthetic_vectors.py: a mixture of 1000
   gaussians around centres sharing a common direction);
2. a real collection database (the dualens schema, through SQLAlchemy) holding one synthetic
   photo row per vector, and the FAISS index built from it by ``Collection.rebuild_index`` (exact
   up to 50k vectors, IVF above: the same code path as ``dualens rebuild-index``);
3. dualens: ``Searcher.search(text, k=20)`` end to end = encode the text with the real default
   model (a seeded stand-in encoder when it is not built; the output says which) + FAISS search +
   SQLite metadata of the top 20; p50 and p99 over many queries;
4. recall@10 of the index against exact search (NumPy brute force), on 200 queries drawn from the
   mixture, and on the embeddings of the benchmark's text queries;
5. the naive baseline as in rclip: per query, load every vector from SQLite, brute-force with
   NumPy, fetch the top 20's metadata (same text encoder).

Prints every figure and the ratios. Run: ``python -m tests.bench.bench_search [--sizes 10000,100000]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from indexer.core.storage.collection import Collection, InfoKey, set_info, utcnow
from indexer.core.storage.schema import Photo, PhotoStatus, Root
from search import Searcher
from search.threads import query_threads
from tests.helpers.synthetic_vectors import Mixture, exact_topk

DIM = 384
TOP = 20
QUERIES = [
    "a dog running on the beach",
    "sunset over the mountains",
    "a red sports car",
    "two children playing football",
    "a cup of coffee on a wooden table",
    "snow covered trees",
    "a cat sleeping on a sofa",
    "city street at night",
    "a plate of pasta",
    "a man riding a bicycle",
    "birthday cake with candles",
    "a boat on a lake",
    "people dancing at a wedding",
    "a bird sitting on a branch",
    "an old church",
    "a photo of a goldfish",
]


class StandInEncoder:
    """Used when the default model is not built: seeded query vectors from the same mixture."""

    model_id = "bench-stand-in"
    dim = DIM
    logit_scale = math.log(100.0)
    logit_bias = None
    is_sigmoid = False

    def __init__(self, mixture: Mixture) -> None:
        self.mixture = mixture

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.mixture.queries(1, seed=zlib.crc32(t.encode()))[0] for t in texts])


def load_world():  # -> (Mixture, DualEncoder | StandInEncoder, note)
    """The real default model with clusters around its class-prompt embeddings, else a stand-in."""
    try:
        from indexer.core.models import load_encoder
        from indexer.core.models.imagenet import imagenet_classes

        encoder = load_encoder("default")
        if encoder.dim != DIM:
            raise ValueError(f"default model dim {encoder.dim} != {DIM}")
        prompts = [f"a photo of a {c.name}." for c in imagenet_classes()]
        mixture = Mixture.from_centers(encoder.embed_texts(prompts), seed=0)
        note = (
            f"real default model ({encoder.model_id}); data: 1000 gaussian clusters around its "
            "ImageNet class-prompt embeddings (tests/helpers/synthetic_vectors.py)"
        )
        return mixture, encoder, note
    except Exception as exc:  # the default model is built by `make model`
        mixture = Mixture.make(dim=DIM, seed=0)
        note = (
            f"STAND-IN encoder (default model unavailable: {exc}), encode time ~0; data: seeded mixture "
            "of 1000 gaussians at dim 384 (tests/helpers/synthetic_vectors.py)"
        )
        return mixture, StandInEncoder(mixture), note


def populate(data: Path, vectors: np.ndarray, model_id: str, chunk: int = 20_000) -> Collection:
    """A collection DB with one synthetic photo row (metadata + vector blob) per vector."""
    collection = Collection.open(data, create=True)
    root = "/bench/photos"
    now = utcnow()
    with collection.engine.begin() as conn:
        conn.execute(insert(Root.__table__), [{"path": root, "added_at": now}])
        for start in range(0, len(vectors), chunk):
            rows = [
                {
                    "id": i + 1,
                    "path": f"{root}/{i // 1000:04d}/IMG_{i:07d}.jpg",
                    "root": root,
                    "file_type": "jpg",
                    "size": 3_000_000 + i,
                    "mtime_ns": 1_600_000_000_000_000_000 + i * 1_000_000_000,
                    "content_hash": f"{i:064x}",
                    "width": 4032,
                    "height": 3024,
                    "taken_at": datetime(2020, 1 + i % 12, 1 + i % 28, 12, 0),
                    "camera_make": "Bench",
                    "camera_model": "Synthetic 1",
                    "status": PhotoStatus.INDEXED,
                    "indexed_at": now,
                    "vector": vectors[i].tobytes(),
                    "seen_run": 1,
                }
                for i in range(start, min(start + chunk, len(vectors)))
            ]
            conn.execute(insert(Photo.__table__), rows)
    with collection.session() as s, s.begin():
        set_info(s, InfoKey.MODEL_ID, model_id)
        set_info(s, InfoKey.DIM, DIM)
        set_info(s, InfoKey.GENERATION, 1)
    return collection


def naive_query(collection: Collection, encoder, text: str) -> list[tuple[int, str]]:
    """rclip-style: load every vector from SQLite, brute-force with NumPy, fetch the top's metadata."""
    with query_threads():  # the same single-threaded encoding as dualens: compare the search itself
        q = encoder.embed_texts([text])[0]
    with collection.engine.connect() as conn:
        rows = conn.execute(select(Photo.id, Photo.vector).where(Photo.status == PhotoStatus.INDEXED)).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        scores = matrix @ q
        top = np.argpartition(-scores, TOP)[:TOP]
        top = top[np.argsort(-scores[top])]
        wanted = [int(i) for i in ids[top]]
        meta = dict(conn.execute(select(Photo.id, Photo.path).where(Photo.id.in_(wanted))).all())
    return [(i, meta[i]) for i in wanted]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))


@dataclass
class Row:
    n: int
    kind: str
    build_s: float
    memory_mb: float
    p50: float
    p99: float
    encode_p50: float
    faiss_p50: float
    recall_mix: float
    recall_text: float
    naive_p50: float | None
    naive_n: int


def bench_size(n: int, mixture: Mixture, encoder, model_id: str, args: argparse.Namespace) -> Row:
    t0 = time.perf_counter()
    vectors = mixture.sample(n, seed=1)
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix=f"bench-search-{n}-", dir=args.tmp) as tmp:
        t = time.perf_counter()
        collection = populate(Path(tmp), vectors, model_id)
        db_s = time.perf_counter() - t
        t = time.perf_counter()
        collection.rebuild_index()  # read vectors from SQLite, build (flat or IVF), save atomically
        build_s = time.perf_counter() - t
        collection.close()
        db_mb = (Path(tmp) / "dualens.sqlite").stat().st_size / 2**20
        print(f"  n={n:,}: vectors {gen_s:.1f}s, database {db_s:.1f}s ({db_mb:.0f} MiB), ", end="")
        print(f"index build (read from SQLite + build + save) {build_s:.1f}s")

        searcher = Searcher.open(tmp, encoder=encoder)  # type: ignore[arg-type]
        index = searcher.index
        desc = index.describe()
        print(f"  index: {desc.label}, memory {desc.memory_bytes / 2**20:.0f} MiB")

        texts = [
            QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(args.queries)
        ]
        for i in range(5):  # warm up: model, first SQLite pages (distinct texts: no cached embedding)
            searcher.search(f"warm-up query {i}", k=TOP)
        full = []
        for text in texts:
            t = time.perf_counter()
            hits = searcher.search(text, k=TOP)
            full.append((time.perf_counter() - t) * 1000)
            assert len(hits) == TOP
        text_vecs = encoder.embed_texts(texts)
        faiss_ms = []
        with query_threads():
            encode = timed(lambda: encoder.embed_texts([texts[0]]), 30)
            for v in text_vecs:
                t = time.perf_counter()
                index.search(v.reshape(1, -1), 100)
                faiss_ms.append((time.perf_counter() - t) * 1000)

        ids = np.arange(1, n + 1, dtype=np.int64)
        mix_q = mixture.queries(200, seed=2)
        truth_mix, _ = exact_topk(vectors, ids, mix_q, 10)
        truth_text, _ = exact_topk(vectors, ids, text_vecs.astype(np.float32), 10)
        rec_mix = recall(index.search(mix_q, 10).ids, truth_mix)
        rec_text = recall(index.search(text_vecs, 10).ids, truth_text)
        searcher.close()
        del vectors

        naive_p50, naive_n = None, 0
        if n <= args.naive_max:
            naive_n = max(3, min(20, 2_000_000 // n))
            collection = Collection.open(tmp)
            naive = timed(lambda: naive_query(collection, encoder, texts[0]), naive_n)
            collection.close()
            naive_p50 = statistics.median(naive)
    return Row(
        n,
        desc.kind.value,
        build_s,
        desc.memory_bytes / 2**20,
        pct(full, 50),
        pct(full, 99),
        pct(encode, 50),
        pct(faiss_ms, 50),
        rec_mix,
        rec_text,
        naive_p50,
        naive_n,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated collection sizes")
    parser.add_argument("--queries", type=int, default=200, help="timed text queries per size")
    parser.add_argument(
        "--naive-max", type=int, default=1_000_000, help="largest size for the naive baseline"
    )
    parser.add_argument("--tmp", default=None, help="where the temporary collections go")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    mixture, encoder, encoder_note = load_world()
    model_id = encoder.model_id
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"bench-search: {os.cpu_count()} cores, load average {load:.1f} at start")
    print(f"text encoder: {encoder_note}")
    rows = []
    for n in sizes:
        rows.append(bench_size(n, mixture, encoder, model_id, args))

    try:
        load_end = os.getloadavg()[0]
    except OSError:
        load_end = float("nan")
    print(f"load average at the end: {load_end:.1f} (other engineers share the 2 cores)")
    print()
    head = (
        f"{'n':>9} {'index':>5} {'build s':>8} {'mem MiB':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'encode':>7} {'faiss':>6} {'recall@10 mix/text':>19} {'naive p50':>10} {'speed-up':>9}"
    )
    print(head)
    for r in rows:
        naive = f"{r.naive_p50:10.1f}" if r.naive_p50 is not None else f"{'-':>10}"
        ratio = f"{r.naive_p50 / r.p50:8.1f}x" if r.naive_p50 is not None else f"{'-':>9}"
        print(
            f"{r.n:>9,} {r.kind:>5} {r.build_s:8.1f} {r.memory_mb:8.0f} {r.p50:7.1f} {r.p99:7.1f} "
            f"{r.encode_p50:7.1f} {r.faiss_p50:6.2f} {r.recall_mix:9.3f}/{r.recall_text:.3f} {naive} {ratio}"
        )
    print("(p50/p99: full Searcher.search = encode + FAISS + metadata of the top 20;")
    print(" encode, faiss: p50 ms of those steps alone;")
    print(" naive: rclip-style load-all-vectors-from-SQLite + NumPy brute force + metadata, same encoder)")
    for r in rows:
        if r.n >= 1_000_000:
            ok = r.p50 <= 30 and min(r.recall_mix, r.recall_text) >= 0.95
            verdict = "MET" if ok else "NOT MET"
            print(f"target 1M: p50 {r.p50:.1f} ms <= 30 ms and recall@10 >= 0.95: {verdict}")
        if r.n == 100_000 and r.naive_p50 is not None:
            speedup = r.naive_p50 / r.p50
            verdict = "MET" if speedup >= 10 else "NOT MET"
            print(f"target 100k: {speedup:.0f}x faster than naive (>= 10x): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

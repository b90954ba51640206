"""IVF-PQ for collections whose float vectors do not fit the memory budget (10 million photos and up).

The index choice (:func:`plan_index`): exact up to :data:`EXACT_MAX_VECTORS`, IVF-Flat while it fits
the budget, IVF-PQ (product quantisation, ``pq_bytes`` bytes a vector) above. No OPQ rotation: on
clustered 384-d data 96-byte codes already reach recall@10 0.998 after re-ranking, and OPQ's
training took 50 % longer (measured while choosing; a lower budget's 16-byte codes would gain more). A PQ
search fetches :data:`RERANK_FACTOR` times more candidates than asked and re-ranks them with their
exact float vectors (read from the collection database, the source of truth), so the returned
scores are exact cosines and recall@10 stays at the calibrated target.

Big builds never hold the index in RAM (FAISS's recipe for indexes larger than memory,
``faiss.contrib.ondisk``): the quantisers are trained on a sample, the vectors are added in shards
by worker processes, the shards' inverted lists are merged into one ``.ivfdata`` file on disk, and
that file is memory-mapped when the index opens, so opening takes milliseconds whatever the size.
The merged index is never modified: photos added later go to a small exact *delta* index searched
alongside, removed ones to a list of *tombstones*; the next rebuild folds both in.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from indexer.core.errors import UsageError
from indexer.core.storage.vector_index import (
    CALIBRATION_QUERIES,
    FILE_READERS,
    TARGET_RECALL,
    IndexDescription,
    IndexKind,
    RunningTopK,
    SearchResult,
    VectorIndex,
    _as_matrix,
    _search_params,
    _selector,
    recall_at_k,
    sample_queries,
)

RERANK_FACTOR = 8  # candidates fetched per wanted hit, re-ranked with exact vectors (the least)
RERANK_FACTORS = (8, 16, 32, 64, 128)  # calibrated: the smallest that reaches the recall target
RERANK_MIN = 64
CALIBRATION_NPROBE = 256  # lists probed while the re-rank depth is calibrated (coverage aside)
INDEX_KINDS = ("auto", "flat", "ivf", "ivfpq")
MIN_PQ_VECTORS = 10_000  # PQ codebooks want ~40 training vectors for each of their 256 centroids
ONDISK_MIN_VECTORS = 1_000_000  # from here on, IVF-PQ lists are merged on disk and memory-mapped
DELTA_SHARE = 0.2  # rebuild once the delta plus the tombstones pass this share of the merged index
PQ_BYTES = (96, 64, 48, 32, 16)  # bytes per vector, best first
PQ_TRAIN_POINTS = 256 * 40  # each PQ sub-quantiser has 256 centroids and wants ~40 points each
SHARD_VECTORS = 1_000_000
DEFAULT_BUDGET_SHARE = 0.25  # of the machine's RAM, when no --memory-budget is given

VectorSource = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # ids -> (found ids, vectors)
ChunkReader = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]  # a fresh pass over (ids, vectors)
CORE_QUERY_NOISE = 1.0  # norm of the noise added to a coarse centroid: cosine ~0.7 to it
STREAM_CHUNK = 50_000  # rows read from the database at a time by a streamed build


@dataclass(frozen=True)
class IndexPlan:
    kind: str  # "flat", "ivf" or "ivfpq"
    nlist: int | None = None
    pq_bytes: int | None = None
    on_disk: bool = False

    @property
    def factory(self) -> str:
        """The FAISS index_factory string of an IVF-PQ plan."""
        return f"IVF{self.nlist},PQ{self.pq_bytes}"


def parse_size(text: str) -> int:
    """Bytes of ``8G``, ``512M``, ``1.5T`` or a plain number."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise UsageError(f"{text!r} is not a size; write e.g. 8G, 512M or 2T")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2)]
    return int(float(match.group(1)) * scale)


def default_budget() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(total * DEFAULT_BUDGET_SHARE)


def plan_index(n: int, dim: int, requested: str = "auto", budget: int | None = None) -> IndexPlan:
    """The index for ``n`` vectors of ``dim`` within ``budget`` bytes of RAM (see the module doc)."""
    from indexer.core.storage.vector_index import EXACT_MAX_VECTORS, recommended_nlist

    budget = budget or default_budget()
    nlist = recommended_nlist(n)
    if requested == "flat" or (requested == "auto" and n <= EXACT_MAX_VECTORS):
        return IndexPlan("flat")
    if requested == "ivf" or (requested == "auto" and 1.1 * n * (4 * dim + 8) <= budget):
        return IndexPlan("ivf", nlist=nlist)
    if requested not in ("auto", "ivfpq"):
        raise UsageError(f"unknown index type {requested!r}; choose auto, flat, ivf or ivfpq")
    if n < MIN_PQ_VECTORS:
        raise UsageError(
            f"IVF-PQ needs at least {MIN_PQ_VECTORS} photos to train on ({n} indexed); use --index auto"
        )
    nlist = max(1, min(nlist, n // 39))
    fitting = [m for m in PQ_BYTES if dim % m == 0 and 1.1 * n * (m + 8) <= budget]
    if not fitting:
        need = 1.1 * n * (min(PQ_BYTES) + 8)
        shown = f"{need / 2**30:.1f} GiB" if need >= 2**30 else f"{max(1, round(need / 2**20))} MiB"
        raise UsageError(f"{n} vectors need at least {shown} in the smallest IVF-PQ; raise --memory-budget")
    return IndexPlan("ivfpq", nlist=nlist, pq_bytes=fitting[0], on_disk=n >= ONDISK_MIN_VECTORS)


# ---------------------------------------------------------------- building
def train(plan: IndexPlan, dim: int, sample: np.ndarray, seed: int = 0) -> Any:
    """An empty IVF-PQ index with trained (coarse and PQ) quantisers."""
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.seed = seed
    ivf.cp.niter = 10
    ivf.cp.max_points_per_centroid = 80
    ivf.pq.cp.niter = 10
    ivf.pq.cp.seed = seed
    ivf.do_polysemous_training = False  # Hamming-distance tuning dualens never uses: 10x the training time
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def training_size(plan: IndexPlan) -> int:
    return max(40 * (plan.nlist or 1), PQ_TRAIN_POINTS)


def _add_shard(args: tuple[bytes, np.ndarray, np.ndarray, str]) -> str:
    """Worker: add one shard's vectors to a copy of the trained index; write it; return its path."""
    trained, ids, x, path = args
    faiss.omp_set_num_threads(1)
    index = faiss.deserialize_index(np.frombuffer(trained, dtype=np.uint8))
    index.add_with_ids(x, ids)
    faiss.write_index(faiss.extract_index_ivf(index), path)
    return path


class ShardExecutor(Protocol):
    """Where shards are added: a local process pool, or Ray tasks (``indexer.ray_engine``)."""

    def submit(self, fn: Callable[..., str], /, *args: Any) -> ShardFuture: ...


class ShardFuture(Protocol):
    def result(self) -> str: ...


def add_vectors(
    index: Any,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    ivfdata: Path | None,
    workers: int = 0,
    executor: ShardExecutor | None = None,
) -> Any:
    """Add (ids, vectors) chunks to a trained index: in RAM (``ivfdata`` None), or shard by shard in
    worker processes (or on ``executor``: Ray tasks of a cluster, ``ivfdata``'s folder shared with
    them), merged on disk into ``ivfdata`` (memory-mapped by the returned index)."""
    if ivfdata is None:
        for ids, x in chunks:
            index.add_with_ids(np.ascontiguousarray(x, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        return index
    from faiss.contrib.ondisk import merge_ondisk

    trained = faiss.serialize_index(index).tobytes()
    workdir = Path(tempfile.mkdtemp(prefix=".shards-", dir=ivfdata.parent))
    try:
        jobs = (
            (
                trained,
                np.asarray(ids, np.int64),
                np.ascontiguousarray(x, np.float32),
                str(workdir / f"{n}.index"),
            )
            for n, (ids, x) in enumerate(chunks)
        )
        workers = workers or max(1, (os.cpu_count() or 2) - 1)
        with ExitStack() as stack:
            if executor is None:
                import multiprocessing  # here: a search that only reads the index never loads it
                from concurrent.futures import ProcessPoolExecutor

                # spawn, not fork: the parent's OpenMP thread pool (training) does not survive a fork
                spawn = multiprocessing.get_context("spawn")
                executor = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=spawn))
            shards = _run_shards(executor, jobs, workers)
        merge_ondisk(faiss.extract_index_ivf(index), shards, str(ivfdata))
        index.ntotal = faiss.extract_index_ivf(index).ntotal
    finally:
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
    return index


def _run_shards(executor: ShardExecutor, jobs: Iterable[tuple[Any, ...]], in_flight: int) -> list[str]:
    """Shard files in job order, at most ``in_flight`` shards held in memory at once."""
    shards: list[str] = []
    pending: list[ShardFuture] = []
    for job in jobs:
        pending.append(executor.submit(_add_shard, job))
        if len(pending) >= in_flight:
            shards.append(pending.pop(0).result())
    shards.extend(f.result() for f in pending)
    return shards


def chunked(
    ids: np.ndarray, x: np.ndarray, size: int = SHARD_VECTORS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size], x[start : start + size]


def pq_nbytes(n: int, plan: IndexPlan, dim: int) -> int:
    """Bytes of the index's lists (codes + ids) and quantisers."""
    return n * ((plan.pq_bytes or 0) + 8) + (plan.nlist or 0) * dim * 4


def rerank(
    candidates: np.ndarray, query: np.ndarray, source: VectorSource, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of ``candidates`` by exact inner product with ``query`` (their stored vectors)."""
    wanted = candidates[candidates >= 0]
    if len(wanted) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids, vectors = source(wanted)
    if len(ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = vectors @ query
    top = np.argsort(-scores, kind="stable")[:k]
    return np.asarray(ids, np.int64)[top], scores[top].astype(np.float32)


def calibration_nprobe(
    search: Callable[[int], np.ndarray],
    truth: np.ndarray,
    nlist: int,
    target: float,
    groups: Sequence[np.ndarray] = (),
) -> int:
    """The smallest power-of-two nprobe whose recall@10 reaches ``target`` (``search(nprobe)`` gives
    the top-10 ids of the calibration queries) on every group of queries (rows of ``truth``)."""
    parts = list(groups) or [np.arange(len(truth))]
    nprobe = max(1, nlist // 256)
    while nprobe < nlist:
        found = search(nprobe)
        if min(recall_at_k(found[rows], truth[rows], 10) for rows in parts) >= target:
            return nprobe
        nprobe *= 2
    return nlist


def calibration_queries(
    trained: Any, sample: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Queries to calibrate nprobe on, in two groups that must both reach the target: near stored
    vectors (a sampled vector + noise), and in the dense cores of the data (the coarse centroid of a
    sampled vector + a little noise), where text queries for a common subject fall and where the
    true top-10 spreads over several lists. At 10M vectors, nprobe calibrated on the first group
    alone gave recall@10 0.914 on the benchmark's queries (which fall in cluster cores)."""
    half = max(1, CALIBRATION_QUERIES // 2)
    near = sample_queries(sample, half, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    picks = np.ascontiguousarray(sample[rng.choice(len(sample), size=min(half, len(sample)), replace=False)])
    quantizer: Any = faiss.extract_index_ivf(trained).quantizer
    _, lists = quantizer.search(picks, 1)
    centroids = quantizer.reconstruct_batch(lists[:, 0].astype(np.int64))
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    core = sample_queries(centroids, len(centroids), seed=seed + 3, noise=CORE_QUERY_NOISE)
    queries = np.concatenate([near, core]).astype(np.float32)
    return queries, [np.arange(len(near)), np.arange(len(near), len(queries))]


class CompressedIndex(VectorIndex):
    """An IVF-PQ index (in RAM, or merged on disk and memory-mapped) + exact delta + tombstones."""

    def __init__(
        self,
        index: Any,
        plan: IndexPlan,
        generation: int = 0,
        *,
        ivfdata: Path | None = None,
        delta: Any = None,
        deleted: np.ndarray | None = None,
    ) -> None:
        super().__init__(index, generation, auto=False)
        self.plan = plan
        self.ivfdata = ivfdata
        self.ivfdata_digest: str | None = None  # blake2b of the list file, computed once at build
        self.delta: Any = delta if delta is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(int(index.d)))
        self.deleted = np.unique(np.asarray(deleted if deleted is not None else [], dtype=np.int64))
        self.rerank_source: VectorSource | None = None
        self.rerank_factor = RERANK_FACTOR
        self._trained_on = self.main_count

    @property
    def ivf(self) -> Any:
        return faiss.extract_index_ivf(self.index)

    @property
    def main_count(self) -> int:
        return int(self.ivf.ntotal)

    @property
    def kind(self) -> IndexKind:
        return IndexKind.IVFPQ

    @property
    def ntotal(self) -> int:
        return self.main_count - len(self.deleted) + int(self.delta.ntotal)

    @property
    def nprobe(self) -> int | None:
        return int(self.ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.ivf.nprobe = max(1, min(int(value), int(self.ivf.nlist)))

    def memory_bytes(self) -> int:
        """Resident bytes: quantisers, the delta, and the lists unless they are memory-mapped."""
        d = self.dim
        lists = 0 if self.ivfdata else self.main_count * ((self.plan.pq_bytes or 0) + 8)
        return lists + int(self.ivf.nlist) * d * 4 + int(self.delta.ntotal) * (4 * d + 56)

    def describe(self) -> IndexDescription:
        return IndexDescription(
            kind=IndexKind.IVFPQ,
            ntotal=self.ntotal,
            dim=self.dim,
            memory_bytes=self.memory_bytes(),
            generation=self.generation,
            nlist=int(self.ivf.nlist),
            nprobe=self.nprobe,
            trained_on=self.main_count,
            pq_bytes=self.plan.pq_bytes,
            on_disk=self.ivfdata is not None,
            delta=int(self.delta.ntotal) + len(self.deleted),
            file_bytes=pq_nbytes(self.main_count, self.plan, self.dim),
            rerank=self.rerank_factor,
        )

    # ------------------------------------------------------------------ updates: delta + tombstones
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.delta.add_with_ids(_as_matrix(vectors, self.dim), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if len(ids) == 0:
            return 0
        in_delta = np.isin(ids, faiss.vector_to_array(self.delta.id_map))
        removed = int(self.delta.remove_ids(ids[in_delta])) if in_delta.any() else 0
        main = np.setdiff1d(ids[~in_delta], self.deleted)
        self.deleted = np.union1d(self.deleted, main)
        return removed + len(main)

    def needs_rebuild(self) -> bool:
        return int(self.delta.ntotal) + len(self.deleted) > DELTA_SHARE * max(self.main_count, 1)

    def ids(self) -> np.ndarray:
        ivf: Any = self.ivf
        invlists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if invlists.list_size(i)
        ]
        main = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        return np.concatenate([np.setdiff1d(main, self.deleted), faiss.vector_to_array(self.delta.id_map)])

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        raise ValueError("an IVF-PQ index keeps codes, not vectors; rebuild it from the database")

    # ------------------------------------------------------------------ search
    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None, *, exact: bool = False
    ) -> SearchResult:
        q = _as_matrix(queries, self.dim)
        k = max(1, int(k))
        selector, keepalive, n_allowed = None, None, self.ntotal
        if allowed_ids is not None:
            allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
            n_allowed = len(allowed)
            if n_allowed == 0:
                return SearchResult(
                    np.full((len(q), k), -1, np.int64), np.full((len(q), k), -np.inf, np.float32)
                )
            selector, keepalive = _selector(allowed)
        fetch = (
            k + len(self.deleted) if self.rerank_source is None else max(k * self.rerank_factor, RERANK_MIN)
        )
        fetch = min(fetch + len(self.deleted), max(self.main_count, 1))
        nprobe = self._nprobe_for(n_allowed, exact)
        main_scores, main_ids = self.index.search(q, fetch, params=_search_params(selector, nprobe))
        delta_scores, delta_ids = (None, None)
        if self.delta.ntotal:
            delta_params = _search_params(selector, None) if selector is not None else None
            delta_scores, delta_ids = self.delta.search(
                q, min(k, int(self.delta.ntotal)), params=delta_params
            )
        del keepalive
        out_ids = np.full((len(q), k), -1, np.int64)
        out_scores = np.full((len(q), k), -np.inf, np.float32)
        for row in range(len(q)):
            keep = (main_ids[row] >= 0) & ~np.isin(main_ids[row], self.deleted)
            ids, scores = main_ids[row][keep], main_scores[row][keep]
            if self.rerank_source is not None:
                ids, scores = rerank(ids, q[row], self.rerank_source, k)
            if delta_ids is not None and delta_scores is not None:
                valid = delta_ids[row] >= 0
                ids = np.concatenate([ids, delta_ids[row][valid]])
                scores = np.concatenate([scores, delta_scores[row][valid]])
            top = np.argsort(-scores, kind="stable")[:k]
            out_ids[row, : len(top)], out_scores[row, : len(top)] = ids[top], scores[top]
        return SearchResult(ids=out_ids, scores=out_scores)

    def _nprobe_for(self, n_allowed: int, exact: bool) -> int:
        nlist = int(self.ivf.nlist)
        if exact or self.ntotal == 0:
            return nlist
        share = max(n_allowed, 1) / self.ntotal
        wanted = math.ceil(int(self.ivf.nprobe) / share)
        return nlist if wanted >= nlist // 2 else wanted

    def calibrate_on(self, queries: np.ndarray, truth: np.ndarray, groups: Sequence[np.ndarray] = ()) -> int:
        """Set the re-rank depth, then nprobe, for recall@10 >= TARGET_RECALL on ``queries`` (in each
        of ``groups``) whose exact top-10 ids are ``truth``.

        Two limits: the lists probed must hold the true neighbours (nprobe), and the PQ scores must
        rank them within the candidates re-ranked exactly (the depth). At 10M clustered vectors the
        second binds: with 80 candidates recall stayed at 0.91 even probing every list, because the
        true top-10 differ by less than the quantisation noise. The depth is chosen first, at a
        generous nprobe, from one deep search whose prefixes are re-ranked; then the least nprobe."""
        nlist = int(self.ivf.nlist)
        self.rerank_factor = self._calibrate_depth(queries, truth, groups, min(nlist, CALIBRATION_NPROBE))

        def top10(nprobe: int) -> np.ndarray:
            self.nprobe = nprobe
            return self.search(queries, 10).ids

        chosen = calibration_nprobe(top10, truth, nlist, TARGET_RECALL, groups)
        self.nprobe = chosen
        return chosen

    def recalibrate(self, read: ChunkReader, n: int, seed: int = 0) -> None:
        """Calibrate again on the queries a build with ``seed`` draws (two passes over ``read()``):
        new search parameters for an existing index, without rebuilding it."""
        sample = strided_sample(read, n, training_size(self.plan))
        queries, groups = calibration_queries(self.index, sample, seed)
        truth = RunningTopK(queries, 10)
        for ids, x in read():
            truth.add(np.asarray(ids, np.int64), x)
        self.calibrate_on(queries, truth.ids, groups)

    def _calibrate_depth(
        self, queries: np.ndarray, truth: np.ndarray, groups: Sequence[np.ndarray], nprobe: int
    ) -> int:
        """The least re-rank factor (of RERANK_FACTORS) whose re-ranked top-10 reaches the target."""
        source = self.rerank_source
        if source is None:
            return RERANK_FACTOR
        deepest = max(RERANK_FACTORS) * 10
        _, candidates = self.index.search(queries, deepest, params=_search_params(None, nprobe))
        exact = np.full(candidates.shape, -np.inf, np.float32)  # each candidate's exact score, read once
        for row, q in enumerate(queries):
            ids, vectors = source(candidates[row][candidates[row] >= 0])
            known = dict(zip(ids.tolist(), (vectors @ q).tolist(), strict=True))
            exact[row] = [known.get(int(i), -np.inf) for i in candidates[row]]
        parts = list(groups) or [np.arange(len(queries))]
        for factor in RERANK_FACTORS:
            fetch = max(10 * factor, RERANK_MIN)
            top = np.argsort(-exact[:, :fetch], axis=1, kind="stable")[:, :10]
            found = np.where(
                np.take_along_axis(exact[:, :fetch], top, axis=1) > -np.inf,
                np.take_along_axis(candidates[:, :fetch], top, axis=1),
                -1,
            )
            if min(recall_at_k(found[rows], truth[rows], 10) for rows in parts) >= TARGET_RECALL:
                return factor
        return max(RERANK_FACTORS)

    # ------------------------------------------------------------------ files
    def lists_intact(self) -> bool:
        """Whether the on-disk list file still has the checksum recorded at build time (a full read:
        `dualens check` calls it; opening the index checks the size only, to open in milliseconds)."""
        if self.ivfdata is None or self.ivfdata_digest is None:
            return True
        return file_digest(self.ivfdata) == self.ivfdata_digest

    def header_and_payload(self) -> tuple[dict[str, Any], bytes]:
        main = faiss.serialize_index(self.index).tobytes()
        delta = faiss.serialize_index(self.delta).tobytes()
        deleted = self.deleted.astype("<i8").tobytes()
        header: dict[str, Any] = {
            "kind": IndexKind.IVFPQ.value,
            "plan": {"nlist": self.plan.nlist, "pq_bytes": self.plan.pq_bytes, "on_disk": self.plan.on_disk},
            "parts": [len(main), len(delta), len(deleted)],
            "nprobe": self.nprobe,
            "rerank_factor": self.rerank_factor,
        }
        if self.ivfdata is not None:
            if self.ivfdata_digest is None:
                self.ivfdata_digest = file_digest(self.ivfdata)
            header["ivfdata"] = {
                "name": self.ivfdata.name,
                "bytes": self.ivfdata.stat().st_size,
                "blake2b": self.ivfdata_digest,
            }
        return header, main + delta + deleted

    @classmethod
    def from_parts(cls, header: dict[str, Any], payload: bytes, path: Path) -> CompressedIndex:
        """The index a file holds (its ``.ivfdata``, if any, must lie next to it, intact in size)."""
        ivfdata = None
        if header.get("ivfdata"):
            ivfdata = path.parent / str(header["ivfdata"]["name"])
            if not ivfdata.is_file() or ivfdata.stat().st_size != int(header["ivfdata"]["bytes"]):
                raise ValueError(f"its list file {ivfdata.name} is missing or truncated")
        n_main, n_delta, _ = (int(v) for v in header["parts"])
        main = _deserialize(payload[:n_main], ivfdata)
        delta = faiss.deserialize_index(np.frombuffer(payload[n_main : n_main + n_delta], dtype=np.uint8))
        deleted = np.frombuffer(payload[n_main + n_delta :], dtype="<i8").astype(np.int64)
        plan_fields = header["plan"]
        plan = IndexPlan("ivfpq", plan_fields["nlist"], plan_fields["pq_bytes"], bool(plan_fields["on_disk"]))
        loaded = cls(main, plan, int(header["generation"]), ivfdata=ivfdata, delta=delta, deleted=deleted)
        if ivfdata is not None:
            loaded.ivfdata_digest = header["ivfdata"].get("blake2b")
        loaded.nprobe = int(header.get("nprobe") or 1)
        loaded.rerank_factor = int(header.get("rerank_factor") or RERANK_FACTOR)
        return loaded


def build_compressed(
    ids: np.ndarray,
    x: np.ndarray,
    plan: IndexPlan,
    generation: int = 0,
    *,
    directory: Path | None = None,
    seed: int = 0,
    workers: int = 0,
    shard: int = SHARD_VECTORS,
) -> CompressedIndex:
    """:func:`build_streamed` over vectors held in memory (re-ranked from them while calibrating)."""
    if len(ids) != len(x):
        raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
    source_ids = np.asarray(ids, np.int64)
    order = np.argsort(source_ids)

    def from_memory(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(source_ids, wanted, sorter=order)
        pos = order[np.clip(pos, 0, len(order) - 1)]
        hit = source_ids[pos] == wanted
        return wanted[hit], x[pos[hit]]

    built = build_streamed(
        lambda: chunked(source_ids, x, min(shard, STREAM_CHUNK)),
        len(source_ids),
        int(x.shape[1]),
        plan,
        generation,
        directory=directory,
        rerank_source=from_memory,
        seed=seed,
        workers=workers,
        shard=shard,
    )
    built.rerank_source = None  # the collection attaches its database as the source on loading
    return built


def build_streamed(
    read: ChunkReader,
    n: int,
    dim: int,
    plan: IndexPlan,
    generation: int = 0,
    *,
    directory: Path | None,
    rerank_source: VectorSource,
    seed: int = 0,
    workers: int = 0,
    shard: int = 0,
    executor: ShardExecutor | None = None,
    stem: str = "vectors",
) -> CompressedIndex:
    """Build from ``read()``, a fresh pass over the (ids, vectors) chunks each time it is called,
    without ever holding all the vectors: pass 1 keeps a strided sample (training, calibration
    queries); pass 2 adds shard by shard (on disk in ``directory``, its list file named after ``stem``,
    when ``plan.on_disk``) while it
    finds the calibration queries' exact answers; then nprobe is calibrated, re-ranking from
    ``rerank_source``."""
    sample = strided_sample(read, n, training_size(plan))
    trained = train(plan, dim, sample, seed=seed)
    queries, groups = calibration_queries(trained, sample, seed)
    truth = RunningTopK(queries, 10)

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for ids, x in read():
            truth.add(np.asarray(ids, np.int64), x)
            yield np.asarray(ids, np.int64), np.ascontiguousarray(x, np.float32)

    ivfdata = None
    if plan.on_disk:
        if directory is None:
            raise ValueError("an on-disk index needs a directory")
        ivfdata = directory / f"{stem}.{generation}.{os.urandom(4).hex()}.ivfdata"
    index = add_vectors(trained, regroup(chunks(), shard or SHARD_VECTORS), ivfdata, workers, executor)
    built = CompressedIndex(index, plan, generation, ivfdata=ivfdata)
    built.rerank_source = rerank_source
    built.calibrate_on(queries, truth.ids, groups)
    return built


def strided_sample(read: ChunkReader, n: int, wanted: int) -> np.ndarray:
    """Every (n // wanted)-th of the ``n`` vectors ``read()`` yields, at most ``wanted`` (one pass)."""
    step = max(1, n // max(wanted, 1))
    picked, seen = [], 0
    for _, x in read():
        first = (-seen) % step  # the chunk's first row whose global position is a multiple of step
        picked.append(np.asarray(x[first::step], np.float32))
        seen += len(x)
    if seen != n:
        raise ValueError(f"expected {n} vectors, read {seen}")
    if not picked:
        raise ValueError("an IVF-PQ index needs vectors to train on")
    return np.ascontiguousarray(np.concatenate(picked)[:wanted])


def regroup(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The same rows in chunks of ``size`` (the last one shorter)."""
    ids_buf: list[np.ndarray] = []
    x_buf: list[np.ndarray] = []
    held = 0
    for ids, x in chunks:
        ids_buf.append(ids)
        x_buf.append(x)
        held += len(ids)
        while held >= size:
            all_ids, all_x = np.concatenate(ids_buf), np.concatenate(x_buf)
            yield all_ids[:size], all_x[:size]
            ids_buf, x_buf, held = [all_ids[size:]], [all_x[size:]], held - size
    if held:
        yield np.concatenate(ids_buf), np.concatenate(x_buf)


def file_digest(path: Path, block: int = 1 << 22) -> str:
    """blake2b of a file, read in blocks (the list file can be gigabytes)."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _deserialize(data: bytes, ivfdata: Path | None) -> Any:
    """An index from bytes; on-disk lists are memory-mapped read-only from ``ivfdata`` (the file next
    to the index file, not the path recorded at build time: a moved data directory keeps working)."""
    if ivfdata is None:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    reader = faiss.VectorIOReader()
    faiss.copy_array_to_vector(np.frombuffer(data, dtype=np.uint8), reader.data)
    index = faiss.read_index(reader, faiss.IO_FLAG_SKIP_IVF_DATA)
    ivf: Any = faiss.extract_index_ivf(index)
    lists: Any = faiss.downcast_InvertedLists(ivf.invlists)
    lists.filename = str(ivfdata)
    lists.read_only = True  # mapped PROT_READ: many server processes share the pages, none writes
    lists.do_mmap()
    return index


FILE_READERS[IndexKind.IVFPQ.value] = CompressedIndex.from_parts

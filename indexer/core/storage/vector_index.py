"""FAISS vector index keyed by the database row id.

Inner product on L2-normalised float32 vectors equals cosine similarity. Ids are always the
database primary keys (``add_with_ids``), never row order. The file is written atomically
(temporary file, fsync, rename) with a header holding a checksum and the *generation* of the
database state it reflects, so a reader can tell a damaged or stale index from a current one.

Index choice (made by :meth:`VectorIndex.build`, and again by :meth:`VectorIndex.add` /
:meth:`VectorIndex.remove` when the collection crosses a size boundary):

* up to :data:`EXACT_MAX_VECTORS` vectors: exact search, ``IndexIDMap2(IndexFlatIP)``;
* above it: ``IndexIVFFlat`` (inner product) with ``nlist`` ≈ √n lists (a power of two), trained
  with k-means on a seeded sample, and ``nprobe`` calibrated at build time so that recall@10
  against exact search is at least :data:`TARGET_RECALL` on sampled queries. IVF removes ids
  natively, so the indexer's incremental add/remove keep working; HNSW was not chosen because it
  cannot remove vectors and builds far slower on two cores.

Filtered searches (an allow-list of ids) use a FAISS ID selector. With IVF, the number of probed
lists grows as the allowed share shrinks, up to a full scan of the lists (exact), so a selective
filter still returns its true top-k.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.core.errors import CollectionError

MAGIC = b"DUALENS-FAISS-1\n"

EXACT_MAX_VECTORS = 50_000  # flat search costs ~8 ms per query at 50k x 384 on 2 cores, ~16 ms at 100k
TARGET_RECALL = 0.95  # nprobe calibration target on the (hard) sampled queries below
CALIBRATION_QUERIES = 100
TRAIN_POINTS_PER_LIST = 40  # FAISS wants >= 39 training points per centroid
KMEANS_ITERATIONS = 10
# Sampled queries (calibration, `dualens index-info`): a stored vector + gaussian noise of this norm,
# re-normalised: cosine ~0.32 to the photo they came from, further from the data than text queries
# (top cosine ~0.45 with the default model; CLIP's ~0.3). On the benchmark data, recall@10 on these
# was below recall on the default model's text queries at every nprobe (tests/bench/bench_search.py).
QUERY_NOISE = 3.0


# kind -> reader(header, payload, path) of index classes defined elsewhere (IVF-PQ: compressed.py,
# imported with this package so that every index file can be read).
FILE_READERS: dict[str, Callable[[dict[str, Any], bytes, Path], VectorIndex]] = {}


class IndexKind(StrEnum):
    FLAT = "flat"
    IVF = "ivf"
    IVFPQ = "ivfpq"  # indexer/core/storage/compressed.py


@dataclass(frozen=True)
class IndexDescription:
    kind: IndexKind
    ntotal: int
    dim: int
    memory_bytes: int
    generation: int
    nlist: int | None = None
    nprobe: int | None = None
    trained_on: int | None = None  # number of vectors when the IVF was built
    pq_bytes: int | None = None  # IVF-PQ: code bytes a vector
    on_disk: bool = False  # IVF-PQ: lists merged on disk and memory-mapped
    delta: int = 0  # IVF-PQ: vectors added or removed since the build
    file_bytes: int | None = None  # IVF-PQ: bytes of the lists and quantisers
    rerank: int | None = None  # IVF-PQ: candidates re-ranked exactly per wanted hit

    @property
    def label(self) -> str:
        if self.kind is IndexKind.FLAT:
            return "exact (IndexIDMap2 + IndexFlatIP)"
        if self.kind is IndexKind.IVFPQ:
            where = ", merged on disk, memory-mapped" if self.on_disk else ""
            return (
                f"approximate (IndexIVFPQ, nlist={self.nlist}, {self.pq_bytes} bytes a vector, "
                f"nprobe={self.nprobe}, exact re-ranking of {self.rerank}x{where}; delta {self.delta})"
            )
        return f"approximate (IndexIVFFlat, nlist={self.nlist}, nprobe={self.nprobe})"


def recommended_kind(n: int) -> IndexKind:
    return IndexKind.FLAT if n <= EXACT_MAX_VECTORS else IndexKind.IVF


def recommended_nlist(n: int) -> int:
    """~sqrt(n) inverted lists, rounded to a power of two (1M -> 1024, 100k -> 256).

    Fewer, longer lists than the usual 4·sqrt(n): k-means training and the assignment of every
    vector cost O(n · nlist), which dominates the build on two cores, while a query scans
    nprobe · n / nlist vectors either way (nprobe is calibrated for recall, see below).
    """
    return int(2 ** round(math.log2(max(64.0, math.sqrt(max(n, 1))))))


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got {arr.shape[1]}")
    return arr


def sample_queries(vectors: np.ndarray, n: int, seed: int = 0, noise: float = QUERY_NOISE) -> np.ndarray:
    """Queries near the data: random stored vectors plus gaussian noise, re-normalised."""
    rng = np.random.default_rng(seed)
    base = vectors[rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)]
    q = base + rng.standard_normal(base.shape).astype(np.float32) * (noise / math.sqrt(base.shape[1]))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of the true top-k ids found in the approximate top-k (ignoring -1 padding)."""
    hits, total = 0, 0
    for row_f, row_t in zip(found[:, :k], truth[:, :k], strict=True):
        want = {int(i) for i in row_t if i >= 0}
        hits += len(want & {int(i) for i in row_f if i >= 0})
        total += len(want)
    return 1.0 if total == 0 else hits / total


@dataclass
class SearchResult:
    ids: np.ndarray  # (n_queries, k) int64, -1 where fewer than k results exist
    scores: np.ndarray  # (n_queries, k) float32 cosine similarities


class VectorIndex:
    """A FAISS index mapping database ids to vectors (exact or IVF, see the module docstring)."""

    def __init__(self, index: faiss.Index, generation: int = 0, *, auto: bool = True) -> None:
        self.index: Any = index  # the SWIG type stubs do not know the subclasses' attributes
        self.generation = generation
        self.auto = auto  # switch flat <-> IVF (and retrain an outgrown IVF) on add/remove
        self._trained_on: int | None = None
        self.collection_id: str | None = None  # the collection whose database this index derives from

    # ------------------------------------------------------------------ facts
    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> IndexKind:
        return IndexKind.IVF if isinstance(self.index, faiss.IndexIVF) else IndexKind.FLAT

    @property
    def nprobe(self) -> int | None:
        return int(self.index.nprobe) if isinstance(self.index, faiss.IndexIVF) else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if not isinstance(self.index, faiss.IndexIVF):
            raise ValueError("nprobe applies to an IVF index only")
        self.index.nprobe = max(1, min(int(value), int(self.index.nlist)))

    @property
    def trained_on(self) -> int | None:
        """Vector count the IVF was built for (saved in the file header)."""
        if not isinstance(self.index, faiss.IndexIVF):
            return None
        return self._trained_on or self.ntotal

    def memory_bytes(self) -> int:
        """Approximate resident size: vectors, ids, id maps and centroids."""
        n, d = self.ntotal, self.dim
        if isinstance(self.index, faiss.IndexIVF):
            return n * (4 * d + 8) + int(self.index.nlist) * (4 * d + 32)
        return n * (4 * d + 8) + n * 48  # IndexIDMap2's reverse hash map: ~48 bytes per entry

    def describe(self) -> IndexDescription:
        ivf = isinstance(self.index, faiss.IndexIVF)
        return IndexDescription(
            kind=self.kind,
            ntotal=self.ntotal,
            dim=self.dim,
            memory_bytes=self.memory_bytes(),
            generation=self.generation,
            nlist=int(self.index.nlist) if ivf else None,
            nprobe=self.nprobe,
            trained_on=self.trained_on,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, dim: int) -> VectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        dim: int,
        generation: int = 0,
        *,
        kind: IndexKind | str | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        seed: int = 0,
    ) -> VectorIndex:
        """An index over ``vectors`` keyed by ``ids``; ``kind`` None picks by size (module docstring)."""
        ids = np.asarray(ids, dtype=np.int64)
        x = _as_matrix(vectors, dim) if len(ids) else np.zeros((0, dim), np.float32)
        if len(ids) != len(x):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        chosen = IndexKind(kind) if kind is not None else recommended_kind(len(ids))
        if chosen is IndexKind.FLAT:
            index = cls.empty(dim)
            index.auto = kind is None  # a type asked for is kept whatever the size
            index.add(ids, x)
        else:
            index = cls._build_ivf(ids, x, dim, nlist=nlist, nprobe=nprobe, seed=seed)
        index.generation = generation
        return index

    @classmethod
    def _build_ivf(
        cls, ids: np.ndarray, x: np.ndarray, dim: int, *, nlist: int | None, nprobe: int | None, seed: int
    ) -> VectorIndex:
        n = len(ids)
        nlist = int(nlist or recommended_nlist(n))
        nlist = max(1, min(nlist, n // 4 if n >= 4 else 1))
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = KMEANS_ITERATIONS
        ivf.cp.seed = seed
        ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST * 2
        rng = np.random.default_rng(seed)
        n_train = min(n, TRAIN_POINTS_PER_LIST * nlist)
        train = x if n_train == n else x[np.sort(rng.choice(n, size=n_train, replace=False))]
        ivf.train(train)
        ivf.add_with_ids(x, ids)
        index = cls(ivf)
        index._trained_on = n
        index.nprobe = nprobe if nprobe is not None else index._calibrate_nprobe(ids, x, seed)
        return index

    def _calibrate_nprobe(self, ids: np.ndarray, x: np.ndarray, seed: int) -> int:
        """The smallest power-of-two nprobe with recall@10 >= TARGET_RECALL on sampled queries."""
        assert isinstance(self.index, faiss.IndexIVF)
        nlist = int(self.index.nlist)
        if len(x) == 0:
            return 1
        queries = sample_queries(x, CALIBRATION_QUERIES, seed=seed + 1)
        truth = ids[exact_topk_positions(x, queries, 10)]
        nprobe = max(1, nlist // 256)
        while nprobe < nlist:
            found = self.index.search(queries, 10, params=_search_params(None, nprobe))[1]
            if recall_at_k(found, truth, 10) >= TARGET_RECALL:
                return nprobe
            nprobe *= 2
        return nlist

    # ------------------------------------------------------------------ updates
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(_as_matrix(vectors, self.dim), np.asarray(ids, dtype=np.int64))
        if self.auto:
            self._maybe_rebuild()

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        removed = int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))
        if self.auto and removed:
            self._maybe_rebuild()
        return removed

    def needs_rebuild(self) -> bool:
        """True when the size calls for another index type, or an IVF grew 4x past its training."""
        n = self.ntotal
        if self.kind is IndexKind.FLAT:
            return n > EXACT_MAX_VECTORS
        if n <= EXACT_MAX_VECTORS // 2:
            return True
        trained = self.trained_on or n
        return n > 4 * trained

    def _maybe_rebuild(self) -> None:
        if not self.needs_rebuild():
            return
        ids, vectors = self.contents()
        rebuilt = VectorIndex.build(ids, vectors, self.dim, self.generation)
        self.index = rebuilt.index
        self._trained_on = rebuilt._trained_on

    # ------------------------------------------------------------------ reading
    def ids(self) -> np.ndarray:
        """The database ids held by the index."""
        if isinstance(self.index, faiss.IndexIVF):
            invlists: Any = self.index.invlists
            parts = [
                faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                for i in range(self.index.nlist)
                if invlists.list_size(i)
            ]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything in the index (the vectors are stored uncompressed)."""
        if isinstance(self.index, faiss.IndexIVF):
            invlists: Any = self.index.invlists
            ids, vecs = [], []
            for i in range(self.index.nlist):
                size = invlists.list_size(i)
                if not size:
                    continue
                ids.append(faiss.rev_swig_ptr(invlists.get_ids(i), size).copy())
                codes = faiss.rev_swig_ptr(invlists.get_codes(i), size * invlists.code_size)
                vecs.append(np.frombuffer(codes.copy().tobytes(), dtype=np.float32).reshape(size, self.dim))
            if not ids:
                return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
            return np.concatenate(ids).astype(np.int64), np.concatenate(vecs)
        ids_arr = self.ids()
        flat = faiss.downcast_index(self.index.index)
        vectors = flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.zeros((0, self.dim), np.float32)
        return ids_arr, np.asarray(vectors, dtype=np.float32)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        *,
        exact: bool = False,
    ) -> SearchResult:
        """Top-k by inner product; ``allowed_ids`` restricts candidates; ``exact`` scans all IVF lists."""
        q = _as_matrix(queries, self.dim)
        k = max(1, min(int(k), self.ntotal)) if self.ntotal else 1
        selector, keepalive = None, None
        n_allowed = self.ntotal
        if allowed_ids is not None:
            allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
            n_allowed = len(allowed)
            if n_allowed == 0:
                empty = np.full((len(q), k), -1, np.int64)
                return SearchResult(ids=empty, scores=np.full((len(q), k), -np.inf, np.float32))
            selector, keepalive = _selector(allowed)
        if isinstance(self.index, faiss.IndexIVF):
            params = _search_params(selector, self._nprobe_for(n_allowed, exact))
        else:
            params = _search_params(selector, None) if selector else None
        scores, ids = self.index.search(q, k, params=params)
        del keepalive
        return SearchResult(ids=ids.astype(np.int64), scores=scores.astype(np.float32))

    def _nprobe_for(self, n_allowed: int, exact: bool) -> int:
        """Probe more lists when a filter leaves a smaller share of the vectors; all lists if exact."""
        nlist = int(self.index.nlist)
        if exact or self.ntotal == 0:
            return nlist
        base = int(self.index.nprobe)
        share = max(n_allowed, 1) / self.ntotal
        wanted = math.ceil(base / share)
        return nlist if wanted >= nlist // 2 else wanted

    def measure_recall(self, queries: np.ndarray, k: int = 10) -> float:
        """recall@k of the default search against exact search (1.0 for an exact index)."""
        if self.kind is IndexKind.FLAT or self.ntotal == 0:
            return 1.0
        approx = self.search(queries, k)
        truth = self.search(queries, k, exact=True)
        return recall_at_k(approx.ids, truth.ids, k)

    # ------------------------------------------------------------------ files
    def header_and_payload(self) -> tuple[dict[str, Any], bytes]:
        """What :meth:`save` writes besides the common fields: the kind and the FAISS bytes."""
        return {"kind": self.kind.value}, faiss.serialize_index(self.index).tobytes()

    def save(self, path: Path) -> None:
        """Write atomically: header + checksum + FAISS bytes to a temp file, fsync, rename.

        A failed write (disk full, read-only folder) raises CollectionError and leaves the previous
        file in place.
        """
        fields, payload = self.header_and_payload()
        header = json.dumps(
            {
                "generation": self.generation,
                "ntotal": self.ntotal,
                "dim": self.dim,
                "trained_on": self.trained_on,
                "collection": self.collection_id,
                "blake2b": hashlib.blake2b(payload, digest_size=16).hexdigest(),
                **fields,
            }
        ).encode()
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + struct.pack("<Q", len(header)) + header + payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CollectionError(f"cannot write the vector index {path}: {reason}") from exc
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        _remove_unused_list_files(path, fields.get("ivfdata", {}).get("name"))

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read and verify an index file; a missing or damaged file raises CollectionError."""
        data = _read_regular_file(path)
        try:
            if not data.startswith(MAGIC):
                raise ValueError("not a dualens index file")
            (hlen,) = struct.unpack_from("<Q", data, len(MAGIC))
            start = len(MAGIC) + 8
            header = json.loads(data[start : start + hlen])
            payload = data[start + hlen :]
            if hashlib.blake2b(payload, digest_size=16).hexdigest() != header["blake2b"]:
                raise ValueError("checksum mismatch")
            reader = FILE_READERS.get(str(header.get("kind")))
            if reader is not None:  # another index class (compressed.py registers IVF-PQ)
                loaded: VectorIndex = reader(header, payload, path)
                loaded.collection_id = str(header["collection"]) if header.get("collection") else None
                return loaded
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
            loaded = cls(index, int(header["generation"]))
            if header.get("trained_on"):
                loaded._trained_on = int(header["trained_on"])
            collection = header.get("collection")
            loaded.collection_id = str(collection) if collection else None
        except Exception as exc:  # any damage at all: a bit flip can raise almost anything here
            detail = str(exc) or type(exc).__name__
            raise CollectionError(
                f"the vector index {path} is damaged ({detail}); run `dualens rebuild-index`"
            ) from exc
        return loaded


@dataclass(frozen=True)
class IndexStamp:
    """What an index file says it was built from: the database generation and the collection's id."""

    generation: int
    collection_id: str | None


def read_stamp(path: Path) -> IndexStamp | None:
    """The stamp in the header of the index file at ``path``, read without its payload (cheap).

    None when there is no such file or its header cannot be read (a damaged file: :meth:`VectorIndex.load`
    says how). The payload is not verified: a file whose stamp matches may still be damaged.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks on a FIFO
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or fh.read(len(MAGIC)) != MAGIC:
                return None
            (hlen,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(min(hlen, 1 << 20)))
        collection = header.get("collection")
        return IndexStamp(int(header["generation"]), str(collection) if collection else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error):
        return None


def _read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file, without ever blocking on a FIFO or reading a directory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CollectionError(f"the vector index {path} is missing; run `dualens rebuild-index`") from None
    except OSError as exc:
        raise CollectionError(f"cannot read the vector index {path}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CollectionError(
                f"the vector index {path} is not a regular file; remove it and run `dualens rebuild-index`"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CollectionError(f"cannot read the vector index {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


class RunningTopK:
    """Each query's exact top-k ids over vectors seen block by block (bounded memory; BLAS)."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = queries
        self.k = k
        self._scores = np.full((len(queries), k), -np.inf, np.float32)
        self._ids = np.full((len(queries), k), -1, np.int64)

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        if len(ids) == 0 or self.k == 0:
            return
        scores = np.concatenate([self._scores, self.queries @ np.asarray(x, np.float32).T], axis=1)
        all_ids = np.concatenate([self._ids, np.broadcast_to(ids, (len(self.queries), len(ids)))], axis=1)
        top = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
        self._scores = np.take_along_axis(scores, top, axis=1)
        self._ids = np.take_along_axis(all_ids, top, axis=1)

    @property
    def ids(self) -> np.ndarray:
        """(n_queries, k) ids, best first (-1 where fewer than k vectors were seen)."""
        order = np.argsort(-self._scores, axis=1, kind="stable")
        return np.take_along_axis(self._ids, order, axis=1)


def exact_topk_positions(x: np.ndarray, queries: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Row positions of each query's exact top-k, by blocked matrix products (BLAS, bounded memory)."""
    top = RunningTopK(queries, min(k, len(x)))
    for start in range(0, len(x), block):
        chunk = x[start : start + block]
        top.add(np.arange(start, start + len(chunk), dtype=np.int64), chunk)
    return top.ids


def _search_params(selector: Any, nprobe: int | None) -> Any:
    """FAISS search parameters: an ID selector and, for IVF, the number of lists to probe."""
    params: Any = faiss.SearchParameters() if nprobe is None else faiss.SearchParametersIVF()
    if selector is not None:
        params.sel = selector
    if nprobe is not None:
        params.nprobe = nprobe
    return params


def _selector(allowed: np.ndarray) -> tuple[Any, object]:
    """An ID selector for sorted unique ids, and the arrays it points into (keep them alive)."""
    if allowed[0] >= 0 and allowed[-1] < (1 << 28):
        bits = np.zeros(int(allowed[-1]) + 1, dtype=bool)
        bits[allowed] = True
        bitmap = np.packbits(bits, bitorder="little")
        return faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)), bitmap
    return faiss.IDSelectorBatch(allowed), allowed


def _remove_unused_list_files(index_file: Path, keep: str | None) -> None:
    """Delete the on-disk lists of earlier IVF-PQ builds once the file no longer points to them."""
    for old in index_file.parent.glob(f"{index_file.stem}.*.ivfdata"):
        if old.name != keep:
            old.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

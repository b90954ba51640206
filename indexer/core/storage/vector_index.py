"""FAISS vector index keyed by the database row id.

Inner product on L2-normalised float32 vectors equals cosine similarity. Ids are always the
database primary keys (``add_with_ids``), never row order. The file is written atomically
(temporary file, fsync, rename) with a header holding a checksum and the *generation* of the
database state it reflects, so a reader can tell a damaged or stale index from a current one.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from indexer.core.errors import CollectionError

MAGIC = b"DUALENS-FAISS-1\n"


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got {arr.shape[1]}")
    return arr


@dataclass
class SearchResult:
    ids: np.ndarray  # (n_queries, k) int64, -1 where fewer than k results exist
    scores: np.ndarray  # (n_queries, k) float32 cosine similarities


class VectorIndex:
    """A FAISS index mapping database ids to vectors."""

    def __init__(self, index: faiss.Index, generation: int = 0) -> None:
        self.index = index
        self.generation = generation

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def empty(cls, dim: int) -> VectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, generation: int = 0) -> VectorIndex:
        index = cls.empty(dim)
        index.add(ids, vectors)
        index.generation = generation
        return index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(_as_matrix(vectors, self.dim), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def ids(self) -> np.ndarray:
        """The database ids held by the index."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> SearchResult:
        q = _as_matrix(queries, self.dim)
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        params = None
        if allowed_ids is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
        scores, ids = self.index.search(q, k, params=params)
        return SearchResult(ids=ids.astype(np.int64), scores=scores.astype(np.float32))

    def save(self, path: Path) -> None:
        """Write atomically: header + checksum + FAISS bytes to a temp file, fsync, rename."""
        payload = faiss.serialize_index(self.index).tobytes()
        header = json.dumps(
            {"generation": self.generation, "ntotal": self.ntotal, "dim": self.dim,
             "blake2b": hashlib.blake2b(payload, digest_size=16).hexdigest()}
        ).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + struct.pack("<Q", len(header)) + header + payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read and verify an index file; a missing or damaged file raises CollectionError."""
        if not path.exists():
            raise CollectionError(f"the vector index {path} is missing; run `dualens rebuild-index`")
        data = path.read_bytes()
        try:
            if not data.startswith(MAGIC):
                raise ValueError("not a dualens index file")
            (hlen,) = struct.unpack_from("<Q", data, len(MAGIC))
            start = len(MAGIC) + 8
            header = json.loads(data[start : start + hlen])
            payload = data[start + hlen :]
            if hashlib.blake2b(payload, digest_size=16).hexdigest() != header["blake2b"]:
                raise ValueError("checksum mismatch")
            index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except (ValueError, KeyError, TypeError, struct.error, RuntimeError) as exc:
            raise CollectionError(
                f"the vector index {path} is damaged ({exc}); run `dualens rebuild-index`"
            ) from exc
        return cls(index, int(header["generation"]))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""``dualens check``: the database and the FAISS file agree exactly.

Every row with status ``indexed`` has a vector blob of the collection's dimension, L2-normalised,
and exactly one vector in the index (equal to the blob where the index stores vectors exactly);
the index holds no id without such a row; the index file is current (same generation).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection, InfoKey, get_info
from indexer.core.storage.compressed import CompressedIndex
from indexer.core.storage.schema import Photo, PhotoStatus

MAX_LISTED = 5


@dataclass
class CheckReport:
    n_indexed: int = 0
    n_vectors: int = 0
    n_failed: int = 0
    n_pending: int = 0
    generation: int = 0
    model_id: str | None = None
    dim: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        facts = (
            f"{self.n_indexed} indexed photos, {self.n_vectors} vectors in the index "
            f"(generation {self.generation}), {self.n_failed} failed, {self.n_pending} pending; "
            f"model {self.model_id} (dim {self.dim})"
        )
        if self.ok:
            return [f"OK: {facts}"]
        return [f"FAILED: {len(self.problems)} problem(s); {facts}", *(f"  - {p}" for p in self.problems)]


def _ids_text(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:MAX_LISTED])
    return shown + (f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


def _check_rows(collection: Collection, report: CheckReport) -> dict[int, bytes]:
    """Read every row once; returns the vector blobs of the indexed rows."""
    blobs: dict[int, bytes] = {}
    bad_blob: list[int] = []
    with collection.session() as s, s.begin():
        report.generation = int(get_info(s, InfoKey.GENERATION) or 0)
        report.model_id = get_info(s, InfoKey.MODEL_ID)
        report.dim = int(get_info(s, InfoKey.DIM) or 0)
        stray_vectors: list[int] = []
        for row in s.execute(select(Photo.id, Photo.status, Photo.vector)):
            if row.status == PhotoStatus.INDEXED:
                report.n_indexed += 1
                if row.vector is None or len(row.vector) != report.dim * 4:
                    bad_blob.append(row.id)
                else:
                    blobs[row.id] = row.vector
            else:
                report.n_failed += row.status == PhotoStatus.ERROR
                report.n_pending += row.status == PhotoStatus.PENDING
                if row.vector is not None:
                    stray_vectors.append(row.id)
    if bad_blob:
        report.problems.append(
            f"{len(bad_blob)} indexed row(s) without a {report.dim}-dim vector: ids {_ids_text(bad_blob)}"
        )
    if stray_vectors:
        report.problems.append(f"non-indexed row(s) still holding a vector: ids {_ids_text(stray_vectors)}")
    if blobs:
        ids = sorted(blobs)
        matrix = np.frombuffer(b"".join(blobs[i] for i in ids), dtype=np.float32).reshape(len(ids), -1)
        norms = np.linalg.norm(matrix, axis=1)
        bad_norm = [ids[i] for i in np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3))]
        if bad_norm:
            report.problems.append(f"vector(s) not L2-normalised: ids {_ids_text(bad_norm)}")
    return blobs


def _check_index(collection: Collection, report: CheckReport, blobs: dict[int, bytes]) -> None:
    try:
        index = collection.read_index_file()
    except CollectionError as exc:
        if report.n_indexed == 0 and not collection.paths.vector_index.exists():
            return  # an empty collection needs no index file
        report.problems.append(str(exc))
        return
    report.n_vectors = index.ntotal
    if index.generation != report.generation:
        report.problems.append(
            f"the index file is stale (generation {index.generation}, database {report.generation}); "
            "run `dualens index` or `dualens rebuild-index`"
        )
    if report.dim and index.ntotal and index.dim != report.dim:
        report.problems.append(f"the index holds {index.dim}-dim vectors, the database {report.dim}-dim")
        return
    counts = Counter(index.ids().tolist())
    duplicated = sorted(i for i, c in counts.items() if c > 1)
    unknown = sorted(i for i in counts if i not in blobs)
    absent = sorted(i for i in blobs if i not in counts)
    if duplicated:
        report.problems.append(f"id(s) with more than one vector in the index: {_ids_text(duplicated)}")
    if unknown:
        report.problems.append(f"index vector(s) without an indexed row: ids {_ids_text(unknown)}")
    if absent:
        report.problems.append(f"indexed row(s) missing from the index: ids {_ids_text(absent)}")
    if duplicated or unknown or absent or not blobs:
        return
    if isinstance(index, CompressedIndex):
        if not index.lists_intact():
            report.problems.append(
                f"the index's list file {index.ivfdata} is damaged (its checksum differs); "
                "run `dualens rebuild-index`"
            )
            return
        _check_codes(index, report, blobs)
        return
    ids, held = index.contents()  # flat and IVF-Flat store the vectors uncompressed
    stored = np.frombuffer(b"".join(blobs[int(i)] for i in ids), dtype=np.float32).reshape(len(ids), -1)
    differ = sorted(ids[np.abs(held - stored).max(axis=1) > 1e-5].tolist())
    if differ:
        report.problems.append(f"index vector(s) that differ from the database: ids {_ids_text(differ)}")


def _check_codes(index: CompressedIndex, report: CheckReport, blobs: dict[int, bytes], n: int = 200) -> None:
    """IVF-PQ keeps codes, not vectors: each of a sample of stored vectors must find its own photo."""
    rng = np.random.default_rng(0)
    ids = np.array(sorted(blobs), dtype=np.int64)
    sample = np.sort(rng.choice(ids, size=min(n, len(ids)), replace=False))
    joined = b"".join(blobs[int(i)] for i in sample)
    queries = np.frombuffer(joined, dtype=np.float32).reshape(len(sample), -1)
    found = index.search(queries, 1, exact=True).ids[:, 0]
    lost = sorted(sample[found != sample].tolist())
    if lost:
        report.problems.append(f"index code(s) that do not find their own photo: ids {_ids_text(lost)}")


def check_collection(collection: Collection) -> CheckReport:
    report = CheckReport()
    damage = collection.integrity_problems()
    if damage:  # the rows cannot be trusted, nor read safely
        report.problems.extend(f"database integrity check: {line}" for line in damage[:MAX_LISTED])
        report.problems.append("restore the database from a backup, or move it away and index again")
        return report
    blobs = _check_rows(collection, report)
    _check_index(collection, report, blobs)
    return report

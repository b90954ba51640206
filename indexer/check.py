"""``dualens check``: the database and the FAISS file agree exactly.

Every row with status ``indexed`` has a vector blob of the collection's dimension, L2-normalised,
and exactly one vector in the index (equal to the blob where the index stores vectors exactly);
the index holds no id without such a row; the index file is current (same generation). The same
holds for the visual vectors and their index, where the collection keeps them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.compressed import CompressedIndex
from indexer.core.storage.schema import PhotoStatus
from indexer.core.storage.spaces import JOINT, VISUAL, Space
from indexer.core.vectors import non_unit_rows

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
    visual_dim: int = 0  # 0: the collection keeps no visual vectors (the joint ones serve)
    n_visual: int = 0  # vectors in the visual index
    n_without_visual: int = 0  # indexed rows of an older release: get theirs on the next `dualens index`
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
        if self.visual_dim:
            facts += f"; {self.n_visual} visual vectors (dim {self.visual_dim})"
        notes = []
        if self.n_without_visual:
            notes.append(
                f"  {self.n_without_visual} photo(s) indexed by an older release have no visual vector yet; "
                "`dualens index` adds them"
            )
        if self.ok:
            return [f"OK: {facts}", *notes]
        return [f"FAILED: {len(self.problems)} problem(s); {facts}", *(f"  - {p}" for p in self.problems)]


def _ids_text(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:MAX_LISTED])
    return shown + (f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


@dataclass
class _SpaceRows:
    """What the rows hold in one vector space."""

    dim: int
    blobs: dict[int, bytes] = field(default_factory=dict)  # indexed rows' vectors
    bad: list[int] = field(default_factory=list)  # indexed rows whose vector has the wrong size
    stray: list[int] = field(default_factory=list)  # rows that are not indexed but hold a vector

    def add(self, row_id: int, indexed: bool, blob: bytes | None, required: bool) -> None:
        if not indexed:
            if blob is not None:
                self.stray.append(row_id)
        elif blob is not None and len(blob) == self.dim * 4:
            self.blobs[row_id] = blob
        elif blob is not None or required:
            self.bad.append(row_id)

    def problems(self, what: str) -> list[str]:
        found = []
        if self.bad:
            found.append(
                f"{len(self.bad)} indexed row(s) without a {self.dim}-dim {what}: ids {_ids_text(self.bad)}"
            )
        if self.stray:
            found.append(f"non-indexed row(s) still holding a {what}: ids {_ids_text(self.stray)}")
        if self.blobs:
            ids = sorted(self.blobs)
            matrix = np.frombuffer(b"".join(self.blobs[i] for i in ids), dtype=np.float32).reshape(
                len(ids), -1
            )
            bad_norm = [ids[i] for i in non_unit_rows(matrix)]
            if bad_norm:
                found.append(
                    f"{len(bad_norm)} damaged {what}(s) (not finite unit vectors): "
                    f"ids {_ids_text(bad_norm)}; run `dualens index --reindex`"
                )
        return found


def _check_rows(collection: Collection, report: CheckReport) -> dict[Space, dict[int, bytes]]:
    """Read every row once; returns the vector blobs of the indexed rows, per space kept."""
    with collection.rows.vectors_for_check() as (facts, rows):
        report.generation, report.model_id = facts.generation, facts.model_id
        report.dim, report.visual_dim = facts.dim, facts.visual_dim
        joint, visual = _SpaceRows(report.dim), _SpaceRows(report.visual_dim)
        for row in rows:
            indexed = row.status == PhotoStatus.INDEXED
            report.n_indexed += indexed
            report.n_failed += row.status == PhotoStatus.ERROR
            report.n_pending += row.status == PhotoStatus.PENDING
            joint.add(row.id, indexed, row.vector, required=True)
            visual.add(row.id, indexed, row.visual, required=False)
            report.n_without_visual += bool(report.visual_dim and indexed and row.visual is None)
    report.problems.extend(joint.problems("vector"))
    if not report.visual_dim and visual.blobs:
        report.problems.append(
            "visual vectors are stored although the collection keeps none; run `dualens index`"
        )
    elif report.visual_dim:
        report.problems.extend(visual.problems("visual vector"))
    return {JOINT: joint.blobs, VISUAL: visual.blobs} if report.visual_dim else {JOINT: joint.blobs}


def _check_index(collection: Collection, report: CheckReport, blobs: dict[int, bytes], space: Space) -> None:
    name = "index" if space is JOINT else f"{space.name} index"
    dim = report.dim if space is JOINT else report.visual_dim
    try:
        index = collection.indexes.read_file(space)
    except CollectionError as exc:
        if not blobs and not space.path(collection.paths).exists():
            return  # an empty collection needs no index file
        report.problems.append(str(exc))
        return
    if space is JOINT:
        report.n_vectors = index.ntotal
    else:
        report.n_visual = index.ntotal
    if index.generation != report.generation:
        report.problems.append(
            f"the {name} file is stale (generation {index.generation}, database {report.generation}); "
            "run `dualens index` or `dualens rebuild-index`"
        )
    if dim and index.ntotal and index.dim != dim:
        report.problems.append(f"the {name} holds {index.dim}-dim vectors, the database {dim}-dim")
        return
    counts = Counter(index.ids().tolist())
    duplicated = sorted(i for i, c in counts.items() if c > 1)
    unknown = sorted(i for i in counts if i not in blobs)
    absent = sorted(i for i in blobs if i not in counts)
    if duplicated:
        report.problems.append(f"id(s) with more than one vector in the {name}: {_ids_text(duplicated)}")
    if unknown:
        report.problems.append(f"{name} vector(s) without an indexed row: ids {_ids_text(unknown)}")
    if absent:
        report.problems.append(f"indexed row(s) missing from the {name}: ids {_ids_text(absent)}")
    if duplicated or unknown or absent or not blobs:
        return
    if isinstance(index, CompressedIndex):
        if not index.lists_intact():
            report.problems.append(
                f"the {name}'s list file {index.ivfdata} is damaged (its checksum differs); "
                "run `dualens rebuild-index`"
            )
            return
        _check_codes(index, report, blobs)
        return
    ids, held = index.contents()  # flat and IVF-Flat store the vectors uncompressed
    stored = np.frombuffer(b"".join(blobs[int(i)] for i in ids), dtype=np.float32).reshape(len(ids), -1)
    with np.errstate(over="ignore", invalid="ignore"):  # a damaged row is reported once, above
        differ = sorted(ids[np.abs(held - stored).max(axis=1) > 1e-5].tolist())
    if differ:
        report.problems.append(f"{name} vector(s) that differ from the database: ids {_ids_text(differ)}")


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
    damage = collection.database.integrity_problems()
    if damage:  # the rows cannot be trusted, nor read safely
        report.problems.extend(f"database integrity check: {line}" for line in damage[:MAX_LISTED])
        report.problems.append("restore the database from a backup, or move it away and index again")
        return report
    for space, blobs in _check_rows(collection, report).items():
        _check_index(collection, report, blobs, space)
    return report

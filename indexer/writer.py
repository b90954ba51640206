"""Stage 4: write a batch of results in ONE database transaction.

A SIGKILL at any moment therefore loses at most the batch in flight: every committed row is
complete (metadata + L2-normalised float32 vector), and the generation counter moves in the same
transaction as the vectors, so the FAISS file can always tell whether it is stale
(``indexer.core.storage.batches`` keeps both promises; this module says what each result means).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.core.storage.batches import (
    BatchOutcome,
    CopiedVectors,
    FailedRead,
    FileState,
    KeptVectors,
    NewVectors,
    PhotoFacts,
    RowWrite,
    RowWriter,
)
from indexer.core.storage.collection import Collection
from indexer.core.storage.rows import ExistingRow
from indexer.decode import Decoded, DecodeFailure, FileFacts, KnownContent
from indexer.plan import WorkItem

__all__ = ["BatchOutcome", "BatchWriter", "Embedded", "Failed", "Reused", "Touched", "WriteOp"]


@dataclass(frozen=True)
class Embedded:
    """A decoded file and its vector: insert or re-embed."""

    item: WorkItem
    result: Decoded
    vector: np.ndarray
    visual: np.ndarray | None = None  # the model's visual vector, when it has one


@dataclass(frozen=True)
class Reused:
    """A file whose content is already indexed in row ``source_id``: copy (or move) that row's vector."""

    item: WorkItem
    result: KnownContent
    source_id: int
    move: bool  # True: the source row's file is gone, so the row itself takes the new path


@dataclass(frozen=True)
class Touched:
    """An indexed file whose mtime changed but whose content did not: keep the vector."""

    item: WorkItem
    result: KnownContent


@dataclass(frozen=True)
class Failed:
    item: WorkItem
    result: DecodeFailure


WriteOp = Embedded | Reused | Touched | Failed


def _file_state(item: WorkItem, facts: FileFacts | None) -> FileState:
    """The scanned file's columns, with what the read found where it read the file."""
    f = item.file
    if facts is None:
        return FileState(f.path, f.root, f.file_type, f.size, f.mtime_ns)
    return FileState(f.path, f.root, f.file_type, facts.size, facts.mtime_ns, facts.content_hash, hashed=True)


def _row_write(op: WriteOp) -> RowWrite:
    row_id = op.item.existing_id
    file = _file_state(op.item, op.result.facts)
    if isinstance(op, Embedded):
        r, m = op.result, op.result.meta
        facts = PhotoFacts(r.width, r.height, m.taken_at, m.camera_make, m.camera_model, m.gps_lat, m.gps_lon)
        return NewVectors(row_id, file, facts, op.vector, op.visual)
    if isinstance(op, Reused):
        return CopiedVectors(row_id, file, op.source_id, op.move)
    if isinstance(op, Touched):
        return KeptVectors(row_id, file)
    return FailedRead(row_id, file, op.result.reason)


class BatchWriter:
    """Writes one run's results, a transaction per batch (``run``: the run number of the rows;
    ``staging``: a re-index, its vectors staged beside the served ones until the switch)."""

    def __init__(self, collection: Collection, run: int, *, staging: bool = False) -> None:
        self.rows = RowWriter(collection.database, run, staging=staging)

    def write(self, ops: Sequence[WriteOp]) -> BatchOutcome:
        return self.rows.write([_row_write(op) for op in ops])

    def sweep(self, missing: Sequence[ExistingRow], claimed: set[int]) -> list[int]:
        """Delete the rows of files that are gone (and were not moved); returns the removed indexed ids."""
        return self.rows.delete([r.id for r in missing if r.id not in claimed])

"""Stage 4: write a batch of results in ONE database transaction.

A SIGKILL at any moment therefore loses at most the batch in flight: every committed row is
complete (metadata + L2-normalised float32 vector), and the generation counter moves in the same
transaction as the vectors, so the FAISS file can always tell whether it is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from indexer.core.errors import CollectionError, ModelMismatchError
from indexer.core.storage.collection import Collection, InfoKey, bump_generation, get_info, set_info, utcnow
from indexer.core.storage.schema import PLACE_FIELDS, Photo, PhotoStatus, vector_to_blob
from indexer.decode import Decoded, DecodeFailure, FileFacts, KnownContent
from indexer.plan import ExistingRow, WorkItem


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


@dataclass
class BatchOutcome:
    """What changed in the vector index, and the content hashes now indexed (for later reuse)."""

    added_ids: list[int] = field(default_factory=list)
    removed_ids: list[int] = field(default_factory=list)
    new_hashes: dict[str, int] = field(default_factory=dict)


def _apply_file(photo: Photo, item: WorkItem, facts: FileFacts | None, run: int) -> None:
    f = item.file
    photo.path = f.path
    photo.root = f.root
    photo.file_type = f.file_type
    photo.size = facts.size if facts else f.size
    photo.mtime_ns = facts.mtime_ns if facts else f.mtime_ns
    if facts is not None:
        photo.content_hash = facts.content_hash
    photo.seen_run = run


_META_FIELDS = (
    "width",
    "height",
    "taken_at",
    "camera_make",
    "camera_model",
    "gps_lat",
    "gps_lon",
    *PLACE_FIELDS,
)


def _copy_meta(target: Photo, source: Photo) -> None:
    for name in _META_FIELDS:
        setattr(target, name, getattr(source, name))


class BatchWriter:
    def __init__(self, collection: Collection, run: int) -> None:
        self.collection = collection
        self.run = run
        self.dim: int | None = None

    def _row(self, s: Session, item: WorkItem) -> Photo:
        if item.existing_id is not None:
            photo = s.get(Photo, item.existing_id)
            if photo is not None:
                return photo
        photo = Photo(status=PhotoStatus.PENDING, seen_run=self.run)
        s.add(photo)
        return photo

    def _check_dim(self, s: Session, dim: int) -> None:
        if self.dim is None:
            stored = get_info(s, InfoKey.DIM)
            if stored is None:
                set_info(s, InfoKey.DIM, dim)
                self.dim = dim
            else:
                self.dim = int(stored)
        if dim != self.dim:
            raise ModelMismatchError(
                f"the model gives {dim}-dimensional vectors but this collection holds {self.dim}-dimensional "
                "ones; use another --data directory or `dualens index --reindex`"
            )

    def write(self, ops: Sequence[WriteOp]) -> BatchOutcome:
        out = BatchOutcome()
        if not ops:
            return out
        now = utcnow()
        added: list[tuple[Photo, str | None]] = []  # ids known after the flush (one INSERT for many rows)
        with self.collection.session() as s, s.begin():
            for op in ops:
                if op.item.existing_id is not None and op.item.was_indexed and not isinstance(op, Touched):
                    out.removed_ids.append(op.item.existing_id)
                if isinstance(op, Embedded):
                    added.append(self._write_embedded(s, op, now))
                elif isinstance(op, Reused):
                    added.extend(self._write_reused(s, op, now))
                elif isinstance(op, Touched):
                    photo = self._row(s, op.item)
                    _apply_file(photo, op.item, op.result.facts, self.run)
                else:
                    self._write_failed(s, op, now)
            s.flush()
            for photo, content in added:
                out.added_ids.append(photo.id)
                if content:
                    out.new_hashes[content] = photo.id
            if out.added_ids or out.removed_ids:
                bump_generation(s)
        return out

    def _write_embedded(self, s: Session, op: Embedded, now: datetime) -> tuple[Photo, str | None]:
        vector = np.asarray(op.vector, dtype=np.float32).reshape(-1)  # unit length: the model's promise
        self._check_dim(s, int(vector.shape[0]))
        photo = self._row(s, op.item)
        r = op.result
        _apply_file(photo, op.item, r.facts, self.run)
        photo.width, photo.height = r.width, r.height
        photo.taken_at = r.meta.taken_at
        photo.camera_make, photo.camera_model = r.meta.camera_make, r.meta.camera_model
        photo.gps_lat, photo.gps_lon = r.meta.gps_lat, r.meta.gps_lon
        for name in PLACE_FIELDS:  # looked up again at the end of the run (Collection.fill_places)
            setattr(photo, name, None)
        photo.status, photo.error, photo.indexed_at = PhotoStatus.INDEXED, None, now
        photo.vector = vector_to_blob(vector)
        photo.visual = None if op.visual is None else vector_to_blob(op.visual)
        return photo, r.facts.content_hash

    def _write_reused(self, s: Session, op: Reused, now: datetime) -> list[tuple[Photo, str | None]]:
        source = s.get(Photo, op.source_id)
        if source is None or source.status != PhotoStatus.INDEXED or source.vector is None:
            raise CollectionError(
                f"photo {op.source_id} lost its vector while this run copied it; run `dualens index` again"
            )
        if op.move and op.item.existing_id is None:
            _apply_file(source, op.item, op.result.facts, self.run)  # same row id, same vector
            return []
        photo = self._row(s, op.item)
        _apply_file(photo, op.item, op.result.facts, self.run)
        _copy_meta(photo, source)
        photo.status, photo.error, photo.indexed_at = PhotoStatus.INDEXED, None, now
        photo.vector, photo.visual = source.vector, source.visual
        return [(photo, None)]

    def _write_failed(self, s: Session, op: Failed, now: datetime) -> None:
        photo = self._row(s, op.item)
        _apply_file(photo, op.item, op.result.facts, self.run)
        photo.status, photo.error, photo.indexed_at = PhotoStatus.ERROR, op.result.reason, now
        photo.vector = photo.visual = None
        photo.width = photo.height = None

    def sweep(self, missing: Sequence[ExistingRow], claimed: set[int]) -> list[int]:
        """Delete the rows of files that are gone (and were not moved); returns the removed indexed ids."""
        gone = [r for r in missing if r.id not in claimed]
        if not gone:
            return []
        with self.collection.session() as s, s.begin():
            ids = [r.id for r in gone]
            for start in range(0, len(ids), 500):
                s.execute(delete(Photo).where(Photo.id.in_(ids[start : start + 500])))
            removed = [r.id for r in gone if r.is_indexed]
            if removed:
                bump_generation(s)
        return removed

"""A run's writes: each batch in ONE transaction, the generation bumped in it when the set of
indexed vectors changes.

A SIGKILL at any moment therefore loses at most the batch in flight: every committed row is
complete (metadata + L2-normalised float32 vector), and the generation counter moves in the same
transaction as the vectors, so the FAISS file can always tell whether it is stale.

The rows of new files (most of a first run) go in through one bulk insert in that same transaction
(``indexer.core.storage.bulk``: COPY on PostgreSQL, executemany on SQLite), stored exactly as the
row-by-row ORM path stores them; rows already in the collection keep the ORM path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from indexer.core.errors import CollectionError, ModelMismatchError
from indexer.core.storage.bulk import insert_photos
from indexer.core.storage.database import Database, InfoKey, bump_generation, get_info, set_info, utcnow
from indexer.core.storage.rows import chunks
from indexer.core.storage.schema import PLACE_FIELDS, Photo, PhotoStatus, vector_to_blob
from indexer.core.vectors import non_unit_rows


@dataclass(frozen=True)
class FileState:
    """A file's columns as the run found them. ``hashed``: its content was read, so ``content_hash``
    replaces the stored one (a file only stat-ed keeps it)."""

    path: str
    root: str
    file_type: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    hashed: bool = False


@dataclass(frozen=True)
class PhotoFacts:
    """What decoding found in an image."""

    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


@dataclass(frozen=True)
class NewVectors:
    """Store freshly embedded vectors (in row ``row_id``, or a new row when None)."""

    row_id: int | None
    file: FileState
    facts: PhotoFacts
    vector: np.ndarray
    visual: np.ndarray | None = None


@dataclass(frozen=True)
class CopiedVectors:
    """Content already indexed in row ``source_id``: copy its vectors and metadata (``move``: the
    source's file is gone, so that row itself takes the new path, keeping its id)."""

    row_id: int | None
    file: FileState
    source_id: int
    move: bool


@dataclass(frozen=True)
class KeptVectors:
    """A file whose content did not change: only its file columns are updated."""

    row_id: int | None
    file: FileState


@dataclass(frozen=True)
class FailedRead:
    row_id: int | None
    file: FileState
    reason: str


RowWrite = NewVectors | CopiedVectors | KeptVectors | FailedRead


@dataclass
class BatchOutcome:
    """What changed in the vector index, and the content hashes now indexed (for later reuse)."""

    added_ids: list[int] = field(default_factory=list)
    removed_ids: list[int] = field(default_factory=list)
    new_hashes: dict[str, int] = field(default_factory=dict)


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


def _apply_file(photo: Photo, f: FileState, run: int) -> None:
    photo.path, photo.root, photo.file_type = f.path, f.root, f.file_type
    photo.size, photo.mtime_ns = f.size, f.mtime_ns
    if f.hashed:
        photo.content_hash = f.content_hash
    photo.seen_run = run


def _holds_vectors(photo: Photo) -> bool:
    return photo.status == PhotoStatus.INDEXED and photo.vector is not None


class RowWriter:
    """Writes one run's batches (``run``: the number recorded as each row's ``seen_run``).

    ``staging``: a re-index run (``indexer.core.storage.runs``). Its vectors go to ``next_vector`` /
    ``next_visual``; a row whose content is unchanged keeps serving its old vectors, one that is new
    or changed serves none (status pending) until the switch, so no served vector ever belongs to
    another content or to the new model.
    """

    def __init__(self, database: Database, run: int, *, staging: bool = False, bulk: bool = True) -> None:
        self.database = database
        self.run = run
        self.staging = staging
        self.bulk = bulk  # False: every row through the ORM (the old path, kept as the benchmark's baseline)
        self.dim: int | None = None

    def _row(self, s: Session, row_id: int | None) -> Photo:
        if row_id is not None:
            photo = s.get(Photo, row_id)
            if photo is not None:
                return photo
        photo = Photo(status=PhotoStatus.PENDING, seen_run=self.run)
        s.add(photo)
        return photo

    def _check_dim(self, s: Session, dim: int) -> None:
        if self.dim is None:
            key = InfoKey.NEXT_DIM if self.staging else InfoKey.DIM
            stored = get_info(s, key)
            if stored is None:
                set_info(s, key, dim)
                self.dim = dim
            else:
                self.dim = int(stored)
        if dim != self.dim:
            raise ModelMismatchError(
                f"the model gives {dim}-dimensional vectors but this collection holds {self.dim}-dimensional "
                "ones; use another --data directory or `dualens index --reindex`"
            )

    def write(self, writes: Sequence[RowWrite]) -> BatchOutcome:
        """Apply ``writes`` in one transaction. A row whose served vectors change or go leaves the
        index (``removed_ids``); a row that serves new vectors enters it (``added_ids``)."""
        out = BatchOutcome()
        if not writes:
            return out
        now = utcnow()
        fresh = [w for w in writes if isinstance(w, NewVectors) and self._in_bulk(w)]
        others = [w for w in writes if not self._in_bulk(w)]
        written: list[tuple[Photo, str | None, bool]] = []  # ids known after the flush (one INSERT)
        with self.database.writing() as s:
            for w in others:
                if isinstance(w, KeptVectors):
                    _apply_file(self._row(s, w.row_id), w.file, self.run)
                    continue
                existing = None if w.row_id is None else s.get(Photo, w.row_id)
                served = None if existing is None or not _holds_vectors(existing) else existing.vector
                if isinstance(w, NewVectors):
                    photo, content = self._write_new(s, w, now)
                elif isinstance(w, CopiedVectors):
                    copied = self._write_copied(s, w, now)
                    if copied is None:
                        continue  # a move: the source row takes the path, its vectors unchanged
                    photo, content = copied, None
                else:
                    photo, content = self._write_failed(s, w, now), None
                changed = photo.vector is not served  # the same blob object: left as it was
                if served is not None and changed:
                    out.removed_ids.append(photo.id)
                written.append((photo, content, changed and _holds_vectors(photo)))
            s.flush()
            for photo, content, enters in written:
                if enters:
                    out.added_ids.append(photo.id)
                if content:
                    out.new_hashes[content] = photo.id
            self._insert_fresh(s, fresh, now, out)
            if out.added_ids or out.removed_ids:
                bump_generation(s)
        return out

    def _in_bulk(self, w: RowWrite) -> bool:
        """Whether ``w`` is the row of a new file, which goes in through the bulk insert."""
        return self.bulk and isinstance(w, NewVectors) and w.row_id is None

    def _insert_fresh(
        self, s: Session, fresh: Sequence[NewVectors], now: datetime, out: BatchOutcome
    ) -> None:
        """New rows of new files, in one bulk insert (COPY / executemany) inside the batch's
        transaction: the same columns ``_write_new`` gives a new row, the vectors checked as a matrix."""
        if not fresh:
            return
        vectors = [np.asarray(w.vector, dtype=np.float32).reshape(-1) for w in fresh]
        for dim in sorted({int(v.shape[0]) for v in vectors}):
            self._check_dim(s, dim)
        blobs = unit_blobs(vectors)
        visuals = iter(unit_blobs([np.asarray(w.visual).reshape(-1) for w in fresh if w.visual is not None]))
        rows = [
            self._fresh_row(w, blob, None if w.visual is None else next(visuals), now)
            for w, blob in zip(fresh, blobs, strict=True)
        ]
        ids = insert_photos(s, rows)
        for w, row_id in zip(fresh, ids, strict=True):
            if not self.staging:
                out.added_ids.append(row_id)
            if w.file.content_hash:
                out.new_hashes[w.file.content_hash] = row_id

    def _fresh_row(
        self, w: NewVectors, blob: bytes, visual: bytes | None, now: datetime
    ) -> dict[str, object]:
        return fresh_row(w, blob, visual, now, run=self.run, staging=self.staging)

    def _write_new(self, s: Session, w: NewVectors, now: datetime) -> tuple[Photo, str | None]:
        vector = np.asarray(w.vector, dtype=np.float32).reshape(-1)  # unit length: the model's promise
        self._check_dim(s, int(vector.shape[0]))
        photo = self._row(s, w.row_id)
        same_content = w.file.hashed and photo.content_hash == w.file.content_hash
        keeps_served = self.staging and same_content and _holds_vectors(photo)
        _apply_file(photo, w.file, self.run)
        m = w.facts
        photo.width, photo.height = m.width, m.height
        photo.taken_at = m.taken_at
        photo.camera_make, photo.camera_model = m.camera_make, m.camera_model
        photo.gps_lat, photo.gps_lon = m.gps_lat, m.gps_lon
        if not keeps_served:  # looked up again at the end of the run (the places stage)
            for name in PLACE_FIELDS:
                setattr(photo, name, None)
        blob = vector_to_blob(vector)
        visual = None if w.visual is None else vector_to_blob(w.visual)
        photo.error, photo.indexed_at = None, now
        if self.staging:
            photo.next_vector, photo.next_visual = blob, visual
            if not keeps_served:  # new or changed content: nothing served until the switch
                photo.status, photo.vector, photo.visual = PhotoStatus.PENDING, None, None
        else:
            photo.status, photo.vector, photo.visual = PhotoStatus.INDEXED, blob, visual
            photo.next_vector = photo.next_visual = None
        return photo, w.file.content_hash

    def _write_copied(self, s: Session, w: CopiedVectors, now: datetime) -> Photo | None:
        """None for a move (the source row itself takes the new path, keeping its id and vectors)."""
        source = s.get(Photo, w.source_id)
        lends = source is not None and (
            source.next_vector is not None if self.staging else _holds_vectors(source)
        )
        if source is None or not lends:
            raise CollectionError(
                f"photo {w.source_id} lost its vector while this run copied it; run `dualens index` again"
            )
        if w.move and w.row_id is None:
            _apply_file(source, w.file, self.run)  # same row id, same vectors
            return None
        photo = self._row(s, w.row_id)
        same_content = w.file.hashed and photo.content_hash == w.file.content_hash
        keeps_served = self.staging and same_content and _holds_vectors(photo) and not _holds_vectors(source)
        _apply_file(photo, w.file, self.run)
        for name in _META_FIELDS:
            setattr(photo, name, getattr(source, name))
        photo.error, photo.indexed_at = None, now
        photo.next_vector, photo.next_visual = source.next_vector, source.next_visual
        if not keeps_served:
            photo.status, photo.vector, photo.visual = source.status, source.vector, source.visual
        return photo

    def _write_failed(self, s: Session, w: FailedRead, now: datetime) -> Photo:
        photo = self._row(s, w.row_id)
        _apply_file(photo, w.file, self.run)
        photo.status, photo.error, photo.indexed_at = PhotoStatus.ERROR, w.reason, now
        photo.vector = photo.visual = photo.next_vector = photo.next_visual = None
        photo.width = photo.height = None
        return photo

    def delete(self, ids: Sequence[int]) -> list[int]:
        """Delete the rows ``ids`` in one transaction; returns those of them that were indexed."""
        if not ids:
            return []
        with self.database.writing() as s:
            removed: list[int] = []
            for chunk in chunks(list(ids)):
                held = select(Photo.id).where(
                    Photo.id.in_(chunk), Photo.status == PhotoStatus.INDEXED, Photo.vector.is_not(None)
                )
                removed.extend(s.scalars(held))
                s.execute(delete(Photo).where(Photo.id.in_(chunk)))
            if removed:
                bump_generation(s)
        return removed


def unit_blobs(vectors: Sequence[np.ndarray]) -> list[bytes]:
    """Each vector as a float32 blob, all checked at once to be finite unit vectors (the storage
    boundary, as ``vector_to_blob``)."""
    if not vectors:
        return []
    if len({v.shape for v in vectors}) > 1:
        return [vector_to_blob(v) for v in vectors]
    matrix = np.ascontiguousarray(np.stack(vectors), dtype=np.float32)
    if len(non_unit_rows(matrix)):
        raise CollectionError("refusing to store a vector that is not a finite unit-length vector")
    return [row.tobytes() for row in matrix]


def fresh_row(
    w: NewVectors, blob: bytes, visual: bytes | None, now: datetime, *, run: int, staging: bool
) -> dict[str, object]:
    """The columns of a new file's new row (``staging``: a re-index run's, served after the switch)."""
    f, m = w.file, w.facts
    row: dict[str, object] = {
        "path": f.path, "root": f.root, "file_type": f.file_type, "size": f.size,
        "mtime_ns": f.mtime_ns, "content_hash": f.content_hash if f.hashed else None,
        "seen_run": run, "width": m.width, "height": m.height, "taken_at": m.taken_at,
        "camera_make": m.camera_make, "camera_model": m.camera_model,
        "gps_lat": m.gps_lat, "gps_lon": m.gps_lon, "indexed_at": now,
    }  # fmt: skip
    if staging:  # new content: nothing served until the switch
        row.update(status=PhotoStatus.PENDING, next_vector=blob, next_visual=visual)
    else:
        row.update(status=PhotoStatus.INDEXED, vector=blob, visual=visual)
    return row

"""The photo rows: what indexing, checking and search read from them, and the small writes beside
the batches (places, roots). Every reader runs in one transaction (a snapshot, or the caller's).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from indexer.core.errors import CollectionError, NotFoundError
from indexer.core.places import Place
from indexer.core.storage.compressed import STREAM_CHUNK
from indexer.core.storage.database import (
    Database,
    InfoKey,
    ModelFacts,
    get_info,
    get_int,
    model_facts,
    utcnow,
)
from indexer.core.storage.schema import Photo, PhotoStatus, Root, blobs_to_matrix
from indexer.core.storage.spaces import JOINT, Space

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # row ids are SQL BIGINTs: SQLite cannot even bind others
CHUNK = 500  # ids per IN (...) list


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


@dataclass(frozen=True)
class CollectionStats:
    n_indexed: int
    n_failed: int
    model_id: str | None
    dim: int | None
    generation: int
    last_indexed_at: datetime | None
    roots: tuple[Path, ...]
    n_pending: int = 0  # rows waiting to be (re-)embedded, e.g. new photos of an unfinished re-index
    model_generation: int = 0  # an index of an older generation holds another model's vectors


@dataclass(frozen=True)
class ExistingRow:
    """A row as the plan of a run sees it: its file's columns, and whether it holds vectors."""

    id: int
    path: str
    size: int
    mtime_ns: int
    status: PhotoStatus
    content_hash: str | None
    has_vector: bool
    has_visual: bool = False
    has_next: bool = False  # the vector of a pending re-index's model is staged
    has_next_visual: bool = False

    @property
    def is_indexed(self) -> bool:
        return self.status == PhotoStatus.INDEXED and self.has_vector


@dataclass(frozen=True)
class FailedFile:
    path: str
    error: str | None


@dataclass(frozen=True)
class GpsPosition:
    """A photo whose GPS position has no place yet."""

    id: int
    lat: float
    lon: float


@dataclass(frozen=True)
class StoredVectors:
    """One row's status and vector blobs, as ``dualens check`` reads them."""

    id: int
    status: PhotoStatus
    vector: bytes | None
    visual: bytes | None


def _in_space(space: Space) -> list[Any]:
    """The rows a space's index holds: indexed ones (with a visual vector, for the visual space)."""
    conditions: list[Any] = [Photo.status == PhotoStatus.INDEXED]
    if space is not JOINT:  # rows of older runs get theirs on the next `dualens index`
        conditions.append(getattr(Photo, space.column).is_not(None))
    return conditions


def count_indexed(session: Session, space: Space = JOINT) -> int:
    return int(session.scalar(select(func.count()).where(*_in_space(space))) or 0)


def indexed_vector_chunks(
    session: Session, dim: int, rows: int = STREAM_CHUNK, space: Space = JOINT
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of every indexed row in id order, ``rows`` at a time (keyset pages over the
    (status, id) index), read in the caller's transaction."""
    column = getattr(Photo, space.column)
    query = select(Photo.id, column.label("vector")).where(*_in_space(space)).order_by(Photo.id)
    last: int | None = None
    while True:
        page = session.execute((query if last is None else query.where(Photo.id > last)).limit(rows)).all()
        if not page:
            return
        bad = [r.id for r in page if r.vector is None or len(r.vector) != dim * 4]
        if bad:
            raise CollectionError(
                f"{len(bad)} indexed photo(s) have a missing or wrong-sized vector (e.g. id {bad[0]}); "
                "run `dualens index --reindex`"
            )
        last = int(page[-1].id)
        yield (
            np.fromiter((r.id for r in page), np.int64, len(page)),
            blobs_to_matrix([r.vector for r in page], dim),
        )


def read_indexed_vectors(session: Session, dim: int, space: Space = JOINT) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every indexed row, read in the caller's transaction."""
    parts = list(indexed_vector_chunks(session, dim, space=space))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _roots(s: Session) -> list[Path]:
    return [Path(p) for p in s.scalars(select(Root.path).order_by(Root.path))]


class PhotoRows:
    """Reads of the photo rows, and the writes that are not a run's batches."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # ------------------------------------------------------------------ facts
    def stats(self) -> CollectionStats:
        with self.database.session() as s:
            counts = dict(s.execute(select(Photo.status, func.count()).group_by(Photo.status)).all())
            last = get_info(s, InfoKey.LAST_INDEXED_AT)
            dim = get_int(s, InfoKey.DIM)
            return CollectionStats(
                n_indexed=int(counts.get(PhotoStatus.INDEXED, 0)),
                n_failed=int(counts.get(PhotoStatus.ERROR, 0)),
                model_id=get_info(s, InfoKey.MODEL_ID),
                dim=dim or None,
                generation=get_int(s, InfoKey.GENERATION),
                last_indexed_at=datetime.fromisoformat(last) if last else None,
                roots=tuple(_roots(s)),
                n_pending=int(counts.get(PhotoStatus.PENDING, 0)),
                model_generation=get_int(s, InfoKey.MODEL_GENERATION),
            )

    def roots(self) -> list[Path]:
        with self.database.session() as s:
            return _roots(s)

    # ------------------------------------------------------------------ rows by id or path
    def photos(self, ids: Sequence[int], *, session: Session | None = None) -> dict[int, Photo]:
        """Metadata rows by id, detached (the vector column is not loaded: use :meth:`vectors`)."""
        wanted = [i for i in (int(x) for x in ids) if _INT64_MIN <= i <= _INT64_MAX]  # others match no row
        out: dict[int, Photo] = {}
        with self.database.reading(session) as s:
            for chunk in chunks(wanted):
                blobs = defer(Photo.vector), defer(Photo.next_vector), defer(Photo.next_visual)
                for p in s.scalars(select(Photo).options(*blobs).where(Photo.id.in_(chunk))):
                    out[p.id] = p
            for p in out.values():
                s.expunge(p)
        return out

    def photo_by_path(self, path: str | Path) -> Photo | None:
        with self.database.session() as s:
            photo = s.scalars(
                select(Photo).options(defer(Photo.vector)).where(Photo.path == str(path))
            ).first()
            if photo is not None:
                s.expunge(photo)
            return photo

    def indexed_vectors(
        self, ids: Sequence[int], *, session: Session | None = None, space: Space = JOINT
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those of ``ids`` that are indexed now, sorted by id: the one chunked
        vector reader (the ``IN (...)`` lists stay far below every database's parameter limit)."""
        wanted = sorted({i for i in (int(x) for x in ids) if _INT64_MIN <= i <= _INT64_MAX})
        found: dict[int, bytes] = {}
        column = getattr(Photo, space.column)
        with self.database.reading(session) as s:
            dim = get_int(s, space.dim_key)
            for chunk in chunks(wanted):
                stmt = select(Photo.id, column.label("vector")).where(
                    Photo.id.in_(chunk), Photo.status == PhotoStatus.INDEXED
                )
                found.update({r.id: r.vector for r in s.execute(stmt) if r.vector is not None})
        keep = np.array(sorted(found), dtype=np.int64)
        return keep, blobs_to_matrix([found[int(i)] for i in keep], dim)

    def vectors(
        self, ids: Sequence[int], *, session: Session | None = None, space: Space = JOINT
    ) -> np.ndarray:
        """Stored vectors of indexed photos, in the order of ``ids``; NotFoundError if one has none."""
        wanted = [int(i) for i in ids]
        found_ids, matrix = self.indexed_vectors(wanted, session=session, space=space)
        position = {int(i): n for n, i in enumerate(found_ids)}
        missing = [i for i in wanted if i not in position]
        if missing:
            raise NotFoundError(f"photo id {missing[0]} is not an indexed photo of this collection")
        return matrix[[position[i] for i in wanted]]

    # ------------------------------------------------------------------ what indexing asks
    def rows_to_plan(self) -> list[ExistingRow]:
        """Every row's file columns: a run compares them with the scan without opening files."""
        stmt = select(
            Photo.id,
            Photo.path,
            Photo.size,
            Photo.mtime_ns,
            Photo.status,
            Photo.content_hash,
            Photo.vector.is_not(None).label("has_vector"),
            Photo.visual.is_not(None).label("has_visual"),
            Photo.next_vector.is_not(None).label("has_next"),
            Photo.next_visual.is_not(None).label("has_next_visual"),
        )
        with self.database.session() as s:
            return [
                ExistingRow(
                    r.id,
                    r.path,
                    r.size,
                    r.mtime_ns,
                    r.status,
                    r.content_hash,
                    bool(r.has_vector),
                    bool(r.has_visual),
                    bool(r.has_next),
                    bool(r.has_next_visual),
                )
                for r in s.execute(stmt)
            ]

    def failed_files(self) -> list[FailedFile]:
        """The files that could not be indexed, by path, with the reason."""
        stmt = select(Photo.path, Photo.error).where(Photo.status == PhotoStatus.ERROR).order_by(Photo.path)
        with self.database.session() as s:
            return [FailedFile(r.path, r.error) for r in s.execute(stmt)]

    @contextmanager
    def vectors_for_check(self) -> Iterator[tuple[ModelFacts, Iterator[StoredVectors]]]:
        """The model facts and every row's vectors, read in one transaction (``dualens check``)."""
        with self.database.writing() as s:
            rows = (
                StoredVectors(r.id, r.status, r.vector, r.visual)
                for r in s.execute(select(Photo.id, Photo.status, Photo.vector, Photo.visual))
            )
            yield model_facts(s), rows

    def places_to_fill(self, limit: int) -> list[GpsPosition]:
        """Up to ``limit`` photos whose GPS position has not been looked up (new or changed photos,
        and every photo of a collection from before places)."""
        stmt = (
            select(Photo.id, Photo.gps_lat, Photo.gps_lon)
            .where(Photo.gps_lat.is_not(None), Photo.gps_lon.is_not(None), Photo.place_country.is_(None))
            .limit(limit)
        )
        with self.database.session() as s:
            return [GpsPosition(r.id, float(r.gps_lat), float(r.gps_lon)) for r in s.execute(stmt)]

    def write_places(self, places: Sequence[tuple[int, Place | None]]) -> None:
        """Record each photo's place in one transaction; None marks a position looked up with no
        city near enough ("" as its country), so it is not tried again."""
        if not places:
            return
        values = [
            {"id": row_id, "place_city": p.city if p else "", "place_region": p.region if p else "",
             "place_country": p.country if p else ""}
            for row_id, p in places
        ]  # fmt: skip
        with self.database.writing() as s:
            s.execute(update(Photo), values)

    def record_roots(self, roots: Sequence[str]) -> None:
        """Remember the folders indexed (a later run without folders indexes them again)."""
        with self.database.writing() as s:
            known = set(s.scalars(select(Root.path)))
            for root in roots:
                if root not in known:
                    s.add(Root(path=root, added_at=utcnow()))

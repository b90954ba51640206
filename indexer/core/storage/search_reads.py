"""What search reads from a collection's database, named for what search needs.

search/ composes no SQL: it asks this module for the ids its filters allow, the rows of its hits,
the facts its filter pickers offer, the content hashes duplicates are grouped by, and the stored
index generation and model fingerprint. Filters reach storage as a :class:`PhotoFilter`, a plain
spec that only this module turns into SQL (every dialect difference stays inside storage).

Every read sees indexed photos only (status ``indexed``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from indexer.core.storage.collection import (
    JOINT,
    Collection,
    InfoKey,
    Space,
    get_info,
    indexed_vector_chunks,
)
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.storage.text import TextMatch, count_text_matches, text_matches
from indexer.core.text import to_stored

HIT_COLUMNS = (
    Photo.id,
    Photo.path,
    Photo.width,
    Photo.height,
    Photo.taken_at,
    Photo.camera_make,
    Photo.camera_model,
    Photo.file_type,
    Photo.size,
    Photo.mtime_ns,
    Photo.place_city,
    Photo.place_region,
    Photo.place_country,
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CHUNK = 900  # ids per IN (...) list: far below every database's parameter limit


@dataclass(frozen=True)
class PhotoFilter:
    """Which indexed photos a search may rank; every field narrows (an empty spec allows all).

    ``path_prefixes`` are absolute prefixes ending with a separator (a photo passes when its path
    starts with one of them, case-sensitively); dates are inclusive days of the EXIF date, or of
    the file's modification time (local time) for a photo without one; ``place`` is a city, region
    or country, in any case.
    """

    path_prefixes: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    file_types: tuple[str, ...] = ()
    place: str | None = None

    @property
    def restricts(self) -> bool:
        return bool(self.path_prefixes or self.date_from or self.date_to or self.file_types or self.place)


@dataclass(frozen=True)
class DateRange:
    """The span of the indexed photos' EXIF dates and of their files' modification times."""

    first_taken: datetime | None
    last_taken: datetime | None
    first_mtime_ns: int | None
    last_mtime_ns: int | None


# ------------------------------------------------------------------ filters
def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min)


def _ns(moment: datetime) -> int:
    """Local naive datetime -> epoch nanoseconds (mtime is compared in local time, like EXIF).

    Clamped to the int64 range of the column: year 1 and year 9999 are valid filter dates.
    """
    try:
        ns = int(moment.timestamp() * 1_000_000_000)
    except (ValueError, OverflowError):  # before year 1 once shifted to UTC, or past the platform's range
        ns = _INT64_MIN if moment.year < 1970 else _INT64_MAX
    return max(_INT64_MIN, min(_INT64_MAX, ns))


def _end_of(day: date) -> datetime | None:
    """The first moment after ``day``; None after the last representable day (no upper bound)."""
    try:
        return _start_of(day) + timedelta(days=1)
    except OverflowError:
        return None


def date_clause(date_from: date | None, date_to: date | None) -> ColumnElement[bool] | None:
    """EXIF date in range, or no EXIF date and mtime in range (both bounds inclusive days)."""
    if date_from is None and date_to is None:
        return None
    taken: list[ColumnElement[bool]] = [Photo.taken_at.is_not(None)]
    mtime: list[ColumnElement[bool]] = [Photo.taken_at.is_(None)]
    if date_from is not None:
        start = _start_of(date_from)
        taken.append(Photo.taken_at >= start)
        mtime.append(Photo.mtime_ns >= _ns(start))
    end = _end_of(date_to) if date_to is not None else None
    if end is not None:
        taken.append(Photo.taken_at < end)
        mtime.append(Photo.mtime_ns < _ns(end))
    return or_(and_(*taken), and_(*mtime))


def allowed_ids_statement(spec: PhotoFilter) -> Select[Any]:
    """SELECT of the ids of indexed photos that pass the spec."""
    clauses: list[ColumnElement[bool]] = [Photo.status == PhotoStatus.INDEXED]
    if spec.path_prefixes:
        # substr equality, not LIKE: SQLite's LIKE ignores case and would let /a/Cats match /a/cats
        stored = [to_stored(p) for p in spec.path_prefixes]  # compared as the database holds the paths
        clauses.append(or_(*(func.substr(Photo.path, 1, len(p)) == p for p in stored)))
    when = date_clause(spec.date_from, spec.date_to)
    if when is not None:
        clauses.append(when)
    if spec.file_types:
        clauses.append(Photo.file_type.in_(spec.file_types))
    if spec.place:
        name = spec.place.lower()
        columns = (Photo.place_city, Photo.place_region, Photo.place_country)
        clauses.append(or_(*(func.lower(column) == name for column in columns)))
    return select(Photo.id).where(*clauses)


def allowed_ids(collection: Collection, spec: PhotoFilter) -> np.ndarray:
    """The ids (int64) of the indexed photos that pass the spec, in no particular order."""
    with collection.session() as session:
        ids = session.scalars(allowed_ids_statement(spec)).all()
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def word_matches(collection: Collection, words: str, limit: int, spec: PhotoFilter | None) -> list[TextMatch]:
    """The indexed photos that pass the spec (all without one) whose recognised text holds every word,
    best first, at most ``limit``: the filter and the limit applied in one bounded query."""
    among = None if spec is None else allowed_ids_statement(spec)
    return text_matches(collection.database, words, limit, among=among)


def count_word_matches(collection: Collection, words: str, spec: PhotoFilter | None) -> int:
    """How many indexed photos that pass the spec hold every word in their recognised text (counted
    in the database, whatever their number)."""
    among = None if spec is None else allowed_ids_statement(spec)
    return count_text_matches(collection.database, words, among)


def date_keys(collection: Collection, spec: PhotoFilter) -> list[tuple[int, str, datetime | None, int]]:
    """(id, path, EXIF date, mtime ns) of the indexed photos that pass the spec, in no particular
    order: what a newest-first listing (the timeline) sorts by, without reading whole rows."""
    statement = allowed_ids_statement(spec).with_only_columns(
        Photo.id, Photo.path, Photo.taken_at, Photo.mtime_ns
    )
    with collection.engine.connect() as conn:
        return [(int(i), str(p), t, int(m or 0)) for i, p, t, m in conn.execute(statement)]


# ------------------------------------------------------------------ hits
def hit_rows(collection: Collection, ids: Sequence[int]) -> dict[int, Any]:
    """Rows of :data:`HIT_COLUMNS` of those ``ids`` that are indexed photos, by id (Core rows: no ORM
    objects on the query path)."""
    wanted = [i for i in (int(x) for x in ids) if _INT64_MIN <= i <= _INT64_MAX]
    out: dict[int, Any] = {}
    if not wanted:
        return out
    with collection.engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            statement = select(*HIT_COLUMNS).where(Photo.id.in_(chunk), Photo.status == PhotoStatus.INDEXED)
            out.update({int(row.id): row for row in conn.execute(statement)})
    return out


# ------------------------------------------------------------------ facts kept in collection_info
def stored_index_generation(collection: Collection) -> int | None:
    """The generation of the last vector index the indexer saved, None before the first."""
    with collection.session() as session:
        saved = get_info(session, InfoKey.INDEX_GENERATION)
    return None if saved is None else int(saved)


def model_fingerprint(collection: Collection) -> str | None:
    """The content hash of the model files the collection was indexed with (None: not recorded)."""
    with collection.session() as session:
        return get_info(session, InfoKey.MODEL_FINGERPRINT)


# ------------------------------------------------------------------ facets
def folder_rows(collection: Collection) -> list[tuple[str, str, str]]:
    """(path, root, file type) of every indexed photo."""
    with collection.session() as session:
        rows = session.execute(
            select(Photo.path, Photo.root, Photo.file_type).where(Photo.status == PhotoStatus.INDEXED)
        )
        return [(str(path), str(root), str(file_type or "")) for path, root, file_type in rows]


def date_range(collection: Collection) -> DateRange:
    """The first and last EXIF dates and modification times of the indexed photos."""
    indexed = Photo.status == PhotoStatus.INDEXED
    with collection.session() as session:
        first, last = session.execute(
            select(func.min(Photo.taken_at), func.max(Photo.taken_at)).where(indexed)
        ).one()
        lo, hi = session.execute(
            select(func.min(Photo.mtime_ns), func.max(Photo.mtime_ns)).where(indexed)
        ).one()
    return DateRange(first, last, None if lo is None else int(lo), None if hi is None else int(hi))


def place_counts(collection: Collection) -> list[tuple[str, int]]:
    """(name, photo count) of the countries, then of the cities, the indexed photos were taken in;
    most photos first within each."""
    out: list[tuple[str, int]] = []
    with collection.session() as session:
        for column in (Photo.place_country, Photo.place_city):
            n = func.count(Photo.id)
            rows = session.execute(
                select(column, n)
                .where(Photo.status == PhotoStatus.INDEXED, column.is_not(None), column != "")
                .group_by(column)
                .order_by(n.desc(), column)
            )
            out += [(str(name), int(count)) for name, count in rows]
    return out


# ------------------------------------------------------------------ duplicates
def shared_content_hashes(collection: Collection) -> list[tuple[str, int]]:
    """(content hash, id) of the indexed photos whose content hash another indexed photo shares,
    ordered by hash, then id."""
    with collection.session() as session:
        shared = (
            select(Photo.content_hash)
            .where(Photo.status == PhotoStatus.INDEXED, Photo.content_hash.is_not(None))
            .group_by(Photo.content_hash)
            .having(func.count() > 1)
        )
        rows = session.execute(
            select(Photo.content_hash, Photo.id)
            .where(Photo.status == PhotoStatus.INDEXED, Photo.content_hash.in_(shared))
            .order_by(Photo.content_hash, Photo.id)
        ).all()
    return [(str(content), int(photo_id)) for content, photo_id in rows]


@contextmanager
def vector_chunks(
    collection: Collection, dim: int, space: Space = JOINT
) -> Iterator[Iterator[tuple[np.ndarray, np.ndarray]]]:
    """(ids, vectors) of every indexed photo of ``space`` in id order, a chunk at a time, all read
    in one snapshot of the database (use the iterator inside the ``with`` block)."""
    with collection.snapshot() as session:
        yield indexed_vector_chunks(session, dim, space=space)

"""Search filters: folder prefix, date range (EXIF date, falling back to mtime), file type, min score.

Folder, date and type narrow the candidate set *before* the vector search (an SQL query gives the
allowed ids, FAISS searches only those), so the top-k is the true top-k of the filtered photos
also with an approximate index. The minimum score applies to the cosine of each hit.
"""

from __future__ import annotations

import calendar
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from indexer.core.errors import UsageError
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.text import to_stored

# user spellings -> the file_type the indexer stores
MATCH_LEVELS = ("good", "strong")  # --min-match: hide weaker bands of a text query's hits
FILE_TYPE_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "tif": "tiff", "heif": "heic"}


def normalise_file_type(value: str) -> str:
    t = value.strip().lower().lstrip(".")
    if not t or not t.isalnum():
        raise UsageError(f"{value!r} is not a file type; use e.g. jpg, png, heic")
    return FILE_TYPE_ALIASES.get(t, t)


@dataclass(frozen=True)
class Filters:
    folder: str | None = None  # path prefix: absolute, or relative to an indexed root
    date_from: date | None = None  # inclusive; EXIF DateTimeOriginal, falling back to mtime
    date_to: date | None = None  # inclusive
    file_types: tuple[str, ...] = ()  # ("jpg", "png"…); jpeg/tif/heif spellings accepted
    min_score: float | None = None  # on cosine similarity, in [-1, 1]
    min_match: str | None = None  # text queries: "good" or "strong" (search/relevance.py bands)
    place: str | None = None  # a city, region or country (any case) the photo's GPS position lies in

    def __post_init__(self) -> None:
        if self.folder is not None and not str(self.folder).strip():
            object.__setattr__(self, "folder", None)
        if self.place is not None:
            object.__setattr__(self, "place", " ".join(str(self.place).split()) or None)
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                object.__setattr__(self, name, value.date())
            elif value is not None and not isinstance(value, date):
                raise UsageError(f"{name} must be a date, not {value!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise UsageError(f"the date range is empty: {self.date_from} is after {self.date_to}")
        types = (self.file_types,) if isinstance(self.file_types, str) else tuple(self.file_types)
        object.__setattr__(self, "file_types", tuple(sorted({normalise_file_type(t) for t in types})))
        if self.min_match is not None and self.min_match not in MATCH_LEVELS:
            raise UsageError(f"the minimum match is {' or '.join(MATCH_LEVELS)}, not {self.min_match!r}")
        if self.min_score is not None:
            score = float(self.min_score)
            if not math.isfinite(score) or not -1.0 <= score <= 1.0:
                raise UsageError(f"the minimum score is a cosine between -1 and 1, not {self.min_score}")
            object.__setattr__(self, "min_score", score)

    @property
    def restricts_candidates(self) -> bool:
        """True when the filters narrow the candidate set (everything but the minimum score)."""
        return bool(self.folder or self.date_from or self.date_to or self.file_types or self.place)


def folder_prefixes(folder: str, roots: Sequence[Path]) -> list[str]:
    """Absolute path prefixes (ending with a separator) a folder filter stands for."""
    raw = Path(os.path.expanduser(folder))
    if raw.is_absolute():
        candidates = [Path(os.path.normpath(raw))]
    else:
        candidates = [Path(os.path.normpath(root / raw)) for root in roots]
        here = Path(os.path.abspath(raw))
        if _exists(here, folder=True):
            candidates.append(here)
    prefixes: list[str] = []
    for c in candidates:
        for variant in {str(c), str(c.resolve()) if _exists(c) else str(c)}:
            prefix = variant.rstrip(os.sep) + os.sep
            if prefix not in prefixes:
                prefixes.append(prefix)
    return prefixes


def _exists(path: Path, *, folder: bool = False) -> bool:
    """Like Path.exists() / is_dir(), but a name the system refuses (too long, a loop) is absent."""
    try:
        return path.is_dir() if folder else path.exists()
    except (OSError, RuntimeError):
        return False


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min)


def _ns(moment: datetime) -> int:
    """Local naive datetime -> epoch nanoseconds (mtime is compared in local time, like EXIF).

    Clamped to the int64 range of the column: year 1 and year 9999 are valid filter dates.
    """
    try:
        ns = int(moment.timestamp() * 1_000_000_000)
    except (ValueError, OverflowError):  # before year 1 once shifted to UTC, or past the platform's range
        ns = -(2**63) if moment.year < 1970 else 2**63 - 1
    return max(-(2**63), min(2**63 - 1, ns))


def _end_of(day: date | None) -> datetime | None:
    """The first moment after ``day`` (exclusive bound); None: no bound (the last day of year 9999)."""
    if day is None or day == date.max:
        return None
    return _start_of(day + timedelta(days=1))


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
    end = _end_of(date_to)
    if end is not None:
        taken.append(Photo.taken_at < end)
        mtime.append(Photo.mtime_ns < _ns(end))
    return or_(and_(*taken), and_(*mtime))


def allowed_ids_statement(filters: Filters, roots: Sequence[Path]) -> Select[Any]:
    """SELECT of the ids of indexed photos that pass the folder, date, type and place filters."""
    clauses: list[ColumnElement[bool]] = [Photo.status == PhotoStatus.INDEXED]
    if filters.folder:
        prefixes = folder_prefixes(filters.folder, roots)
        # substr equality, not LIKE: SQLite's LIKE ignores case and would let /a/Cats match /a/cats
        stored = [to_stored(p) for p in prefixes]  # compared as the database holds the paths
        clauses.append(or_(*(func.substr(Photo.path, 1, len(p)) == p for p in stored)))
    when = date_clause(filters.date_from, filters.date_to)
    if when is not None:
        clauses.append(when)
    if filters.file_types:
        clauses.append(Photo.file_type.in_(filters.file_types))
    if filters.place:
        name = filters.place.lower()
        columns = (Photo.place_city, Photo.place_region, Photo.place_country)
        clauses.append(or_(*(func.lower(column) == name for column in columns)))
    return select(Photo.id).where(*clauses)


_DATE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")


def parse_date(text: str | None, *, end: bool) -> date | None:
    """YYYY, YYYY-MM or YYYY-MM-DD; a partial date means its first day, or its last when ``end``."""
    if text is None:
        return None
    match = _DATE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a date; use YYYY-MM-DD, YYYY-MM or YYYY")
    year, month, day = (int(g) if g else None for g in match.groups())
    assert year is not None
    try:
        if month is None:
            return date(year, 12, 31) if end else date(year, 1, 1)
        if day is None:
            return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        return date(year, month, day)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a valid date ({exc})") from exc

"""Search filters: folder prefix, date range (EXIF date, falling back to mtime), file type, min score.

Folder, date, type and place narrow the candidate set *before* the vector search (storage turns
them, as a :class:`~indexer.core.storage.search_reads.PhotoFilter`, into the allowed ids; FAISS
searches only those), so the top-k is the true top-k of the filtered photos
also with an approximate index. The minimum score applies to the cosine of each hit.
"""

from __future__ import annotations

import calendar
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from indexer.core.errors import UsageError
from indexer.core.storage.search_reads import PhotoFilter

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


class RootsRule:
    """Which photos a search may return or rank by: those whose real path (symlinks resolved) lies
    inside one of the collection's roots (resolved too; a root that vanished stands for itself).

    What is served equals what may be read: a photo that a symlink inside a root pulled in from
    elsewhere is neither a hit nor a query term. Answers are remembered per path for this rule's life
    (a new rule comes with every newly loaded index), so a page costs a few ``stat`` calls at most.
    """

    _REMEMBERED = 100_000

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = tuple(dict.fromkeys(_real(Path(root)) for root in roots))
        self._inside: dict[str, bool] = {}

    def allows(self, path: str) -> bool:
        known = self._inside.get(path)
        if known is None:
            if len(self._inside) >= self._REMEMBERED:
                self._inside.clear()
            known = self._inside[path] = self._resolves_inside(path)
        return known

    def _resolves_inside(self, raw: str) -> bool:
        if not raw or "\x00" in raw or not os.path.isabs(raw):
            return False
        try:
            real = Path(raw).resolve(strict=False)
        except (OSError, RuntimeError):  # a loop of symlinks, a name the system refuses: not readable
            return False
        return any(real.is_relative_to(root) for root in self.roots)


def _real(path: Path) -> Path:
    """The path with symlinks resolved as far as they exist; the normalised path when unresolvable."""
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):  # a loop of symlinks, a name the system refuses
        return Path(os.path.normpath(path))


def photo_filter(filters: Filters, roots: Sequence[Path]) -> PhotoFilter:
    """The storage-side spec of the folder, date, type and place filters (the folder resolved to
    absolute path prefixes against ``roots``)."""
    prefixes = tuple(folder_prefixes(filters.folder, roots)) if filters.folder else ()
    return PhotoFilter(
        path_prefixes=prefixes,
        date_from=filters.date_from,
        date_to=filters.date_to,
        file_types=filters.file_types,
        place=filters.place,
    )


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

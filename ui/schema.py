"""The HTTP API's wire format, written once: `dualens serve` (ui/api.py) answers with these models and
`dualens ui --api` (ui/remote.py) reads them back into the search layer's own types.

Invariants: a field a response once had keeps its name and JSON type (new fields only add). An error
answer is ``{"error": {"code", "message"}}``; its status is the error class's ``http_status``
(indexer/core/errors.py) and its code ``ERROR_CODES[status]``; :func:`error_class` maps a status
and a code back to the class through the same table. A hit travels as ``Hit.to_json()`` and comes
back through ``Hit.from_json`` (search/hits.py, the hit's own codec).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from indexer.core.errors import (
    CollectionError,
    DualensError,
    ImageError,
    ImageProblem,
    NotFoundError,
    QueryError,
    UsageError,
)
from search import Facets, Filters, FolderOption, Hit, PlaceOption, Stats, Understood, parse_date

MAX_K = 200  # hits per request (`k`)
MAX_OFFSET = 10_000  # hits a request may skip (`offset`)

# ---------------------------------------------------------------------- errors


class Unauthorised(UsageError):
    """A request without the service's API key."""

    http_status = 401


class UploadTooLarge(ImageError):
    """An upload over the size limit, refused before it is read (its message states its size)."""

    http_status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=ImageProblem.TOO_LARGE)


ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorised",
    404: "not_found",
    413: "too_large",
    422: "bad_request",  # an image that cannot be read (a request that fails validation: "invalid_request")
    503: "unavailable",
}

# What an error answer is read back as: the first class whose status and code match.
CLIENT_ERRORS: tuple[type[DualensError], ...] = (
    Unauthorised,
    NotFoundError,
    UploadTooLarge,
    ImageError,
    QueryError,
    CollectionError,
)


def error_code(error: type[DualensError]) -> str:
    """The code an error class is answered with (its status decides it)."""
    return ERROR_CODES.get(error.http_status, "bad_request")


def error_class(status: int, code: str) -> type[DualensError] | None:
    """The error class an answer with this status and code stands for; None when none does."""
    return next((c for c in CLIENT_ERRORS if c.http_status == status and error_code(c) == code), None)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, code: str, message: str) -> ErrorBody:
        return cls(error=ErrorDetail(code=code, message=message))


# ---------------------------------------------------------------------- requests


class FilterParams(BaseModel):
    """The filters as query parameters (``?folder=…&after=2020&type=jpg&type=png``)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    folder: str | None = Field(None, max_length=4096, description="absolute, or relative to a root")
    after: str | None = Field(None, max_length=10, description="YYYY, YYYY-MM or YYYY-MM-DD")
    before: str | None = Field(None, max_length=10, description="YYYY, YYYY-MM or YYYY-MM-DD")
    kinds: list[str] | None = Field(None, alias="type", description="file type, e.g. jpg (repeatable)")
    min_score: float | None = Field(None, ge=-1.0, le=1.0, description="minimum cosine")
    min_match: Literal["good", "strong"] | None = Field(
        None, description="text queries: this match band or better"
    )
    place: str | None = Field(None, max_length=200, description="a city, region or country")

    def to_filters(self) -> Filters:
        """The search layer's filters (a UsageError, one sentence, for a bad date)."""
        return Filters(
            folder=self.folder or None,
            date_from=parse_date(self.after, end=False),
            date_to=parse_date(self.before, end=True),
            file_types=tuple(self.kinds or ())[:32],
            min_score=self.min_score,
            min_match=self.min_match,
            place=self.place,
        )

    @classmethod
    def of(cls, filters: Filters) -> FilterParams:
        return cls.model_validate(
            {
                "folder": str(filters.folder) if filters.folder else None,
                "after": filters.date_from.isoformat() if filters.date_from else None,
                "before": filters.date_to.isoformat() if filters.date_to else None,
                "type": list(filters.file_types) or None,
                "min_score": float(filters.min_score) if filters.min_score is not None else None,
                "min_match": filters.min_match,
                "place": filters.place or None,
            }
        )

    def params(self) -> list[tuple[str, str]]:
        """The query parameters, in a stable order (``type`` repeated per file type)."""
        found: list[tuple[str, str]] = []
        for name in ("folder", "after", "before"):
            if value := getattr(self, name):
                found.append((name, value))
        found += [("type", kind) for kind in self.kinds or ()]
        if self.min_score is not None:
            found.append(("min_score", repr(self.min_score)))
        if self.min_match:
            found.append(("min_match", self.min_match))
        if self.place:
            found.append(("place", self.place))
        return found


# ---------------------------------------------------------------------- answers


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    photos: int
    generation: int


class StatsOut(BaseModel):
    photos: int
    failed: int
    pending: int = 0
    model: str | None
    dim: int | None
    generation: int
    last_indexed_at: datetime | None
    index: str = ""
    roots: list[str] = []

    @classmethod
    def of(cls, stats: Stats, index: str) -> StatsOut:
        return cls(
            photos=stats.n_indexed, failed=stats.n_failed, pending=stats.n_pending, model=stats.model_id,
            dim=stats.dim, generation=stats.generation, last_indexed_at=stats.last_indexed_at,
            index=index, roots=[str(r) for r in stats.roots],
        )  # fmt: skip

    def to_stats(self) -> Stats:
        return Stats(
            n_indexed=self.photos, n_failed=self.failed, model_id=self.model, dim=self.dim,
            generation=self.generation, last_indexed_at=self.last_indexed_at,
            roots=tuple(Path(r) for r in self.roots), n_pending=self.pending,
        )  # fmt: skip


class FolderOut(BaseModel):
    path: str
    label: str
    count: int


class PlaceOut(BaseModel):
    name: str
    count: int


class FacetsOut(BaseModel):
    """What filters can offer: folders with photo counts, file types, places, the date range."""

    folders: list[FolderOut]
    file_types: list[str]
    places: list[PlaceOut] = []
    first_date: date | None = None
    last_date: date | None = None

    @classmethod
    def of(cls, facets: Facets) -> FacetsOut:
        return cls(
            folders=[FolderOut(path=o.path, label=o.label, count=o.count) for o in facets.folders],
            file_types=list(facets.file_types),
            places=[PlaceOut(name=o.name, count=o.count) for o in facets.places],
            first_date=facets.first_date,
            last_date=facets.last_date,
        )

    def to_facets(self) -> Facets:
        return Facets(
            folders=tuple(FolderOption(o.path, o.label, o.count) for o in self.folders),
            file_types=tuple(self.file_types),
            first_date=self.first_date,
            last_date=self.last_date,
            places=tuple(PlaceOption(o.name, o.count) for o in self.places),
        )


class Page(BaseModel):
    """One page of hits: ``offset`` skipped, at most ``k`` shown; ``has_more``: a next page has hits;
    ``total``: photos the query ranked (its filters applied)."""

    k: int
    offset: int
    hits: list[dict[str, Any]]  # Hit.to_json() each
    has_more: bool = False
    total: int | None = None


class UnderstoodOut(BaseModel):
    """What a text query said about when and where (search/understand.py): those became filters;
    ``text`` is the visual description searched ("" when the query was only a date or a place)."""

    text: str
    after: str | None = None  # YYYY-MM-DD, inclusive
    before: str | None = None
    place: str | None = None
    phrases: list[str] = []
    summary: str = ""  # "after 2019-06-01, before 2019-08-31, place Paris"

    @classmethod
    def of(cls, understood: Understood) -> UnderstoodOut:
        return cls(**understood.to_json(), summary=understood.summary())


class SearchPage(Page):
    query: str
    understood: UnderstoodOut | None = None  # None: nothing read from the query (or literal=true)


class SimilarPage(Page):
    photo_id: int


UNDATED = "Undated"


def month_key(hit: Hit) -> str | None:
    """ "2019-07": the month of the date the timeline sorts a photo by (date taken, else the file's
    date); None when it has neither (no date taken and a file dated at or before the epoch)."""
    when: datetime | None = hit.taken_at or hit.mtime
    if when is None or (hit.taken_at is None and when.timestamp() <= 0):
        return None
    return f"{when:%Y-%m}"


def month_label(key: str | None) -> str:
    """ "July 2019" for "2019-07"; ``UNDATED`` for None."""
    return UNDATED if key is None else f"{datetime.strptime(key, '%Y-%m'):%B %Y}"


def month_runs(hits: Sequence[Hit]) -> list[tuple[str | None, list[Hit]]]:
    """The hits (newest first) in runs of one month each (:func:`month_key`), in their order; the
    undated ones in one run, last, whatever their place in ``hits``."""
    runs: list[tuple[str | None, list[Hit]]] = []
    undated: list[Hit] = []
    for hit in hits:
        key = month_key(hit)
        if key is None:
            undated.append(hit)
        elif runs and runs[-1][0] == key:
            runs[-1][1].append(hit)
        else:
            runs.append((key, [hit]))
    return runs + ([(None, undated)] if undated else [])


class MonthGroup(BaseModel):
    """A run of a timeline page's photos taken in one month (``month`` None: undated, always last)."""

    month: str | None  # "2019-07"
    label: str  # "July 2019" | "Undated"
    count: int  # photos of this page in it

    @classmethod
    def runs(cls, hits: Sequence[Hit]) -> list[MonthGroup]:
        """The page's months in the order of its hits (newest first), the undated ones last."""
        return [cls(month=key, label=month_label(key), count=len(run)) for key, run in month_runs(hits)]


class TimelinePage(Page):
    """The collection newest first (date taken, else the file's date), the filters applied; ``total``:
    photos they allow; ``months``: each hit's month key (None: undated), ``groups``: their runs."""

    months: list[str | None] = []
    groups: list[MonthGroup] = []


class LabelOut(BaseModel):
    label: str
    probability: float


class LabelsOut(BaseModel):
    labels: list[LabelOut]

    @classmethod
    def of(cls, scores: list[tuple[str, float]]) -> LabelsOut:
        return cls(labels=[LabelOut(label=name, probability=p) for name, p in scores])


class PhotoLabelsOut(LabelsOut):
    photo_id: int

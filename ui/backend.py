"""The UI's code path into the search layer: one shared object per server and data directory.

:class:`Backend` wraps a :class:`~search.Searcher` (model and index loaded once), a
:class:`~ui.safety.PathGuard` over the indexed roots and the thumbnail cache. Requests carry
photo ids and query text only; paths are looked up here, from the collection, never taken from
the browser.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image

from indexer.core.errors import QueryError
from search import (
    DuplicateGroup,
    Expected,
    Facets,
    Filters,
    Hit,
    QuarantineReport,
    Query,
    Searcher,
    Stats,
    Term,
    TermKind,
    Understood,
    UndoReport,
    parse_query,
    quarantine_photos,
    undo_quarantine,
)
from ui.config import UiConfig
from ui.safety import PathGuard, UnsafePathError
from ui.thumbnails import ThumbnailCache, ThumbSpec
from ui.thumbsize import snap

log = logging.getLogger(__name__)

RequestKind = Literal["text", "similar", "image", "timeline"]


@dataclass(frozen=True)
class SearchRequest:
    """What the user asked for, from the page or the HTTP API. ``photo_id`` is a database id, never
    a path; ``offset`` hits are skipped, then ``limit`` are shown. ``timeline``: the photos the
    filters allow, newest first (no query: match bands, minimum score and ``sort`` do not apply)."""

    kind: RequestKind
    text: str = ""
    photo_id: int | None = None
    filters: Filters = field(default_factory=Filters)
    limit: int = 24
    offset: int = 0
    sort: Literal["relevance", "date"] = "relevance"
    literal: bool = False  # text: no dates or places read from the query (search/understand.py)


@dataclass(frozen=True)
class ResultPage:
    hits: list[Hit]
    has_more: bool
    total: int | None = None  # photos the query ranked (the filters applied); None: not known
    understood: Understood | None = None  # text: the dates and place read from the query, if any


class UiBackend(Protocol):
    """What the page needs from a backend: in process (:class:`Backend`) or a `dualens serve`
    (:class:`~ui.remote.RemoteBackend`)."""

    config: UiConfig

    def refresh(self) -> bool: ...
    def stats(self) -> Stats: ...
    def facets(self) -> Facets: ...
    def run(self, request: SearchRequest, image: Image.Image | None = None) -> ResultPage: ...
    def photo(self, photo_id: int) -> Hit | None: ...
    def thumbnail(
        self, hit: Hit, *, preview: bool = False, px: int | None = None, square: bool = True
    ) -> Path | None: ...
    def original(self, hit: Hit) -> Path | None: ...
    def duplicates(self) -> list[DuplicateGroup]: ...
    def quarantine(
        self, photo_ids: list[int], folder: Path, *, copies_only: bool = True
    ) -> QuarantineReport: ...
    def undo(self, manifest: Path) -> UndoReport: ...
    def close(self) -> None: ...


def justified_cap(thumb_px: int) -> int:
    """The largest thumbnail of the justified grid: a third over ``thumb_px`` (a wide tile on a 3x phone)."""
    return thumb_px * 4 // 3


class Backend:
    """Searcher + path guard + thumbnails for one data directory, shared by all sessions."""

    def __init__(self, searcher: Searcher, config: UiConfig) -> None:
        self.searcher = searcher
        self.config = config
        self._lock = threading.Lock()
        self.guard = PathGuard(searcher.roots())
        self.thumbnails = ThumbnailCache(searcher.thumbnail_dir, self.guard)
        self.grid_spec = ThumbSpec(config.thumb_px, square=True)
        self.preview_spec = ThumbSpec(config.preview_px, square=False)
        self._duplicates: tuple[int, list[DuplicateGroup]] | None = None
        # rows of the photos each quarantine (by manifest) took out of the collection, for its undo
        self._set_aside: dict[str, list[dict[str, object]]] = {}

    @classmethod
    def open(cls, data: str | os.PathLike[str] | None, config: UiConfig | None = None) -> Backend:
        """Open the collection's searcher (a DualensError when there is no usable collection) and
        load the text tower now: the page shows its loading state once, and the first query is as
        fast as the next."""
        searcher = Searcher.open(data)
        try:
            searcher.warm_up()
        except BaseException:
            searcher.close()
            raise
        return cls(searcher, config or UiConfig.from_env())

    def refresh(self) -> bool:
        """Pick up a newer index written by the indexer since the last request."""
        with self._lock:
            reloaded = bool(self.searcher.reload_if_stale())
            if reloaded:
                self.guard = PathGuard(self.searcher.roots())
                self.thumbnails = ThumbnailCache(self.searcher.thumbnail_dir, self.guard)
            return reloaded

    def stats(self) -> Stats:
        return self.searcher.stats()

    def run(self, request: SearchRequest, image: Image.Image | None = None) -> ResultPage:
        """Run a request (the page's and the HTTP API's one path); one extra hit is fetched to know
        whether "Show more" has anything."""
        limit = max(1, min(request.limit, self.config.max_results))
        k, offset, sort, filters = limit + 1, request.offset, request.sort, request.filters
        understood, words, place = None, None, None
        if request.kind == "text":
            query = self.safe_query(request.text)
            hits, meant = self.searcher.search_understood(
                query, k=k, offset=offset, filters=filters, sort=sort, literal=request.literal
            )
            filters, understood = meant.filters, meant.understood
            words = meant.query.text if meant.query is not None else None  # a text: term ranks its matches
            place = meant.query.place if meant.query is not None else None  # narrows as the filter does
        elif request.kind == "similar":
            if request.photo_id is None:
                raise QueryError("no photo chosen")
            source = self.searcher.photo(int(request.photo_id))
            if source is not None and not self.guard.inside_roots(source.path):
                # a photo outside the indexed folders (a symlink pointing out) ranks nothing either
                raise QueryError(
                    f"photo {request.photo_id} is not available; choose a photo from the results"
                )
            hits = self.searcher.similar(
                int(request.photo_id), k=k, offset=offset, filters=filters, sort=sort
            )
        elif request.kind == "image":
            if image is None:
                raise QueryError("no uploaded photo")
            hits = self.searcher.search_image(image, k=k, offset=offset, filters=filters, sort=sort)
        elif request.kind == "timeline":
            filters = replace(filters, min_match=None, min_score=None)  # nothing ranked: no bands
            hits = self.searcher.list_by_date(filters, k=k, offset=offset)
        else:
            raise QueryError(f"unknown request kind {request.kind!r}")
        shown = [hit for hit in hits if self.guard.inside_roots(hit.path)]
        counted = _narrowed(filters, place) if place else filters
        total = 0 if counted is None else self.searcher.count(counted, words)
        if request.kind == "similar" and counted is not None:  # the chosen photo, when counted, is no result
            total -= 1 if self.searcher.allows(int(request.photo_id or 0), counted) else 0
        return ResultPage(
            hits=shown[:limit],
            has_more=len(hits) > limit,
            total=max(total, len(shown[:limit])),
            understood=understood,
        )

    def safe_query(self, text: str) -> Query:
        """Parse the query language, replacing image paths by the ids of indexed photos.

        A query typed into the page can name an indexed photo (``#42`` or its exact path) but never
        makes the server open a file: paths that are not indexed photos inside the roots are refused.
        """
        query = parse_query(text)
        terms: list[Term] = []
        for term in query.terms:
            if term.kind is TermKind.IMAGE and not isinstance(term.value, int):
                photo = self.searcher.photo_at(str(term.value))
                if photo is None or not self.guard.inside_roots(photo.path):
                    raise QueryError(
                        f"{term.value!s} is not an indexed photo; in the web page an image term must be "
                        "an indexed photo (#id or its full path). Upload other photos instead."
                    )
                term = Term.image(photo.id, term.weight)
            terms.append(term)
        return replace(query, terms=tuple(terms))  # its place and text: term kept

    def photo(self, photo_id: int) -> Hit | None:
        """Metadata of one indexed photo, or None when unknown or outside the roots."""
        hit = self.searcher.photo(int(photo_id))
        if hit is None or not self.guard.inside_roots(hit.path):
            return None
        return hit

    def thumbnail(
        self, hit: Hit, *, preview: bool = False, px: int | None = None, square: bool = True
    ) -> Path | None:
        """``px``: a grid thumbnail of that size, snapped to an allowed one (ui/thumbsize.py); not
        ``square``: the whole photo, its longest edge that size (the justified grid's tiles)."""
        spec = self.preview_spec if preview else self.grid_spec
        if (px is not None or not square) and not preview:
            cap = self.config.thumb_px if square else justified_cap(self.config.thumb_px)
            spec = ThumbSpec(snap(px or cap, cap), square=square)
        return self.thumbnails.get(hit.id, hit.path, spec)

    def index_label(self) -> str:
        """A few words on the vector index served now, for status pages."""
        return self.searcher.index_label()

    def classify(self, image: Image.Image | int, labels: list[str]) -> list[tuple[str, float]]:
        """Zero-shot label probabilities of an uploaded image or an indexed photo (by id)."""
        return self.searcher.classify(image, labels)

    def facets(self) -> Facets:
        """Folders, file types and dates the sidebar filters offer (cached per index generation)."""
        return self.searcher.facets()

    def original(self, hit: Hit) -> Path | None:
        """The photo's own file, for download (None when it is gone or outside the indexed folders)."""
        try:
            return self.guard.resolve(hit.path)
        except UnsafePathError:
            return None

    def duplicates(self) -> list[DuplicateGroup]:
        """Groups of copies inside the roots, found once per index generation."""
        generation = self.searcher.generation()
        cached = self._duplicates
        if cached is None or cached[0] != generation:
            groups = self.searcher.duplicates()
            kept = [g for g in groups if all(self.guard.inside_roots(m.path) for m in g.members)]
            cached = self._duplicates = (generation, kept)
        return [g for g in (_present(g) for g in cached[1]) if g is not None]

    def quarantine(self, photo_ids: list[int], folder: Path, *, copies_only: bool = True) -> QuarantineReport:
        """Move these photos (ids of duplicate copies, or of any photos when not ``copies_only``: a
        selection on the results; paths from the database, never the browser) aside and take their
        rows out of the collection at once (:func:`~search.quarantine_photos`, the CLI's too). The rows
        are kept beside the manifest (and here), for :meth:`undo`, even after a restart."""
        copies = {m.id for g in self.duplicates() for m in g.copies if not m.linked} if copies_only else None

        def accept(photo_id: int, file: Expected) -> bool:  # a duplicate's link is kept
            return (copies is None or photo_id in copies) and self.guard.inside_roots(file.path)

        report, rows = quarantine_photos(self.searcher.collection, photo_ids, folder, accept)
        with self._lock:
            self._set_aside[str(report.manifest)] = rows
        self.refresh()
        return report

    def undo(self, manifest: Path) -> UndoReport:
        """Put a quarantine's photos back in their places, and their rows into the collection and the
        index files (kept here, or beside the manifest by an earlier server): :func:`~search.undo_quarantine`;
        ``back_in_collection`` counts those that are in it again (the others return at the next
        `dualens index`)."""
        with self._lock:
            rows = self._set_aside.get(str(manifest))
        report = undo_quarantine(self.searcher.collection, manifest, rows)
        self.refresh()
        return report

    def close(self) -> None:
        self.searcher.close()


def _narrowed(filters: Filters, place: str) -> Filters | None:
    """The filters a query's ``place:`` term leaves (what its total counts): None when they name
    another place already, so that no photo can be in both."""
    if filters.place and filters.place.lower() != place.lower():
        return None
    return replace(filters, place=place)


def _present(group: DuplicateGroup) -> DuplicateGroup | None:
    """The group without the copies moved away since it was found (None: nothing left to review)."""
    members = tuple(m for m in group.members if os.path.lexists(m.path))
    if len(members) < 2 or members[0] is not group.keeper:
        return None
    return group if len(members) == len(group.members) else DuplicateGroup(members, group.reason)

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
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from PIL import Image
from sqlalchemy import func, select

from indexer.core.errors import QueryError
from indexer.core.settings import CollectionPaths
from indexer.core.storage.collection import Collection, CollectionStats
from indexer.core.storage.schema import Photo, PhotoStatus
from search import Filters, Hit, Query, Searcher, Term, TermKind, parse_query
from ui.config import UiConfig
from ui.safety import PathGuard
from ui.thumbnails import ThumbnailCache, ThumbSpec

log = logging.getLogger(__name__)

RequestKind = Literal["text", "similar", "image"]
MAX_FOLDER_OPTIONS = 2000


@dataclass(frozen=True)
class SearchRequest:
    """What the user asked for. ``photo_id`` is a database id, never a path."""

    kind: RequestKind
    text: str = ""
    photo_id: int | None = None
    filters: Filters = field(default_factory=Filters)
    limit: int = 24


@dataclass(frozen=True)
class ResultPage:
    hits: list[Hit]
    has_more: bool


@dataclass(frozen=True)
class FolderOption:
    path: str  # absolute folder path, the filter value
    label: str  # shown to the user: root name / relative path
    count: int


@dataclass(frozen=True)
class Facets:
    """What the sidebar filters can offer, read from the collection once per index generation."""

    folders: tuple[FolderOption, ...] = ()
    file_types: tuple[str, ...] = ()
    first_date: date | None = None
    last_date: date | None = None


class Backend:
    """Searcher + path guard + thumbnails for one data directory, shared by all sessions."""

    def __init__(self, searcher: Searcher, collection: Collection, config: UiConfig) -> None:
        self.searcher = searcher
        self.collection = collection
        self.config = config
        self._lock = threading.Lock()
        self._facets: tuple[int, Facets] | None = None
        self.guard = PathGuard(searcher.roots())
        self.thumbnails = ThumbnailCache(collection.paths.thumbnails, self.guard)
        self.grid_spec = ThumbSpec(config.thumb_px, square=True)
        self.preview_spec = ThumbSpec(config.preview_px, square=False)

    @classmethod
    def open(cls, data: str | os.PathLike[str] | None, config: UiConfig | None = None) -> Backend:
        """Open the collection (CollectionError when there is none) and its searcher."""
        paths = CollectionPaths.from_option(data)
        searcher = Searcher.open(paths.root)
        shared = getattr(searcher, "collection", None)
        collection = shared if isinstance(shared, Collection) else Collection.open(paths.root)
        return cls(searcher, collection, config or UiConfig.from_env())

    def refresh(self) -> bool:
        """Pick up a newer index written by the indexer since the last request."""
        with self._lock:
            reloaded = bool(self.searcher.reload_if_stale())
            if reloaded:
                self.guard = PathGuard(self.searcher.roots())
                self.thumbnails = ThumbnailCache(self.collection.paths.thumbnails, self.guard)
                self._facets = None
            return reloaded

    def stats(self) -> CollectionStats:
        return self.searcher.stats()

    def run(self, request: SearchRequest, image: Image.Image | None = None) -> ResultPage:
        """Run a request; one extra hit is fetched to know whether "Show more" has anything."""
        limit = max(1, min(request.limit, self.config.max_results))
        k = limit + 1
        if request.kind == "text":
            hits = self.searcher.search(self.safe_query(request.text), k=k, filters=request.filters)
        elif request.kind == "similar":
            if request.photo_id is None:
                raise QueryError("no photo chosen")
            hits = self.searcher.similar(int(request.photo_id), k=k, filters=request.filters)
        elif request.kind == "image":
            if image is None:
                raise QueryError("no uploaded photo")
            hits = self.searcher.search_image(image, k=k, filters=request.filters)
        else:
            raise QueryError(f"unknown request kind {request.kind!r}")
        shown = [hit for hit in hits if self.guard.inside_roots(hit.path)]
        return ResultPage(hits=shown[:limit], has_more=len(hits) > limit)

    def safe_query(self, text: str) -> Query:
        """Parse the query language, replacing image paths by the ids of indexed photos.

        A query typed into the page can name an indexed photo (``#42`` or its exact path) but never
        makes the server open a file: paths that are not indexed photos inside the roots are refused.
        """
        query = parse_query(text)
        terms: list[Term] = []
        for term in query.terms:
            if term.kind is TermKind.IMAGE and not isinstance(term.value, int):
                photo = self.collection.photo_by_path(str(term.value))
                if (
                    photo is None
                    or photo.status != PhotoStatus.INDEXED
                    or not self.guard.inside_roots(photo.path)
                ):
                    raise QueryError(
                        f"{term.value!s} is not an indexed photo; in the web page an image term must be "
                        "an indexed photo (#id or its full path). Upload other photos instead."
                    )
                term = Term.image(int(photo.id), term.weight)
            terms.append(term)
        return Query(tuple(terms))

    def photo(self, photo_id: int) -> Hit | None:
        """Metadata of one indexed photo, or None when unknown or outside the roots."""
        hit = self.searcher.photo(int(photo_id))
        if hit is None or not self.guard.inside_roots(hit.path):
            return None
        return hit

    def thumbnail(self, hit: Hit, *, preview: bool = False) -> Path | None:
        spec = self.preview_spec if preview else self.grid_spec
        return self.thumbnails.get(hit.id, hit.path, spec)

    def facets(self, generation: int) -> Facets:
        """Facets of the collection, recomputed when ``generation`` (from :meth:`stats`) changes."""
        cached = self._facets
        if cached is not None and cached[0] == generation:
            return cached[1]
        facets = read_facets(self.collection)
        self._facets = (generation, facets)
        return facets

    def close(self) -> None:
        self.collection.close()


def read_facets(collection: Collection) -> Facets:
    """Folders (every folder that holds indexed photos, and their parents up to the root),
    file types and the date range of the indexed photos."""
    counts: dict[str, int] = {}
    roots: dict[str, str] = {}
    types: set[str] = set()
    with collection.session() as session:
        rows = session.execute(
            select(Photo.path, Photo.root, Photo.file_type).where(Photo.status == PhotoStatus.INDEXED)
        )
        for path, root, file_type in rows:
            types.add((file_type or "").lower())
            _count_folders(Path(path).parent, Path(root), counts, roots)
        first, last = session.execute(
            select(func.min(Photo.taken_at), func.max(Photo.taken_at)).where(
                Photo.status == PhotoStatus.INDEXED
            )
        ).one()
        mtime_lo, mtime_hi = session.execute(
            select(func.min(Photo.mtime_ns), func.max(Photo.mtime_ns)).where(
                Photo.status == PhotoStatus.INDEXED
            )
        ).one()
    dates = [d.date() for d in (first, last) if d is not None]
    dates += [datetime.fromtimestamp(ns / 1e9).date() for ns in (mtime_lo, mtime_hi) if ns is not None]
    folders = tuple(
        FolderOption(path=folder, label=_folder_label(folder, roots[folder]), count=n)
        for folder, n in sorted(counts.items())[:MAX_FOLDER_OPTIONS]
    )
    return Facets(
        folders=folders,
        file_types=tuple(sorted(t for t in types if t)),
        first_date=min(dates) if dates else None,
        last_date=max(dates) if dates else None,
    )


def _count_folders(folder: Path, root: Path, counts: dict[str, int], roots: dict[str, str]) -> None:
    while True:
        key = str(folder)
        counts[key] = counts.get(key, 0) + 1
        roots.setdefault(key, str(root))
        if folder == root or folder.parent == folder or not folder.is_relative_to(root):
            return
        folder = folder.parent


def _folder_label(folder: str, root: str) -> str:
    root_path = Path(root)
    try:
        rel = Path(folder).relative_to(root_path)
    except ValueError:
        return folder
    name = root_path.name or str(root_path)
    return name if rel == Path(".") else f"{name}/{rel.as_posix()}"

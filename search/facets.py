"""Facets of a collection for filter pickers: folders with photo counts, file types, date range,
places (countries and cities) with photo counts.

Read from the database in one pass over the indexed rows; :class:`~search.Searcher` caches them per
index generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import func, select

from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, PhotoStatus

MAX_FOLDER_OPTIONS = 2000
MAX_PLACE_OPTIONS = 500


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
    places: tuple[PlaceOption, ...] = ()  # countries first, then cities, each by photo count


@dataclass(frozen=True)
class PlaceOption:
    name: str  # a country or a city: the place filter's value
    count: int


def read_places(collection: Collection) -> tuple[PlaceOption, ...]:
    """The countries, then the cities, the indexed photos were taken in, most photos first."""
    options: list[PlaceOption] = []
    with collection.session() as session:
        for column in (Photo.place_country, Photo.place_city):
            n = func.count(Photo.id)
            rows = session.execute(
                select(column, n)
                .where(Photo.status == PhotoStatus.INDEXED, column.is_not(None), column != "")
                .group_by(column)
                .order_by(n.desc(), column)
            )
            options += [PlaceOption(str(name), int(count)) for name, count in rows]
    return tuple(options[:MAX_PLACE_OPTIONS])


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
        places=read_places(collection),
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

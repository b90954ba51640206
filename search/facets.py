"""Facets of a collection for filter pickers: folders with photo counts, file types, date range,
places (countries and cities) with photo counts.

Read from the database in one pass over the indexed rows; :class:`~search.Searcher` caches them per
index generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from indexer.core.storage.collection import Collection
from indexer.core.storage.search_reads import date_range, folder_rows, place_counts

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
    return tuple(PlaceOption(name, count) for name, count in place_counts(collection)[:MAX_PLACE_OPTIONS])


def read_facets(collection: Collection) -> Facets:
    """Folders (every folder that holds indexed photos, and their parents up to the root),
    file types and the date range of the indexed photos."""
    counts: dict[str, int] = {}
    roots: dict[str, str] = {}
    types: set[str] = set()
    for path, root, file_type in folder_rows(collection):
        types.add(file_type.lower())
        _count_folders(Path(path).parent, Path(root), counts, roots)
    span = date_range(collection)
    dates = [d.date() for d in (span.first_taken, span.last_taken) if d is not None]
    dates += [
        datetime.fromtimestamp(ns / 1e9).date()
        for ns in (span.first_mtime_ns, span.last_mtime_ns)
        if ns is not None
    ]
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

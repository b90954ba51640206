"""Search layer: text, image and composite queries over a collection (see search/searcher.py).

This package's public names are what the UI and Python callers use; they never reach the database.
"""

from indexer.core.settings import CollectionPaths
from indexer.core.storage.collection import CollectionStats as Stats
from search.facets import Facets, FolderOption, PlaceOption
from search.filters import Filters, parse_date
from search.hits import Hit
from search.query import Query, Term, TermKind, parse_query
from search.searcher import IndexReport, Searcher


def collection_exists(data: str | None = None) -> bool:
    """Whether ``data`` (default: $DUALENS_DATA or data/) holds a collection to open."""
    return CollectionPaths.from_option(data).exists()


__all__ = [
    "Facets",
    "Filters",
    "FolderOption",
    "Hit",
    "IndexReport",
    "PlaceOption",
    "Query",
    "Searcher",
    "Stats",
    "Term",
    "TermKind",
    "collection_exists",
    "parse_date",
    "parse_query",
]

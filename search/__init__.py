"""Search layer: text, image and composite queries over a collection (see search/searcher.py).

This package's public names are what the UI and Python callers use; they never reach the database.
"""

from indexer.core.settings import CollectionPaths
from indexer.core.storage.collection import CollectionStats as Stats
from search.duplicates import DuplicateGroup, Member, find_duplicates, newest_first
from search.facets import Facets, FolderOption, PlaceOption
from search.filters import Filters, parse_date
from search.hits import Hit
from search.quarantine import Expected, QuarantineReport, UndoReport, move_aside, undo
from search.query import Query, Term, TermKind, parse_query
from search.searcher import IndexReport, Searcher
from search.text_terms import text_snippet, word_segments
from search.understand import Interpretation, Understood


def collection_exists(data: str | None = None) -> bool:
    """Whether ``data`` (default: $DUALENS_DATA or data/) holds a collection to open."""
    return CollectionPaths.from_option(data).exists()


__all__ = [
    "DuplicateGroup",
    "Expected",
    "Facets",
    "Filters",
    "FolderOption",
    "Hit",
    "IndexReport",
    "Interpretation",
    "Member",
    "PlaceOption",
    "QuarantineReport",
    "Query",
    "Searcher",
    "Stats",
    "Term",
    "TermKind",
    "Understood",
    "UndoReport",
    "collection_exists",
    "find_duplicates",
    "move_aside",
    "newest_first",
    "parse_date",
    "parse_query",
    "text_snippet",
    "undo",
    "word_segments",
]

"""Search layer: text, image and composite queries over a collection (see search/searcher.py).

This package's public names are what the UI and Python callers use; they never reach the database.
They are imported on first use (PEP 562): importing ``search.commands`` for the command line, or
``search.prestart`` before the query's libraries load, costs no database or FAISS import (issue #31).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from indexer.core.settings import CollectionPaths

if TYPE_CHECKING:
    from indexer.core.storage.collection import CollectionStats as Stats
    from search.duplicates import DuplicateGroup, Member, find_duplicates, newest_first
    from search.facets import Facets, FolderOption, PlaceOption
    from search.filters import Filters, parse_date
    from search.hits import Hit
    from search.prestart import start as prestart_text_tower
    from search.quarantine import (
        Expected,
        QuarantineReport,
        UndoReport,
        move_aside,
        quarantine_photos,
        undo,
        undo_quarantine,
    )
    from search.query import Query, Term, TermKind, parse_query
    from search.relevance import band_chance
    from search.searcher import IndexReport, Searcher
    from search.text_terms import text_snippet, word_segments
    from search.understand import Interpretation, Understood

# public name -> (module, its name there)
_LAZY: dict[str, tuple[str, str]] = {
    "Stats": ("indexer.core.storage.collection", "CollectionStats"),
    **{n: ("search.duplicates", n) for n in ("DuplicateGroup", "Member", "find_duplicates", "newest_first")},
    **{n: ("search.facets", n) for n in ("Facets", "FolderOption", "PlaceOption")},
    **{n: ("search.filters", n) for n in ("Filters", "parse_date")},
    "Hit": ("search.hits", "Hit"),
    "prestart_text_tower": ("search.prestart", "start"),  # for a server process: search/prestart.py
    **{
        n: ("search.quarantine", n)
        for n in ("Expected", "QuarantineReport", "UndoReport", "move_aside", "undo", "quarantine_photos")
    },
    "undo_quarantine": ("search.quarantine", "undo_quarantine"),
    **{n: ("search.query", n) for n in ("Query", "Term", "TermKind", "parse_query")},
    "band_chance": ("search.relevance", "band_chance"),
    **{n: ("search.searcher", n) for n in ("IndexReport", "Searcher")},
    **{n: ("search.text_terms", n) for n in ("text_snippet", "word_segments")},
    **{n: ("search.understand", n) for n in ("Interpretation", "Understood")},
}


def __getattr__(name: str) -> Any:
    """A public name's object, imported from its module on first use (then kept in this module)."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'search' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


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
    "band_chance",
    "collection_exists",
    "find_duplicates",
    "move_aside",
    "newest_first",
    "parse_date",
    "parse_query",
    "prestart_text_tower",
    "quarantine_photos",
    "text_snippet",
    "undo",
    "undo_quarantine",
    "word_segments",
]

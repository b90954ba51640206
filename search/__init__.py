"""Search layer: text, image and composite queries over a collection (see search/searcher.py)."""

from search.filters import Filters
from search.hits import Hit
from search.query import Query, Term, TermKind, parse_query
from search.searcher import IndexReport, Searcher

__all__ = ["Filters", "Hit", "IndexReport", "Query", "Searcher", "Term", "TermKind", "parse_query"]

"""The timeline: the page without a query shows the collection newest first, a heading per month.

The order is that of ``--sort date`` (date taken, the file's date when the photo records none;
:meth:`search.Searcher.list_by_date`); the sidebar's folder, date, type and place filters apply,
"Show more" pages it, and a photo opens in the same viewer as a search result. Month headings
follow that same date; a photo with neither date (a file dated at or before the epoch) is
"Undated", last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import streamlit as st

from search import Filters, Hit
from ui import state, viewer, views
from ui.backend import ResultPage, SearchRequest, UiBackend
from ui.schema import UNDATED, month_key, month_label, month_runs

__all__ = ["UNDATED", "month_groups", "month_of", "render", "timeline_page"]  # UNDATED: "Undated"


def month_of(hit: Hit) -> str:
    """ "July 2019": the month of the date the timeline sorts the photo by; ``UNDATED`` when none."""
    return month_label(month_key(hit))


def month_groups(hits: Sequence[Hit]) -> list[tuple[str, list[Hit]]]:
    """The hits (newest first) in runs of one month each ("July 2019"), in their order; the undated
    ones in one group, last, whatever their place in ``hits``."""
    return [(month_label(key), run) for key, run in month_runs(hits)]


def timeline_page(backend: UiBackend, filters: Filters, limit: int) -> ResultPage:
    """The first ``limit`` photos the filters allow, newest first, and whether "Show more" has
    anything: in process or from a `dualens serve`'s ``/timeline`` (the same Backend.run answers
    both); photos outside the indexed folders are left out."""
    return backend.run(SearchRequest("timeline", filters=filters, limit=limit))


def render(backend: UiBackend, current: state.View, active: Filters) -> None:
    """The timeline under the search bar (in process, or over `dualens ui --api`)."""
    listed = replace(active, min_match=None)  # match bands rank queries; the timeline has none
    with st.container(key="timeline"):
        page = timeline_page(backend, listed, current.limit)
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.markdown('<p class="dl-context">Your photos, newest first</p>', unsafe_allow_html=True)
        right.markdown(f'<div class="dl-count">{views.count_text(page)}</div>', unsafe_allow_html=True)
        views.filter_chips(listed)
        if not page.hits:
            views.no_results(current, listed)
            return
        for month, hits in month_groups(page.hits):
            st.markdown(f'<h3 class="dl-month">{views._esc(month)}</h3>', unsafe_allow_html=True)
            views._grid(backend, hits)
        viewer.more_and_viewer(backend, page.hits, page.has_more)

"""The page: load the shared backend once per server, then render the request of this session.

Every failure ends as a friendly message: typed :class:`DualensError` messages are shown as
they are, anything else is logged and replaced by a generic sentence, never a traceback.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import streamlit as st

from indexer.core.errors import DualensError, is_storage_problem
from indexer.core.settings import DATA_ENV, resolve_data_dir
from search import Filters, collection_exists
from ui import chrome, duplicates_view, indexing_view, selection, state, timeline, viewer, views
from ui.backend import Backend, SearchRequest, UiBackend
from ui.config import API_KEY_FILE_ENV, API_URL_ENV, UiConfig, read_api_key

if TYPE_CHECKING:
    from ui.remote import RemoteBackend  # imported when used: the HTTP client is for `dualens ui --api` only

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner="Loading the model and the index…")
def get_backend(data_dir: str) -> Backend:
    """One backend (model, FAISS index, database) per server and data directory."""
    return Backend.open(data_dir)


@st.cache_resource(show_spinner="Connecting to the search service…")
def get_remote_backend(url: str, key_file: str | None) -> RemoteBackend:
    """One client of a `dualens serve` per server (``dualens ui --api URL``)."""
    from ui.remote import RemoteBackend

    return RemoteBackend.open(url, UiConfig.from_env(), read_api_key(key_file) if key_file else None)


def main(data: str | os.PathLike[str] | None = None) -> None:
    url = os.environ.get(API_URL_ENV)
    data_dir = str(resolve_data_dir(data if data is not None else os.environ.get(DATA_ENV)))
    backend: UiBackend
    try:
        if url:
            backend = get_remote_backend(url, os.environ.get(API_KEY_FILE_ENV) or None)
        else:
            backend = get_backend(data_dir)
        backend.refresh()
    except DualensError as exc:
        if url:
            chrome.problem(str(exc))
        elif not collection_exists(data_dir):
            chrome.no_collection(data_dir)
        elif is_storage_problem(exc):
            chrome.broken_collection(str(exc))
        else:
            chrome.problem(str(exc))
        return
    except Exception:
        log.exception("cannot open the collection in %s", data_dir)
        chrome.unexpected()
        return
    try:
        render(backend, data_dir)
    except DualensError as exc:
        chrome.problem(str(exc))
    except Exception:
        log.exception("request failed")
        chrome.unexpected()


def render(backend: UiBackend, data_dir: str) -> None:
    stats = backend.stats()
    facets = backend.facets()
    state.read_query_params_once(facets)
    views.sidebar(stats, facets)
    indexing_view.sidebar(backend, data_dir)  # Add photos
    if int(stats.n_indexed) == 0:
        chrome.empty_collection()
        return
    with st.sidebar:
        duplicates_view.sidebar_button()
    if duplicates_view.is_open():
        duplicates_view.render(backend, data_dir)
        return
    views.search_bar()
    current = state.view()
    selection.keep_for(current)  # a new query drops the selection
    active = state.filters(facets.folders, facets.file_types, facets.places)
    request = state.request_for(current, active)
    if request is None:
        views.welcome()
        timeline.render(backend, current, active)  # the collection, newest first (ui/timeline.py)
        return
    with st.container(key=state.results_key(request)):  # another search: the old photos go at once
        results(backend, current, active, request, data_dir)


def results(
    backend: UiBackend, current: state.View, active: Filters, request: SearchRequest, data_dir: str
) -> None:
    try:
        with st.spinner("Searching…"):
            page = backend.run(request, image=state.upload_image())
    except DualensError as exc:
        chrome.problem(str(exc))
        return
    views.context_bar(backend, current, page)
    views.filter_chips(active)
    views.understood_chips(page.understood)
    selection.bar(backend, page.hits, data_dir)
    if not page.hits:
        views.no_results(current, active)
        return
    views.result_grid(backend, page.hits, current.text if current.kind == "text" else "")
    viewer.more_and_viewer(backend, page.hits, page.has_more)

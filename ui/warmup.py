"""The collection's backend loaded in the background, and the page a visitor sees meanwhile.

The server process starts loading a data directory's backend (text tower first, then the page's
modules, the model, the FAISS index and the database) in a thread, once: ``ui/launch.py`` does it
before Streamlit starts, and the page's first run does it when the server was started some other
way (``streamlit run ui/app.py``). Until that load has finished, :func:`while_loading` draws the
search box at once (before any heavy import) and a "Loading the collection…" note, waits for the
load, then reruns the page; a query typed meanwhile is kept and runs as soon as the backend is ready.

Invariants: importing this module imports nothing heavy (no Streamlit, database, FAISS or model
library). The backend itself lives in ``ui.page.get_backend``'s ``st.cache_resource``: this module
only knows whether the first load of a data directory has *finished* (successfully or not). A
failed load is never reported from here: the page calls ``get_backend`` again, which raises the
usual typed one-line error (no collection, a broken one). One load is started per data directory
and process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ui.config import (  # set: the page is a client of a `dualens serve`, nothing loads here
    API_URL_ENV,
    SEARCH_PLACEHOLDER,
)

log = logging.getLogger("dualens.ui")

LOADING = "Loading the collection… a search typed now runs as soon as it is loaded."
# The search box, as ui/views.py `search_bar` draws it: same key (its identity) and the same look.
QUERY_KEY = "q"  # ui/state.py QUERY


@dataclass
class Load:
    """One data directory's first backend load; ``done`` is set when it ended, however it ended."""

    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


_lock = threading.Lock()
_loads: dict[str, Load] = {}


def data_dir_of(data: str | os.PathLike[str] | None) -> str:
    """The data directory the page uses for ``--data`` (or ``$DUALENS_DATA``): the loads' key."""
    from indexer.core.settings import DATA_ENV, resolve_data_dir

    return str(resolve_data_dir(data if data is not None else os.environ.get(DATA_ENV)))


def begin(data_dir: str, after_text_tower: Callable[[], object] | None = None) -> Load:
    """Start loading ``data_dir``'s backend in a background thread, unless that was started before.

    The text tower starts first (its session is built outside the GIL); ``after_text_tower``, when
    given, is called next and the rest of the load (Python imports, CPU-bound) waits for it to return.
    """
    with _lock:
        load = _loads.get(data_dir)
        if load is None:
            load = _loads[data_dir] = Load()
            threading.Thread(
                target=_run, args=(data_dir, load, after_text_tower), name="dualens-warm-up", daemon=True
            ).start()
    return load


def _run(data_dir: str, load: Load, after_text_tower: Callable[[], object] | None = None) -> None:
    try:
        from indexer.core.settings import Settings
        from search import prestart_text_tower

        prestart_text_tower(Settings.resolve(data_dir))  # loads while the page's modules import
        if after_text_tower is not None:
            after_text_tower()
        from ui.page import get_backend

        get_backend(data_dir)
    except Exception as exc:  # no collection yet, a damaged one: the page says so when it asks again
        log.info("the collection was not loaded at start: %s", exc)
        load.error = exc
    finally:
        load.done.set()


def while_loading(data: str | None) -> None:
    """On a page run before the backend is ready: the search box, a loading note, a wait, a rerun.

    Returns at once (drawing nothing) when the backend's first load has finished, when the page is
    a client of a ``dualens serve``, or when ``data`` is no usable folder or holds no collection
    (the page says why).
    """
    if os.environ.get(API_URL_ENV):
        return
    from indexer.core.errors import DualensError
    from search import collection_exists

    try:
        data_dir = data_dir_of(data)
    except DualensError:
        return
    if not collection_exists(data_dir):
        return  # nothing to load: the page says how to make one
    load = begin(data_dir)
    if load.done.is_set():
        return
    import streamlit as st

    st.text_input(
        "Search",
        key=QUERY_KEY,
        placeholder=SEARCH_PLACEHOLDER,
        label_visibility="collapsed",
        icon=":material/search:",
        on_change=_query_typed,
    )
    st.info(LOADING, icon=":material/hourglass_top:")  # a note, not a spinner: it stays when a query is typed
    load.done.wait()
    st.rerun()  # the page, now with its backend (or its error); a query typed meanwhile runs there


def _query_typed() -> None:
    """The search box's callback while loading: the page's own (it runs before the next page run)."""
    from ui import state

    state.on_query()

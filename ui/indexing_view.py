"""The sidebar's "Add photos": a folder path, Start, and the run's progress (photos done of the total,
rate, time left) redrawn every second while it runs; when it ends, the whole page reruns so the new
photos are searchable at once (the backend loads the newer index). Errors are one line. With
``dualens ui --api`` the page has no collection of its own to write: it says so instead.
"""

from __future__ import annotations

import html

import streamlit as st

from indexer.core.errors import DualensError
from ui import indexing
from ui.backend import Backend, UiBackend
from ui.chrome import literal

FOLDER = "add_folder"
_ERROR = "dualens_add_error"
_SEEN_END = "dualens_add_seen_end"  # the run whose end this session has reloaded for
POLL_S = 1.0


def sidebar(backend: UiBackend, data_dir: str) -> None:
    with st.sidebar, st.expander("Add photos", icon=":material/add_photo_alternate:"):
        if not isinstance(backend, Backend):
            _say(
                "Indexing from the page is not available with --api: run dualens index FOLDER "
                "where the collection lives."
            )
            return
        roots = [str(r) for r in (backend.stats().roots or [])]
        st.text_input(
            "Folder to add",
            key=FOLDER,
            placeholder="/home/me/Pictures/2024",
            help="The full path of a folder on the server; its photos (and those of its subfolders) "
            "are indexed into this collection.",
        )
        st.button(
            "Start", key="add-start", icon=":material/play_arrow:", on_click=_start, args=(data_dir, roots)
        )
        error = st.session_state.get(_ERROR)
        if error:
            st.error(literal(error), icon=":material/error:")
        run = indexing.latest(data_dir)
        if run is not None:
            every = POLL_S if run.progress().running else None
            st.fragment(run_every=every)(_status)(data_dir)


def _start(data_dir: str, roots: list[str]) -> None:
    st.session_state[_ERROR] = None
    try:
        folder = indexing.check_folder(
            str(st.session_state.get(FOLDER) or ""), indexing.allowed_folders(roots), data_dir
        )
        indexing.start(data_dir, folder)
    except DualensError as exc:
        st.session_state[_ERROR] = str(exc)


def status_line(progress: indexing.Progress) -> str:
    """The run in one line: "Indexing: 12 of 20 photos · 3.1 photos/s · about 3 s left", then the
    text stage's "Reading the text in the photos: 5 of 20"."""
    if progress.running:
        if progress.total is None:
            return "Starting: loading the model and looking through the folder…"
        if progress.text_total is not None:  # the photos are searchable; their words come next
            return f"Reading the text in the photos: {progress.text_done:,} of {progress.text_total:,}"
        line = f"Indexing: {progress.done:,} of {progress.total:,} photos"
        if progress.rate is not None:
            line += f" · {progress.rate:.1f} photos/s"
        if progress.eta is not None:
            line += f" · about {progress.eta:.0f} s left"
        return line
    if progress.error:
        return f"Not added: {progress.error}"
    return f"Done: {progress.summary or 'the folder is indexed'}. The new photos are searchable now."


def _status(data_dir: str) -> None:
    run = indexing.latest(data_dir)
    if run is None:
        return
    progress = run.progress()
    if progress.text_total and progress.running:
        st.progress(min(1.0, progress.text_done / progress.text_total))
    elif progress.total and progress.running:
        st.progress(min(1.0, progress.done / progress.total))
    _say(status_line(progress), role="status")
    if not progress.running and st.session_state.get(_SEEN_END) is not run:
        st.session_state[_SEEN_END] = run
        st.rerun(scope="app")  # the whole page: the sidebar's counts and the results, from the new index


def _say(text: str, role: str = "") -> None:
    attribute = f' role="{role}"' if role else ""
    st.markdown(f'<p class="dl-facts"{attribute}>{html.escape(text)}</p>', unsafe_allow_html=True)

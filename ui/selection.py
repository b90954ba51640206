"""Multi-select on the results: a Select box on each card and a bar over the grid with "N selected",
Download as zip, Copy paths, Move aside (the quarantine of the duplicates page, with its Undo) and
Clear selection.

The selection is a list of photo *ids* in this session (never paths from the browser); it survives
"Show more", sorting and filters, and is dropped when the query itself changes (another text, photo
or upload). Paths are looked up in the collection and every original read goes through the
backend's path guard (``UiBackend.original``). A zip holds the originals as they are on disk
(stored, not recompressed), each under a unique name, built in memory only under
``UiConfig.zip_max_mb`` (``DUALENS_UI_ZIP_MAX_MB``).
"""

from __future__ import annotations

import html
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath

import streamlit as st

from indexer.core.errors import DualensError
from search import Hit, UndoReport
from ui import state
from ui.backend import Backend, UiBackend
from ui.chrome import literal

_SELECTED = "dualens_selected"  # photo ids, in the order they were selected
_FOR = "dualens_selected_for"  # the query the selection was made on
_CONFIRM = "dualens_selection_confirm"  # Move aside asked, waiting for its confirmation
_LAST_MANIFEST = "dualens_selection_manifest"  # the last move aside, for its Undo
_NOTE = "dualens_selection_note"  # what the last move or undo did


# ---- the selection (session state) ----


def selected() -> list[int]:
    """The selected photo ids, oldest first."""
    ids = st.session_state.get(_SELECTED)
    return list(ids) if isinstance(ids, list) else []


def _store(ids: Iterable[int]) -> None:
    st.session_state[_SELECTED] = list(dict.fromkeys(ids))


def query_identity(view: state.View) -> tuple[object, ...]:
    """What makes a query another one: its kind, text, photo or upload (not its paging or sort)."""
    upload = id(state.upload_image()) if view.kind == "image" else None
    return (view.kind, view.text, view.photo_id, view.upload_name, upload)


# the selection bar's style
CSS = """<style>
.dl-selected {font-weight: 600; white-space: nowrap;}
/* a phone: the bar stays at hand at the bottom of the screen while photos are selected, its actions
   as 44 px icons (their names kept for screen readers), the page padded so nothing hides under it */
@media (max-width: 640px) {
  .st-key-selection-bar:has(.st-key-selection-actions) {position: fixed; left: 0.5rem; right: 0.5rem;
      bottom: 0.5rem; z-index: 1000; width: auto; max-width: none; background-color: #ffffff;
      box-shadow: 0 -2px 14px rgba(0, 0, 0, 0.22); padding: 0.5rem 0.75rem; gap: 0.35rem;}
  .block-container:has(.st-key-selection-actions) {padding-bottom: 13rem;}
  .st-key-selection-bar button {min-height: 44px; min-width: 44px;}
  .st-key-selection-actions {gap: 0.35rem; flex-wrap: nowrap;}
  .st-key-selection-actions button {padding: 0.25rem 0.6rem;}
  .st-key-selection-actions button [data-testid="stMarkdownContainer"] {position: absolute; width: 1px;
      height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;}
  .st-key-selection-bar .dl-facts {font-size: 0.75rem;}
}
@media (max-width: 640px) and (prefers-color-scheme: dark) {
  .st-key-selection-bar:has(.st-key-selection-actions) {background-color: #0e1117;
      box-shadow: 0 -2px 14px rgba(0, 0, 0, 0.7);}
}
</style>"""


def keep_for(view: state.View) -> None:
    """Drop the selection when the query changed since it was made, and style the bar; call once
    per run."""
    st.html(CSS)  # style only: takes no room on the page
    identity = query_identity(view)
    if st.session_state.get(_FOR) != identity:
        st.session_state[_FOR] = identity
        _store([])
        st.session_state[_CONFIRM] = False


def choose(ids: Sequence[int], on: bool) -> None:
    """Add the photos to the selection (``on``) or take them out: a grid's click, shift-click range
    or long press (ui/grid_component.py)."""
    current = selected()
    _store([*current, *ids] if on else [i for i in current if i not in set(ids)])


def clear() -> None:
    _store([])
    st.session_state[_CONFIRM] = False


# ---- what the bar offers ----


def zip_names(paths: Sequence[str]) -> list[str]:
    """Names for the photos in a zip: each file's own name, a number added where names repeat
    ("a.jpg", "a (2).jpg"); never a folder part, so nothing unpacks outside the target folder."""
    taken: set[str] = set()
    out: list[str] = []
    for path in paths:
        name = PurePath(path.replace("\\", "/")).name or "photo"
        stem, suffix = os.path.splitext(name)
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem} ({n}){suffix}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def zip_bytes(files: Sequence[Path], names: Sequence[str]) -> bytes:
    """A zip of ``files`` under ``names``, stored as they are (photos do not compress), each read from
    disk in chunks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path, name in zip(files, names, strict=True):
            archive.write(path, arcname=name)
    return buffer.getvalue()


def _say(text: str) -> None:
    """A line of the bar, in the page's readable grey (Streamlit's captions are under 4.5:1)."""
    st.markdown(f'<p class="dl-facts">{html.escape(text)}</p>', unsafe_allow_html=True)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _hits(backend: UiBackend, shown: Sequence[Hit]) -> list[Hit]:
    """The selected photos still in the collection (those on the page first found there)."""
    by_id = {h.id: h for h in shown}
    hits = [by_id.get(i) or backend.photo(i) for i in selected()]
    found = [h for h in hits if h is not None]
    if len(found) != len(hits):
        _store(h.id for h in found)  # moved aside or gone since they were selected
    return found


def bar(backend: UiBackend, shown: Sequence[Hit], data_dir: str) -> None:
    """The selection bar: shown while photos are selected, and after a move aside (its Undo)."""
    hits = _hits(backend, shown)
    note = st.session_state.pop(_NOTE, None)  # said once: the next click of the page drops it
    if not hits and not note and not st.session_state.get(_LAST_MANIFEST):
        return
    with st.container(border=True, key="selection-bar"):
        if note:
            st.success(literal(note), icon=":material/check_circle:")
        _undo_button(backend)
        if not hits:
            return
        n = len(hits)
        with st.container(horizontal=True, vertical_alignment="center", key="selection-actions"):
            st.markdown(f'<div class="dl-selected" role="status">{n} selected</div>', unsafe_allow_html=True)
            with st.popover("Copy paths", icon=":material/content_copy:"):
                _say("The paths of the selected photos, one a line (the copy button is at the right).")
                st.code("\n".join(h.path for h in hits), language=None, wrap_lines=True)
            if isinstance(backend, Backend):  # the collection itself is here (not with --api)
                st.button("Move aside", key="sel-move", icon=":material/drive_file_move:", on_click=_ask_move)
            st.button(
                "Clear selection", key="sel-clear", icon=":material/close:", type="tertiary", on_click=clear
            )
        _download(backend, hits)
        if st.session_state.get(_CONFIRM):
            _confirm_move(backend, hits, data_dir)


def zip_note(count: int, size: int, cap: int, missing: int = 0) -> tuple[str, bool]:
    """What the bar says above the download, and whether the zip may be built (``size`` within ``cap``)."""
    if size > cap:
        return (
            f"The {count} originals are {_mb(size)}, over the {_mb(cap)} a zip may hold: "
            "select fewer photos to download them.",
            False,
        )
    gone = f" ({missing} photo(s) are no longer on disk and are left out)" if missing else ""
    return f"A zip of the {count} originals, {_mb(size)} (up to {_mb(cap)}){gone}.", True


def _download(backend: UiBackend, hits: Sequence[Hit]) -> None:
    originals = [backend.original(h) for h in hits]
    files = [p for p in originals if p is not None]
    if not files:
        _say("Download needs the photos themselves: it is not available here.")
        return
    size = sum(p.stat().st_size for p in files)
    note, fits = zip_note(len(files), size, state.config().zip_max_mb * 1024 * 1024, len(hits) - len(files))
    _say(note)
    if not fits:
        return
    names = zip_names([str(p) for p in files])
    st.download_button(
        f"Download {len(files)} as zip",
        data=lambda: zip_bytes(files, names),
        file_name="dualens-photos.zip",
        mime="application/zip",
        icon=":material/download:",
        on_click="ignore",
        key="sel-zip",
    )


def _ask_move() -> None:
    st.session_state[_CONFIRM] = True


def _cancel_move() -> None:
    st.session_state[_CONFIRM] = False


def _confirm_move(backend: UiBackend, hits: Sequence[Hit], data_dir: str) -> None:
    folder = Path(data_dir) / "quarantine"
    st.warning(
        f"Move {len(hits)} photo(s) to a new folder in {literal(folder)}? They leave the collection "
        "at once; nothing is deleted, and Undo puts them back.",
        icon=":material/drive_file_move:",
    )
    with st.container(horizontal=True, key="sel-confirm"):
        go = st.button(f"Move {len(hits)} aside", key="sel-move-yes", type="primary")
        st.button("Cancel", key="sel-move-no", on_click=_cancel_move)
    if not go:
        return
    st.session_state[_CONFIRM] = False
    try:
        report = backend.quarantine([h.id for h in hits], folder, copies_only=False)
    except DualensError as exc:
        st.error(literal(str(exc)))
        return
    moved = {e.original for e in report.moved}
    _store(h.id for h in hits if h.path not in moved)
    st.session_state[_LAST_MANIFEST] = str(report.manifest)
    note = f"Moved {len(moved)} photo(s) aside to {report.manifest.parent}; they are out of the collection."
    if report.skipped:
        note += " Not moved: " + "; ".join(report.skipped[:3])
    st.session_state[_NOTE] = note
    st.rerun()


def undo_note(undone: UndoReport) -> str:
    """What the bar says after an undo: the photos put back, and those not (with why)."""
    note = f"Put back {len(undone.restored)} photo(s), {undone.back_in_collection} in the collection again."
    if undone.skipped:
        note += " Not restored: " + "; ".join(undone.skipped[:3])
    return note


def _undo_button(backend: UiBackend) -> None:
    last = st.session_state.get(_LAST_MANIFEST)
    if not last or not st.button("Undo the move", key="sel-undo", icon=":material/undo:"):
        return
    try:
        undone = backend.undo(Path(last))
    except DualensError as exc:
        st.error(literal(str(exc)))
        return
    st.session_state.pop(_LAST_MANIFEST, None)
    st.session_state[_NOTE] = undo_note(undone)
    st.rerun()

"""The photo viewer: a large, upright, aspect-correct view of one result, previous/next through the
results (buttons, and the Left/Right keys; Next on the last photo shown loads the next page),
download of the original, its path to copy, Similar, and its metadata. Esc or the close button
returns to the results; the photo is in the URL."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from search import Hit
from ui import state
from ui.backend import UiBackend
from ui.thumbnails import placeholder
from ui.views import _esc, alt_text, meta_table, more_button, words_html


def _neighbours(hits: Sequence[Hit], photo_id: int) -> tuple[int | None, int | None, int | None]:
    """(previous id, next id, position) of a photo among the results (None where there is none)."""
    ids = [h.id for h in hits]
    if photo_id not in ids:
        return None, None, None
    at = ids.index(photo_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None), at


def _go(photo_id: int | None) -> None:
    """Show another photo: the whole page reruns (a dialog's own rerun would keep its first photo)."""
    if photo_id is not None:
        state.show_detail(photo_id)
        st.rerun()


def _photo(column: DeltaGenerator, backend: UiBackend, hit: Hit) -> None:
    """The photo never larger than it is (a small original is not blown up), fitted to the column;
    "Actual size" shows the original itself pixel for pixel, scrolled inside its frame."""
    with column:
        actual = st.toggle("Actual size (1:1)", key="viewer-actual", help="One photo pixel per screen pixel")
        preview = backend.thumbnail(hit, preview=True)
        shown = (backend.original(hit) if actual else None) or preview
        with st.container(key="viewer-actual-frame" if actual else "viewer-fit-frame"):
            st.image(
                str(shown) if shown else placeholder(backend.config.thumb_px),
                width="content",
                alt=alt_text(hit),
            )


@st.dialog("Photo", width="large", on_dismiss=state.close_detail)
def viewer(backend: UiBackend, photo_id: int, hits: Sequence[Hit], more: bool = False) -> None:
    """``more``: the search has photos after ``hits`` that "Show more" can load."""
    scored = next((h for h in hits if h.id == photo_id), None)
    hit = scored or backend.photo(photo_id)
    if hit is None:
        st.info("This photo is no longer in the collection.")
        return
    before, after, at = _neighbours(hits, photo_id)
    with st.container(horizontal=True, vertical_alignment="center", key="viewer-nav"):
        if st.button(
            "Previous",
            key="viewer-prev",
            icon=":material/chevron_left:",
            disabled=before is None,
            help="Previous photo (←)",
        ):
            _go(before)
        where = f"{at + 1} of {len(hits)} · " if at is not None else ""
        st.markdown(f'<div class="dl-count">{where}{_esc(alt_text(hit))}</div>', unsafe_allow_html=True)
        if st.button(
            "Next",
            key="viewer-next",
            icon=":material/chevron_right:",
            icon_position="right",
            disabled=after is None and not (more and at is not None),
            help="Next photo (→)",
        ):
            if after is None:
                state.next_page_from(photo_id)
                st.rerun()
            _go(after)
    left, right = st.columns([3, 2], gap="medium")
    _photo(left, backend, hit)
    with right:
        st.markdown(meta_table(hit, scored is not None), unsafe_allow_html=True)
        if hit.text:  # matched by its words: all its recognised text, those words highlighted
            st.markdown(words_html(hit), unsafe_allow_html=True)
        st.code(hit.path, language=None, wrap_lines=True)  # with a copy button
        if st.button(
            "Find similar photos",
            key="viewer-similar",
            type="primary",
            icon=":material/image_search:",
            width="stretch",
        ):
            state.show_similar(hit.id)
            st.rerun()
        original = backend.original(hit)
        if original is not None:
            st.download_button(
                "Download original",
                data=lambda: original.read_bytes(),
                file_name=Path(hit.path).name,
                mime=mimetypes.guess_type(hit.path)[0] or "application/octet-stream",
                icon=":material/download:",
                width="stretch",
                on_click="ignore",
                key="viewer-download",
            )


def more_and_viewer(backend: UiBackend, hits: Sequence[Hit], has_more: bool) -> None:
    """Under a page of photos (results or the timeline): Show more while it can add photos, and the
    viewer over the page when a photo of it is open."""
    more = state.can_show_more(has_more)
    more_button(more, capped=has_more and not more)
    state.advance_detail([h.id for h in hits])
    detail = state.detail_id()
    if detail is not None:
        viewer(backend, detail, hits, more)

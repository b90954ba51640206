"""The result grid as a Streamlit components v2 element: justified rows that keep each photo's aspect
ratio, little chrome (band, name, date and actions on hover, keyboard focus, and while selected),
touch long-press to select and shift-click ranges.

The browser side is ui/frontend/ (src/grid.js, bundled with Flickr's ``justified-layout`` into
dist/grid.js by ``make ui-assets``); the built files are committed, so the app needs no npm. It is
mounted in the page's DOM (no iframe) and sends one trigger, ``action``, which :func:`handle` turns
into the same ui/state.py and ui/selection.py calls the buttons made, so URLs, Back/Forward, the
viewer, Show more and multi-select behave as before.

Every photo reaches the browser as an *id* and a URL of its thumbnail (the page's media files, as
``st.image`` serves them, ``--api`` included: the thumbnail is fetched by the server), never as a
path; names and dates are set as text, never as HTML. Nothing the browser sends is trusted: ids go
through ``parse_photo_id`` and must be among the photos shown.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image

from indexer.core.text import printable
from search import Hit, text_snippet, word_segments
from ui import selection, state
from ui.backend import UiBackend
from ui.thumbnails import placeholder

FRONTEND = Path(__file__).parent / "frontend" / "dist"
# the row height the layout aims at (px): the grid's width over PER_ROW, within [MIN_ROW_HEIGHT,
# ROW_HEIGHT], so that >= 30 photos show above the fold at 1440x900 (a grid ~1,100 px wide under
# ~300 px of search bar: ~110 px rows) and a wide screen gets taller rows; PHONE_ROW_HEIGHT up to
# 640 px wide (~3 landscape photos a row on a 390-px phone)
ROW_HEIGHT = 220
MIN_ROW_HEIGHT = 100
PER_ROW = 10
PHONE_ROW_HEIGHT = 80
WORDS_CHARS = 80  # a tile shows this much of a photo's recognised text; the viewer shows it all
BAND_LABELS = {"strong": "Strong match", "good": "Good match", "weak": "Weak match"}


@lru_cache(maxsize=1)
def _mount() -> Callable[..., Any]:
    """The registered component (registered once per process, with the committed built files)."""
    js = (FRONTEND / "grid.js").read_text(encoding="utf-8")
    css = (FRONTEND / "grid.css").read_text(encoding="utf-8")
    return st.components.v2.component("dualens_grid", js=js, css=css, isolate_styles=False)


def words(hit: Hit) -> list[tuple[str, bool]]:
    """The recognised text a tile shows ("" pieces never), each piece with whether it matched."""
    if not hit.text:
        return []
    return [
        (p, m)
        for p, m in word_segments(text_snippet(hit.text, hit.text_words, WORDS_CHARS), hit.text_words)
        if p
    ]


def element(hit: Hit, src: str, size: tuple[int, int], alt: str, when: str) -> dict[str, Any]:
    """What the browser gets for one photo: JSON-safe, text only (it sets them as text, not HTML)."""
    return {
        "id": int(hit.id),
        "src": src,
        "w": int(size[0]),
        "h": int(size[1]),
        "alt": alt,
        "name": printable(Path(hit.path).name),  # a file name's undecodable bytes escaped
        "date": when,
        "band": hit.relevance if hit.relevance in BAND_LABELS else "",
        "bandLabel": BAND_LABELS.get(hit.relevance, ""),
        "words": [[p, m] for p, m in words(hit)],
    }


def grid_data(
    items: Sequence[dict[str, Any]], selected: Sequence[int], show_names: bool, label: str
) -> dict[str, Any]:
    """The component's whole input: the photos, the ones selected, and the layout's row heights."""
    shown = {int(i["id"]) for i in items}
    return {
        "items": list(items),
        "selected": [i for i in selected if i in shown],
        "showNames": bool(show_names),
        "rowHeight": ROW_HEIGHT,
        "minRowHeight": MIN_ROW_HEIGHT,
        "perRow": PER_ROW,
        "phoneRowHeight": PHONE_ROW_HEIGHT,
        "label": label,
    }


def handle(action: object, shown: Sequence[int]) -> None:
    """Apply one action from the browser. Only photos of this grid count; anything else is ignored.

    ``{"kind": "open", "id"}`` opens the viewer, ``{"kind": "similar", "id"}`` starts a Similar
    search, ``{"kind": "select", "ids": [...], "on": bool}`` adds the photos to the selection or
    takes them out (a shift-click's range arrives as one action)."""
    if not isinstance(action, Mapping):
        return
    kind = action.get("kind")
    allowed = set(shown)
    if kind in ("open", "similar"):
        pid = _photo_id(action.get("id"))
        if pid is None or pid not in allowed:
            return
        (state.show_detail if kind == "open" else state.show_similar)(pid)
    elif kind == "select":
        raw = action.get("ids")
        ids = [p for p in (_photo_id(i) for i in (raw if isinstance(raw, list) else [])) if p in allowed]
        selection.choose(ids, action.get("on") is True)


def _photo_id(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return state.parse_photo_id(value)


def _on_action(key: str, shown: list[int]) -> None:
    value = st.session_state.get(key)
    handle(value.get("action") if isinstance(value, Mapping) else None, shown)


# ---- thumbnails as page media ----


@lru_cache(maxsize=4)
def _placeholder_png(px: int) -> bytes:
    buffer = io.BytesIO()
    placeholder(px).save(buffer, format="PNG")
    return buffer.getvalue()


def _media_url(data: bytes | str, mimetype: str, coordinates: str) -> str:
    """A URL the page serves ``data`` (bytes or a file) at, kept while this session shows it."""
    from streamlit import runtime

    return runtime.get_instance().media_file_mgr.add(data, mimetype, coordinates)


def _size(thumb: Path, hit: Hit) -> tuple[int, int]:
    """The thumbnail's own size (oriented as shown), else the photo's, else a square."""
    try:
        with Image.open(thumb) as image:
            return image.size
    except OSError:
        if hit.width and hit.height:
            return hit.width, hit.height
        return 1, 1


def tile(backend: UiBackend, hit: Hit, px: int, alt: str, when: str) -> dict[str, Any]:
    thumb = backend.thumbnail(hit, px=px, square=False)
    if thumb is None:
        png = _placeholder_png(backend.config.thumb_px)
        return element(hit, _media_url(png, "image/png", f"dualens-grid.{hit.id}"), (1, 1), alt, when)
    url = _media_url(str(thumb), "image/jpeg", f"dualens-grid.{hit.id}")
    return element(hit, url, _size(thumb, hit), alt, when)


def render(
    backend: UiBackend,
    hits: Sequence[Hit],
    px: int,
    describe: Callable[[Hit], tuple[str, str]],
    key: str,
    label: str = "Photos",
) -> None:
    """Mount the grid for ``hits``; ``describe(hit)`` gives its alt text and its date line."""
    items = [tile(backend, hit, px, *describe(hit)) for hit in hits]
    data = grid_data(items, selection.selected(), bool(st.session_state.get(state.SHOW_NAMES)), label)
    shown = [int(h.id) for h in hits]
    with st.container(key=f"jg-{key}"):
        _mount()(key=key, data=data, on_action_change=partial(_on_action, key, shown))

"""Rendering: sidebar, search bar, result grid and detail dialog (messages: ui/chrome.py).

Every user-supplied string (query, file, folder and place names, EXIF text) is shown literally: it
is HTML-escaped (``_esc``) in ``unsafe_allow_html`` markup, and Markdown-escaped
(``chrome.literal``) in messages, captions, button labels and tooltips.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import streamlit as st

from indexer.core.imaging import supported_extensions
from indexer.core.models.default_spec import model_hint
from indexer.core.text import printable
from search import Facets, Filters, Hit, Stats, Understood, band_chance, text_snippet, word_segments
from ui import grid_component, state, thumbsize
from ui.backend import ResultPage, UiBackend, justified_cap
from ui.chrome import literal
from ui.config import SEARCH_PLACEHOLDER
from ui.thumbnails import placeholder

EXAMPLES = ("a red sports car", "a dog playing on the grass", "a bowl of fruit", "a sailing boat at sea")
UPLOAD_TYPES = sorted(ext.lstrip(".") for ext in supported_extensions())


def _esc(text: object) -> str:
    """Safe in HTML, on one line, and with a file name's undecodable bytes escaped."""
    return html.escape(printable(str(text).replace("\n", " ").replace("\r", " ")))


# ---- sidebar ----


def sidebar(stats: Stats, facets: Facets) -> None:
    with st.sidebar:
        st.subheader("Filters", anchor=False)
        options = [state.ALL_FOLDERS, *(f.path for f in facets.folders)]
        labels = {f.path: f"{f.label}  ({f.count})" for f in facets.folders}
        st.selectbox(
            "Folder",
            options,
            key=state.FOLDER,
            format_func=lambda p: "All folders" if p == state.ALL_FOLDERS else labels.get(p, "?"),
            on_change=state.reset_paging,
        )
        # the empty range (no date filter) only when the session holds none: a value given beside a
        # session-state value makes Streamlit warn on the terminal
        default: dict[str, Any] = {} if state.DATES in st.session_state else {"value": cast(Any, ())}
        st.date_input(
            "Date taken",
            **default,
            min_value=facets.first_date,
            max_value=facets.last_date,
            key=state.DATES,
            disabled=facets.first_date is None,
            help="EXIF date taken; the file's modification date when a photo has none.",
            on_change=state.reset_paging,
        )
        if len(facets.file_types) > 1:
            st.multiselect(
                "File type",
                list(facets.file_types),
                key=state.TYPES,
                placeholder="All types",
                on_change=state.reset_paging,
            )
        if facets.places:
            counts = {p.name: p.count for p in facets.places}
            st.selectbox(
                "Place",
                [state.ALL_PLACES, *counts],
                key=state.PLACE,
                format_func=lambda p: "Anywhere" if p == state.ALL_PLACES else f"{p}  ({counts.get(p, 0)})",
                help="Where the photo was taken: the nearest town to its GPS position (offline).",
                on_change=state.reset_paging,
            )
        st.radio(
            "Sort",
            list(state.SORT_CHOICES),
            key=state.SORT,
            format_func=lambda choice: state.SORT_CHOICES[choice],
            horizontal=True,
            help="Newest first: by date taken (else file date); descriptions keep good and strong matches.",
            on_change=state.reset_paging,
        )
        st.toggle(
            "Literal query",
            key=state.LITERAL,
            help='Off: dates and places in the query ("beach in summer 2019", "sunset in Paris") become '
            "filters. On: the query is searched word for word.",
            on_change=state.reset_paging,
        )
        st.toggle(
            "File names on the photos",
            key=state.SHOW_NAMES,
            help="Each photo shows its date; its file name too when this is on (screen readers hear both).",
        )
        st.radio(
            "Show",
            list(state.MATCH_CHOICES),
            key=state.MIN_MATCH,
            format_func=lambda choice: state.MATCH_CHOICES[choice],
            help="For descriptions: hide the weaker matches (those no closer than nonsense words get).",
            on_change=state.reset_paging,
        )
        st.divider()
        collection_status(stats)


def collection_status(stats: Stats) -> None:
    st.subheader("Your photos", anchor=False)
    left, right = st.columns(2)
    left.metric("Photos", f"{int(stats.n_indexed):,}")
    right.metric("Failed", f"{int(stats.n_failed):,}")
    model = str(stats.model_id or "unknown")
    lines = [
        f"**Model** {literal(Path(model).name if model.startswith('/') else model)}",
        f"**Last indexed** {_when(stats.last_indexed_at)}",
    ]
    roots = [Path(str(r)).name or str(r) for r in (stats.roots or [])]
    if roots:
        lines.append(
            "**Folders** " + ", ".join(literal(r) for r in roots[:5]) + (" …" if len(roots) > 5 else "")
        )
    st.caption("  \n".join(lines))
    hint = model_hint(stats.model_id)
    if hint:
        st.caption(f"Note: {hint[0].upper()}{hint[1:]}.")
    if int(stats.n_failed):
        st.caption("Files that could not be indexed are listed by `dualens errors`.")


def _when(value: object) -> str:
    if value is None or value == "":
        return "never"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        now = datetime.now(value.tzinfo)
        minutes = int((now - value).total_seconds() // 60)
        ago = (
            "just now"
            if minutes < 1
            else f"{minutes} min ago"
            if minutes < 60
            else f"{minutes // 60} h ago"
            if minutes < 48 * 60
            else f"{minutes // 1440} days ago"
        )
        return f"{value:%Y-%m-%d %H:%M} ({ago})"
    return str(value)


# ---- search bar ----


def search_bar() -> None:
    cfg = state.config()
    st.text_input(
        "Search",
        key=state.QUERY,
        placeholder=SEARCH_PLACEHOLDER,
        label_visibility="collapsed",
        icon=":material/search:",
        on_change=state.on_query,
    )
    with st.expander("Search with a photo instead", icon=":material/add_photo_alternate:"):
        st.file_uploader(
            "Upload a photo to find similar ones",
            type=UPLOAD_TYPES,
            key=state.UPLOAD,
            on_change=state.on_upload,
            max_upload_size=cfg.max_upload_mb,
            help=f"Up to {cfg.max_upload_mb} MB and {cfg.max_upload_pixels // 1_000_000} megapixels. "
            "The photo is only kept in memory.",
        )
        error = state.upload_error()
        if error:
            st.warning(literal(error), icon=":material/broken_image:")
        elif state.upload_image() is not None and state.view().kind != "image":
            st.button("Search with this photo again", key="reupload", on_click=state.search_upload)


def welcome() -> None:
    st.markdown("#### Try a search")
    with st.container(horizontal=True, gap="small"):
        for i, text in enumerate(EXAMPLES):
            st.button(text, key=f"example-{i}", on_click=state.run_example, args=(text,))
    st.caption(
        'Combine terms with + and -, weight them with 2:"…". Every result has a **Similar** button; '
        "**View** shows the photo larger with its metadata (← → for the next ones). Press / to search."
    )


# ---- results ----


def context_bar(backend: UiBackend, view: state.View, page: ResultPage) -> None:
    left, right = st.columns([4, 1], vertical_alignment="center")
    with left:
        if view.kind == "text":
            st.markdown(
                f'<p class="dl-context">Results for <b>{_esc(view.text)}</b></p>', unsafe_allow_html=True
            )
        elif view.kind == "similar":
            source = backend.photo(view.photo_id) if view.photo_id is not None else None
            _source_line(backend, source)
        elif view.kind == "image":
            image = state.upload_image()
            cols = st.columns([2, 8], vertical_alignment="center")
            if image is not None:
                cols[0].image(image, width=160, alt=f"your photo {view.upload_name}")
            cols[1].markdown(
                f'<p class="dl-context">Photos like <b>{_esc(view.upload_name)}</b></p>',
                unsafe_allow_html=True,
            )
    with right, st.container(horizontal=True, horizontal_alignment="right", vertical_alignment="center"):
        st.markdown(f'<div class="dl-count">{count_text(page)}</div>', unsafe_allow_html=True)
        st.button("Clear", key="clear", icon=":material/close:", type="tertiary", on_click=state.clear_search)


def filter_chips(active: Filters) -> None:
    """The filters in force as chips above the results; a click removes one."""
    chips = state.filter_chips(active)
    if not chips:
        return
    with st.container(horizontal=True, gap="small", key="chips"):
        for name, label in chips:
            st.button(
                literal(label),
                key=f"chip-{name}",
                icon=":material/close:",
                icon_position="right",
                on_click=state.clear_filter,
                args=(name,),
                help="Remove this filter",
            )


def understood_chips(understood: Understood | None) -> None:
    """The dates and place read from the query, as chips; a click searches the query word for word."""
    chips = state.understood_chips(understood)
    if not chips:
        return
    with st.container(horizontal=True, gap="small", key="chips-understood"):
        for name, label in chips:
            st.button(
                label,
                key=f"chip-understood-{name}",
                icon=":material/close:",
                icon_position="right",
                on_click=state.read_literally,
                help="Understood from your query; remove to search its words literally",
            )


def count_text(page: ResultPage) -> str:
    """ "24 of 1,000 photos": shown, and how many the query ranked (filters applied)."""
    n = len(page.hits)
    if page.total is None:
        return f"{n}{'+' if page.has_more else ''} result{'' if n == 1 else 's'}"
    return f"{n} of {page.total:,} photo{'' if page.total == 1 else 's'}"


def _source_line(backend: UiBackend, source: Hit | None) -> None:
    if source is None:
        st.markdown('<p class="dl-context">Similar photos</p>', unsafe_allow_html=True)
        return
    cols = st.columns([1, 9], vertical_alignment="center")
    thumb = backend.thumbnail(source)
    cols[0].image(str(thumb) if thumb else placeholder(backend.config.thumb_px), width="stretch")
    cols[1].markdown(
        f'<p class="dl-context">Photos similar to <b>{_esc(Path(source.path).name)}</b></p>',
        unsafe_allow_html=True,
    )
    previous = state.previous_search()
    if previous is not None:
        cols[1].button(
            f"Back to results for “{literal(previous.text)}”",
            key="back",
            icon=":material/arrow_back:",
            type="tertiary",
            on_click=state.back_to_previous,
        )


def no_results(view: state.View, active: Filters) -> None:
    what = "this photo" if view.kind in ("similar", "image") else "this query"
    used = state.active_filters(active)
    if not used:
        st.info(f"No photos match {what}.", icon=":material/search_off:")
        return
    st.info(
        f"No photos match {what} with these filters: {literal('; '.join(used))}.",
        icon=":material/search_off:",
    )
    st.button(
        "Reset filters", key="reset-filters", icon=":material/filter_alt_off:", on_click=state.reset_filters
    )


BAND_LABELS = {"strong": "Strong match", "good": "Good match", "weak": "Weak match"}


def result_grid(backend: UiBackend, hits: Sequence[Hit], text: str = "") -> None:
    """The hits as a grid; for text queries the weak ones (no closer than nonsense gets) below a
    divider, or after a "no good matches" note when every hit is weak."""
    good = [h for h in hits if h.relevance != "weak"]
    weak = [h for h in hits if h.relevance == "weak"]
    if not good:
        st.warning(
            f"No good matches for **{literal(text)}**: nonsense queries find photos as close as these. "
            "Try other words, or a photo (Similar or upload).",
            icon=":material/search_off:",
        )
        _grid(backend, weak)
        return
    _grid(backend, good)
    if weak:
        st.markdown(
            '<div class="dl-divider" role="separator">Weaker matches: no closer than what nonsense '
            "queries find</div>",
            unsafe_allow_html=True,
        )
        _grid(backend, weak)


def _grid(backend: UiBackend, hits: Sequence[Hit], label: str = "Photos") -> None:
    """The hits in justified rows (ui/grid_component.py), keyed by their first photo: one grid per
    page part (good, weak, a month), kept across "Show more"."""
    if not hits:
        return
    px = thumbsize.grid_px(st.context.cookies, justified_cap(backend.config.thumb_px))
    grid_component.render(backend, hits, px, _describe, key=f"grid-{hits[0].id}", label=label)


def _describe(hit: Hit) -> tuple[str, str]:
    return alt_text(hit), _date((hit.taken_at or hit.mtime).date())


def alt_text(hit: Hit) -> str:
    """What a screen reader says for a photo: its file name and its date (taken, else the file's)."""
    name = Path(hit.path).name
    if hit.taken_at:
        return f"{name}, taken {_date(hit.taken_at)}"
    return f"{name}, file date {_date(hit.mtime)}"


def words_html(hit: Hit, limit: int | None = None) -> str:
    """The recognised text of a photo matched by its words ("" for other hits), literal: each piece is
    escaped first, then the matched words are wrapped in <mark> (search/text_terms.py)."""
    if not hit.text:
        return ""
    text = text_snippet(hit.text, hit.text_words, limit) if limit else hit.text
    pieces = word_segments(text, hit.text_words)
    body = "".join(f"<mark>{_esc(p)}</mark>" if matched else _esc(p) for p, matched in pieces)
    return f'<div class="dl-words"><span class="dl-words-label">Words in the photo: </span>{body}</div>'


def more_button(more: bool, capped: bool = False) -> None:
    """ "Show more" while it can add photos (``state.can_show_more``); at the page's cap with more
    photos left (``capped``), a note on how to reach them instead of a button that does nothing."""
    if capped:
        st.caption(
            f"The best {state.config().max_results:,} photos are shown: describe what you look for "
            "more closely, or use the filters, to reach the others."
        )
    if not more:
        return
    with st.container(horizontal=True, horizontal_alignment="center"):
        st.button("Show more", key="more", icon=":material/expand_more:", on_click=state.show_more)


# ---- the viewer's metadata (ui/viewer.py) ----


def meta_table(hit: Hit, with_scores: bool) -> str:
    rows: list[tuple[str, str]] = [
        ("Name", Path(hit.path).name),
        ("Folder", str(Path(hit.path).parent)),
        (
            ("Date taken", _date(hit.taken_at))
            if hit.taken_at
            else ("File date", f"{_date(hit.mtime)} (the photo records no date taken)")
        ),
        ("Camera", camera_text(hit.camera_make, hit.camera_model)),
        *([("Place", hit.place)] if hit.place else []),
        ("Dimensions", f"{hit.width} × {hit.height} px" if hit.width and hit.height else "unknown"),
        ("File", f"{(hit.file_type or '').upper()} · {file_size(hit.size)}"),
        ("Modified", _date(hit.mtime) or "unknown"),
    ]
    if with_scores:
        if hit.relevance:
            rows.append(("Match", BAND_LABELS.get(hit.relevance, hit.relevance)))
        rows += [
            ("Cosine similarity", f"{hit.cosine:.4f}"),
            ("Model logit", f"{hit.logit:.3f}"),
            # a banded hit: how often its band was right in labelled tests (search/relevance.py); else
            # the model's softmax share among the top results (sigmoid for SigLIP), said to be one
            (
                "Probability",
                band_chance(hit.relevance)
                or f"{hit.probability:.1%} (the model's share among these results, not a chance of matching)",
            ),
        ]
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="dl-meta">{body}</table>'


def camera_text(make: str | None, model: str | None) -> str:
    """Make and model, the make said once: EXIF models often repeat it ("Canon" + "Canon EOS 10D")."""
    make, model = (make or "").strip(), (model or "").strip()
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(p for p in (make, model) if p) or "unknown"


def _date(value: date | datetime | None) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    return ""


def file_size(n: int | None) -> str:
    if not n:
        return "?"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"

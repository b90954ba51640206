"""Per-session state of the page and the callbacks that change it.

Everything a browser can send (widget values, query parameters) passes through here and is
turned into a :class:`View`: query text, a photo *id* (digits only, checked against the
collection later) or an uploaded image decoded in memory. No value from the browser is ever used
as a path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal

import streamlit as st
from PIL import Image

from indexer.core.errors import ImageError
from search import Facets, Filters, FolderOption, PlaceOption, Understood
from ui.backend import SearchRequest
from ui.config import UiConfig
from ui.safety import decode_upload, parse_photo_id

ViewKind = Literal["none", "text", "similar", "image"]
UPLOAD_KEEP_PX = 640  # the uploaded photo is kept this small in the session (model input is ~224)

# widget keys
QUERY = "q"
UPLOAD = "upload"
FOLDER = "f_folder"
DATES = "f_dates"
TYPES = "f_types"
MIN_MATCH = "f_min_match"
PLACE = "f_place"
SHOW_NAMES = "show_names"  # file names on the cards (the date is always there)
LITERAL = "f_literal"  # on: no dates or places read from the query text
SORT = "f_sort"  # "relevance" or "date"
SORT_CHOICES = {"relevance": "Best match", "date": "Newest first"}
DEFAULT_SORT = "relevance"  # left out of the URL
ALL_PLACES = ""
MATCH_CHOICES = {"all": "All matches", "good": "Good and strong matches", "strong": "Strong matches only"}
ALL_FOLDERS = ""
_FOLDER_NAMES = "dualens_folder_names"  # session key: folder path -> its name below its root

_VIEW = "dualens_view"
_DETAIL = "dualens_detail"
_UPLOAD_IMAGE = "dualens_upload_image"
_UPLOAD_ERROR = "dualens_upload_error"
_PARAMS_READ = "dualens_params_read"
_PREVIOUS = "dualens_previous"  # the text search a Similar started from (its way back)
_ADVANCE = "dualens_advance"  # the viewer's photo whose Next loaded the next page (then shown after it)


@dataclass(frozen=True)
class View:
    kind: ViewKind = "none"
    text: str = ""
    photo_id: int | None = None
    upload_name: str = ""
    limit: int = 24


def config() -> UiConfig:
    cfg = st.session_state.get("dualens_config")
    if not isinstance(cfg, UiConfig):
        cfg = UiConfig.from_env()
        st.session_state["dualens_config"] = cfg
    return cfg


def view() -> View:
    current = st.session_state.get(_VIEW)
    if isinstance(current, View):
        return current
    fresh = View(limit=config().page_size)
    st.session_state[_VIEW] = fresh
    return fresh


def _set_view(new: View) -> None:
    paging_only = replace(new, limit=0) == replace(view(), limit=0)
    st.session_state[_VIEW] = new
    _sync_query_params(None if paging_only else new)


def _start(new: View) -> None:
    """Show another search: the viewer closes first, so its photo never follows into the new URL."""
    st.session_state[_DETAIL] = None
    st.session_state[_ADVANCE] = None
    _set_view(new)


def detail_id() -> int | None:
    value = st.session_state.get(_DETAIL)
    return value if isinstance(value, int) else None


def upload_image() -> Image.Image | None:
    image = st.session_state.get(_UPLOAD_IMAGE)
    return image if isinstance(image, Image.Image) else None


def upload_error() -> str | None:
    return st.session_state.get(_UPLOAD_ERROR)


# ---- callbacks (run before the script, so they may set widget values) ----


def on_query() -> None:
    text = str(st.session_state.get(QUERY) or "").strip()[: config().query_max_chars]
    if text:
        _start(View(kind="text", text=text, limit=config().page_size))
    else:
        _start(View(limit=config().page_size))


def run_example(text: str) -> None:
    st.session_state[QUERY] = text
    on_query()


def show_similar(photo_id: int) -> None:
    pid = parse_photo_id(photo_id)
    if pid is None:
        return
    current = view()
    if current.kind == "text":
        st.session_state[_PREVIOUS] = current
    st.session_state[QUERY] = ""
    _start(View(kind="similar", photo_id=pid, limit=config().page_size))


def previous_search() -> View | None:
    """The text search the current Similar view came from, if any."""
    previous = st.session_state.get(_PREVIOUS)
    return previous if isinstance(previous, View) and view().kind == "similar" else None


def back_to_previous() -> None:
    previous = previous_search()
    if previous is None:
        return
    st.session_state[_PREVIOUS] = None
    st.session_state[QUERY] = previous.text
    _start(replace(previous, limit=config().page_size))


def show_detail(photo_id: int) -> None:
    st.session_state[_DETAIL] = parse_photo_id(photo_id)
    _sync_query_params()


def close_detail() -> None:
    st.session_state[_DETAIL] = None
    _sync_query_params()


def can_show_more(has_more: bool) -> bool:
    """Whether "Show more" can add photos: the search has more, and the page is below its cap
    (``max_results``; at the cap the button did nothing)."""
    return has_more and view().limit < config().max_results


def show_more() -> None:
    cfg = config()
    current = view()
    _set_view(replace(current, limit=min(current.limit + cfg.page_size, cfg.max_results)))


def next_page_from(photo_id: int) -> None:
    """The viewer's Next on the last photo shown: load the next page, then show the photo after it."""
    st.session_state[_ADVANCE] = parse_photo_id(photo_id)
    show_more()


def advance_detail(ids: list[int]) -> None:
    """After :func:`next_page_from`'s rerun: the viewer moves to the photo after the one it was on."""
    start = st.session_state.get(_ADVANCE)
    st.session_state[_ADVANCE] = None
    if isinstance(start, int) and start in ids and ids.index(start) + 1 < len(ids):
        show_detail(ids[ids.index(start) + 1])


def reset_paging() -> None:
    _set_view(replace(view(), limit=config().page_size))


_FILTER_KEYS = {"folder": (FOLDER, ALL_FOLDERS), "dates": (DATES, ()), "type": (TYPES, []),
                "match": (MIN_MATCH, "all"), "place": (PLACE, ALL_PLACES)}  # fmt: skip


def _clear(name: str) -> None:
    key, value = _FILTER_KEYS[name]
    st.session_state[key] = list(value) if isinstance(value, list) else value


def reset_filters() -> None:
    """Every sidebar filter back to "all" (the reset offered on an empty result page)."""
    for name in _FILTER_KEYS:
        _clear(name)
    reset_paging()


def filter_chips(active: Filters) -> list[tuple[str, str]]:
    """(name, label) of each filter in force, for the removable chips above the results."""
    chips: list[tuple[str, str]] = []
    if active.folder:
        chips.append(("folder", f"Folder: {folder_name(active.folder)}"))
    if active.date_from or active.date_to:
        chips.append(("dates", f"Taken {active.date_from or '…'} – {active.date_to or '…'}"))
    if active.file_types:
        chips.append(("type", "Type: " + ", ".join(active.file_types)))
    if active.place:
        chips.append(("place", f"Place: {active.place}"))
    if active.min_match:
        chips.append(("match", f"{active.min_match.capitalize()} matches"))
    return chips


def understood_chips(understood: Understood | None) -> list[tuple[str, str]]:
    """(name, label) of the filters read from the query text; removing one searches it literally."""
    if understood is None:
        return []
    chips: list[tuple[str, str]] = []
    if understood.date_from or understood.date_to:
        chips.append(("when", f"Taken {understood.date_from or '…'} – {understood.date_to or '…'}"))
    if understood.place:
        chips.append(("where", f"In {understood.place}"))
    return chips


def read_literally() -> None:
    """Search the query word for word: the understood dates and places go back into the description."""
    st.session_state[LITERAL] = True
    reset_paging()


def clear_filter(name: str) -> None:
    _clear(name)
    reset_paging()


def active_filters(active: Filters) -> list[str]:
    """The filters in force, in words (shown when they leave nothing)."""
    out: list[str] = []
    if active.folder:
        out.append(f"folder {folder_name(active.folder)}")
    if active.date_from or active.date_to:
        out.append(f"dates {active.date_from or '…'} to {active.date_to or '…'}")
    if active.file_types:
        out.append("type " + ", ".join(active.file_types))
    if active.min_match:
        out.append(f"{active.min_match} matches or better")
    if active.place:
        out.append(f"place {active.place}")
    return out


def clear_search() -> None:
    st.session_state[QUERY] = ""
    _start(View(limit=config().page_size))


def on_upload() -> None:
    """Decode the uploaded file in memory; a bad file leaves a friendly message, nothing else: the
    results shown (those of an earlier upload too) and the photo they came from stay. An emptied
    box (the file removed, or the moment between a file and the one replacing it) changes nothing."""
    uploaded = st.session_state.get(UPLOAD)
    st.session_state[_UPLOAD_ERROR] = None
    if uploaded is None:
        return
    cfg = config()
    data = uploaded.getvalue()
    try:
        image = decode_upload(data, max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_upload_pixels)
    except ImageError as exc:
        st.session_state[_UPLOAD_ERROR] = str(exc)
        return
    image.thumbnail((UPLOAD_KEEP_PX, UPLOAD_KEEP_PX), Image.Resampling.LANCZOS)
    st.session_state[_UPLOAD_IMAGE] = image
    st.session_state[QUERY] = ""
    name = str(getattr(uploaded, "name", "") or "your photo")[:120]
    _start(View(kind="image", upload_name=name, limit=cfg.page_size))


def search_upload() -> None:
    """Search again with the photo still in the upload box (after a text or similar search)."""
    if upload_image() is None:
        return
    current = view()
    uploaded = st.session_state.get(UPLOAD)
    name = str(getattr(uploaded, "name", "") or current.upload_name or "your photo")[:120]
    st.session_state[QUERY] = ""
    _start(View(kind="image", upload_name=name, limit=config().page_size))


# ---- the URL: what is shown, so that a link, a reload, Back and Forward give the same page ----
# ?q=text | ?similar=<id>, and optionally &photo=<id> (the viewer), &folder=, &type=jpg,png, &place=,
# &match=good|strong, &from=YYYY-MM-DD, &to=YYYY-MM-DD, &sort=date (absent: the default, best match
# first). Values are checked against what the collection
# offers (a folder or place it lacks, a bad date: ignored); nothing else is read.


def read_query_params_once(facets: Facets) -> None:
    """Restore the page a URL describes, once per browser session (Back and Forward reload the page,
    see ``chrome.page_script``, so every history step starts a session from its URL)."""
    if st.session_state.get(_PARAMS_READ):
        return
    st.session_state[_PARAMS_READ] = True
    params = st.query_params
    similar = parse_photo_id(params.get("similar"))
    text = str(params.get("q") or "").strip()[: config().query_max_chars]
    if similar is not None:
        st.session_state[_VIEW] = View(kind="similar", photo_id=similar, limit=config().page_size)
    elif text:
        st.session_state[QUERY] = text
        st.session_state[_VIEW] = View(kind="text", text=text, limit=config().page_size)
    # a photo opens over the results of a query or a Similar only (an upload is not in the URL)
    st.session_state[_DETAIL] = parse_photo_id(params.get("photo")) if similar is not None or text else None
    if "photo" in params and st.session_state[_DETAIL] is None:
        del st.query_params["photo"]
    _restore_filters(params, facets)


def _restore_filters(params: Any, facets: Facets) -> None:
    _remember_folder_names(facets.folders)
    folder = str(params.get("folder") or "")  # its name below its root ("photos/2024"), never a path
    by_name = {f.label: f.path for f in reversed(facets.folders)}  # the first folder of a name wins
    if folder in by_name:
        st.session_state[FOLDER] = by_name[folder]
    types = [t for t in str(params.get("type") or "").split(",") if t in facets.file_types]
    if types:
        st.session_state[TYPES] = types
    place = str(params.get("place") or "")
    if place in {p.name for p in facets.places}:
        st.session_state[PLACE] = place
    match = str(params.get("match") or "")
    if match in ("good", "strong"):
        st.session_state[MIN_MATCH] = match
    sort = str(params.get("sort") or "")
    if sort in SORT_CHOICES and sort != DEFAULT_SORT:
        st.session_state[SORT] = sort
    low, high = _url_date(params.get("from")), _url_date(params.get("to"))
    first, last = facets.first_date, facets.last_date
    inside = [
        d
        for d in (low, high)
        if d is not None and (first is None or first <= d) and (last is None or d <= last)
    ]
    if inside:
        st.session_state[DATES] = tuple(inside)


def _url_date(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def url_params(new: View | None = None) -> dict[str, str]:
    """The URL parameters of the page shown now (``new``: of this view instead of the current one)."""
    current = new or view()
    wanted: dict[str, str] = {}
    if current.kind == "text":
        wanted["q"] = current.text
    elif current.kind == "similar" and current.photo_id is not None:
        wanted["similar"] = str(current.photo_id)
    detail = st.session_state.get(_DETAIL)
    if isinstance(detail, int) and current.kind in ("text", "similar"):  # the URL can restore these
        wanted["photo"] = str(detail)
    folder, place, match = (st.session_state.get(k) for k in (FOLDER, PLACE, MIN_MATCH))
    if folder:
        wanted["folder"] = folder_name(str(folder))
    if st.session_state.get(TYPES):
        wanted["type"] = ",".join(st.session_state[TYPES])
    if place:
        wanted["place"] = str(place)
    if match in ("good", "strong"):
        wanted["match"] = str(match)
    if st.session_state.get(SORT) in SORT_CHOICES and st.session_state[SORT] != DEFAULT_SORT:
        wanted["sort"] = str(st.session_state[SORT])
    low, high = _date_range(st.session_state.get(DATES))
    if low:
        wanted["from"] = low.isoformat()
    if high and high != low:
        wanted["to"] = high.isoformat()
    return wanted


REVIEW_PARAMS = {"view": "duplicates"}  # the duplicates review page's URL (ui/duplicates_view.py)


def _sync_query_params(new: View | None = None) -> None:
    if new is None and dict(st.query_params) == REVIEW_PARAMS:
        return  # the review page keeps its own URL while a sidebar control (e.g. Sort) changes
    wanted = url_params(new)
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


# ---- filters ----


def filters(
    folders: tuple[FolderOption, ...], file_types: tuple[str, ...], places: tuple[PlaceOption, ...] = ()
) -> Filters:
    """Filters from the sidebar widgets, each value checked against what the collection offers."""
    _remember_folder_names(folders)
    folder = st.session_state.get(FOLDER)
    place = st.session_state.get(PLACE)
    allowed = {option.path for option in folders}
    types = tuple(t for t in (st.session_state.get(TYPES) or ()) if t in file_types)
    date_from, date_to = _date_range(st.session_state.get(DATES))
    match = st.session_state.get(MIN_MATCH)
    return Filters(
        folder=folder if folder in allowed else None,
        date_from=date_from,
        date_to=date_to,
        file_types=types,
        min_match=match if match in ("good", "strong") else None,
        place=place if place in {option.name for option in places} else None,
    )


def _remember_folder_names(folders: tuple[FolderOption, ...]) -> None:
    st.session_state[_FOLDER_NAMES] = {f.path: f.label for f in folders}


def folder_name(path: str) -> str:
    """What a folder is called in the URL, the chips and the messages: its root's name and the path
    below it ("photos/2024/trip"), never the server's absolute path."""
    names = st.session_state.get(_FOLDER_NAMES) or {}
    return str(names.get(path) or path.rstrip("/").rpartition("/")[2] or path)


def _date_range(value: Any) -> tuple[date | None, date | None]:
    if isinstance(value, date):
        return value, value
    if isinstance(value, (tuple, list)):
        picked = [v for v in value if isinstance(v, date)]
        if len(picked) == 1:
            return picked[0], None
        if len(picked) >= 2:
            return min(picked[:2]), max(picked[:2])
    return None, None


_SHOWN = "dualens_shown"  # (what the results on the page answer, the paging left out; their number)


def results_key(request: SearchRequest) -> str:
    """The key of the container of the results: the same while they answer the same search (a "Show
    more", a rerun with the viewer open), another for another search, so the page drops the stale
    photos at once instead of leaving them, one by one, under the new heading while it runs."""
    answers = (replace(request, limit=0), id(upload_image()) if request.kind == "image" else None)
    shown = st.session_state.get(_SHOWN)
    number = shown[1] if isinstance(shown, tuple) else 0
    if not isinstance(shown, tuple) or shown[0] != answers:
        number += 1
        st.session_state[_SHOWN] = (answers, number)
    return f"results-{number}"


def request_for(current: View, active_filters: Filters) -> SearchRequest | None:
    if current.kind == "none":
        return None
    return SearchRequest(
        kind=current.kind,
        text=current.text,
        photo_id=current.photo_id,
        filters=active_filters,
        limit=current.limit,
        sort="date" if st.session_state.get(SORT) == "date" else "relevance",
        literal=bool(st.session_state.get(LITERAL)),
    )

"""The page's state logic behind issue #28's defects, without a browser: Streamlit's session state
and query parameters in bare mode (each test starts from empty ones)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import streamlit as st
from PIL import Image

from search import Facets
from ui import state
from ui.backend import SearchRequest
from ui.chrome import literal
from ui.config import UiConfig


@pytest.fixture(autouse=True)
def _fresh_session() -> Iterator[None]:
    st.session_state.clear()
    st.query_params.clear()
    st.session_state["dualens_config"] = UiConfig(page_size=12, max_results=24)
    yield
    st.session_state.clear()
    st.query_params.clear()


# ---- defect 1: user strings shown literally ----

NASTY = [
    "[Your session expired - sign in again](http://login.example.invalid/)",
    "**bold** _it_ `code` ~~gone~~ # title",
    ":red[alarm] :material/home: $x^2$ <b>html</b> &amp;",
    'mail me@example.com or www.example.com, 2:"sunset" + "boat" - x',
    "a\\b | c > d ! e",
]


@pytest.mark.parametrize("text", NASTY)
def test_literal_escapes_every_markdown_character_and_reads_back_as_the_text(text: str) -> None:
    shown = literal(text)
    # every character Markdown or Streamlit reads is backslash-escaped …
    assert not re.search(r"(?<!\\)([\[\]*_`~$<>&|!]|:(?=\S))", shown.replace("\\\\", ""))
    # … and the text reads back exactly, once the escapes and the invisible joiners are taken out
    assert re.sub(r"\\(.)", r"\1", shown.replace("\u2060", "")) == text


def test_literal_keeps_urls_and_addresses_from_being_linked() -> None:
    shown = literal("see http://login.example.invalid/ or www.example.com or me@example.com")
    assert "\\:\u2060//" in shown and "www\u2060." in shown and "\u2060@" in shown


@pytest.mark.parametrize("text", ["# title", "- item", "+ item", "12. item", "> quote"])
def test_literal_keeps_a_line_from_becoming_a_heading_list_or_quote(text: str) -> None:
    assert re.match(r"^(\\[#+>-]|\d+\\\.)", literal(text))


def test_literal_leaves_plain_words_as_they_are() -> None:
    assert literal("Place: Paris") == "Place: Paris"
    assert literal("Taken 2021-06-01 – 2021-06-02") == "Taken 2021-06-01 – 2021-06-02"


def test_literal_puts_a_message_on_one_line() -> None:
    assert "\n" not in literal("first\n\nsecond\r\nthird")


# ---- defect 8: no stale photo= in the URL ----


def test_a_new_query_closes_the_viewer_before_the_url_is_written() -> None:
    state.show_similar(5)
    state.show_detail(119)
    assert st.query_params.get("photo") == "119"
    st.session_state[state.QUERY] = "goldfish"
    state.on_query()
    assert dict(st.query_params) == {"q": "goldfish"}
    assert state.detail_id() is None


def test_a_photo_viewed_over_an_upload_stays_out_of_the_url() -> None:
    st.session_state[state._VIEW] = state.View(kind="image", upload_name="mine.jpg", limit=12)
    state.show_detail(119)
    assert state.detail_id() == 119
    assert "photo" not in state.url_params()
    assert "photo" not in st.query_params


def test_a_url_with_a_photo_and_no_search_opens_nothing_and_loses_the_photo() -> None:
    st.query_params.from_dict({"photo": "119"})
    state.read_query_params_once(Facets())
    assert state.detail_id() is None
    assert "photo" not in st.query_params


def test_a_url_with_a_query_and_a_photo_still_opens_it() -> None:
    st.query_params.from_dict({"q": "goldfish", "photo": "119"})
    state.read_query_params_once(Facets())
    assert state.detail_id() == 119
    assert state.view().text == "goldfish"


# ---- defect 12: a refused upload keeps the results ----


def test_a_refused_upload_keeps_the_earlier_photo_and_its_results() -> None:
    earlier = Image.new("RGB", (32, 32), (200, 30, 30))
    st.session_state[state._UPLOAD_IMAGE] = earlier
    shown = state.View(kind="image", upload_name="goldfish.jpg", limit=24)
    st.session_state[state._VIEW] = shown
    st.session_state[state.UPLOAD] = SimpleNamespace(name="fake.jpg", getvalue=lambda: b"a text file\n")
    state.on_upload()
    assert state.upload_error()
    assert state.view() == shown
    assert state.upload_image() is earlier


def test_an_emptied_upload_box_changes_nothing() -> None:
    """Replacing the file passes through an empty box: the results must not go with it."""
    earlier = Image.new("RGB", (32, 32))
    st.session_state[state._UPLOAD_IMAGE] = earlier
    shown = state.View(kind="image", upload_name="goldfish.jpg", limit=12)
    st.session_state[state._VIEW] = shown
    st.session_state[state.UPLOAD] = None
    state.on_upload()
    assert state.view() == shown and state.upload_image() is earlier


# ---- defect 13: the cap, and the viewer's Next across pages ----


def test_show_more_is_offered_only_below_the_cap() -> None:
    state.show_similar(5)
    assert state.view().limit == 12
    assert state.can_show_more(True)
    assert not state.can_show_more(False)
    state.show_more()
    assert state.view().limit == 24
    assert not state.can_show_more(True)  # at the cap "Show more" would add nothing


def test_viewer_next_on_the_last_photo_loads_the_next_page_then_shows_the_photo_after_it() -> None:
    state.show_similar(5)
    state.show_detail(7)
    state.next_page_from(7)
    assert state.view().limit == 24
    state.advance_detail([3, 7, 9, 11])
    assert state.detail_id() == 9
    assert st.query_params.get("photo") == "9"
    state.advance_detail([3, 7, 9, 11])  # once only
    assert state.detail_id() == 9


# ---- defect 4: another search gets another results container ----


def test_the_results_container_changes_with_the_search_and_not_with_the_paging() -> None:
    goldfish = SearchRequest(kind="text", text="goldfish", limit=12)
    first = state.results_key(goldfish)
    assert state.results_key(SearchRequest(kind="text", text="goldfish", limit=24)) == first
    other = state.results_key(SearchRequest(kind="text", text="a red car", limit=12))
    assert other != first
    assert state.results_key(goldfish) not in (first, other)

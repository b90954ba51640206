"""The page with understood queries: chips for the dates and places read from the query, the literal
toggle and the sort control (#29 items 2-3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_ui_app import PAGE, _app, _clean, _fresh_backends, _ids, _search, collection  # noqa: F401
from tests.test_ui_duplicates import _open_review, _texts, world  # noqa: F401

pytestmark = pytest.mark.usefixtures("_fresh_backends")


def _understood_chips(at: AppTest) -> list[Any]:
    return [b for b in at.button if b.key and b.key.startswith("chip-understood-")]


def test_a_place_in_the_query_shows_as_a_chip_that_turns_it_back_into_words(
    collection: tuple[Path, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "a red car in Paris")
    _clean(at)
    (chip,) = _understood_chips(at)
    assert chip.label == "In Paris" and len(_ids(at)) == 4  # every fifth of 20 photos is in Paris
    chip.click().run()
    _clean(at)
    assert at.toggle(key="f_literal").value is True
    assert not _understood_chips(at) and len(_ids(at)) == PAGE


def test_a_query_that_is_only_a_year_lists_that_year_and_sorting_by_date_runs(
    collection: tuple[Path, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, _ = collection
    at = _search(_app(data, monkeypatch).run(), "2021")
    _clean(at)
    (chip,) = _understood_chips(at)
    assert chip.label == "Taken 2021-01-01 – 2021-12-31" and len(_ids(at)) == PAGE  # 7 photos dated 2021
    at.radio(key="f_sort").set_value("date").run()
    _search(at, "a red car")
    _clean(at)
    assert not _understood_chips(at)


def test_the_duplicates_review_follows_the_sort_control(
    world: tuple[Path, Path, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, *_ = world
    at = _open_review(data, monkeypatch)
    at.radio(key="f_sort").set_value("date").run()
    _clean(at)
    assert "Group 1" in _texts(at) and "**Keep**" in _texts(at)

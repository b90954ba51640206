"""Query understanding against adversarial queries: calendar ends, day-first dates, numbers next to a
year, places that are common words, long queries, reversed ranges and a second place."""

from __future__ import annotations

import time
from datetime import date

import pytest

from search import understand as module
from search.understand import understand

TODAY = date(2026, 12, 7)
PLACES = ("Paris", "Nice", "Orange", "China", "Mobile", "Normal", "Reading", "Berlin")


@pytest.mark.parametrize("query", ["dog before 0001-01-01", "dog after 9999-12-31"])
def test_a_bound_past_the_calendar_ends_stays_text_without_error(query: str) -> None:
    got = understand(query, PLACES, TODAY)
    assert not got.found and got.text == query


@pytest.mark.parametrize(
    ("query", "day"),
    [
        ("Hund am 03.04.2019", date(2019, 4, 3)),
        ("Hund am 1.5.2019", date(2019, 5, 1)),
        ("chien le 1/5/2019", date(2019, 5, 1)),
        ("perro el 1/5/2019", date(2019, 5, 1)),
        ("dog on 1/5/2019", date(2019, 1, 5)),
        ("dog on 14/07/2019", date(2019, 7, 14)),
        ("dog 2019-07-14", date(2019, 7, 14)),
        ("dog 14.07.19", date(2019, 7, 14)),
    ],
)
def test_numeric_dates_are_day_first_when_dotted_or_not_english(query: str, day: date) -> None:
    got = understand(query, PLACES, TODAY)
    assert (got.date_from, got.date_to) == (day, day)


@pytest.mark.parametrize("query", ["dog 2019-13-01", "Hund am 31.02.2019", "dog 13/13/2019"])
def test_an_impossible_numeric_date_stays_text(query: str) -> None:
    got = understand(query, PLACES, TODAY)
    assert not got.found and got.text == query


@pytest.mark.parametrize(
    ("query", "text", "year"),
    [
        ("iphone 11 in 2019", "iphone 11", 2019),
        ("apollo 11 in 1969", "apollo 11", 1969),
        ("windows 10 in 2015", "windows 10", 2015),
        ("top 10 in 2019", "top 10", 2019),
        ("room 12 2018", "room 12", 2018),
        ("team of 11 in 2020", "team of 11", 2020),
        ("24 hours 2019", "24 hours", 2019),
        ("dog at 10:00 in 2019", "dog at 10:00", 2019),
    ],
)
def test_a_number_next_to_a_year_stays_text_and_the_year_is_the_whole_year(
    query: str, text: str, year: int
) -> None:
    got = understand(query, PLACES, TODAY)
    assert (got.text, got.date_from, got.date_to) == (text, date(year, 1, 1), date(year, 12, 31))


def test_month_names_with_a_year_and_days_ago_are_still_dates() -> None:
    got = understand("beach in May 2019", PLACES, TODAY)
    assert (got.text, got.date_from, got.date_to) == ("beach", date(2019, 5, 1), date(2019, 5, 31))
    ago = (("Hund vor 3 Tagen", "Hund"), ("dog 3 days ago", "dog"), ("perro hace 3 días", "perro"))
    for query, text in ago:
        got = understand(query, PLACES, TODAY)
        assert (got.text, got.date_from, got.date_to) == (text, date(2026, 12, 4), date(2026, 12, 4))


@pytest.mark.parametrize(
    "query", ["orange", "an orange", "goldfish in orange", "made in china", "mobile phone", "normal day",
              "reading in bed", "dog in paris"],
)  # fmt: skip
def test_a_lowercase_place_name_is_an_ordinary_word(query: str) -> None:
    got = understand(query, PLACES, TODAY)
    assert got.place is None and got.text == query


@pytest.mark.parametrize(
    ("query", "place"),
    [("Orange", "Orange"), ("sunset in Orange", "Orange"), ("made in China", "China"),
     ("dog in PARIS", "Paris")],
)  # fmt: skip
def test_a_capitalised_place_name_is_a_place(query: str, place: str) -> None:
    assert understand(query, PLACES, TODAY).place == place


@pytest.mark.parametrize("query", ["1 " * 2048, "2019 " * 800, "dog " + "12.5 " * 100 + "in 2019"])
def test_a_long_query_is_not_handed_to_dateparser(query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, today: date) -> list[object]:
        raise AssertionError("dateparser called on a long query")

    monkeypatch.setattr(module, "_parsed_dates", refuse)
    started = time.perf_counter()
    understand(query, PLACES, TODAY)
    assert time.perf_counter() - started < 2.0


def test_a_long_query_keeps_its_plain_year() -> None:
    got = understand("dog " + "12.5 " * 100 + "in 2019", PLACES, TODAY)
    assert (got.date_from, got.date_to) == (date(2019, 1, 1), date(2019, 12, 31))


def test_a_reversed_range_after_between_is_swapped() -> None:
    got = understand("beach between 2020 and 2018", PLACES, TODAY)
    assert (got.text, got.date_from, got.date_to) == ("beach", date(2018, 1, 1), date(2020, 12, 31))


def test_punctuation_after_an_understood_place_is_not_left_alone() -> None:
    got = understand("dog in Paris.", PLACES, TODAY)
    assert (got.text, got.place) == ("dog", "Paris")


def test_the_first_of_two_places_is_understood() -> None:
    for query, first in (("in Paris and in Nice", "Paris"), ("in Nice and in Paris", "Nice")):
        got = understand(query, PLACES, TODAY)
        assert got.place == first and got.phrases == (f"in {first}",)

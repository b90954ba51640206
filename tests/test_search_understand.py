"""Query understanding (search/understand.py): every row of tests/data/query_understanding.tsv, and the
rules the table's rows stand for."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.understand import Understood, understand
from tests.bench.bench_understanding import PLACES, TODAY, Row, as_intended, read_table

ROWS = read_table()
KNOWN_MISSES: frozenset[str] = frozenset()  # queries of the table the parser is allowed to get wrong


def test_table_covers_four_languages_and_traps() -> None:
    assert len(ROWS) >= 60
    assert {r.lang for r in ROWS} == {"en", "de", "fr", "es"}
    assert sum(r.trap for r in ROWS) >= 20


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.lang}:{r.query}" for r in ROWS])
def test_table_row_is_understood_as_written(row: Row) -> None:
    got = understand(row.query, PLACES, TODAY)
    if row.query in KNOWN_MISSES:
        pytest.xfail("a known miss of the table")
    assert as_intended(row, got), got
    if row.trap:
        assert not got.found


def test_query_without_date_or_place_is_returned_word_for_word() -> None:
    got = understand("  a  dog on the beach ", PLACES, TODAY)
    assert got == Understood(text="a dog on the beach")
    assert got.summary() == ""


def test_summary_names_after_before_and_place() -> None:
    got = understand("sunset in Paris in summer 2019", PLACES, TODAY)
    assert got.summary() == "after 2019-06-01, before 2019-08-31, place Paris"
    assert got.text == "sunset"
    assert got.to_json() == {
        "text": "sunset",
        "after": "2019-06-01",
        "before": "2019-08-31",
        "place": "Paris",
        "phrases": ["in Paris", "in summer 2019"],
    }


def test_place_the_collection_lacks_stays_text() -> None:
    got = understand("sunset in Tokyo", PLACES, TODAY)
    assert got.text == "sunset in Tokyo" and got.place is None


def test_only_first_date_phrase_is_understood_the_second_stays_text() -> None:
    got = understand("beach in 2018 and snow in 2021", PLACES, TODAY)
    assert (got.date_from, got.date_to) == (date(2018, 1, 1), date(2018, 12, 31))
    assert "2021" in got.text


def test_after_opens_the_range_past_the_period() -> None:
    got = understand("beach after 2019", PLACES, TODAY)
    assert (got.date_from, got.date_to, got.text) == (date(2020, 1, 1), None, "beach")


def test_last_christmas_on_christmas_day_is_the_year_before() -> None:
    got = understand("last christmas", PLACES, date(2024, 12, 25))
    assert (got.date_from, got.date_to) == (date(2023, 12, 24), date(2023, 12, 26))


def test_this_summer_is_the_current_years() -> None:
    got = understand("lake this summer", PLACES, date(2024, 7, 10))
    assert (got.date_from, got.date_to, got.text) == (date(2024, 6, 1), date(2024, 8, 31), "lake")


def test_winter_of_a_year_runs_into_the_next_february() -> None:
    got = understand("snow in winter 2023", PLACES, TODAY)
    assert (got.date_from, got.date_to) == (date(2023, 12, 1), date(2024, 2, 29))


def test_days_ago_in_german_is_one_day() -> None:
    got = understand("Hund vor 3 Tagen", PLACES, TODAY)
    assert (got.date_from, got.date_to, got.text) == (date(2024, 3, 12), date(2024, 3, 12), "Hund")


def test_place_match_ignores_case_and_accents_and_reports_the_collection_name() -> None:
    assert understand("atardecer en PARÍS", PLACES, TODAY).place == "Paris"


_TIES = {"in", "on", "at", "from", "of", "im", "am", "an", "en", "à", "a", "au", "de", "el", "la", "le", "l"}
_FILLERS = {"photos", "fotos"}


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.lang}:{r.query}" for r in ROWS])
def test_no_word_of_a_table_query_is_dropped(row: Row) -> None:
    got = understand(row.query, PLACES, TODAY)
    kept = _words(got.text) | set().union(*(_words(p) for p in got.phrases))
    assert _words(row.query) - kept <= _TIES | _FILLERS


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("ab19 20-./:'éßx")), max_size=30) | st.text(max_size=30))
def test_any_text_is_understood_without_error_and_keeps_its_words(text: str) -> None:
    got = understand(text, PLACES, TODAY)
    kept = _words(got.text) | set().union(*(_words(p) for p in got.phrases))
    assert _words(text) - kept <= _TIES | _FILLERS
    if got.date_from and got.date_to:
        assert got.date_from <= got.date_to


def test_a_query_without_digits_or_day_words_never_loads_dateparser() -> None:
    code = (
        "import sys; from search.understand import understand; "
        "understand('dog on the beach in Paris last summer', ['Paris']); "
        "sys.exit('dateparser' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.parametrize(
    ("query", "text", "first", "last"),
    [
        ("between 2018 and 2020 beach", "beach", date(2018, 1, 1), date(2020, 12, 31)),
        ("Strand von Mai 2019 bis Juni 2019", "Strand", date(2019, 5, 1), date(2019, 6, 30)),
        ("plage entre 2018 et 2020", "plage", date(2018, 1, 1), date(2020, 12, 31)),
        ("playa desde 2018 hasta 2020", "playa", date(2018, 1, 1), date(2020, 12, 31)),
        ("beach from summer 2018 to summer 2019", "beach", date(2018, 6, 1), date(2019, 8, 31)),
    ],
)
def test_two_dates_joined_by_a_range_word_are_one_range(
    query: str, text: str, first: date, last: date
) -> None:
    got = understand(query, PLACES, TODAY)
    assert (got.text, got.date_from, got.date_to) == (text, first, last)


def test_a_place_after_to_or_over_is_a_place() -> None:
    assert understand("trip to Paris", PLACES, TODAY).summary() == "place Paris"
    assert understand("sunset over Berlin", PLACES, TODAY).text == "sunset"


@pytest.mark.parametrize(
    "query",
    ["dog on the beach in 2019", "2019", "between 2018 and 2020 beach", "Fotos seit 2020", "1984 book cover",
     "plage entre 2018 et 2020", "beach before 2015", "2001 a space odyssey poster", "dogs from 2015"],
)  # fmt: skip
def test_plain_years_are_read_as_dateparser_reads_them(query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from search import understand as module

    fast = understand(query, PLACES, TODAY)
    monkeypatch.setattr(module, "_plain_years", lambda text: None)
    assert understand(query, PLACES, TODAY) == fast

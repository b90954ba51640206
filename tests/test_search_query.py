"""The query language: plain text, composite terms, weights, images, errors, round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.core.errors import QueryError
from search.query import MAX_QUERY_CHARS, Query, Term, TermKind, parse_query


def terms(text: str) -> list[tuple[str, object, float]]:
    return [(t.kind.value, t.value, t.weight) for t in parse_query(text).terms]


def test_plain_words_are_one_text_term_taken_literally():
    assert terms("  dog on a beach ") == [("text", "dog on a beach", 1.0)]


def test_unquoted_operators_stay_part_of_a_plain_text():
    assert terms("beach - people") == [("text", "beach - people", 1.0)]
    assert terms("a red t-shirt") == [("text", "a red t-shirt", 1.0)]


def test_quoted_terms_with_minus_subtract():
    assert terms('"beach" - "people"') == [("text", "beach", 1.0), ("text", "people", -1.0)]


def test_image_path_plus_text():
    assert terms('photo.jpg + "at night"') == [("image", "photo.jpg", 1.0), ("text", "at night", 1.0)]


def test_operator_may_touch_a_path_and_a_quote():
    assert terms('photo.jpg+"at night"') == terms('photo.jpg + "at night"')
    assert terms('"a"-"b"') == [("text", "a", 1.0), ("text", "b", -1.0)]


def test_weights_multiply_the_sign():
    assert terms('2:"sunset" - 0.5:"snow" + .25:b.png') == [
        ("text", "sunset", 2.0),
        ("text", "snow", -0.5),
        ("image", "b.png", 0.25),
    ]


def test_a_single_weighted_term_is_composite():
    assert terms('2:"sunset"') == [("text", "sunset", 2.0)]


def test_leading_minus_negates_the_first_term():
    assert terms('- "people"') == [("text", "people", -1.0)]


def test_photo_ids_and_at_paths():
    assert terms('#42 - "snow"') == [("image", 42, 1.0), ("text", "snow", -1.0)]
    assert terms('@"my photos/a b.JPG" + "x"') == [("image", "my photos/a b.JPG", 1.0), ("text", "x", 1.0)]
    assert terms("@scan.raw") == [("image", "scan.raw", 1.0)]


def test_image_only_queries_without_quotes():
    assert terms("holiday/IMG_1.JPEG") == [("image", "holiday/IMG_1.JPEG", 1.0)]
    assert terms("a.jpg - b.png") == [("image", "a.jpg", 1.0), ("image", "b.png", -1.0)]
    assert terms("#7") == [("image", 7, 1.0)]


def test_text_mentioning_a_filename_or_hash_stays_text():
    assert terms("cat.jpg in the garden") == [("text", "cat.jpg in the garden", 1.0)]
    assert terms("#1 dad") == [("text", "#1 dad", 1.0)]


def test_escaped_quotes_inside_text():
    assert terms(r'"a \"quoted\" word" + "back\\slash"') == [
        ("text", 'a "quoted" word', 1.0),
        ("text", "back\\slash", 1.0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ('""', "empty"),
        ('#3 + "beach', "not closed"),  # with a photo in it, a broken composite is an error
        ('"beach" #3', r"expected \+ or -"),
        ('#3 + "x" + sea', "neither quoted text nor an image path"),
        ("#3 +", "ends where a term was expected"),
        ('"a" + @"', "not closed"),
        ('"a" + @""', "image path"),
        ("x" * (MAX_QUERY_CHARS + 1), "too long"),
        (" + ".join(['"a"'] * 40), "at most"),
        ('0.0000001:"a"', "weight"),
    ],
)
def test_malformed_queries_raise_a_query_error(text: str, message: str):
    with pytest.raises(QueryError, match=message):
        parse_query(text)


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ('"golden retriever" puppy', "golden retriever puppy"),
        ('"dog on a beach', "dog on a beach"),
        ('"beach" "sea"', "beach sea"),
        ('"beach" +', "beach +"),
        ('a "quoted" word', "a quoted word"),
    ],
)
def test_quotes_that_do_not_parse_fall_back_to_plain_text(text: str, meant: str):
    assert parse_query(text) == Query.of_text(meant)


def test_non_string_query_is_a_query_error():
    with pytest.raises(QueryError):
        parse_query(None)  # type: ignore[arg-type]


def test_api_terms_validate():
    with pytest.raises(QueryError):
        Query(())
    with pytest.raises(QueryError):
        Term.text("  ")
    with pytest.raises(QueryError):
        Term(TermKind.TEXT, "a", float("nan"))
    with pytest.raises(QueryError):
        Term.image(3.5)  # type: ignore[arg-type]
    assert Term("text", "a").kind is TermKind.TEXT


def test_a_place_term_narrows_a_composite_query():
    query = parse_query('"beach" + place:"Côte d\'Azur" + "sunset"')
    assert [t.value for t in query.terms] == ["beach", "sunset"] and query.place == "Côte d'Azur"
    assert parse_query('#3 + place:"Paris"').place == "Paris"
    assert parse_query('"beach" + place:Paris').place == "Paris"  # a one-word place needs no quotes
    assert parse_query("beach in place:Paris").place is None  # no quotes: plain text, taken literally
    assert parse_query(str(query)) == query


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('place:"Nice"', "only narrows a search"),
        ('"beach" - place:"Nice"', "only narrow a search"),
        ('"beach" + place:"Nice" + place:"Rome"', "at most one place"),
        ('"beach" + place:""', "expected a city"),
    ],
)
def test_misused_place_terms_say_how_to_write_them(text: str, message: str):
    with pytest.raises(QueryError, match=message):
        parse_query(text)


def test_str_gives_the_canonical_syntax():
    q = Query((Term.text("beach"), Term.text("people", -1), Term.image("a b.jpg", 0.5), Term.image(3, -2)))
    assert str(q) == '"beach" - "people" + 0.5:@"a b.jpg" - 2:#3'
    assert parse_query(str(q)) == q


text_values = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
path_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: s.strip() != ""
)
weights = st.one_of(
    st.sampled_from([1.0, -1.0, 2.0, -0.5, 0.0]),
    st.floats(min_value=1e-6, max_value=1e6).flatmap(lambda w: st.sampled_from([w, -w])),
)
term_strategy = st.one_of(
    st.builds(Term.text, text_values, weights),
    st.builds(Term.image, path_values, weights),
    st.builds(Term.image, st.integers(min_value=0, max_value=10**15), weights),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(term_strategy, min_size=1, max_size=6), st.one_of(st.none(), text_values))
def test_canonical_syntax_round_trips(term_list: list[Term], place: str | None):
    query = Query(tuple(term_list), place=place)
    assert parse_query(str(query)) == query


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_query_error(text: str):
    try:
        query = parse_query(text)
    except QueryError:
        return
    assert query.terms
    assert all(t.weight == t.weight for t in query.terms)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters='"'), max_size=100))
def test_text_without_quotes_or_images_is_kept_verbatim(text: str):
    try:
        query = parse_query(text)
    except QueryError:
        assert not text.strip()
        return
    if query.terms[0].kind is TermKind.TEXT:
        assert query == Query.of_text(text.strip())

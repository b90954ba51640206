"""The stored text of photos and its full-text search: the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.storage.text import TextResult, TextStatus, safe_text, text_counts, tokens

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

ENGINE = "test-engine 1"


@pytest.fixture
def collection(tmp_path: Path) -> Iterator[Collection]:
    with Collection.open(tmp_path / "data", create=True) as c:
        yield c


def _photos(collection: Collection, n: int, status: PhotoStatus = PhotoStatus.INDEXED) -> list[int]:
    with collection.database.writing() as s:
        first = len(collection.rows.rows_to_plan())
        rows = [
            Photo(path=f"/p/{i}.jpg", root="/p", file_type="jpeg", size=1, mtime_ns=1, content_hash=f"h{i}",
                  status=status, seen_run=1)
            for i in range(first, first + n)
        ]  # fmt: skip
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _store(collection: Collection, texts: dict[int, str]) -> None:
    hashes = {i: p.content_hash for i, p in collection.photos(list(texts)).items()}
    status = {True: TextStatus.OK, False: TextStatus.NONE}
    collection.write_texts([TextResult(i, hashes[i], ENGINE, status[bool(t)], t) for i, t in texts.items()])


def test_every_query_word_must_match_whole_words_case_and_accents_folded(collection: Collection) -> None:
    a, b, c = _photos(collection, 3)
    _store(collection, {a: "STOP\nMain Street", b: "Café de la gare", c: "stopwatch 2023 invoice"})
    assert [m.photo_id for m in collection.text_matches("stop", 10)] == [a]
    assert [m.photo_id for m in collection.text_matches("CAFE gare", 10)] == [b]
    assert [m.photo_id for m in collection.text_matches("café", 10)] == [b]
    assert collection.text_matches("invoice 2023", 10)[0].photo_id == c
    assert collection.text_matches("invoice 2024", 10) == []
    match = collection.text_matches("main stop", 10)[0]
    assert (match.photo_id, match.words) == (a, ("STOP", "Main"))


def test_query_syntax_of_either_backend_is_plain_text_and_never_an_error(collection: Collection) -> None:
    (a,) = _photos(collection, 1)
    _store(collection, {a: 'OR AND NOT near a"b stop* -x'})
    for query in ('"', "a\"b", "OR", "*", "NEAR(", "stop*", "-x", "'", "!", "&|", "col:stop", "^", "(", "\\",
                  "\x00", "", "   ", "🙂", "a" * 5000, "stop OR", "NOT stop", 'stop" OR "x'):  # fmt: skip
        collection.text_matches(query, 5)  # no exception on either backend
    assert [m.photo_id for m in collection.text_matches("OR", 5)] == [a]
    assert [m.photo_id for m in collection.text_matches("NOT stop", 5)] == [a]
    assert [m.photo_id for m in collection.text_matches('a"b', 5)] == [a]
    assert collection.text_matches("*", 5) == []


def test_ranking_is_by_relevance_and_limit_and_allowed_are_respected(collection: Collection) -> None:
    ids = _photos(collection, 4)
    long = "sale " + "filler " * 50
    _store(collection, {ids[0]: long, ids[1]: "sale sale sale", ids[2]: "sale", ids[3]: ""})
    found = collection.text_matches("sale", 10)
    assert {m.photo_id for m in found} == set(ids[:3])
    assert found[0].photo_id in (ids[1], ids[2]) and found[-1].photo_id == ids[0]
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert len(collection.text_matches("sale", 2)) == 2
    assert [m.photo_id for m in collection.text_matches("sale", 10, allowed=[ids[0], ids[3]])] == [ids[0]]
    assert collection.text_matches("sale", 10, allowed=[]) == []


def test_only_indexed_photos_match_and_texts_are_given_for_display(collection: Collection) -> None:
    (a,) = _photos(collection, 1)
    (b,) = _photos(collection, 1, PhotoStatus.PENDING)
    _store(collection, {a: "exit", b: "exit"})
    assert [m.photo_id for m in collection.text_matches("exit", 10)] == [a]
    assert collection.photo_texts([a, b, 999]) == {a: "exit", b: "exit"}


def test_a_rewrite_replaces_the_text_and_its_index_entry(collection: Collection) -> None:
    (a,) = _photos(collection, 1)
    _store(collection, {a: "old words"})
    _store(collection, {a: "new words"})
    assert collection.text_matches("old", 10) == []
    assert [m.photo_id for m in collection.text_matches("new", 10)] == [a]
    assert collection.photo_texts([a]) == {a: "new words"}


def test_removed_photos_drop_their_text_and_index_entries(collection: Collection) -> None:
    a, b = _photos(collection, 2)
    _store(collection, {a: "parking", b: "parking"})
    from indexer.core.storage.batches import RowWriter

    RowWriter(collection.database, 2).delete([a])
    assert [m.photo_id for m in collection.text_matches("parking", 10)] == [b]
    assert collection.photo_texts([a, b]) == {b: "parking"}
    assert sum(text_counts(collection.database).values()) == 1


def test_control_and_escape_characters_are_never_stored(collection: Collection) -> None:
    (a,) = _photos(collection, 1)
    _store(collection, {a: "red\x1b[31malert\x07 \u202eevil\u200b\x00end\ud800"})
    stored = collection.photo_texts([a])[a]
    assert stored.isprintable()
    assert "\x1b" not in stored and "\u202e" not in stored
    assert [m.photo_id for m in collection.text_matches("evil end red", 10)] == [a]


def test_what_is_to_read_follows_engine_and_content(collection: Collection) -> None:
    a, b, c = _photos(collection, 3)
    (failed,) = _photos(collection, 1, PhotoStatus.ERROR)
    assert [t.photo_id for t in collection.texts_to_read(ENGINE)] == [a, b, c]
    _store(collection, {a: "x", b: ""})
    assert [t.photo_id for t in collection.texts_to_read(ENGINE)] == [c]
    assert [t.photo_id for t in collection.texts_to_read("better-engine 2")] == [a, b, c]
    assert [t.photo_id for t in collection.texts_to_read(ENGINE, after=a, limit=1)] == [c]
    with collection.database.writing() as s:
        s.get(Photo, a).content_hash = "changed"  # type: ignore[union-attr]
    assert [t.photo_id for t in collection.texts_to_read(ENGINE)] == [a, c]
    assert failed not in [t.photo_id for t in collection.texts_to_read(ENGINE)]


def test_a_result_for_a_photo_removed_meanwhile_is_skipped(collection: Collection) -> None:
    (a,) = _photos(collection, 1)
    assert collection.write_texts([TextResult(a + 100, None, ENGINE, TextStatus.OK, "gone")]) == 0
    assert collection.write_texts([TextResult(a, None, ENGINE, TextStatus.FAILED)]) == 1
    assert text_counts(collection.database) == {TextStatus.FAILED: 1}


def test_safe_text_keeps_lines_and_letters_and_drops_controls() -> None:
    assert safe_text("Straße\tNo 5\r\n\x1b[2J  東京 ") == "Straße No 5\n[2J 東京"
    assert tokens("Ærø-Café_ŒUVRE 2023!") == ["ærø", "cafe", "œuvre", "2023"]


def test_a_changed_file_is_neither_found_nor_shown_by_the_text_of_its_old_content(
    collection: Collection,
) -> None:
    a, b = _photos(collection, 2)
    _store(collection, {a: "INVOICE 2023 TOTAL", b: "invoice 2023 copy"})
    with collection.database.writing() as s:  # the file at a's path now holds other pixels
        s.get(Photo, a).content_hash = "changed"  # type: ignore[union-attr]
    assert [m.photo_id for m in collection.text_matches("invoice 2023", 10)] == [b]
    assert [m.photo_id for m in collection.text_matches("invoice", 10, allowed=[a, b])] == [b]
    assert collection.photo_texts([a, b]) == {b: "invoice 2023 copy"}


def test_chinese_text_is_found_by_a_part_of_a_line_written_without_spaces(collection: Collection) -> None:
    a, b = _photos(collection, 2)
    _store(collection, {a: "增值税专用发票 金额合计", b: "发 票"})
    assert [m.photo_id for m in collection.text_matches("发票", 10)] == [a]  # the pair, not two lone signs
    assert [m.photo_id for m in collection.text_matches("金额", 10)] == [a]
    assert collection.text_matches("增值税专用发票", 10)[0].words == ("增值税专用发票",)
    assert [m.photo_id for m in collection.text_matches("发", 10)] == [b]
    assert tokens("税 发票") == ["税", "发票"]


def test_every_format_character_is_dropped_from_stored_text() -> None:
    hidden = "a\u061cb\u2060c\u206fd\u180ee\U000e0041f\u202eg\u200bh"
    assert safe_text(hidden) == "a b c d e f g h"

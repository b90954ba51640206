"""Words in photos at search time: plain queries fused with word matches, the ``text:`` term, the
matched words on hits, bands, filters, paging and sorting, on SQLite and PostgreSQL.

The collection is built from the tiny model's own text embeddings (tests/helpers/search_collection.py)
and its recognised text is written through the storage API, as the OCR stage writes it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from indexer.core.errors import QueryError
from indexer.core.models import DualEncoder
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import TextStatus
from indexer.core.storage.text import TextResult
from search import Filters, Searcher
from search.hits import Hit
from search.query import parse_query
from search.render import format_hits
from search.text_terms import fuse, text_snippet, word_segments
from tests.helpers.search_collection import FakePhoto, make_collection
from ui.views import words_html

N_RANDOM = 30
TEXTS = {
    "signs/stop_sign.jpg": "STOP",
    "docs/invoice.png": "ACME Ltd\nInvoice 2023\nTotal 42.00",
    "docs/invoice_old.png": "Invoice 2019",
    "signs/evil.jpg": "<b>EXIT</b> \x1b[31mnow\u202e here",
}


@pytest.fixture(scope="module")
def clip_encoder(tiny_clip_dir: Path) -> DualEncoder:
    return DualEncoder(tiny_clip_dir)


@pytest.fixture(scope="module")
def world(tmp_path_factory, clip_encoder: DualEncoder, module_db_url: str | None):
    """Photos about "dog" and "beach" (by their vectors), photos with recognised text, distractors."""
    base = tmp_path_factory.mktemp("words")
    rng = np.random.default_rng(3)
    dim = clip_encoder.dim
    dog = clip_encoder.embed_texts(["dog"])[0]
    named = {
        "pets/dog.jpg": dog,
        "pets/dog_two.jpg": dog + 0.3 * rng.standard_normal(dim) / np.sqrt(dim),
        **{path: rng.standard_normal(dim) for path in TEXTS},
    }
    photos = [
        FakePhoto(path, vector, file_type=Path(path).suffix[1:], taken_at=datetime(2020, 1 + n, 1))
        for n, (path, vector) in enumerate(named.items())
    ]
    photos += [FakePhoto(f"misc/{i:03d}.jpg", rng.standard_normal(dim)) for i in range(N_RANDOM)]
    ids = make_collection(
        base / "data", base / "photos", photos, model_id=clip_encoder.model_id, db_url=module_db_url
    )
    by_name = {p.path: i for p, i in zip(photos, ids, strict=True)}
    collection = Collection.open(base / "data", db_url=module_db_url)
    try:
        results = [
            TextResult(by_name[path], None, "test-engine", TextStatus.OK, text)
            for path, text in TEXTS.items()
        ]
        results.append(TextResult(by_name["pets/dog.jpg"], None, "test-engine", TextStatus.NONE))
        collection.write_texts(results)
    finally:
        collection.close()
    return base / "data", by_name, module_db_url


@pytest.fixture()
def searcher(world, clip_encoder):
    data, _, db_url = world
    with Searcher.open(data, encoder=clip_encoder, db_url=db_url) as s:
        yield s


def _names(hits: list[Hit]) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_a_plain_word_query_ranks_the_photo_whose_text_says_it_first(searcher):
    hits = searcher.search("stop", k=5)
    assert _names(hits)[0] == "stop_sign.jpg"
    assert hits[0].text == "STOP" and hits[0].text_words == ("STOP",)
    assert hits[0].relevance in ("good", "strong")  # matched by its words: never weak


def test_no_weak_match_comes_before_a_word_match_and_one_hit_is_the_word_match(searcher):
    for query in ("stop", "invoice", "main street"):
        bands = [h.relevance for h in searcher.search(query, k=40)]
        first_weak = bands.index("weak") if "weak" in bands else len(bands)
        assert "weak" not in bands[:first_weak] and set(bands[first_weak:]) <= {"weak"}, (query, bands)
    (only,) = searcher.search("stop", k=1)
    assert only.text_words == ("STOP",)


def test_photos_without_a_word_match_keep_their_vector_order(searcher, world):
    _, by_name, _ = world
    fused = searcher.search("dog invoice", k=40)  # no photo's text holds both words
    assert all(not h.text_words for h in fused)
    plain = searcher.search('"dog invoice" + 0:"x"', k=40)  # the vector ranking alone
    assert [h.id for h in fused] == [h.id for h in plain]
    with_words = searcher.search("invoice", k=40)
    matched = {h.id for h in with_words if h.text_words}
    assert matched == {by_name["docs/invoice.png"], by_name["docs/invoice_old.png"]}
    rest = [h.id for h in with_words if not h.text_words]
    vector_only = [i for i in (h.id for h in searcher.search('"invoice" + 0:"x"', k=40)) if i not in matched]
    assert rest == vector_only[: len(rest)]


def test_the_text_term_finds_only_photos_holding_every_word(searcher):
    hits = searcher.search('text:"invoice 2023"', k=10)
    assert _names(hits) == ["invoice.png"]
    assert set(hits[0].text_words) == {"Invoice", "2023"} and "Total 42.00" in hits[0].text
    assert hits[0].relevance == "good" and hits[0].rank == 1
    assert set(_names(searcher.search("text:invoice", k=10))) == {"invoice.png", "invoice_old.png"}
    assert searcher.search('text:"invoice 2024"', k=10) == []
    assert searcher.count(words="invoice") == 2 and searcher.count(Filters(folder="signs"), "invoice") == 0


def test_the_text_term_composes_with_vector_terms_and_filters(searcher):
    ranked = searcher.search('"dog" + text:"invoice"', k=10)
    assert set(_names(ranked)) == {"invoice.png", "invoice_old.png"}
    assert ranked[0].cosine >= ranked[1].cosine
    assert searcher.search("text:invoice", k=10, filters=Filters(folder="signs")) == []
    assert _names(searcher.search("text:invoice", k=10, filters=Filters(file_types=("png",)))) != []
    assert _names(searcher.search("stop", k=10, filters=Filters(folder="pets")))[:1] != ["stop_sign.jpg"]


def test_paging_and_date_sort_keep_the_word_matches(searcher):
    full = [h.id for h in searcher.search("invoice", k=12)]
    pages = [h.id for off in range(0, 12, 4) for h in searcher.search("invoice", k=4, offset=off)]
    assert pages == full
    by_date = searcher.search("text:invoice", k=10, sort="date")
    assert _names(by_date) == ["invoice_old.png", "invoice.png"]  # taken 2020-04 then 2020-03
    dated = searcher.search("invoice", k=10, sort="date")
    assert {"invoice.png", "invoice_old.png"} <= set(_names(dated))


def test_recognised_text_is_shown_without_control_or_bidi_characters(searcher):
    hit = searcher.search("text:exit", k=1)[0]
    assert hit.text == "<b>EXIT</b> [31mnow here"  # markup stays literal: front ends escape it
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x2028 <= ord(c) <= 0x202E for c in hit.text)


def test_hits_carry_their_words_in_json_and_back(searcher):
    hit = searcher.search('text:"invoice 2023"', k=1)[0]
    data = hit.to_json()
    assert data["text"] == hit.text and sorted(data["text_words"]) == ["2023", "Invoice"]
    assert Hit.from_json(data) == hit


@pytest.mark.parametrize(
    "query", ['text:""', 'text:"invoice', '"dog" - text:"stop"', "text:a + text:b", "text:", '"a" text:"b"']
)
def test_a_malformed_text_term_is_a_one_line_query_error(query):
    with pytest.raises(QueryError) as raised:
        parse_query(query)
    assert "\n" not in str(raised.value)


def test_the_text_term_round_trips_through_the_query_syntax():
    for text in ('text:"invoice 2023"', '"dog" + text:"stop" + place:"Nice"', 'text:"say \\"hi\\""'):
        parsed = parse_query(text)
        assert parse_query(str(parsed)) == parsed
    assert parse_query("text:stop").text == "stop" and parse_query("text:stop").terms == ()
    assert parse_query("context: a").text is None  # only a term starting with text: is one


def test_the_http_api_sends_the_matched_words(world):
    from tests.helpers.api_server import Server

    data, _, db_url = world
    server = Server(data, *(("--db", db_url) if db_url else ()))
    try:
        body = httpx.get(
            f"{server.url}/search", params={"q": 'text:"invoice 2023"', "k": 5}, timeout=60
        ).json()
        assert [Path(h["path"]).name for h in body["hits"]] == ["invoice.png"]
        assert body["total"] == 1 and body["has_more"] is False  # the photos the text: term ranks
        assert (
            sorted(body["hits"][0]["text_words"]) == ["2023", "Invoice"] and "ACME" in body["hits"][0]["text"]
        )
        bad = httpx.get(f"{server.url}/search", params={"q": 'text:"invoice'}, timeout=60)
        assert bad.status_code == 400 and "text:" in bad.json()["error"]["message"]
    finally:
        server.stop()


def test_the_terminal_table_shows_the_matched_words(searcher):
    table = format_hits(searcher.search("text:exit", k=1))
    assert table.splitlines()[0].split()[-2:] == ["words", "path"]
    assert table.splitlines()[1].split()[-2] == "EXIT" and "\x1b" not in table


def test_the_page_escapes_the_text_before_highlighting_the_matched_words(searcher):
    hit = searcher.search("text:exit", k=1)[0]
    html = words_html(hit)
    assert "&lt;b&gt;<mark>EXIT</mark>&lt;/b&gt;" in html and "<b>" not in html
    assert "\x1b" not in html and words_html(replace(hit, text="", text_words=())) == ""


def test_rank_fusion_lifts_word_matches_and_keeps_the_order_of_the_rest():
    vector = [10, 11, 12, 13, 14]
    fused = fuse(vector, [13, 99])
    # 13 is in both rankings (1/64 + 1/61); 99, second by words and beyond the vector candidates, counts
    # as sixth by vector (1/62 + 1/66): above 10, first by vector alone (1/61)
    assert fused[:3] == [13, 99, 10]
    assert [i for i in fused if i not in (13, 99)] == [10, 11, 12, 14]
    assert fuse(vector, []) == vector and fuse([], [5, 4]) == [5, 4]


def test_a_snippet_starts_near_the_first_matched_word_and_segments_join_back():
    text = "x " * 200 + "the Café sign " + "y " * 200
    cut = text_snippet(text, ["cafe"], limit=60)
    assert len(cut) <= 62 and "Café" in cut and cut.startswith("…") and cut.endswith("…")
    pieces = word_segments("Café, CAFE-cafés", ["café"])
    assert "".join(p for p, _ in pieces) == "Café, CAFE-cafés"
    assert [p for p, hit in pieces if hit] == ["Café", "CAFE"]  # whole words, accents and case folded


def test_a_words_only_hit_carries_the_real_cosine_of_its_words_not_zero(searcher, world, clip_encoder):
    _, by_name, _ = world
    (hit,) = searcher.search('text:"invoice 2023"', k=5)
    words = clip_encoder.embed_texts(["invoice 2023"])[0]
    stored = searcher.collection.vectors([by_name["docs/invoice.png"]])[0]
    assert hit.cosine == pytest.approx(float(stored @ words), abs=1e-4) and hit.cosine != 0.0
    assert hit.logit == pytest.approx(
        float(searcher.score_model().logits(np.array([hit.cosine]))[0]), abs=1e-3
    )
    vector_only = {h.id: h for h in searcher.search('"invoice 2023" + 0:"x"', k=40)}  # every photo
    assert hit.probability == pytest.approx(vector_only[hit.id].probability, rel=1e-4)  # not 100 % alone
    assert hit.relevance == "good"  # the band still says its words are there

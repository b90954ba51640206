"""Bad queries: property tests over the query syntax and the search API arguments.

Whatever the text, k, offset, photo reference or filter, the search API (and the UI's code path)
returns a well-formed result or raises a DualensError with a message — never another exception —
and the collection's tables are exactly as before (no text ever reaches SQL as SQL).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from indexer.core.errors import DualensError
from search import Filters, Hit, Searcher, parse_query
from search.query import Query
from tests.helpers.faults import index_in_process, make_photos
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

NASTY = [
    "'; DROP TABLE photos; --",
    '"; DELETE FROM photos WHERE 1=1; --',
    "') OR 1=1 --",
    "%",
    "_",
    "\\",
    "\x00",
    "\n",
    "\r\n",
    "\t",
    "\u202e",
    "☃",
    "😀",
    "東京",
    "../",
    "../../etc/passwd",
    "/etc/passwd",
    "~",
    "photo.jpg",
    "@/etc/passwd",
    '@"/etc/shadow"',
    "#1",
    "#0",
    "#999999999999999999",
    "#9999999999999999999999",
    "2:",
    "0.5:",
    "1e9:",
    "0:",
    "+",
    "-",
    '"',
    '""',
    '"beach"',
    " ",
    "a red car",
]
SYNTAX_PIECES = st.sampled_from(NASTY) | st.text(max_size=6)
QUERY_TEXT = (
    st.lists(SYNTAX_PIECES, max_size=24).map("".join)
    | st.text(max_size=200)
    | st.integers(4000, 6000).map(lambda n: "beach " * (n // 6))
)
WEIRD_NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, 1, 10_000, 10_001, 1_000_000, 1_000_001, 2**63 - 1, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
)


@pytest.fixture(scope="module")
def collection_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("queries")
    root = base / "photos"
    make_photos(root, 8, seed=11)
    data = base / "data"
    index_in_process(data, [root], tiny_model_dir)
    return data, root


@pytest.fixture(scope="module")
def searcher(collection_dir: tuple[Path, Path]) -> Iterator[Searcher]:
    with Searcher.open(collection_dir[0]) as s:
        yield s


@pytest.fixture(scope="module")
def backend(collection_dir: tuple[Path, Path]) -> Iterator[Backend]:
    b = Backend.open(collection_dir[0], UiConfig())
    yield b
    b.close()


@pytest.fixture(scope="module")
def indexed_paths(collection_dir: tuple[Path, Path]) -> set[str]:
    return {str(p) for p in collection_dir[1].rglob("*.jpg")}


def _tables_digest(data: Path) -> str:
    """Schema and every row of the collection database, hashed."""
    import sqlite3

    con = sqlite3.connect(data / "dualens.sqlite")
    try:
        digest = hashlib.sha256()
        for (sql,) in con.execute("SELECT sql FROM sqlite_master ORDER BY name"):
            digest.update(str(sql).encode())
        for table in ("photos", "roots", "collection_info", "alembic_version"):
            for row in con.execute(f"SELECT * FROM {table} ORDER BY 1"):
                digest.update(repr(row).encode())
        return digest.hexdigest()
    finally:
        con.close()


@pytest.fixture(scope="module")
def untouched(collection_dir: tuple[Path, Path]) -> Iterator[None]:
    """The database must be byte-for-byte the same, row for row, after every property test."""
    before = _tables_digest(collection_dir[0])
    yield
    assert _tables_digest(collection_dir[0]) == before


def _assert_well_formed(hits: object, k: object, paths: set[str]) -> None:
    assert isinstance(hits, list)
    assert isinstance(k, int) and len(hits) <= k
    for hit in hits:
        assert isinstance(hit, Hit)
        assert hit.path in paths
        assert math.isfinite(hit.cosine) and -1.001 <= hit.cosine <= 1.001
        assert math.isfinite(hit.probability) and 0.0 <= hit.probability <= 1.0
    cosines = [h.cosine for h in hits]
    assert cosines == sorted(cosines, reverse=True)


# ---------------------------------------------------------------- the parser
@SETTINGS
@given(QUERY_TEXT)
def test_any_query_text_parses_or_raises_a_dualens_error(query: str) -> None:
    try:
        parsed = parse_query(query)
    except DualensError as exc:
        assert str(exc).strip()
        return
    assert isinstance(parsed, Query) and parsed.terms
    again = parse_query(str(parsed))  # the canonical form parses back to the same terms
    assert again == parsed


# ---------------------------------------------------------------- the search API
@SETTINGS
@given(query=QUERY_TEXT, k=WEIRD_NUMBER, offset=WEIRD_NUMBER)
def test_search_returns_hits_or_a_dualens_error_for_any_text_k_and_offset(
    searcher: Searcher, indexed_paths: set[str], untouched: None, query: str, k: object, offset: object
) -> None:
    try:
        hits = searcher.search(query, k=k, offset=offset)  # type: ignore[arg-type]
    except DualensError as exc:
        assert str(exc).strip()
        return
    _assert_well_formed(hits, k, indexed_paths)


PHOTO_REF = st.one_of(
    WEIRD_NUMBER,
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.sampled_from(["/", ".", "..", "/dev/zero", "/proc/self/environ", "/etc/passwd"]),
)


@SETTINGS
@given(photo=PHOTO_REF, k=st.sampled_from([1, 5, 20]))
def test_similar_and_search_image_take_any_reference_and_raise_only_dualens_errors(
    searcher: Searcher, indexed_paths: set[str], untouched: None, photo: object, k: int
) -> None:
    for call in (searcher.similar, searcher.search_image):
        try:
            hits = call(photo, k=k)  # type: ignore[arg-type]
        except DualensError as exc:
            assert str(exc).strip()
            continue
        _assert_well_formed(hits, k, indexed_paths)


FILTERS = st.builds(
    Filters,
    folder=st.none() | st.sampled_from(NASTY) | st.text(max_size=30),
    date_from=st.none() | st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    date_to=st.none() | st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    file_types=st.lists(
        st.sampled_from(["jpg", "png", "JPEG", ".tif", "", "%", "'; --", "x" * 40]), max_size=3
    ),
    min_score=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)


@SETTINGS
@given(data=st.data())
def test_any_filter_values_give_hits_or_a_dualens_error(
    searcher: Searcher, indexed_paths: set[str], untouched: None, data: st.DataObject
) -> None:
    try:
        filters = data.draw(FILTERS)
    except DualensError:
        return  # rejected at construction with a message: fine
    try:
        hits = searcher.search("a red car", k=10, filters=filters)
    except DualensError as exc:
        assert str(exc).strip()
        return
    _assert_well_formed(hits, 10, indexed_paths)
    if filters.min_score is not None:
        assert all(h.cosine >= filters.min_score for h in hits)


# ---------------------------------------------------------------- the UI's code path
@SETTINGS
@given(query=QUERY_TEXT, limit=st.integers(-(2**40), 2**40), photo_id=st.integers(-(2**70), 2**70))
def test_ui_requests_with_any_text_limit_and_photo_id_give_a_page_or_a_dualens_error(
    backend: Backend, indexed_paths: set[str], untouched: None, query: str, limit: int, photo_id: int
) -> None:
    for request in (
        SearchRequest(kind="text", text=query, limit=limit),
        SearchRequest(kind="similar", photo_id=photo_id, limit=limit),
    ):
        try:
            page = backend.run(request)
        except DualensError as exc:
            assert str(exc).strip()
            continue
        assert len(page.hits) <= max(1, min(limit, backend.config.max_results))
        _assert_well_formed(page.hits, len(page.hits), indexed_paths)
    try:
        hit = backend.photo(photo_id)
    except DualensError:
        return
    assert hit is None or hit.path in indexed_paths


def test_sql_text_is_searched_as_text_and_the_tables_survive(
    searcher: Searcher, collection_dir: tuple[Path, Path], indexed_paths: set[str]
) -> None:
    before = _tables_digest(collection_dir[0])
    for query in ("'; DROP TABLE photos; --", "') OR 1=1 --", "x' UNION SELECT path FROM photos --"):
        hits = searcher.search(query, k=5)
        _assert_well_formed(hits, 5, indexed_paths)
        assert len(hits) == 5
    assert _tables_digest(collection_dir[0]) == before
    with searcher.collection.engine.connect() as con:
        assert con.execute(text("SELECT COUNT(*) FROM photos")).scalar() == 8

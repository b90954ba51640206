"""The text recognised in photos (``photo_text``) and its full-text search, the same on both backends.

One row per photo that text recognition has looked at: ``status`` ok (text found), none (no text)
or failed (the engine failed on it), the ``engine`` (name, version and models) that read it and the
``content_hash`` of the file it read, so a changed file or a better engine reads it again. The row
goes with its photo (``ON DELETE CASCADE``).

Search is on ``terms``, a normal form of ``text`` made here, in Python, for both backends alike:
diacritics removed (NFKD, combining marks dropped), case folded, split into runs of letters and
digits, tokens over :data:`MAX_TOKEN` characters dropped. A query gets the same treatment, so
"Café" finds "CAFE" and the reverse, on SQLite and PostgreSQL identically; every word of the query
must occur (AND), whole words only. A query's characters are never syntax: only its letter and digit
runs reach the database, each quoted (FTS5) or through ``plainto_tsquery`` (PostgreSQL).

    SQLite       an external-content FTS5 table ``photo_text_fts`` over ``terms``, kept in step by
                 triggers (so in the writer's own transaction, cascaded deletes included)
    PostgreSQL   a generated ``tsvector`` column ``search`` (``to_tsvector('simple', terms)``) and its
                 GIN index

Neither artefact is a model of ``schema.py`` (:func:`full_text_artefact` tells schema comparisons).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Float, Integer, Select, Subquery, delete, func, insert, select, text
from sqlalchemy.orm import Session

from indexer.core.storage.database import Database, utcnow
from indexer.core.storage.schema import Photo, PhotoStatus, PhotoText, TextStatus

MAX_TOKEN = 64  # longer runs of letters are no words (and PostgreSQL caps a lexeme at 2047 bytes)
MAX_TEXT_CHARS = 20_000  # stored text is cut here (the engine's output is bounded before too)
CHUNK = 500  # ids per IN (...) list
FTS_TABLE = "photo_text_fts"
PG_SEARCH_COLUMN = "search"
PG_SEARCH_INDEX = "ix_photo_text_search"
_Query = TypeVar("_Query", bound=Select)
_TOKEN = re.compile(r"[^\W_]+")
# kana and CJK ideographs: written without spaces, so a run of them is indexed as its overlapping
# pairs of characters (as Lucene's CJK analyser does): "发票" finds a line "增值税专用发票"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_OR_NOT = re.compile(f"[{_CJK}]+|[^{_CJK}]+")
_CJK_RUN = re.compile(f"[{_CJK}]+")


@dataclass(frozen=True)
class TextMatch:
    """A photo whose recognised text holds every word of a query.

    ``score``: higher is better, comparable only within one call. ``words``: the recognised words
    (as recognised, in reading order, each once) that matched a query word.
    """

    photo_id: int
    score: float
    words: tuple[str, ...]


@dataclass(frozen=True)
class TextResult:
    """What recognition gave for one photo, as the writer stores it (``content_hash``: of the file read)."""

    photo_id: int
    content_hash: str | None
    engine: str
    status: TextStatus
    text: str = ""


@dataclass(frozen=True)
class TextTodo:
    """A photo to read: its text is missing, of another engine, or of another content of the file."""

    photo_id: int
    path: str
    content_hash: str | None


def full_text_artefact(name: str | None) -> bool:
    """Whether a table, column or index name is a full-text artefact made by the migration, not a model
    of ``schema.py`` (FTS5's virtual table and its shadow tables, PostgreSQL's tsvector column and index)."""
    return name is not None and (name.startswith(FTS_TABLE) or name in (PG_SEARCH_COLUMN, PG_SEARCH_INDEX))


def safe_text(value: str) -> str:
    """``value`` with every control and format character (bidi marks and overrides, zero widths, tag
    characters: Unicode category Cc or Cf) made a space (tabs and newlines kept), runs of spaces closed
    up, cut at :data:`MAX_TEXT_CHARS`: safe on a terminal and in a page (markup is the display's to
    escape), and valid UTF-8 (lone surrogates replaced)."""
    valid = value.encode("utf-8", "replace").decode("utf-8")
    cleaned = "".join(
        " " if ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in valid
    )
    lines = (" ".join(line.split()) for line in cleaned.replace("\r", "\n").replace("\t", " ").split("\n"))
    return "\n".join(line for line in lines if line)[:MAX_TEXT_CHARS]


def fold(value: str) -> str:
    """Case and diacritics folded: the form both the stored terms and the queries are compared in."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped.casefold())


def tokens(value: str) -> list[str]:
    """The searchable words of ``value``: folded runs of letters and digits of at most MAX_TOKEN, a
    run of kana or CJK ideographs as its overlapping character pairs (one character alone as itself)."""
    out: list[str] = []
    for run in _TOKEN.findall(fold(value)):
        for piece in _CJK_OR_NOT.findall(run):
            if len(piece) > 1 and _CJK_RUN.fullmatch(piece):
                out.extend(piece[i : i + 2] for i in range(len(piece) - 1))
            else:
                out.append(piece)
    return [t for t in out if len(t) <= MAX_TOKEN]


def terms(value: str) -> str:
    """The indexed form of a text: its tokens joined by spaces."""
    return " ".join(tokens(value))


def word_count(value: str) -> int:
    return len(value.split())


def matched_words(recognised: str, query: Iterable[str]) -> tuple[str, ...]:
    """The words of ``recognised`` (split at white space) holding a token of ``query``, each once."""
    wanted = set(query)
    found: dict[str, None] = {}
    for word in recognised.split():
        if wanted.intersection(tokens(word)):
            found.setdefault(word, None)
    return tuple(found)


# ---------------------------------------------------------------------------------------- writing
def texts_to_read(
    database: Database, engine: str | Sequence[str], *, after: int = 0, limit: int = 100
) -> list[TextTodo]:
    """Up to ``limit`` readable photos with id > ``after``, in id order, whose text was not read by
    ``engine`` (or one of several names) from their current content (none yet, another engine, or
    the file changed since)."""
    stmt = _to_read(select(Photo.id, Photo.path, Photo.content_hash), engine, after)
    with database.session() as s:
        rows = s.execute(stmt.order_by(Photo.id).limit(limit))
        return [TextTodo(r.id, r.path, r.content_hash) for r in rows]


def count_texts_to_read(database: Database, engine: str | Sequence[str]) -> int:
    """How many photos :func:`texts_to_read` would give in all."""
    with database.session() as s:
        return int(s.execute(_to_read(select(func.count()).select_from(Photo), engine, 0)).scalar_one())


def _to_read(stmt: _Query, engine: str | Sequence[str], after: int) -> _Query:
    stored = PhotoText.__table__.alias("t")
    engines = [engine] if isinstance(engine, str) else list(engine)
    return (
        stmt.outerjoin(stored, stored.c.photo_id == Photo.id)
        .where(Photo.id > after, Photo.status != PhotoStatus.ERROR)
        .where(
            stored.c.photo_id.is_(None)
            | stored.c.engine.not_in(engines)
            | stored.c.content_hash.is_distinct_from(Photo.content_hash)
        )
    )


def write_texts(database: Database, results: Sequence[TextResult]) -> int:
    """Store ``results`` in one transaction (replacing what their photos held); returns how many were
    stored. A photo removed meanwhile is skipped. Text is stored through :func:`safe_text`."""
    if not results:
        return 0
    now = utcnow()
    with database.writing() as s:
        live = _existing(s, [r.photo_id for r in results])
        rows = [_row(r, now) for r in results if r.photo_id in live]
        for chunk in _chunks([r.photo_id for r in results if r.photo_id in live]):
            s.execute(delete(PhotoText).where(PhotoText.photo_id.in_(chunk)))
        if rows:
            s.execute(insert(PhotoText), rows)
    return len(rows)


def _row(result: TextResult, now: object) -> dict[str, object]:
    shown = safe_text(result.text) if result.status == TextStatus.OK else ""
    status = TextStatus.NONE if result.status == TextStatus.OK and not shown else result.status
    return {
        "photo_id": result.photo_id,
        "content_hash": result.content_hash,
        "engine": result.engine[:200],
        "status": status,
        "text": shown,
        "terms": terms(shown),
        "words": word_count(shown),
        "updated": now,
    }


def _existing(s: Session, ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(ids):
        found.update(s.scalars(select(Photo.id).where(Photo.id.in_(chunk))))
    return found


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# ---------------------------------------------------------------------------------------- reading
def text_matches(
    database: Database,
    query: str,
    limit: int,
    allowed: Sequence[int] | None = None,
    among: Select[Any] | None = None,
) -> list[TextMatch]:
    """The indexed photos whose text holds every word of ``query``, best first (ties: lower id first),
    at most ``limit``, only among ``allowed`` when given, and among the ids ``among`` selects (a
    filter, applied in SQL: the query stays bounded by ``limit`` however common the words). A query
    without letters or digits matches nothing; no query is ever an error."""
    words = list(dict.fromkeys(tokens(query)))
    if not words or limit <= 0 or (allowed is not None and not allowed):
        return []
    keep = None if allowed is None else set(allowed)
    with database.snapshot() as s:
        found = _scored(s, words, None if keep is not None else limit, among)
        if keep is not None:
            found = [(i, score) for i, score in found if i in keep][:limit]
        shown = _texts(s, [i for i, _ in found])
    return [TextMatch(i, score, matched_words(shown.get(i, ""), words)) for i, score in found]


def _scored(
    s: Session, words: list[str], limit: int | None, among: Select[Any] | None
) -> list[tuple[int, float]]:
    """Matches of the photos whose text was read from the file they hold now (a changed file's old
    text is neither found nor shown until it is read again), best first; only those whose id
    ``among`` selects, at most ``limit`` (both in the database)."""
    matches = _matches(s, words)
    stmt = select(matches.c.photo_id, matches.c.score).order_by(matches.c.score.desc(), matches.c.photo_id)
    if among is not None:
        stmt = stmt.where(matches.c.photo_id.in_(among))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(int(r.photo_id), float(r.score)) for r in s.execute(stmt)]


def count_text_matches(database: Database, query: str, among: Select[Any] | None = None) -> int:
    """How many photos :func:`text_matches` would find without a limit (among the ids ``among``
    selects), counted in the database: no row or text of theirs is read."""
    words = list(dict.fromkeys(tokens(query)))
    if not words:
        return 0
    with database.snapshot() as s:
        matches = _matches(s, words)
        stmt = select(func.count()).select_from(matches)
        if among is not None:
            stmt = stmt.where(matches.c.photo_id.in_(among))
        return int(s.execute(stmt).scalar_one())


def _matches(s: Session, words: list[str]) -> Subquery:
    """The full-text match of ``words`` as a subquery of (photo_id, score), score higher is better."""
    params: dict[str, object] = {"indexed": PhotoStatus.INDEXED.value}
    if s.get_bind().dialect.name == "postgresql":
        sql = (
            "SELECT t.photo_id, ts_rank(t.search, q, 1) AS score"
            " FROM photo_text t JOIN photos p ON p.id = t.photo_id,"
            " plainto_tsquery('simple', :query) AS q"
            " WHERE t.search @@ q AND p.status = :indexed"
            " AND t.content_hash IS NOT DISTINCT FROM p.content_hash"
        )
        params["query"] = " ".join(words)
    else:
        sql = (
            f"SELECT f.rowid AS photo_id, -bm25({FTS_TABLE}) AS score"
            f" FROM {FTS_TABLE} f JOIN photos p ON p.id = f.rowid JOIN photo_text t ON t.photo_id = f.rowid"
            f" WHERE {FTS_TABLE} MATCH :query AND p.status = :indexed AND t.content_hash IS p.content_hash"
        )
        params["query"] = " ".join('"' + w.replace('"', '""') + '"' for w in words)
    return text(sql).bindparams(**params).columns(photo_id=Integer, score=Float).subquery("matches")


def photo_texts(database: Database, ids: Sequence[int]) -> dict[int, str]:
    """The recognised text of those of ``ids`` that have some (safe to show; markup left to the display)."""
    with database.snapshot() as s:
        return _texts(s, ids)


def _texts(s: Session, ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in _chunks(list(ids)):
        stmt = (
            select(PhotoText.photo_id, PhotoText.text)
            .join(Photo, Photo.id == PhotoText.photo_id)
            .where(
                PhotoText.photo_id.in_(chunk),
                PhotoText.status == TextStatus.OK,
                PhotoText.content_hash.is_not_distinct_from(Photo.content_hash),  # not a changed file's
            )
        )
        out.update({int(r.photo_id): r.text for r in s.execute(stmt)})
    return out


def text_counts(database: Database) -> dict[TextStatus, int]:
    """How many photos have each text status (photos not looked at yet have none)."""
    with database.session() as s:
        rows = s.execute(select(PhotoText.status, func.count()).group_by(PhotoText.status))
        return {TextStatus(r[0]): int(r[1]) for r in rows}

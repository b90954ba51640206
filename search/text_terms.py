"""Words in photos (their recognised text, OCR) joined with vector search.

Fusion: reciprocal-rank fusion (RRF). A plain text query ranks photos by its vector and, separately,
by the collection's full-text match of its words (a photo matches when its recognised text holds
every word: SQLite FTS5 and PostgreSQL ``tsvector``, indexer/core/storage/text.py). Each photo scores
``1 / (RRF_K + vector rank) + 1 / (RRF_K + text rank)`` (a missing rank adds nothing). Ranks, not
scores, because the engines' text scores (FTS5 bm25, ``ts_rank``) have different, unbounded scales
while their ranks agree, and a cosine is on yet another; RRF needs no calibration per collection or
database. Invariants: a photo whose words do not match keeps its order among the other such photos (it
only moves down by the word matches fused above it), and the fused order is deterministic (ties go to
the better vector rank, then the lower id).

Bands: a photo matched by its words is at least ``good`` (the words are literally there); it is
``strong`` when its cosine alone is good or strong too. Words-only results (``text:`` alone) are
``good``; their cosine is that of the words as a text query, for display and the minimum score.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from indexer.core.storage.collection import Collection
from indexer.core.storage.search_reads import PhotoFilter, word_matches
from indexer.core.storage.text import fold, tokens

RRF_K = 60  # the constant of Cormack et al. (2009); the flickr8k-train check kept it (docs/benchmarks.md)
SNIPPET_CHARS = 240  # a hit's recognised text, cut around its first matched word
_WORD = re.compile(r"\w+", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class WordHit:
    """A photo whose recognised text holds the words: ``score`` higher is better; ``words``: the runs of
    letters and digits of its text (as recognised) that are query words, each once."""

    photo_id: int
    score: float
    words: tuple[str, ...]


def word_hits(
    collection: Collection, words: str, limit: int, spec: PhotoFilter | None = None
) -> list[WordHit]:
    """The best ``limit`` photos whose recognised text holds every word of ``words``, best first,
    among those the filter ``spec`` allows (applied in the database, with the limit)."""
    if limit <= 0 or not words.split():
        return []
    found = word_matches(collection, words, limit, spec)
    wanted = set(tokens(words))
    return [WordHit(int(m.photo_id), float(m.score), _query_words(m.words, wanted)) for m in found]


def _query_words(recognised: Iterable[str], wanted: set[str]) -> tuple[str, ...]:
    """The runs of letters and digits of the recognised words that fold to a query word ("EXIT" of
    "<b>EXIT</b>"), each once, in order."""
    runs = (run for word in recognised for run in _WORD.findall(word))
    return tuple(dict.fromkeys(run for run in runs if fold(run) in wanted))


def photo_texts(collection: Collection, ids: Sequence[int]) -> dict[int, str]:
    """Recognised text by photo id (photos without text left out)."""
    return collection.photo_texts(list(ids)) if ids else {}


def fuse(vector_ids: Sequence[int], text_ids: Sequence[int], k: int = RRF_K) -> list[int]:
    """Reciprocal-rank fusion of two rankings (ids, best first) into one, best first. A word match
    beyond the vector candidates ranks as if it came right after them (not as if it had no vector
    rank at all), so a strong word match is never outranked by the vector ranking's first photo alone."""
    vector_rank = {pid: n for n, pid in enumerate(vector_ids, 1)}
    scores = {pid: 1.0 / (k + n) for pid, n in vector_rank.items()}
    after = 1.0 / (k + len(vector_ids) + 1)
    for n, pid in enumerate(text_ids, 1):
        scores[pid] = scores.get(pid, after) + 1.0 / (k + n)
    missing = len(vector_ids) + len(text_ids) + 1
    return sorted(scores, key=lambda pid: (-scores[pid], vector_rank.get(pid, missing), pid))


def band_with_words(band: str) -> str:
    """The relevance band of a photo matched by its words, from its cosine's band ("" when none)."""
    return "strong" if band in ("good", "strong") else "good"


def clean(text: str) -> str:
    """Recognised text safe for one line of a terminal or page: control and bidi characters become
    spaces, runs of spaces one (markup is escaped by whoever renders it)."""
    return " ".join(_CONTROL.sub(" ", text).split())


def text_snippet(text: str, words: Iterable[str], limit: int = SNIPPET_CHARS) -> str:
    """At most ``limit`` characters of cleaned ``text``, from a little before its first matched word."""
    text = clean(text)
    if len(text) <= limit:
        return text
    wanted = {fold(token) for word in words for token in _WORD.findall(word)}
    first = next((m.start() for m in _WORD.finditer(text) if fold(m.group()) in wanted), 0)
    start = max(0, min(first - limit // 4, len(text) - limit))
    cut = text[start : start + limit]
    return ("…" if start else "") + cut + ("…" if start + limit < len(text) else "")


def word_segments(text: str, words: Iterable[str]) -> list[tuple[str, bool]]:
    """``text`` split into (piece, matched) pieces: a piece is matched when it is one of ``words``
    (case and diacritics folded, whole words). Joining the pieces gives ``text`` back."""
    wanted = {fold(token) for word in words for token in _WORD.findall(word)}
    out: list[tuple[str, bool]] = []
    last = 0
    for match in _WORD.finditer(text):
        if fold(match.group()) in wanted:
            if match.start() > last:
                out.append((text[last : match.start()], False))
            out.append((match.group(), True))
            last = match.end()
    if last < len(text):
        out.append((text[last:], False))
    return out

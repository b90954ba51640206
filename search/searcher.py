"""The search API used by the CLI, the web UI and Python callers alike.

A :class:`Searcher` holds one collection (SQLite metadata + FAISS index) and the dual encoder the
collection was indexed with. Every query becomes one L2-normalised vector (see search/query.py for
composite queries), is searched in FAISS (restricted to the ids the filters allow), and the page
``[offset, offset + k)`` of the ranking is returned as :class:`Hit` objects with the model's scores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from indexer.core.errors import CollectionError, ModelMismatchError, NotFoundError, QueryError, UsageError
from indexer.core.models import DualEncoder
from indexer.core.storage.calibration import CalibrationKey, read_calibration, write_calibration
from indexer.core.storage.collection import JOINT, Collection, CollectionStats, Space
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.storage.search_reads import (
    allowed_ids,
    count_word_matches,
    date_keys,
    hit_rows,
    model_fingerprint,
    stored_index_generation,
)
from indexer.core.storage.vector_index import IndexDescription, VectorIndex, sample_queries
from indexer.core.vectors import l2_normalise, non_unit_rows
from search import prestart
from search.classify import PROMPT, classify_vector, clean_labels
from search.facets import Facets, read_facets, read_places
from search.filters import Filters, RootsRule, photo_filter
from search.hits import Hit
from search.images import check_readable, load_image
from search.limits import MAX_K, MAX_OFFSET
from search.prestart import query_encoder
from search.query import Query, Term, TermKind, parse_query
from search.relevance import RULE, TOP_SCORES, Cutoffs, Relevance, plausible
from search.relevance import measure as measure_relevance
from search.scoring import ScoreModel
from search.text_terms import WordHit, band_with_words, fuse, photo_texts, text_snippet, word_hits
from search.threads import query_threads
from search.understand import Interpretation, interpret

if TYPE_CHECKING:  # a search never needs them: imported by the methods that do
    from search.duplicates import DuplicateGroup

log = logging.getLogger(__name__)
T = TypeVar("T")

REFETCH_GROWTH = 4  # over-fetch factor per round when candidates were deleted or lie outside the roots
MIN_CANDIDATES = 100  # CLIP-style probabilities are a softmax over at least this many top matches
TEXT_CACHE_SIZE = 256  # text embeddings kept per Searcher
SORTS = ("relevance", "date")
DATE_SORT_LIMIT = 2000  # a date-sorted text query: at most this many good and strong matches, newest first
DATE_SORT_POOL = MIN_CANDIDATES  # a date-sorted ranking without bands (similar, images): its first hits

PhotoRef = int | str | os.PathLike[str]
ImageRef = Image.Image | str | os.PathLike[str]


@dataclass(frozen=True)
class IndexReport:
    """What ``dualens index-info`` prints."""

    description: IndexDescription
    recall_at_10: float
    n_queries: int
    n_indexed: int  # rows in the database, to compare with the index's ntotal
    latency_ms_p50: float = 0.0  # one sampled query at a time through the index (re-ranking included)


FileSignature = tuple[int, int, int]


def file_signature(path: Path) -> FileSignature | None:
    """(inode, mtime ns, size) of a file, None when it is missing: an atomic replace changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Searcher:
    """Text, image and composite search over one collection."""

    def __init__(
        self,
        collection: Collection,
        encoder: DualEncoder | None,
        index: VectorIndex,
        *,
        allow_external_files: bool = False,
        backend: str | None = None,
        index_signature: FileSignature | None = None,
    ) -> None:
        self.collection = collection
        self._encoder = encoder
        self._index = index
        self.allow_external_files = allow_external_files
        self._stats = collection.info()
        self._roots = list(self._stats.roots)
        self._rule = RootsRule(self._roots)  # what may be returned or ranked by
        self._reload_lock = threading.Lock()
        self._scores: ScoreModel | None = None
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._facets: tuple[int, Facets] | None = None
        self._places: tuple[int, tuple[str, ...]] | None = None
        self._relevance: tuple[tuple[int, str], Relevance] | None = None
        # image-to-image search's space and index, for the joint index's generation they match
        self._similarity: tuple[int, Space, VectorIndex] | None = None
        self._backend = backend  # for the encoder of a collection re-indexed with another model
        # the index file as it was when the loaded index was read from (or checked against) it
        self._index_signature = index_signature

    @classmethod
    def open(
        cls,
        data: str | os.PathLike[str] | None = None,
        *,
        encoder: DualEncoder | None = None,
        allow_external_files: bool = False,
        backend: str | None = None,
        prefetch_text: bool = False,
        db_url: str | None = None,
        precision: str | None = None,
    ) -> Searcher:
        """Open the collection in ``data``; the encoder defaults to the model it was indexed with,
        run by ``backend`` (default: ``$DUALENS_BACKEND`` or auto); its database at ``db_url``
        (default: ``$DUALENS_DB_URL``, else the data directory's SQLite file).

        CollectionError when there is no collection; ModelMismatchError when ``encoder`` is not the
        collection's model, or ``precision`` (fp32, int8; default: the collection's) is not the one
        the collection was indexed at. The model's weights load lazily, on the first query that needs them.
        """
        collection = Collection.open(data, db_url=db_url)
        # the index is read (and checked) while the encoder is set up and its text tower starts
        loading = _in_background(lambda: _read_index(collection))
        try:
            stats = collection.info()
            if encoder is not None and stats.model_id and encoder.model_id != stats.model_id:
                raise ModelMismatchError(
                    f"the collection in {collection.paths.root} was indexed with {stats.model_id}, "
                    f"not {encoder.model_id}; search it with its own model or re-index"
                )
            stored = collection.database.facts().precision
            _check_precision(collection, stored, precision or str(getattr(encoder, "precision", stored)))
            if encoder is None and stats.model_id:  # the one `dualens search` warmed early, else a new one
                encoder = prestart.claim(stats.model_id, backend, stored) or query_encoder(
                    stats.model_id, backend, stored
                )
            if encoder is not None:
                _check_fingerprint(collection, encoder)
                if prefetch_text:  # a text query: its tower loads while the index does
                    encoder.prefetch_text()
        except BaseException:
            with contextlib.suppress(BaseException):
                loading()  # the read ends before the collection closes
            collection.close()
            raise
        try:
            signature, index = loading()
        except BaseException:
            collection.close()
            raise
        return cls(
            collection,
            encoder,
            index,
            allow_external_files=allow_external_files,
            backend=backend,
            index_signature=signature,
        )

    # ------------------------------------------------------------------ state
    @property
    def index(self) -> VectorIndex:
        return self._index

    @property
    def encoder(self) -> DualEncoder:
        if self._encoder is None:
            raise NotFoundError("this collection has no photos indexed yet, so it has no model")
        return self._encoder

    def stats(self) -> CollectionStats:
        return self.collection.info()

    def roots(self) -> list[Path]:
        return list(self._roots)

    @property
    def thumbnail_dir(self) -> Path:
        """Where front ends cache thumbnails of this collection's photos (inside its data directory)."""
        return self.collection.paths.thumbnails

    def facets(self) -> Facets:
        """Folders, file types and date range of the indexed photos, re-read when the index changes."""
        generation = self.collection.generation()
        cached = self._facets
        if cached is None or cached[0] != generation:
            cached = self._facets = (generation, read_facets(self.collection))
        return cached[1]

    def reload_if_stale(self) -> bool:
        """Reopen the FAISS index when the indexer has saved a newer generation of it.

        Only a newer *saved* file is loaded (cheap, and never a rebuild): while the indexer is
        still running, queries keep using the previous index, and hits whose rows were deleted
        meanwhile are dropped, so every result reflects either the old or the new index.

        While the index file is the one the loaded index was read from, nothing newer can have been
        saved (the indexer replaces the file before it records the generation), so a stat of the
        file answers without a database read: the check costs microseconds on every API request.
        Not so with a database given by URL: other data folders may index it, and their saves are seen
        in the database alone; when one saved a generation newer than this folder's file, the index is
        rebuilt from the database (once per such save), as opening the collection would.
        """
        with self._reload_lock:
            signature = file_signature(self.collection.paths.vector_index)
            shared = not self.collection.paths.uses_sqlite_file  # other data folders may index it
            if signature is not None and signature == self._index_signature and not shared:
                return False
            saved = stored_index_generation(self.collection)
            if saved is None or saved <= self._index.generation:
                return False
            index = self._saved_index(signature, saved, shared)
            if index is None or index.generation <= self._index.generation:
                return False
            stats = self.collection.info()
            if index.generation < stats.model_generation:
                return False  # the old model's file, saved before a re-index switched: wait for the new one
            encoder = self._encoder
            precision = self.collection.database.facts().precision
            if stats.model_id and (
                encoder is None
                or encoder.model_id != stats.model_id
                or getattr(encoder, "precision", "fp32") != precision
                or _fingerprint_differs(self.collection, encoder)
            ):
                # re-indexed with another model (or the same directory retrained): the text encoder
                # must change with the index, and no cached query vector may survive
                encoder = query_encoder(stats.model_id, self._backend, precision)
                with self._cache_lock:
                    self._text_cache.clear()
                self._scores = None
            self._encoder, self._index, self._stats = encoder, index, stats
            self._roots = list(stats.roots)
            self._rule = RootsRule(self._roots)
            return True

    def _saved_index(self, signature: FileSignature | None, saved: int, shared: bool) -> VectorIndex | None:
        """The index an indexer saved at generation ``saved``: this folder's file when it holds it (or,
        with an unshared database, anything newer), else, with a shared one, the database's index
        (another folder saved it); None: keep serving the current index."""
        if signature != self._index_signature:
            try:
                index = self.collection.read_index_file()
            except CollectionError as exc:
                if not shared:
                    log.warning("keeping the current vector index: %s", exc)
                    return None
            else:
                self._index_signature = signature  # read after the stat: at least as new as it
                if index.generation >= saved or not shared:
                    return index
        if not shared:
            return None
        self._index_signature = file_signature(self.collection.paths.vector_index)  # before the read
        try:
            return self.collection.load_index()  # this folder's file when current, else rebuilt in memory
        except CollectionError as exc:
            log.warning("keeping the current vector index: %s", exc)
            return None

    def warm_up(self) -> None:
        """Load what a text query needs now (the text tower), so the first query is as fast as the next."""
        if self._encoder is not None and self._index.ntotal:
            self._text_vectors(["warm up"])
            self.relevance()

    def close(self) -> None:
        self.collection.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def search(
        self,
        query: str | Query,
        k: int = 20,
        offset: int = 0,
        filters: Filters | None = None,
        sort: str = "relevance",
    ) -> list[Hit]:
        """Text or composite query (see search/query.py for the syntax). ``sort="date"``: newest first
        (date taken, else file date), of the good and strong matches only for a text query (weak ones
        are left out), else of the first DATE_SORT_POOL of the ranking."""
        _check_paging(k, offset)
        _check_sort(sort)
        parsed = parse_query(query) if isinstance(query, str) else query
        if not isinstance(parsed, Query):
            raise QueryError(f"a query must be text or a Query, not {type(query).__name__}")
        if self._index.ntotal == 0:
            return []
        if parsed.place:  # `+ place:"Nice"` narrows the search like the place filter
            current = filters or Filters()
            if current.place and current.place.lower() != parsed.place.lower():
                return []  # two different places: no photo is in both
            filters = replace(current, place=parsed.place)
        banded = all(t.kind is TermKind.TEXT and t.weight > 0 for t in parsed.terms)
        index = self._index  # one snapshot for the bands and the hits
        if banded and sort == "date":
            filters = replace(filters or Filters(), min_match=(filters and filters.min_match) or "good")
        if parsed.text is not None:
            return self._search_words(parsed, k, offset, filters or Filters(), sort, banded)
        words = _plain_words(parsed)
        user_min = filters.min_score if filters is not None else None  # before the band's floor joins it
        window = (0, DATE_SORT_LIMIT if banded else DATE_SORT_POOL) if sort == "date" else (offset, k)
        if words is not None and sort != "date":
            window = (0, max(offset + k, MIN_CANDIDATES))  # the fused ranking's vector side
        with query_threads():
            vector = self.embed_query(parsed)
            cutoffs = self._cutoffs(vector, index) if banded else None
            if cutoffs is not None and filters is not None and filters.min_match:
                floor = cutoffs.strong if filters.min_match == "strong" else cutoffs.good
                if floor > 1.0:  # no cosine reaches the band
                    return []
                filters = replace(filters, min_score=max(floor, filters.min_score or -1.0))
            hits = self._search_vector(vector, window[1], window[0], filters, index=index)
            if words is not None:
                hits = self._fused(hits, vector, words, filters or Filters(), cutoffs, window[1], user_min)
                hits = hits if sort == "date" else hits[offset : offset + k]
        if sort == "date":
            hits = _by_date(hits)[offset : offset + k]
        if hits and cutoffs is not None:
            hits = [replace(h, relevance=_band(cutoffs, h)) for h in hits]
        return hits

    # ------------------------------------------------------------------ words in photos (OCR)
    def _fused(
        self,
        vector_hits: list[Hit],
        vector: np.ndarray,
        words: str,
        filters: Filters,
        cutoffs: Cutoffs | None,
        limit: int,
        user_min: float | None,
    ) -> list[Hit]:
        """The vector ranking fused with the word matches (search/text_terms.py), ranks renumbered:
        a photo without a word match keeps its order among the others, and with bands, no weak match
        comes before a good or strong one (a word match is at least good)."""
        matched = self._word_matched(words, filters, limit, vector)
        matched = [h for h in matched if _passes(h, filters, cutoffs, user_min)]
        if not matched:
            return vector_hits
        by_id = {h.id: h for h in vector_hits}
        by_id.update({h.id: h for h in matched})  # the same photo, now with its words
        fused = [by_id[pid] for pid in fuse([h.id for h in vector_hits], [h.id for h in matched])]
        if cutoffs is not None:  # weak matches after the good and strong ones (stable: fused order kept)
            fused.sort(key=lambda h: _band(cutoffs, h) == "weak")
        return [replace(h, rank=n) for n, h in enumerate(fused, 1)]

    def _search_words(
        self, query: Query, k: int, offset: int, filters: Filters, sort: str, banded: bool
    ) -> list[Hit]:
        """A query with a ``text:`` term: only photos whose recognised text holds its words; ranked
        by the text match alone (their cosines, logits and probabilities then those of the words as
        a text query: real scores, not zeros), or by the other terms' vector among those photos."""
        assert query.text is not None
        terms_only = Query(query.terms) if query.terms else None
        limit = DATE_SORT_LIMIT if sort == "date" or terms_only else offset + k
        with query_threads():
            vector = self.embed_query(terms_only) if terms_only else None
            cutoffs = self._cutoffs(vector, self._index) if vector is not None and banded else None
            scoring = vector if vector is not None else self.embed_query(Query((Term.text(query.text),)))
            hits = self._word_matched(query.text, filters, limit, scoring)
        if vector is not None:
            hits = sorted(hits, key=lambda h: -h.cosine)  # stable: text order breaks ties
        hits = [h for h in hits if _passes(h, filters, cutoffs, filters.min_score)]
        hits = [replace(h, relevance=_band(cutoffs, h) if vector is None or banded else "") for h in hits]
        if sort == "date":
            hits = _by_date(hits)
        return [replace(h, rank=offset + n) for n, h in enumerate(hits[offset : offset + k], 1)]

    def _word_matched(self, words: str, filters: Filters, limit: int, vector: np.ndarray | None) -> list[Hit]:
        """Photos whose recognised text holds ``words`` (best text match first) as hits that may be
        served (filters, roots), with their words and text; cosines against ``vector`` (0 without)."""
        spec = photo_filter(filters, self._roots) if filters.restricts_candidates else None
        matches = word_hits(self.collection, words, limit, spec)  # the filters applied with the limit
        rows = self._metadata([m.photo_id for m in matches])
        kept = [m for m in matches if m.photo_id in rows and self._rule.allows(rows[m.photo_id].path)]
        if not kept:
            return []
        cosines = np.zeros(len(kept))
        if vector is not None:
            found, matrix = self.collection.indexed_vectors([m.photo_id for m in kept])
            by_id = {int(i): float(v @ vector) for i, v in zip(found, matrix, strict=True)}
            cosines = np.array([by_id.get(m.photo_id, -1.0) for m in kept])
        scores = self.score_model() if vector is not None else None
        logits = scores.logits(cosines) if scores else cosines
        probabilities = self._pooled_probabilities(vector, kept, cosines) if vector is not None else cosines
        texts = photo_texts(self.collection, [m.photo_id for m in kept])
        return [
            replace(
                Hit.from_row(rows[m.photo_id], cosine=c, logit=float(lg), probability=float(p), rank=0),
                text=text_snippet(texts.get(m.photo_id, ""), m.words),
                text_words=m.words,
            )
            for m, c, lg, p in zip(kept, cosines, logits, probabilities, strict=True)
        ]

    def _pooled_probabilities(
        self, vector: np.ndarray, kept: list[WordHit], cosines: np.ndarray
    ) -> np.ndarray:
        """Word matches' probabilities as a vector search gives them: sigmoid each (SigLIP), or a softmax
        over the query's top MIN_CANDIDATES photos together with them (CLIP-style), never over a few
        word matches alone (one match alone would be 100 %)."""
        scores = self.score_model()
        if scores.is_sigmoid:
            return scores.probabilities(cosines)
        top = self._index.search(vector.reshape(1, -1), MIN_CANDIDATES)
        pool = {int(i): float(c) for i, c in zip(top.ids[0], top.scores[0], strict=True) if i >= 0}
        pool.update((m.photo_id, float(c)) for m, c in zip(kept, cosines, strict=True))
        logits = scores.logits(np.fromiter(pool.values(), dtype=np.float64))
        peak = float(logits.max())
        return np.exp(scores.logits(cosines) - peak) / np.exp(logits - peak).sum()

    def _cutoffs(self, vector: np.ndarray, index: VectorIndex) -> Cutoffs:
        """A text query's band cut-offs: the collection's calibration and the query's own best
        cosines over the whole collection (filters aside: see search/relevance.py)."""
        top = index.search(vector.reshape(1, -1), TOP_SCORES)
        return self.relevance().cutoffs(top.scores[0][top.ids[0] >= 0])

    def relevance(self) -> Relevance:
        """This collection's relevance calibration for text queries (search/relevance.py): measured
        once per index generation and model, and stored beside the index, so that a new process
        reads it instead of measuring again (indexer/core/storage/calibration.py)."""
        index, encoder = self._index, self.encoder
        key = (index.generation, encoder.model_id)
        cached = self._relevance
        if cached is None or cached[0] != key:
            root = self.collection.paths.root
            stored = CalibrationKey(
                index.collection_id or "", index.generation, encoder.model_id, encoder.fingerprint or "", RULE
            )
            values = read_calibration(root, stored)
            if values is not None and plausible(values):  # else damaged: measured again
                measured = Relevance.from_values(values)
            else:

                def best(vector: np.ndarray) -> float:
                    score = float(index.search(vector.reshape(1, -1), 1).scores[0, 0])
                    return score if np.isfinite(score) else -1.0

                def embed(texts: list[str]) -> np.ndarray:
                    return self._checked(encoder.embed_texts(texts))

                with query_threads():
                    measured = measure_relevance(embed, best)
                if not self.collection.database.read_only:  # a read-only collection is left as it is
                    write_calibration(root, stored, measured.values())
            cached = self._relevance = (key, measured)
        return cached[1]

    def score_model(self) -> ScoreModel:
        """The encoder's learned scale and bias (loads the model once)."""
        if self._scores is None:
            self._scores = ScoreModel.from_encoder(self.encoder)
        return self._scores

    def similarity_index(self) -> tuple[Space, VectorIndex]:
        """The space and index of image-to-image search: the model's visual vectors where the
        collection keeps them (the default model's tower features), else the joint ones."""
        index = self._index
        cached = self._similarity
        if cached is None or cached[0] != index.generation:
            space = self.collection.similarity_space()
            found = index if space is JOINT else self.collection.load_index(space)
            cached = self._similarity = (index.generation, space, found)
        return cached[1], cached[2]

    def similar(
        self,
        photo: PhotoRef,
        k: int = 20,
        offset: int = 0,
        filters: Filters | None = None,
        exclude_self: bool = True,
        sort: str = "relevance",
    ) -> list[Hit]:
        """Photos like an indexed photo (by id or path), from its stored (visual) vector;
        ``sort="date"``: the first DATE_SORT_POOL of the ranking, newest first."""
        _check_paging(k, offset)
        _check_sort(sort)
        photo_id = self._available(self._photo_id(photo))
        vector, index = self._stored_image_vector(photo_id)
        exclude = {photo_id} if exclude_self else set()
        if sort == "date":
            with query_threads():
                pool = self._search_vector(vector, DATE_SORT_POOL, 0, filters, exclude=exclude, index=index)
            return _by_date(pool)[offset : offset + k]
        with query_threads():
            return self._search_vector(vector, k, offset, filters, exclude=exclude, index=index)

    def search_image(
        self,
        image: ImageRef,
        k: int = 20,
        offset: int = 0,
        filters: Filters | None = None,
        sort: str = "relevance",
    ) -> list[Hit]:
        """Photos like an image (PIL image or file; an indexed file reuses its stored vector), in the
        space of image-to-image search (:meth:`similarity_index`); ``sort`` as for :meth:`similar`."""
        _check_paging(k, offset)
        _check_sort(sort)
        if self._index.ntotal == 0:
            return []
        with query_threads():
            vector, index = self._image_query(image)
            if sort == "date":
                return _by_date(self._search_vector(vector, DATE_SORT_POOL, 0, filters, index=index))[
                    offset : offset + k
                ]
            return self._search_vector(vector, k, offset, filters, index=index)

    # ------------------------------------------------------------------ understood queries
    def interpret(
        self, query: str | Query, filters: Filters | None = None, today: date | None = None
    ) -> Interpretation:
        """The query with its dates and this collection's places turned into filters
        (search/understand.py); nothing is read from the text for a filter already set."""
        parsed = parse_query(query) if isinstance(query, str) else query
        return interpret(parsed, filters or Filters(), self._place_names(), today)

    def _place_names(self) -> tuple[str, ...]:
        """The collection's cities and countries (one GROUP BY, not the whole facets pass), re-read
        when the index changes."""
        generation = self.collection.generation()
        cached = self._facets
        if cached is not None and cached[0] == generation:
            return tuple(p.name for p in cached[1].places)
        known = self._places
        if known is None or known[0] != generation:
            known = self._places = (generation, tuple(p.name for p in read_places(self.collection)))
        return known[1]

    def search_understood(
        self,
        query: str | Query,
        k: int = 20,
        offset: int = 0,
        filters: Filters | None = None,
        *,
        sort: str = "relevance",
        literal: bool = False,
        today: date | None = None,
    ) -> tuple[list[Hit], Interpretation]:
        """:meth:`search` after :meth:`interpret` (unless ``literal``), and the interpretation searched
        (its ``understood`` is None when nothing was read from the text). A query that was only a date
        and/or a place lists the photos those filters allow, newest first."""
        parsed = parse_query(query) if isinstance(query, str) else query
        meant = Interpretation(parsed, filters or Filters(), None)
        if not literal:
            meant = self.interpret(parsed, filters, today)
        if meant.query is None:
            return self.list_by_date(meant.filters, k, offset), meant
        return self.search(meant.query, k, offset, meant.filters, sort), meant

    def list_by_date(self, filters: Filters | None = None, k: int = 20, offset: int = 0) -> list[Hit]:
        """The photos the filters allow (all of them without filters), newest first (date taken, else
        file date; the undated, with neither, last); scores are 0, ranks their place in that order."""
        _check_paging(k, offset)
        keys = date_keys(self.collection, photo_filter(filters or Filters(), self._roots))
        kept = [
            # undated (no date taken, a file dated at or before the epoch) after every dated photo
            (taken is not None or ns > 0, taken or datetime.fromtimestamp(ns / 1e9), pid)
            for pid, path, taken, ns in keys
            if self._rule.allows(path)
        ]
        kept.sort(reverse=True)  # equal dates: the newer id first
        page = [pid for _, _, pid in kept[offset : offset + k]]
        rows = self._metadata(page)  # whole rows for this page only
        hits = [
            Hit.from_row(rows[pid], cosine=0.0, logit=0.0, probability=0.0, rank=0)
            for pid in page
            if pid in rows
        ]
        return [replace(hit, rank=offset + n + 1) for n, hit in enumerate(hits)]

    def classify(self, image: ImageRef | int, labels: Sequence[str] | str) -> list[tuple[str, float]]:
        """Zero-shot label probabilities for an image, highest first ("a photo of a {label}.")."""
        names = clean_labels(labels)
        with query_threads():
            vector = self._image_vector(image)
            label_vectors = self.encoder.embed_texts([PROMPT.format(label=name) for name in names])
        return classify_vector(vector, label_vectors, names, self.score_model())

    def photo(self, id: int) -> Hit | None:
        """Metadata of one indexed photo (scores 0), None if unknown."""
        found = self.collection.photos([int(id)])
        return Hit.from_photo(found[int(id)]) if int(id) in found else None

    def count(self, filters: Filters | None = None, words: str | None = None) -> int:
        """How many indexed photos a query with these filters ranks (its match band and minimum score
        aside): the whole collection, or what its folder, dates, types and place allow; with ``words``
        (a ``text:`` term) only those of them whose recognised text holds the words."""
        if words is not None:
            spec = photo_filter(filters, self._roots) if filters and filters.restricts_candidates else None
            return count_word_matches(self.collection, words, spec)  # counted, no rows read
        allowed = self._allowed_ids(filters) if filters is not None else None
        return self._index.ntotal if allowed is None else len(allowed)

    def allows(self, photo_id: int, filters: Filters) -> bool:
        """Whether :meth:`count` with these filters counts the indexed photo ``photo_id`` (without
        filters restricting the candidates: every indexed photo)."""
        allowed = self._allowed_ids(filters)
        return allowed is None or bool(np.any(allowed == photo_id))

    def has_folder(self, folder: str) -> bool:
        """Whether any indexed photo lies below ``folder`` (absolute, or relative to a root)."""
        allowed = self._allowed_ids(Filters(folder=folder))
        return allowed is None or len(allowed) > 0

    def photo_at(self, path: str | os.PathLike[str]) -> Hit | None:
        """Metadata of the indexed photo stored under exactly this path, None if there is none."""
        photo = self.collection.photo_by_path(os.fspath(path))
        if photo is None or photo.status != PhotoStatus.INDEXED:
            return None
        return Hit.from_photo(photo)

    def index_report(self, n_queries: int = 100, seed: int = 0) -> IndexReport:
        """Index type, memory size and recall@10 against exact search on sampled queries."""
        index = self._index
        ids = index.ids()
        n = min(n_queries, len(ids))
        recall = 1.0
        if n:
            rng = np.random.default_rng(seed)
            chosen = np.sort(rng.choice(ids, size=n, replace=False))
            queries = sample_queries(self.collection.vectors(chosen.tolist()), n, seed=seed)
            recall = index.measure_recall(queries, 10)
            latency = _p50_ms(lambda q: index.search(q.reshape(1, -1), 10), queries)
        return IndexReport(index.describe(), recall, n, self.stats().n_indexed, latency if n else 0.0)

    # ------------------------------------------------------------------ vectors
    def embed_query(self, query: Query) -> np.ndarray:
        """The query's unit vector: the weighted sum of its terms' unit vectors, re-normalised."""
        vectors = np.zeros((len(query.terms), self._index.dim), dtype=np.float32)
        texts = [(i, str(t.value)) for i, t in enumerate(query.terms) if t.kind is TermKind.TEXT]
        if texts:
            for (i, _), row in zip(texts, self._text_vectors([t for _, t in texts]), strict=True):
                vectors[i] = row
        for i, term in enumerate(query.terms):
            if term.kind is TermKind.IMAGE:
                vectors[i] = self._term_image_vector(term)
        weights = np.array([t.weight for t in query.terms], dtype=np.float32)
        combined = weights @ vectors
        norm = float(np.linalg.norm(combined))
        if not np.isfinite(norm) or norm < 1e-6:
            raise QueryError("the query terms cancel each other out; change a weight or a term")
        return l2_normalise(combined)

    def _text_vectors(self, texts: list[str]) -> np.ndarray:
        """Text embeddings, remembered for the last TEXT_CACHE_SIZE texts (paging, UI reruns)."""
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for text in texts:
                if text in self._text_cache:
                    self._text_cache.move_to_end(text)
                    found[text] = self._text_cache[text]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            embedded = self._checked(self.encoder.embed_texts(missing))
            with self._cache_lock:
                for text, row in zip(missing, embedded, strict=True):
                    found[text] = self._text_cache[text] = row
                while len(self._text_cache) > TEXT_CACHE_SIZE:
                    self._text_cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def _term_image_vector(self, term: Term) -> np.ndarray:
        value = term.value
        if isinstance(value, int):
            return _intact(self.collection.vectors([self._available(value)])[0], value)
        return self._image_vector(value)

    def _stored_image_vector(self, photo_id: int) -> tuple[np.ndarray, VectorIndex]:
        """An indexed photo's vector for image-to-image search, and the index to search it in (the
        joint ones for a photo that has no visual vector yet: indexed by an older release)."""
        space, index = self.similarity_index()
        if space is not JOINT:
            found, vectors = self.collection.indexed_vectors([photo_id], space=space)
            if len(found):
                return _intact(vectors[0], photo_id), index
        return _intact(self.collection.vectors([photo_id])[0], photo_id), self._index

    def _image_query(self, image: ImageRef) -> tuple[np.ndarray, VectorIndex]:
        """An image's vector for image-to-image search, and the index to search it in."""
        ref = self._image_ref(image)
        if isinstance(ref, int):
            return self._stored_image_vector(ref)
        space, index = self.similarity_index()
        if space is JOINT:
            return self._checked(self.encoder.embed_images([ref]))[0], index
        _, visual = self.encoder.embed_images_pair([ref])
        if visual is None or visual.shape[-1] != index.dim:
            raise ModelMismatchError(
                f"the model {self.encoder.model_id} gives no {index.dim}-dimensional visual vectors; "
                "search with the collection's model"
            )
        return visual[0], index

    def _image_vector(self, image: ImageRef | int) -> np.ndarray:
        ref = self._image_ref(image)
        if isinstance(ref, int):
            return _intact(self.collection.vectors([ref])[0], ref)
        return self._checked(self.encoder.embed_images([ref]))[0]

    def _image_ref(self, image: ImageRef | int) -> int | Image.Image:
        """An image query as the id of an indexed photo (its stored vectors serve) or as pixels."""
        if isinstance(image, bool):
            raise QueryError("an image must be a photo id, a path or an image")
        if isinstance(image, int | np.integer):
            return self._available(int(image))
        if isinstance(image, Image.Image):
            return image
        if not isinstance(image, str | os.PathLike):
            raise QueryError(f"an image must be a photo id, a path or an image, not {type(image).__name__}")
        indexed = self._indexed_photo(image)
        if indexed is not None:
            return self._available(int(indexed.id))
        return load_image(check_readable(image, self._roots, self.allow_external_files))

    def _checked(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.shape[-1] != self._index.dim and self._index.ntotal:
            raise ModelMismatchError(
                f"the model {self.encoder.model_id} makes {vectors.shape[-1]}-dimensional vectors but the "
                f"collection holds {self._index.dim}-dimensional ones; search with the collection's model"
            )
        return vectors

    def _indexed_photo(self, path: str | os.PathLike[str]) -> Photo | None:
        raw = os.path.expanduser(os.fspath(path))
        if "\x00" in raw:  # Path.resolve() would raise ValueError
            raise QueryError("a file path cannot contain a NUL character")
        absolute = os.path.abspath(raw)
        for candidate in dict.fromkeys((absolute, str(Path(absolute).resolve()), raw)):
            photo = self.collection.photo_by_path(candidate)
            if photo is not None:
                return photo
        return None

    def _photo_id(self, photo: PhotoRef) -> int:
        if isinstance(photo, bool):
            raise QueryError("a photo is given by its id or its path")
        if isinstance(photo, int | np.integer):
            return int(photo)
        if not isinstance(photo, str | os.PathLike):
            raise QueryError(f"a photo is given by its id or its path, not {type(photo).__name__}")
        found = self._indexed_photo(photo)
        if found is None:
            raise NotFoundError(
                f"{os.fspath(photo)} is not an indexed photo of this collection; "
                "search with an external image instead (dualens similar accepts any image file)"
            )
        return int(found.id)

    def _available(self, photo_id: int) -> int:
        """``photo_id``, unless it is an indexed photo outside the roots (a symlink pointing out):
        then NotFoundError, as for an unknown photo. Photos that cannot be served rank nothing."""
        row = hit_rows(self.collection, [photo_id]).get(photo_id)
        if row is not None and not self._rule.allows(row.path):
            raise NotFoundError(f"photo {photo_id} is not an indexed photo of this collection")
        return photo_id

    # ------------------------------------------------------------------ ranking
    def _allowed_ids(self, filters: Filters) -> np.ndarray | None:
        if not filters.restricts_candidates:
            return None
        return allowed_ids(self.collection, photo_filter(filters, self._roots))

    def _search_vector(
        self,
        vector: np.ndarray,
        k: int,
        offset: int,
        filters: Filters | None,
        exclude: set[int] | frozenset[int] = frozenset(),
        index: VectorIndex | None = None,
    ) -> list[Hit]:
        filters = filters or Filters()
        index = index or self._index  # one snapshot for the whole query, even if reloaded meanwhile
        allowed = self._allowed_ids(filters)
        if index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return []
        n_fetch = max(offset + k, MIN_CANDIDATES) + len(exclude)
        while True:
            pairs, rows, exhausted = self._live_candidates(index, vector, n_fetch, allowed, exclude)
            # Rows deleted since this index snapshot was written, and photos outside the roots, are
            # skipped and the page is filled from the next candidates: the ranking equals that of
            # the photos that may be served (skipping never changes the other photos' scores), never
            # a page with holes. Past the index's size a round is exhausted, so this ends.
            if exhausted or len(pairs) >= offset + k:
                break
            n_fetch = min(n_fetch * REFETCH_GROWTH, index.ntotal + len(exclude) + 1)
        if not pairs:
            return []
        cosines = np.array([s for _, s in pairs], dtype=np.float64)
        scores = self.score_model()
        logits = scores.logits(cosines)
        probabilities = scores.probabilities(cosines)
        ranked = list(enumerate(pairs))
        if filters.min_score is not None:
            ranked = [(r, p) for r, p in ranked if p[1] >= filters.min_score]
        return [
            Hit.from_row(
                rows[pid],
                cosine=cosine,
                logit=float(logits[rank]),
                probability=float(probabilities[rank]),
                rank=rank + 1,
            )
            for rank, (pid, cosine) in ranked[offset : offset + k]
        ]

    def _live_candidates(
        self,
        index: VectorIndex,
        vector: np.ndarray,
        n_fetch: int,
        allowed: np.ndarray | None,
        exclude: set[int] | frozenset[int],
    ) -> tuple[list[tuple[int, float]], dict[int, Any], bool]:
        """Top ``n_fetch`` (id, cosine) pairs whose rows still exist and lie inside the roots, their
        rows, and whether the index has no further candidates."""
        result = index.search(vector.reshape(1, -1), n_fetch, allowed)
        found = [(int(i), float(s)) for i, s in zip(result.ids[0], result.scores[0], strict=True) if i >= 0]
        exhausted = len(found) < n_fetch
        candidates = [(pid, score) for pid, score in found if pid not in exclude]
        rows = self._metadata([pid for pid, _ in candidates])
        allows = self._rule.allows
        kept = [(pid, score) for pid, score in candidates if pid in rows and allows(rows[pid].path)]
        return kept, rows, exhausted

    def _metadata(self, ids: list[int]) -> dict[int, Any]:
        """Metadata rows of indexed photos by id, in one Core query."""
        return hit_rows(self.collection, ids)

    # ------------------------------------------------------------------ what front ends need
    # The UI and the HTTP API reach the collection only through these (never its attributes).
    def generation(self) -> int:
        """The generation of the vector index served now: it changes when a newer index is loaded."""
        return self._index.generation

    def index_label(self) -> str:
        """A few words on the vector index served now (its kind and size), for status pages."""
        return self._index.describe().label

    def duplicates(self) -> list[DuplicateGroup]:
        """Every group of exact copies and near-duplicates in the collection, largest groups first."""
        from search.duplicates import find_duplicates

        return find_duplicates(self.collection)


def _read_index(collection: Collection) -> tuple[FileSignature | None, VectorIndex]:
    """The collection's joint index and the signature of its file, taken before the read (never newer)."""
    signature = file_signature(collection.paths.vector_index)
    return signature, collection.load_index()


def _in_background(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work`` in a thread; the function returned waits for it and returns its result, or
    raises its error (a BaseException of the thread is raised in the caller, never lost)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the caller
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="dualens-open", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    return result


def _check_precision(collection: Collection, stored: str, wanted: str) -> None:
    """Refuse query vectors of another precision than the collection's (they do not mix)."""
    if wanted != stored:
        raise ModelMismatchError(
            f"the collection in {collection.paths.root} was indexed at {stored} precision, not {wanted}; "
            f"search it at {stored}, or re-embed it with `dualens index --precision {wanted} --reindex`"
        )


def _fingerprint_differs(collection: Collection, encoder: DualEncoder) -> bool:
    """Whether the collection recorded a content hash of its model that this encoder's files lack."""
    stored = model_fingerprint(collection)
    return stored is not None and stored != encoder.fingerprint


def _check_fingerprint(collection: Collection, encoder: DualEncoder) -> None:
    """Refuse a local model whose files changed since the collection was indexed with it."""
    if encoder.fingerprint and _fingerprint_differs(collection, encoder):
        raise ModelMismatchError(
            f"the model in {encoder.location} has changed since this collection was indexed (its files "
            "differ), so queries would not match the stored vectors; re-embed with `dualens index --reindex`"
        )


def _intact(vector: np.ndarray, photo_id: int) -> np.ndarray:
    """A stored vector, checked: garbage bytes in the database are a clear error, not "no match"."""
    if len(non_unit_rows(vector[None, :])):
        raise CollectionError(
            f"the stored vector of photo {photo_id} is damaged (not a finite unit vector); "
            "run `dualens check`, then `dualens index --reindex`"
        )
    return vector


def _plain_words(query: Query) -> str | None:
    """The words a query is fused with: those of a plain text query (one positive text term)."""
    if len(query.terms) == 1 and query.terms[0].kind is TermKind.TEXT and query.terms[0].weight > 0:
        return str(query.terms[0].value)
    return None


def _band(cutoffs: Cutoffs | None, hit: Hit) -> str:
    """A hit's relevance band: its cosine's, raised for a photo matched by its words."""
    band = cutoffs.band(hit.cosine).value if cutoffs is not None else ""
    return band_with_words(band) if hit.text_words else band


def _passes(hit: Hit, filters: Filters, cutoffs: Cutoffs | None, min_score: float | None) -> bool:
    """Whether a photo matched by its words passes the match-band filter and the caller's minimum score."""
    if min_score is not None and hit.cosine < min_score:
        return False
    if filters.min_match == "strong":
        return _band(cutoffs, hit) == "strong"
    return True


def _check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise UsageError(f"sort by {' or '.join(SORTS)}, not {sort!r}")


def _by_date(hits: list[Hit]) -> list[Hit]:
    """Newest first by date taken (the file date when there is none); equal dates keep their order."""
    return sorted(hits, key=lambda h: h.taken_at or h.mtime, reverse=True)


def _check_paging(k: int, offset: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise UsageError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or not 0 <= offset <= MAX_OFFSET:
        raise UsageError(f"offset must be a whole number from 0 to {MAX_OFFSET}, not {offset!r}")


def _p50_ms(run: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))

"""Start a text query's slowest part, its model's text tower, before the query path's libraries load.

A new ``dualens search`` process spends most of its life importing SQLAlchemy and FAISS and then
waiting for ONNX Runtime to build the text tower's session, which releases the GIL while it works.
:func:`start` runs the latter in a thread while the former happens: it peeks at which model the
collection was indexed with and loads that model's text tower (and tokenizer) in the background;
:func:`claim` hands the warmed encoder to :meth:`search.searcher.Searcher.open`, which uses it only
when it is exactly the encoder it would have made itself (same model id, backend and threads).

Invariants: the peek is a hint, never trusted. ``Searcher.open`` reads the model id through the
collection as always and re-checks everything (model version, fingerprint); a peek that fails, or
finds another model than the open does, costs nothing but the wasted load. An error of the
background work is never raised there: the same work is done again on the query path, which
raises it as the usual typed one-line error. Importing this module loads no database, FAISS or
model library.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.core.errors import DualensError, ModelMismatchError
from indexer.core.settings import Settings, default_backend

if TYPE_CHECKING:
    from indexer.core.models import DualEncoder

MODEL_ID_KEY = "model_id"  # indexer/core/storage/database.py InfoKey.MODEL_ID
PRECISION_KEY = "precision"  # InfoKey.PRECISION (absent: fp32)


@dataclass
class _Started:
    key: tuple[str, str, str] | None = None  # (model id, backend, precision) of the warmed encoder
    encoder: DualEncoder | None = None
    thread: threading.Thread | None = None


_lock = threading.Lock()
_started: _Started | None = None


_hint: str | None = None  # the query's words, when the caller knew them (hint)


def hint(query: str) -> None:
    """The words of the query about to run: a model with a text tower per language (v5) starts the
    one they take."""
    global _hint
    _hint = query


def start(settings: Settings, query: str | None = None) -> None:
    """Begin loading the text tower of the collection's model in the background (a SQLite
    collection only: a server's database is read through the collection as usual); for a model
    with a text tower per language (v5), the one ``query`` (else the :func:`hint`) takes."""
    global _started
    query = _hint if query is None else query
    paths = settings.paths
    if not paths.uses_sqlite_file or not paths.database.is_file():
        return
    from indexer.core.models import DualEncoder  # noqa: F401  imported here, never beside the main thread's

    started = _Started()
    started.thread = threading.Thread(
        target=_warm,
        args=(started, paths.database, settings.backend, query),
        name="dualens-prestart",
        daemon=False,
    )
    with _lock:
        _started = started
    started.thread.start()


def claim(model_id: str, backend: str | None, precision: str = "fp32") -> DualEncoder | None:
    """The encoder :func:`start` warmed when it is the collection's model run by ``backend`` at
    ``precision``, once; None otherwise (nothing started, another model, or its start failed)."""
    global _started
    with _lock:
        started, _started = _started, None
    if started is None or started.thread is None:
        return None
    started.thread.join()  # the peek and the encoder's construction: the load itself goes on
    if started.encoder is None or started.key != (model_id, backend or default_backend(), precision):
        return None
    return started.encoder


def query_encoder(model_id: str, backend: str | None, precision: str = "fp32") -> DualEncoder:
    """The collection's model for queries: one thread per query (see search/threads.py), at the
    precision the collection was indexed at."""
    from indexer.core.models import DualEncoder
    from search.threads import query_thread_count

    threads = query_thread_count() or None
    return DualEncoder(
        known_model(model_id), threads=threads, backend=backend or default_backend(), precision=precision
    )


def known_model(model_id: str) -> str:
    """The collection's model id, checked against the built-in default model's current version."""
    from indexer.core.models.default_spec import DEFAULT_ID_PREFIX, DEFAULT_MODEL_ID, V5_MODEL_ID

    if model_id.startswith(DEFAULT_ID_PREFIX) and model_id not in (DEFAULT_MODEL_ID, V5_MODEL_ID):
        raise ModelMismatchError(
            f"this collection was indexed with {model_id}, an older version of the built-in default "
            f"model (now {DEFAULT_MODEL_ID}); re-index it with `dualens index --model default --reindex`"
        )
    return model_id


def peek_model_id(database: Path) -> str | None:
    """The model id recorded in a collection's SQLite file, read-only; None when it cannot be read."""
    return _peek(database, MODEL_ID_KEY)


def _peek(database: Path, key: str) -> str | None:
    """A collection_info value of a collection's SQLite file; None when it cannot be read. Opened
    immutable: nothing is written beside the file (no -wal/-shm, as a damaged or read-only collection
    must stay byte for byte); a WAL not yet checkpointed may hide a newer value, which only makes
    the hint miss."""
    uri = f"{database.as_uri()}?mode=ro&immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.2)) as db:
            row = db.execute("SELECT value FROM collection_info WHERE key = ?", (key,)).fetchone()
    except (sqlite3.Error, ValueError, OSError):
        return None
    return row[0] if row and isinstance(row[0], str) and row[0] else None


def _warm(started: _Started, database: Path, backend: str, query: str | None = None) -> None:
    model_id = peek_model_id(database)
    if model_id is None:
        return
    precision = _peek(database, PRECISION_KEY) or "fp32"
    try:
        encoder = query_encoder(model_id, backend, precision)
        encoder.prefetch_text(query)  # its own thread: ONNX Runtime builds the session without the GIL
        encoder.fingerprint  # noqa: B018  a local model's content hash, read once while the query waits
    except (DualensError, OSError):
        return  # the query path makes the same encoder and reports the error
    started.key, started.encoder = (model_id, backend, precision), encoder

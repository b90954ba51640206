"""Run one query's work (text/image encoding, FAISS search) on a single CPU thread.

One query is a tiny amount of work; spreading it over several threads buys little on an idle
machine and costs a great deal on a busy one (OpenMP and torch worker threads spin and wait for
each other): on the shared 2-core development machine under load, encoding one text took ~900 ms
with 2 torch threads and ~35 ms with 1, a 10k flat FAISS search 47 ms with 2 OpenMP threads and
0.9 ms with 1. ``DUALENS_QUERY_THREADS`` overrides the count (0: leave the libraries' defaults).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved_torch: int | None = None


def query_thread_count() -> int:
    raw = os.environ.get("DUALENS_QUERY_THREADS", "1").strip()
    try:
        return max(0, int(raw))
    except ValueError:
        return 1


@contextmanager
def query_threads() -> Iterator[None]:
    """Within the block, torch (process-wide, nested-safe; only if a torch model is in use) and FAISS
    (this thread) use N threads; ONNX Runtime sessions of queries are made with N threads."""
    global _depth, _saved_torch
    n = query_thread_count()
    torch = sys.modules.get("torch")  # only a torch model needs it; never import torch for this
    if n == 0 or torch is None:
        with _faiss_threads(n):
            yield
        return

    with _lock:
        if _depth == 0:
            _saved_torch = torch.get_num_threads()
            if _saved_torch != n:
                torch.set_num_threads(n)
        _depth += 1
    try:
        with _faiss_threads(n):
            yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_torch is not None and torch.get_num_threads() != _saved_torch:
                torch.set_num_threads(_saved_torch)


@contextmanager
def _faiss_threads(n: int) -> Iterator[None]:
    if n == 0:
        yield
        return
    import faiss  # here: the query's text tower starts (search/prestart.py) without waiting for FAISS

    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)  # OpenMP's thread count is per calling thread
    try:
        yield
    finally:
        faiss.omp_set_num_threads(saved)

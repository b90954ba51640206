"""Concurrent use: searches in threads (library API and the UI's code path) while `dualens index` adds and
removes photos in another process.

Every search must succeed and return a complete page whose hits exist in the old or the new state,
with the stored vectors' scores. When the indexer's change is one database transaction (all added
files in one batch; all deletions in one sweep), every ranking must be exactly the old state's or the
new state's top-k (computed here by brute force from the database).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, PhotoStatus
from search import Searcher, parse_query
from tests.helpers import slow_commits
from tests.helpers.faults import CliForkServer, check_ok, index_in_process, make_photos
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

K = 8
QUERY = "a red car"
N_THREADS = 2  # per code path


@dataclass(frozen=True)
class Snapshot:
    vectors: dict[int, np.ndarray]
    paths: dict[int, str]

    def top_k(self, q: np.ndarray, k: int = K) -> list[int]:
        ids = sorted(self.vectors)
        scores = np.stack([self.vectors[i] for i in ids]) @ q
        return [ids[j] for j in np.argsort(-scores, kind="stable")[:k]]


def _snapshot(data: Path) -> Snapshot:
    with Collection.open(data) as c, c.session() as s:
        stmt = select(Photo.id, Photo.path, Photo.vector).where(Photo.status == PhotoStatus.INDEXED)
        rows = s.execute(stmt).all()
    return Snapshot({r.id: np.frombuffer(r.vector, np.float32) for r in rows}, {r.id: r.path for r in rows})


@dataclass
class Recorder:
    results: list[tuple[str, list[tuple[int, str, float]]]] = field(default_factory=list)  # (code path, hits)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.results) + len(self.errors)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        """Block until at least ``n`` searches have finished (a condition, not a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while self.count() < n:
            assert time.monotonic() < deadline, f"only {self.count()} of {n} searches finished in {timeout} s"
            time.sleep(0.01)


def _hammer(name: str, search: Callable[[], list], stop: threading.Event, rec: Recorder) -> None:
    while not stop.is_set():
        try:
            hits = search()
            row = [(h.id, h.path, h.cosine) for h in hits]
        except Exception as exc:  # any exception at all is a failure here
            with rec.lock:
                rec.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        with rec.lock:
            rec.results.append((name, row))


def _library_search(searcher: Searcher) -> Callable[[], list]:
    def run() -> list:
        searcher.reload_if_stale()
        return searcher.search(QUERY, k=K)

    return run


def _ui_search(backend: Backend) -> Callable[[], list]:
    def run() -> list:
        backend.refresh()
        return backend.run(SearchRequest(kind="text", text=QUERY, limit=K)).hits

    return run


def _problems(rec: Recorder, old: Snapshot, new: Snapshot, q: np.ndarray, *, atomic: bool) -> list[str]:
    problems = list(rec.errors)
    want_old, want_new = old.top_k(q), new.top_k(q)
    for name, row in rec.results:
        ids = [i for i, _, _ in row]
        if len(row) != K:
            problems.append(f"{name}: partial result: {len(row)} hits instead of {K}: {ids}")
        for pid, path, cosine in row:
            state = new if path == new.paths.get(pid) else old if path == old.paths.get(pid) else None
            if state is None:
                problems.append(f"{name}: hit {pid} {path!r} exists in neither the old nor the new state")
            elif abs(float(state.vectors[pid] @ q) - cosine) > 1e-4:
                problems.append(f"{name}: hit {pid}: cosine {cosine} does not match its stored vector")
        if atomic and ids not in (want_old, want_new):
            problems.append(f"{name}: ranking {ids} is neither the old {want_old} nor the new {want_new}")
    return sorted(set(problems))


def _concurrently(
    cli: CliForkServer, argv: list[str], data: Path, *, atomic: bool, q: np.ndarray
) -> tuple[Recorder, list[str]]:
    old = _snapshot(data)
    rec = Recorder()
    stop = threading.Event()
    with Searcher.open(data) as searcher:
        backend = Backend.open(data, UiConfig())
        try:
            searches = [
                ("Searcher.search", _library_search(searcher)),
                ("ui Backend.run", _ui_search(backend)),
            ]
            threads = [
                threading.Thread(target=_hammer, args=(name, fn, stop, rec))
                for name, fn in searches * N_THREADS
            ]
            for t in threads:
                t.start()
            rec.wait_for(len(threads))  # every thread searches the old state first
            result = cli.run(argv, pre=slow_commits.hook(0.05))
            rec.wait_for(rec.count() + 2 * len(threads))  # and each searches the new state after it
            stop.set()
            for t in threads:
                t.join(timeout=60)
        finally:
            stop.set()
            backend.close()
    assert result.rc == 0, result.output
    assert check_ok(data) == []
    new = _snapshot(data)
    assert old.top_k(q) != new.top_k(q), "the change must be visible in the ranking"
    return rec, _problems(rec, old, new, q, atomic=atomic)


@pytest.mark.slow
def test_searches_during_indexing_see_the_old_or_the_new_index_never_a_partial_one(
    cli: CliForkServer, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "photos"
    make_photos(root / "base", 30, seed=31)
    data = tmp_path / "data"
    index_in_process(data, [root], tiny_model_dir)
    with Searcher.open(data) as s:
        q = s.embed_query(parse_query(QUERY))

    def argv(batch: int) -> list[str]:  # --prune: a sub-folder the deletions empty is swept, not kept
        return [
            "index", "--data", str(data), "--model", str(tiny_model_dir), "--batch-size", str(batch),
            "--workers", "0", "--threads", "1", "--no-progress", "--prune", str(root),
        ]  # fmt: skip

    report = []
    # 1. additions in ONE transaction
    make_photos(root / "added", 16, seed=32)
    rec, problems = _concurrently(cli, argv(64), data, atomic=True, q=q)
    report.append(("add, one transaction", len(rec.results), problems))
    # 2. deletions in ONE transaction (the sweep)
    for path in sorted((root / "base").rglob("*.jpg"))[:12]:
        path.unlink()
    rec, problems = _concurrently(cli, argv(64), data, atomic=True, q=q)
    report.append(("remove, one transaction", len(rec.results), problems))
    # 3. additions, modifications and deletions over many transactions: intermediate states are fine
    make_photos(root / "added2", 12, seed=33)
    for path in sorted((root / "added").rglob("*.jpg"))[:6]:
        path.unlink()
    rec, problems = _concurrently(cli, argv(2), data, atomic=False, q=q)
    report.append(("add + remove, many transactions", len(rec.results), problems))

    for name, n, problems in report:
        with capsys.disabled():
            line = f"concurrent searches during `dualens index` ({name}): {n} searches"
            print(f"\n{line}, {len(problems)} problems")
    assert all(n > 0 for _, n, _ in report)
    problems = [f"{name}: {p}" for name, _, ps in report for p in ps]
    assert problems == [], "\n".join(problems)

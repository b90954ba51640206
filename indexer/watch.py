"""``dualens index DIR --watch``: keep a collection current as files are added, changed, moved and
deleted.

File-system events (watchdog: inotify on Linux, FSEvents, ReadDirectoryChangesW) under the indexed
folders are debounced — a run starts once no event has come for ``debounce_s`` — and each run is the
ordinary incremental ``run_index`` (path + mtime + size, content hash for moves, mark and sweep), so
it keeps every guarantee of a manual run: crash-safe commits, one writer, a consistent index. A
periodic full rescan (``rescan_s``) is the safety net for events the platform drops (network
mounts, overflowing inotify queues). Events inside the data directory (thumbnails, the database) are
ignored, so a collection stored under a watched folder does not index itself in a loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.core.errors import DualensError, UsageError
from indexer.core.imaging import is_image_name
from indexer.core.settings import CollectionPaths
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from indexer.scan import normalise_roots

log = logging.getLogger(__name__)

MAX_DELAY_S = 60.0  # changes that keep coming are indexed at least this often


@dataclass(frozen=True)
class WatchOptions:
    debounce_s: float = 2.0  # quiet time after the last event before a run
    rescan_s: float = 600.0  # a full run at least this often, events or not


class _Changes:
    """Collects relevant events; ``wait`` returns once events came and then stopped for a while (or
    have kept coming for ``MAX_DELAY_S``: a long copy is indexed as it goes, not only at its end)."""

    def __init__(self, ignore: Path) -> None:
        self._ignore = str(ignore.resolve())
        self._cond = threading.Condition()
        self._first: float | None = None  # first event since the last run
        self._last: float | None = None

    def _ignored(self, path: str) -> bool:
        return path == self._ignore or path.startswith(self._ignore + os.sep)

    def dispatch(self, event: Any) -> None:  # watchdog's handler interface
        kind = getattr(event, "event_type", "")
        if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
            return  # reads, and a folder's own mtime (its entries' events come on their own)
        paths = [str(getattr(event, "src_path", "")), str(getattr(event, "dest_path", "") or "")]
        relevant = [p for p in paths if p and not self._ignored(p)]
        if not relevant or not (event.is_directory or any(is_image_name(p) for p in relevant)):
            return
        with self._cond:
            self._last = time.monotonic()
            self._first = self._first or self._last
            self._cond.notify_all()

    def wait(self, debounce_s: float, timeout_s: float, stop: threading.Event) -> bool:
        """True when changes are waiting (quiet for ``debounce_s``); False after ``timeout_s`` or a stop."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                if self._last is not None and self._first is not None:
                    if now - self._last >= debounce_s or now - self._first >= MAX_DELAY_S:
                        self._first = self._last = None
                        return True
                    until = min(self._last + debounce_s, self._first + MAX_DELAY_S)
                elif now >= deadline:
                    return False
                else:
                    until = deadline
                self._cond.wait(timeout=min(max(until - now, 0.01), 0.5))
        return False


def watch(
    data: str | os.PathLike[str] | None,
    dirs: Sequence[str | os.PathLike[str]],
    options: IndexOptions,
    settings: WatchOptions,
    report: Callable[[IndexSummary], None],
    stop: threading.Event,
) -> None:
    """Index ``dirs`` now, then again after each burst of changes, until ``stop`` is set. A failed
    first run raises; a later one is reported through ``log`` and retried at the next change."""
    from watchdog.observers import Observer

    if options.engine != "local":
        raise UsageError("--watch works with the local engine")
    if settings.debounce_s < 0 or settings.rescan_s <= 0:
        raise UsageError("--debounce must be >= 0 and --rescan-every > 0 seconds")
    roots = normalise_roots(dirs) if dirs else _collection_roots(data)
    changes = _Changes(CollectionPaths.from_option(data).root)
    observer = Observer()
    for root in roots:
        observer.schedule(changes, str(root), recursive=True)  # type: ignore[arg-type]
    observer.start()  # before the first run: a change made while it scans starts the next run
    try:
        report(run_index(data, dirs, options))
        while not stop.is_set():
            changes.wait(settings.debounce_s, settings.rescan_s, stop)
            if stop.is_set():
                break
            try:
                report(run_index(data, roots, options))
            except DualensError as exc:  # e.g. another indexer holds the collection: try again later
                log.warning("this run did not index: %s; trying again at the next change", exc)
    finally:
        observer.stop()
        observer.join(timeout=10)


def _collection_roots(data: str | os.PathLike[str] | None) -> tuple[str, ...]:
    from indexer.core.storage.collection import Collection

    with Collection.open(data) as collection:
        return normalise_roots([str(r) for r in collection.rows.roots()], missing_ok=True)

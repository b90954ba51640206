"""``dualens index DIR --watch``: keep a collection current as files are added, changed, moved and
deleted.

File-system events (watchdog: inotify on Linux, FSEvents, ReadDirectoryChangesW) under the indexed
folders are debounced — a run starts once no event has come for ``debounce_s`` — and each run is the
ordinary incremental ``run_index`` (path + mtime + size, content hash for moves, mark and sweep), so
it keeps every guarantee of a manual run: crash-safe commits, one writer, a consistent index. A
periodic full rescan (``rescan_s``) is the safety net for events the platform drops (network
mounts, overflowing inotify queues). Events inside the data directory (thumbnails, the database) are
ignored, so a collection stored under a watched folder does not index itself in a loop. A root that is
deleted and created again, or replaced, is watched again (checked every ``ROOT_CHECK_S``) and indexed.
"""

from __future__ import annotations

import contextlib
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
from indexer.scan import normalise_roots, stored_roots

log = logging.getLogger(__name__)

MAX_DELAY_S = 60.0  # changes that keep coming are indexed at least this often
ROOT_CHECK_S = 1.0  # how often the roots are checked for having been deleted, replaced or moved


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
        self.note()

    def note(self) -> None:
        """Count as a change now (a root watched again: what it holds was not followed)."""
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
    *,
    db_url: str | None = None,
) -> None:
    """Index ``dirs`` now, then again after each burst of changes, until ``stop`` is set. A failed
    first run raises; a later one is reported through ``log`` and retried at the next change.
    ``db_url``: the collection's database, as for :func:`~indexer.pipeline.run_index`."""
    from watchdog.observers import Observer

    if options.engine != "local":
        raise UsageError("--watch works with the local engine")
    if settings.debounce_s < 0 or settings.rescan_s <= 0:
        raise UsageError("--debounce must be >= 0 and --rescan-every > 0 seconds")
    roots = normalise_roots(dirs) if dirs else _collection_roots(data, db_url)
    changes = _Changes(CollectionPaths.from_option(data).root)
    observer = Observer()
    watches = _Watches(observer, changes, roots)
    observer.start()  # before the first run: a change made while it scans starts the next run
    try:
        report(run_index(data, dirs, options, db_url=db_url))
        last_run = time.monotonic()
        while not stop.is_set():
            until_rescan = last_run + settings.rescan_s - time.monotonic()
            changed = changes.wait(settings.debounce_s, min(ROOT_CHECK_S, max(until_rescan, 0.0)), stop)
            if stop.is_set():
                break
            if watches.refresh():
                changes.note()  # index what the new folder holds, after the debounce
                continue
            if not changed and time.monotonic() < last_run + settings.rescan_s:
                continue
            try:
                report(run_index(data, dirs, options, db_url=db_url))  # none given: the recorded roots
            except DualensError as exc:  # e.g. another indexer holds the collection: try again later
                log.warning("this run did not index: %s; trying again at the next change", exc)
            last_run = time.monotonic()
    finally:
        observer.stop()
        observer.join(timeout=10)


class _Watches:
    """One recursive watch per root, armed again when the root is replaced: inotify watches a folder,
    not a path, so a root deleted and created again (or moved away) would otherwise go unwatched."""

    def __init__(self, observer: Any, handler: _Changes, roots: Sequence[str]) -> None:
        self._observer, self._handler = observer, handler
        self._armed: dict[str, tuple[Any, tuple[int, int] | None]] = {}  # root -> (watch, identity)
        for root in roots:
            self._arm(root)

    def _arm(self, root: str) -> bool:
        """Watch ``root`` afresh; False when it is not there (a later refresh tries again)."""
        old_watch, _ = self._armed.pop(root, (None, None))
        if old_watch is not None:
            with contextlib.suppress(KeyError):  # already gone from the observer
                self._observer.unschedule(old_watch)
        identity = _identity(root)
        self._armed[root] = (None, None)
        if identity is None:
            return False
        try:
            watch = self._observer.schedule(self._handler, root, recursive=True)
        except OSError as exc:  # removed again meanwhile, or no watch left (inotify limits)
            log.warning("cannot watch %s: %s; the periodic rescan still indexes it", root, exc)
            return False
        self._armed[root] = (watch, identity)
        return True

    def refresh(self) -> bool:
        """Watch again every root deleted, replaced or moved since it was armed; True when one is
        watched anew (what it holds now was not seen by the watch)."""
        alive = {emitter.watch for emitter in self._observer.emitters if emitter.is_alive()}
        rearmed = False
        for root, (watch, identity) in list(self._armed.items()):
            now = _identity(root)
            if (watch is None and now is None) or (watch in alive and now == identity):
                continue
            rearmed |= self._arm(root)
        return rearmed


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _collection_roots(data: str | os.PathLike[str] | None, db_url: str | None) -> tuple[str, ...]:
    from indexer.core.storage.collection import Collection

    with Collection.open(data, db_url=db_url) as collection:
        return stored_roots([str(r) for r in collection.rows.roots()])  # as recorded: never a link's target

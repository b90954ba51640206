"""One indexer per collection at a time: the ONE exclusive-indexing context every writer enters.

Two locks, always taken in this order: the data directory's lock file (before anything is opened,
so of two indexers started at once the second says so before it touches anything), then, for a
PostgreSQL collection, the server's advisory lock (``Database.indexer_lock``: other machines share
the database, not the folder).

POSIX record locks (``fcntl.lockf``) are used for the file rather than ``flock``: they belong to the
process, are not inherited by forked decoder workers, and vanish with the process, so a SIGKILLed
indexer never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from indexer.core.errors import CollectionError
from indexer.core.settings import CollectionPaths
from indexer.core.storage.collection import Collection
from indexer.core.storage.database import no_collection

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; single-user use assumed
    fcntl = None  # type: ignore[assignment]


@contextmanager
def collection_lock(paths: CollectionPaths) -> Iterator[None]:
    """Hold the collection's indexing lock, or raise CollectionError at once if another holds it."""
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CollectionError(
            f"cannot take the indexing lock in {paths.root}: {exc.strerror or exc}; "
            "dualens needs to write to the data folder"
        ) from exc
    try:
        if fcntl is not None:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                raise CollectionError(
                    f"another dualens indexer (pid {holder}) is working on {paths.root}; "
                    "wait for it to finish"
                ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def exclusive_indexing(
    data: str | os.PathLike[str] | None = None, *, create: bool = False, db_url: str | None = None
) -> Iterator[Collection]:
    """The collection, open for writing by this process alone: the lock file, then the database
    (checked intact), then the server's lock, then the index temp files of a killed writer removed.
    Without ``create``, a missing collection is reported before anything is created."""
    paths = CollectionPaths.from_option(data, db_url)
    if not create and not paths.exists():
        raise no_collection(paths)
    with (
        collection_lock(paths),
        Collection.open(data, create=create, db_url=db_url) as collection,
        collection.database.indexer_lock(),
    ):
        collection.database.ensure_intact()
        collection.indexes.remove_stale_temp_files()
        yield collection

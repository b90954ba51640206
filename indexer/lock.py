"""One indexer per collection at a time: an exclusive lock on the collection's lock file.

POSIX record locks (``fcntl.lockf``) are used rather than ``flock``: they belong to the process,
are not inherited by forked decoder workers, and vanish with the process, so a SIGKILLed indexer
never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from indexer.core.errors import CollectionError
from indexer.core.settings import CollectionPaths

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

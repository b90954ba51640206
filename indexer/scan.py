"""Stage 1: find the photo files under the roots (a cheap stat walk; no file is opened).

Recursive, hidden files and folders skipped, symlinks followed without looping (each directory is
visited once, keyed by its device and inode). Paths are recorded as found below the root (the
logical path, not the symlink target).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.core.errors import NotFoundError, UsageError
from indexer.core.imaging import supported_extensions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScannedFile:
    path: str  # absolute logical path (below its root)
    root: str
    file_type: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanResult:
    roots: tuple[str, ...]
    files: tuple[ScannedFile, ...]
    skipped_dirs: int  # unreadable directories and symlink loops


def normalise_roots(dirs: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Absolute, resolved, de-duplicated roots; a root inside another given root is dropped."""
    if not dirs:
        raise UsageError("give at least one folder to index")
    resolved: list[Path] = []
    for d in dirs:
        p = Path(d).expanduser()
        if not p.exists():
            raise NotFoundError(f"folder not found: {d}")
        if not p.is_dir():
            raise UsageError(f"not a folder: {d}")
        resolved.append(p.resolve())
    unique = list(dict.fromkeys(resolved))  # keep the order given
    kept = [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]
    return tuple(str(p) for p in kept)


def _walk(
    root: str, extensions: dict[str, str], visited: set[tuple[int, int]]
) -> Iterator[ScannedFile | None]:
    """Yield the photo files below ``root``; yield None for each directory that had to be skipped."""
    try:
        st = os.stat(root)
    except OSError:
        yield None
        return
    visited.add((st.st_dev, st.st_ino))
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot read folder %s: %s", directory, exc)
            yield None
            continue
        subdirs: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError:  # dangling symlink, vanished entry, no permission
                continue
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in visited:
                    log.info("skipping %s: folder already visited (symlink loop or duplicate)", entry.path)
                    yield None
                    continue
                visited.add(key)
                subdirs.append(entry.path)
            elif stat.S_ISREG(est.st_mode):
                file_type = extensions.get(os.path.splitext(entry.name)[1].lower())
                if file_type is not None:
                    yield ScannedFile(entry.path, root, file_type, est.st_size, est.st_mtime_ns)
        stack.extend(reversed(subdirs))


def scan(roots: Sequence[str], extensions: dict[str, str] | None = None) -> ScanResult:
    """Stat every photo file below ``roots`` (already normalised by :func:`normalise_roots`)."""
    exts = extensions if extensions is not None else supported_extensions()
    visited: set[tuple[int, int]] = set()
    files: list[ScannedFile] = []
    seen_paths: set[str] = set()
    skipped = 0
    for root in roots:
        for item in _walk(root, exts, visited):
            if item is None:
                skipped += 1
            elif item.path not in seen_paths:
                seen_paths.add(item.path)
                files.append(item)
    return ScanResult(roots=tuple(roots), files=tuple(files), skipped_dirs=skipped)

"""Stage 1: find the photo files under the roots (a cheap stat walk; no file is opened).

Recursive, hidden files and folders skipped, symlinks followed without looping (each directory is
visited once, keyed by its device and inode) as long as their target is inside the same root: a
link that leads out of it is skipped (into another root: that root's own walk finds the files), so
what is indexed is exactly what lies below the roots (to index a linked folder, add its target as
a root). Paths are recorded as found below the root
(the logical path, not the symlink target).
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
from indexer.core.text import printable

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
    unreadable: tuple[str, ...] = ()  # folders (roots included) that could not be listed: not "empty"


@dataclass(frozen=True)
class _Unreadable:
    path: str


def normalise_roots(dirs: Sequence[str | os.PathLike[str]], *, missing_ok: bool = False) -> tuple[str, ...]:
    """Absolute, resolved, de-duplicated roots; a root inside another given root is dropped.

    ``missing_ok`` (the collection's recorded roots): a folder that is gone is kept, so that the
    scan reports it unreadable and its photos are kept rather than swept away.
    """
    if not dirs:
        raise UsageError("give at least one folder to index")
    resolved: list[Path] = []
    for d in dirs:
        p = Path(d).expanduser()
        try:
            exists, is_dir = p.exists(), p.is_dir()
        except OSError as exc:  # a name too long, a loop of symlinks
            raise UsageError(
                f"cannot use the folder {printable(os.fspath(d))}: {exc.strerror or exc}"
            ) from exc
        if not exists and not missing_ok:
            raise NotFoundError(f"folder not found: {printable(os.fspath(d))}")
        if exists and not is_dir:
            raise UsageError(f"not a folder: {printable(os.fspath(d))}")
        resolved.append(p.resolve())
    return _outermost(resolved)


def stored_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The collection's recorded roots exactly as recorded (de-duplicated, nested ones dropped).

    Never resolved: a recorded root that has since become a symlink must not lead the run to the
    link's target (which would be registered as a new root); the scan reports it unreadable instead.
    """
    return _outermost([Path(r) for r in roots])


def _outermost(paths: Sequence[Path]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(paths))  # keep the order given
    kept = [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]
    return tuple(str(p) for p in kept)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk(
    root: str,
    extensions: dict[str, str],
    visited: set[tuple[int, int]],
    excluded: set[tuple[int, int]],
) -> Iterator[ScannedFile | _Unreadable | None]:
    """Yield the photo files below ``root``; ``_Unreadable`` for a folder that cannot be listed and
    None for one skipped on purpose (a symlink loop, a link out of ``root``)."""
    target_root = os.path.realpath(root)
    if target_root != os.path.abspath(root):  # roots are resolved when recorded: this one was replaced
        log.warning("%s is now a symlink (to %s): not followed; treated as unreadable", root, target_root)
        yield _Unreadable(root)
        return
    try:
        st = os.stat(root)
    except OSError:
        yield _Unreadable(root)
        return
    visited.add((st.st_dev, st.st_ino))
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.info("cannot read folder %s: %s", printable(directory), exc.strerror or exc)  # the run warns
            yield _Unreadable(directory)
            continue
        subdirs: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                est = entry.stat(follow_symlinks=True)
                outside = entry.is_symlink() and not _inside(os.path.realpath(entry.path), target_root)
            except OSError:  # dangling symlink, vanished entry, no permission
                continue
            if outside:
                log.info("skipping %s: a link out of its indexed folder", printable(entry.path))
                yield None
                continue
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in excluded:
                    continue  # the collection's own data folder (thumbnails are not photos to index)
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


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def scan(
    roots: Sequence[str],
    extensions: dict[str, str] | None = None,
    *,
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> ScanResult:
    """Stat every photo file below ``roots`` (already normalised by :func:`normalise_roots`),
    never entering the folders in ``exclude`` (the collection's data folder)."""
    exts = extensions if extensions is not None else supported_extensions()
    excluded = {key for key in map(_identity, exclude) if key is not None}
    visited: set[tuple[int, int]] = set()
    files: list[ScannedFile] = []
    seen_paths: set[str] = set()
    unreadable: list[str] = []
    skipped = 0
    for root in roots:
        for item in _walk(root, exts, visited, excluded):
            if item is None:
                skipped += 1
            elif isinstance(item, _Unreadable):
                skipped += 1
                unreadable.append(item.path)
            elif item.path not in seen_paths:
                seen_paths.add(item.path)
                files.append(item)
    return ScanResult(
        roots=tuple(roots), files=tuple(files), skipped_dirs=skipped, unreadable=tuple(unreadable)
    )

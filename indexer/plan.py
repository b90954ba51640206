"""Decide, per scanned file, what the run must do: nothing, (re-)embed, or sweep the row away.

Only the database columns are compared (path, size, mtime_ns, status): an unchanged file is never
opened, and neither is a file that failed before and has the same size and mtime since (unless
``retry_failed``). Rows below the scanned roots whose file was not seen are *missing*; they are
deleted at the end of the run unless a new file with the same content hash claims them (a move).

A folder whose every photo is gone at once (vanished, or emptied: a disk unmounted below a root,
a share that is down) is *unreachable* rather than missing, as is a folder that cannot be listed:
its rows are kept unless ``prune``, and may still be claimed by moves (a renamed folder). The rows
come from ``PhotoRows.rows_to_plan``.

A re-index run (``staging``) judges rows by their staged next-model vectors instead: a row without
one is embedded (so an interrupted re-index resumes), and only rows with one lend vectors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from indexer.core.storage.rows import ExistingRow
from indexer.core.storage.schema import PhotoStatus
from indexer.scan import ScannedFile, ScanResult


@dataclass(frozen=True)
class WorkItem:
    """A file to read: new (``existing_id`` None) or changed/failed/pending (``existing_id`` set)."""

    file: ScannedFile
    existing_id: int | None
    was_indexed: bool = False  # the existing row had a vector in the index
    old_hash: str | None = None  # content hash of the existing indexed row (a touched file keeps its vector)


@dataclass
class Plan:
    todo: list[WorkItem]
    unchanged: int
    missing: list[ExistingRow]
    # rows whose file was not seen because its folder could not be read, or because the folder
    # vanished or came back empty where it had photos (a disk not mounted): kept unless --prune
    unreachable: list[ExistingRow] = field(default_factory=list)
    unreachable_folders: tuple[str, ...] = ()
    emptied_folders: tuple[str, ...] = ()  # those of unreachable_folders that were listed, empty or gone
    known_failed: int = 0  # failed before, same size and mtime since: not read again
    # content hash -> id of an indexed row holding that content (for moves and duplicate reuse);
    # the runner adds the rows it writes
    by_hash: dict[str, int] = field(default_factory=dict)
    staging: bool = False  # a re-index run: the staged next-model vectors are the ones that count

    def lends(self, row: ExistingRow) -> bool:
        """Whether a row's vectors may be moved or copied to a file with the same content."""
        return row.has_next if self.staging else row.is_indexed

    @property
    def move_sources(self) -> list[ExistingRow]:
        """Rows a new file with the same content may take over: missing and unreachable ones."""
        return [*self.missing, *self.unreachable]

    @property
    def missing_hashes(self) -> frozenset[str]:
        return frozenset(r.content_hash for r in self.move_sources if self.lends(r) and r.content_hash)

    def settle(self, claimed: set[int]) -> tuple[list[ExistingRow], int, tuple[str, ...]]:
        """After the run's moves (``claimed`` rows): the rows to sweep, the number of rows kept
        unreachable, and the folders that hold them. An emptied folder some of whose photos moved
        was renamed, not lost: its other rows are swept too (photos deleted along with the rename)."""
        blocked = set(self.unreachable_folders)
        unreadable = blocked - set(self.emptied_folders)
        moved_from = {f for r in self.unreachable if r.id in claimed for f in _folders_above(r.path, blocked)}
        renamed = moved_from - unreadable
        rest = [r for r in self.unreachable if r.id not in claimed]
        swept = [r for r in rest if _in_folders(r.path, renamed) and not _in_folders(r.path, unreadable)]
        gone = {r.id for r in swept}
        kept = [r for r in rest if r.id not in gone]
        holding = {f for r in kept for f in _folders_above(r.path, blocked)}
        folders = tuple(f for f in self.unreachable_folders if f in holding or f not in moved_from)
        return [*self.missing, *swept], len(kept), folders


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def make_plan(
    scan: ScanResult,
    existing: list[ExistingRow],
    *,
    prune: bool = False,
    want_visual: bool = False,
    retry_failed: bool = False,
    staging: bool = False,
) -> Plan:
    """``want_visual``: the model has visual vectors, so an indexed row without one (indexed by an
    older release) is embedded again: the visual vector cannot be derived from the joint one.
    ``retry_failed``: read failed files again even when their size and mtime are unchanged.
    ``staging``: a re-index run, which embeds every row lacking a staged next-model vector."""
    by_path = {r.path: r for r in existing}

    def complete(row: ExistingRow) -> bool:
        """Holding every vector the run's model gives: it may stay as it is and lend its vectors."""
        if staging:
            return row.has_next and (row.has_next_visual or not want_visual)
        return row.is_indexed and (row.has_visual or not want_visual)

    todo: list[WorkItem] = []
    unchanged = known_failed = 0
    seen: set[str] = set()
    for f in scan.files:
        seen.add(f.path)
        row = by_path.get(f.path)
        if row is None:
            todo.append(WorkItem(f, None))
        elif complete(row) and row.size == f.size and row.mtime_ns == f.mtime_ns:
            unchanged += 1
        elif _failed_unchanged(row, f) and not retry_failed:
            known_failed += 1
        else:  # no old hash unless complete: a touched file keeps its vectors, others are embedded
            todo.append(WorkItem(f, row.id, row.is_indexed, row.content_hash if complete(row) else None))
    missing = [r for r in existing if r.path not in seen and _under(r.path, scan.roots)]
    emptied = [f for f in _emptied_folders(scan, existing, missing) if f not in scan.unreadable]
    blocked = (*scan.unreadable, *emptied)
    unreachable: list[ExistingRow] = []
    if blocked and not prune:
        folders = set(blocked)
        unreachable = [r for r in missing if _in_folders(r.path, folders)]
        missing = [r for r in missing if not _in_folders(r.path, folders)]
    # Only rows whose vector cannot change during this run may lend it: unchanged and missing rows.
    rewritten = {item.existing_id for item in todo}
    by_hash = {
        r.content_hash: r.id for r in existing if complete(r) and r.content_hash and r.id not in rewritten
    }
    return Plan(
        todo=todo,
        unchanged=unchanged,
        missing=missing,
        by_hash=by_hash,
        unreachable=unreachable,
        unreachable_folders=tuple(dict.fromkeys(blocked)),
        emptied_folders=tuple(emptied),
        known_failed=known_failed,
        staging=staging,
    )


def _failed_unchanged(row: ExistingRow, f: ScannedFile) -> bool:
    return row.status == PhotoStatus.ERROR and row.size == f.size and row.mtime_ns == f.mtime_ns


def _folders_above(path: str, folders: set[str]) -> Iterator[str]:
    """The ``folders`` that ``path`` is below (a walk up its parents: cheap for many folders)."""
    parent = os.path.dirname(path)
    while True:
        if parent in folders:
            yield parent
        up = os.path.dirname(parent)
        if up == parent:
            return
        parent = up


def _in_folders(path: str, folders: set[str]) -> bool:
    return next(_folders_above(path, folders), None) is not None


def _emptied_folders(scan: ScanResult, existing: list[ExistingRow], missing: list[ExistingRow]) -> list[str]:
    """The topmost folders (roots included) where no photo was found although the collection holds
    photos there: a disk not mounted (its mount point empty or gone), a network share that is down,
    rather than every photo of the folder deleted at once (``--prune`` says that)."""
    found_roots = {f.root for f in scan.files}
    emptied = [
        root
        for root in scan.roots
        if root not in found_roots and any(_under(r.path, (root,)) for r in existing)
    ]
    live: set[str] = set()  # every folder holding a scanned file, and the folders above it
    for f in scan.files:
        folder = os.path.dirname(f.path)
        while folder not in live and folder != f.root and len(folder) > len(f.root):
            live.add(folder)
            folder = os.path.dirname(folder)
    unreadable = set(scan.unreadable)  # reported as such, not as emptied
    for row in missing:
        root = next((r for r in scan.roots if _under(row.path, (r,))), None)
        if root is None or root in emptied or _in_folders(row.path, unreadable):
            continue
        top = None
        folder = os.path.dirname(row.path)
        while len(folder) > len(root) and folder not in live:
            top = folder
            folder = os.path.dirname(folder)
        if top is not None:
            emptied.append(top)
    return list(dict.fromkeys(emptied))

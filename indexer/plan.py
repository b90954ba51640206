"""Decide, per scanned file, what the run must do: nothing, (re-)embed, or sweep the row away.

Only the database columns are compared (path, size, mtime_ns, status): an unchanged file is never
opened. Rows below the scanned roots whose file was not seen are *missing*; they are deleted at the
end of the run unless a new file with the same content hash claims them (a move). The rows come
from ``PhotoRows.rows_to_plan``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from indexer.core.storage.rows import ExistingRow
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
    # rows whose file was not seen because its folder could not be read, or because its root was
    # empty where it had photos (a disk not mounted): kept, never swept, unless --prune
    unreachable: list[ExistingRow] = field(default_factory=list)
    unreachable_folders: tuple[str, ...] = ()
    # content hash -> id of an indexed row holding that content (for moves and duplicate reuse);
    # the runner adds the rows it writes
    by_hash: dict[str, int] = field(default_factory=dict)

    @property
    def missing_hashes(self) -> frozenset[str]:
        return frozenset(r.content_hash for r in self.missing if r.is_indexed and r.content_hash)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def make_plan(
    scan: ScanResult, existing: list[ExistingRow], *, prune: bool = False, want_visual: bool = False
) -> Plan:
    """``want_visual``: the model has visual vectors, so an indexed row without one (indexed by an
    older release) is embedded again: the visual vector cannot be derived from the joint one."""
    by_path = {r.path: r for r in existing}

    def complete(row: ExistingRow) -> bool:
        """Indexed with every vector the model gives: it may stay as it is and lend its vectors."""
        return row.is_indexed and (row.has_visual or not want_visual)

    todo: list[WorkItem] = []
    unchanged = 0
    seen: set[str] = set()
    for f in scan.files:
        seen.add(f.path)
        row = by_path.get(f.path)
        if row is None:
            todo.append(WorkItem(f, None))
        elif complete(row) and row.size == f.size and row.mtime_ns == f.mtime_ns:
            unchanged += 1
        else:  # no old hash unless complete: a touched file keeps its vectors, others are embedded
            todo.append(WorkItem(f, row.id, row.is_indexed, row.content_hash if complete(row) else None))
    missing = [r for r in existing if r.path not in seen and _under(r.path, scan.roots)]
    blocked = (*scan.unreadable, *_emptied_roots(scan, existing))
    unreachable: list[ExistingRow] = []
    if blocked and not prune:
        unreachable = [r for r in missing if _under(r.path, blocked)]
        missing = [r for r in missing if not _under(r.path, blocked)]
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
    )


def _emptied_roots(scan: ScanResult, existing: list[ExistingRow]) -> list[str]:
    """Roots where no photo was found although the collection holds photos there: most likely a
    disk that is not mounted, or a network share that is down, rather than every photo deleted."""
    found = {f.root for f in scan.files}
    return [
        root for root in scan.roots if root not in found and any(_under(r.path, (root,)) for r in existing)
    ]

"""Move duplicate copies aside, and put them back: dualens never deletes a photo.

``quarantine`` writes its manifest (every planned move) before it moves anything, and rewrites it
after each move, so ``undo`` restores what was moved even after a run that was killed half-way.
Neither direction ever overwrites a file: a name taken in the quarantine gets a suffix, and a photo
whose original place is occupied again is left in the quarantine (and said so).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from indexer.core.errors import UsageError

MANIFEST_NAME = "manifest.json"
KIND = "dualens-quarantine"


@dataclass
class Entry:
    original: str
    quarantined: str
    size: int
    mtime_ns: int
    moved: bool = False


@dataclass
class QuarantineReport:
    manifest: Path
    moved: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why"


@dataclass
class UndoReport:
    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """A file to move, as the collection knows it: it is moved only if it is still that file."""

    path: str
    size: int
    mtime_ns: int


def _write_manifest(path: Path, entries: list[Entry]) -> None:
    body = {"kind": KIND, "version": 1, "entries": [asdict(e) for e in entries]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _free_name(path: Path, taken: set[Path]) -> Path:
    candidate, n = path, 1
    while candidate in taken or candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        n += 1
    taken.add(candidate)
    return candidate


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"{target} exists")
    shutil.move(os.fspath(source), os.fspath(target))  # a rename, or copy + delete across disks


def move_aside(files: Sequence[Expected], folder: Path, roots: Sequence[Path] = ()) -> QuarantineReport:
    """Move ``files`` into a new run folder under ``folder``, keeping their paths below it."""
    folder = Path(os.path.abspath(os.path.expanduser(folder)))
    for root in roots:
        if folder == root or root in folder.parents:
            raise UsageError(
                f"the quarantine folder {folder} is inside the indexed folder {root}: the next "
                "`dualens index` would index the copies again; choose a folder outside it"
            )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        run = _free_name(folder / f"dualens-{stamp}", set())
        run.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"cannot create the quarantine folder {folder}: {exc.strerror or exc}") from exc
    taken: set[Path] = set()
    entries = [
        Entry(f.path, str(_free_name(run / "files" / f.path.lstrip(os.sep), taken)), f.size, f.mtime_ns)
        for f in files
    ]
    report = QuarantineReport(run / MANIFEST_NAME)
    _write_manifest(report.manifest, entries)  # before the first move: undo finds every one
    for entry in entries:
        source = Path(entry.original)
        try:
            st = source.stat()
        except OSError as exc:
            report.skipped.append(f"{entry.original}: {exc.strerror or exc}")
            continue
        if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
            report.skipped.append(f"{entry.original}: changed since it was indexed; left in place")
            continue
        try:
            _move(source, Path(entry.quarantined))
        except OSError as exc:
            report.skipped.append(f"{entry.original}: {getattr(exc, 'strerror', None) or exc}")
            continue
        entry.moved = True
        report.moved.append(entry)
        _write_manifest(report.manifest, entries)
    return report


def read_manifest(path: Path) -> list[Entry]:
    path = Path(os.path.expanduser(path))
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"no quarantine manifest at {path}") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the quarantine manifest {path}: {exc}") from exc
    if not isinstance(body, dict) or body.get("kind") != KIND:
        raise UsageError(f"{path} is not a dualens quarantine manifest")
    try:
        return [Entry(**e) for e in body["entries"]]
    except (KeyError, TypeError) as exc:
        raise UsageError(f"the quarantine manifest {path} is damaged ({exc})") from exc


def undo(manifest: Path) -> UndoReport:
    """Move every quarantined file of a manifest back to where it was (never over another file)."""
    report = UndoReport()
    for entry in read_manifest(manifest):
        original, quarantined = Path(entry.original), Path(entry.quarantined)
        if not (quarantined.exists() or quarantined.is_symlink()):
            if not entry.moved and original.exists():
                continue  # never moved (skipped, or the run was stopped first)
            report.skipped.append(f"{entry.original}: not in the quarantine ({entry.quarantined})")
            continue
        if original.exists() or original.is_symlink():
            report.skipped.append(f"{entry.original}: a file is there again; left {quarantined} as is")
            continue
        try:
            _move(quarantined, original)
        except OSError as exc:
            report.skipped.append(f"{entry.original}: {getattr(exc, 'strerror', None) or exc}")
            continue
        report.restored.append(entry.original)
    return report

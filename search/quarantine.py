"""Move duplicate copies aside, and put them back: dualens never deletes a photo.

``quarantine`` writes its manifest (every planned move) before it moves anything, and rewrites it
after each move, so ``undo`` restores what was moved even after a run that was killed half-way.
Neither direction ever overwrites a file: a name taken in the quarantine gets a suffix, and a photo
whose original place is occupied again is left in the quarantine (and said so). Across disks a
file is copied to a hidden partial name, flushed, renamed into place and only then removed: no
truncated copy ever carries the photo's name, and ``undo`` removes what a killed move left behind.

:func:`quarantine_photos` and :func:`undo_quarantine` are the one move aside and undo of a collection's
photos (the CLI's and the UI's): the files move, and the rows follow at once, inside the collection's
writer locks (indexer/core/storage/set_aside.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.core.errors import UsageError

if TYPE_CHECKING:
    from indexer.core.storage.collection import Collection

Row = dict[str, Any]  # a photo's row as indexer/core/storage/set_aside.py takes it out and puts it back

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
    back_in_collection: int = 0  # of the restored photos, those whose rows are in the collection again


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


PARTIAL = ".dualens-partial"  # suffix of a copy being written across disks (hidden: never indexed)


def partial_name(target: Path) -> Path:
    """Where a copy to ``target`` is written before it is renamed into place."""
    return target.with_name(f".{target.name}{PARTIAL}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a platform without directory descriptors
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_then_rename(source: Path, target: Path) -> None:
    """Copy across disks: into a hidden partial file, flushed to disk, renamed to ``target``; then the
    source is removed. A failure (disk full) removes the partial file; a kill leaves only the partial
    file, which ``undo`` recognises; ``target`` is never a truncated copy."""
    partial = partial_name(target)
    try:
        with open(source, "rb") as src, open(partial, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, partial, follow_symlinks=False)
        if target.exists() or target.is_symlink():
            raise FileExistsError(f"{target} exists")
        os.rename(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    os.unlink(source)


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target`` (never over a file); across disks, a safe copy then delete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"{target} exists")
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if source.is_symlink():  # a link is moved as a link, as shutil.move does
            os.symlink(os.readlink(source), target)
            os.unlink(source)
        else:
            _copy_then_rename(source, target)


def _clean_partial(target: Path) -> None:
    """Remove a partial copy that a killed move left next to ``target``."""
    with contextlib.suppress(OSError):
        partial_name(target).unlink(missing_ok=True)


def _inside(folder: Path, root: Path) -> bool:
    """Whether ``folder`` lies in ``root``, symlinks of both resolved."""
    real, real_root = folder.resolve(), root.resolve()
    return real == real_root or real_root in real.parents


def move_aside(files: Sequence[Expected], folder: Path, roots: Sequence[Path] = ()) -> QuarantineReport:
    """Move ``files`` into a new run folder under ``folder``, keeping their paths below it."""
    folder = Path(os.path.abspath(os.path.expanduser(folder)))
    for root in roots:
        if _inside(folder, Path(root)):
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


def _leftover_copy(entry: Entry, original: Path, quarantined: Path) -> bool:
    """Whether ``quarantined`` is this entry's own copy, whole or truncated, of a file still in place
    and unchanged: what a cross-disk move leaves when it is stopped (or, before the partial files,
    failed) before it removed the original."""
    if entry.moved or not _is_restored(entry, original) or quarantined.is_symlink():
        return False
    try:
        if quarantined.stat().st_size > entry.size:
            return False
        with open(original, "rb") as a, open(quarantined, "rb") as b:
            while chunk := b.read(1 << 20):
                if a.read(len(chunk)) != chunk:
                    return False
    except OSError:
        return False
    return True


def _is_restored(entry: Entry, original: Path) -> bool:
    """Whether the file at ``original`` is the one this entry moved (put back by an earlier undo)."""
    try:
        st = original.stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (entry.size, entry.mtime_ns)


def undo(manifest: Path) -> UndoReport:
    """Move every quarantined file of a manifest back to where it was (never over another file).

    Safe to run again: a photo already back in place is skipped without a word, the partial copies a
    killed cross-disk move left are removed, and so is a complete quarantine copy of a file that was
    never removed from its place (a move killed between the copy and the delete)."""
    path = Path(os.path.expanduser(manifest))
    entries = read_manifest(path)
    report = UndoReport()
    for entry in entries:
        original, quarantined = Path(entry.original), Path(entry.quarantined)
        _clean_partial(quarantined)
        _clean_partial(original)
        there = original.exists() or original.is_symlink()
        if not (quarantined.exists() or quarantined.is_symlink()):
            if there and (not entry.moved or _is_restored(entry, original)):
                continue  # never moved (skipped, or the run was stopped first), or already put back
            report.skipped.append(f"{entry.original}: not in the quarantine ({entry.quarantined})")
            continue
        if there and _leftover_copy(entry, original, quarantined):
            quarantined.unlink()  # a copy of a move stopped before it removed the original
            continue
        if there:
            report.skipped.append(f"{entry.original}: a file is there again; left {quarantined} as is")
            continue
        try:
            _move(quarantined, original)
        except OSError as exc:
            report.skipped.append(f"{entry.original}: {getattr(exc, 'strerror', None) or exc}")
            continue
        report.restored.append(entry.original)
        entry.moved = False
        with contextlib.suppress(OSError):  # read-only: the next undo knows the photo by its size and time
            _write_manifest(_manifest_file(path), entries)
    return report


def _manifest_file(path: Path) -> Path:
    return path / MANIFEST_NAME if path.is_dir() else path


def quarantine_photos(
    collection: Collection,
    ids: Sequence[int],
    folder: Path,
    accept: Callable[[int, Expected], bool] | None = None,
) -> tuple[QuarantineReport, list[Row]]:
    """Move these photos (those ``accept`` keeps; unknown ids left out) into a quarantine under
    ``folder``, take the rows of the moved ones out of the collection and its index files at once and
    keep them beside the manifest for :func:`undo_quarantine`; the report and the rows taken out.
    A writer of the collection: refused in one line before anything moves while an indexer runs or
    the collection is read-only."""
    from indexer.core.storage import set_aside

    with set_aside.writer(collection):
        stored = collection.photos([int(i) for i in ids])
        known = {i: Expected(stored[i].path, stored[i].size, stored[i].mtime_ns) for i in ids if i in stored}
        files = {i: f for i, f in known.items() if accept is None or accept(i, f)}
        report = move_aside(list(files.values()), folder, collection.roots())
        moved = {e.original for e in report.moved}
        rows = set_aside.take_out(collection, [i for i, f in files.items() if f.path in moved])
    set_aside.save_rows(report.manifest, rows, collection.collection_id())
    return report, rows


def undo_quarantine(collection: Collection, manifest: Path, rows: Sequence[Row] | None = None) -> UndoReport:
    """Move a quarantine's photos back (:func:`undo`) and put the rows kept for them (``rows``, else
    those beside the manifest, if they are this collection's) into the collection and its index files;
    ``back_in_collection`` counts the photos in it again. A row comes back while its photo is in its
    place as moved, whether this undo or an earlier one put it there (one given another collection
    restores the files alone: the rows stay for this one). A writer of the collection, as above."""
    from indexer.core.storage import set_aside

    manifest = Path(os.path.expanduser(manifest))  # the rows beside it are found as the files are
    with set_aside.writer(collection):
        if rows is None:  # read first: damaged rows are refused before any file moves
            rows = set_aside.load_rows(manifest, collection.collection_id())
        report = undo(manifest)
        in_place = set(report.restored) | _back_in_place(manifest)
        back = set_aside.put_back(collection, [r for r in rows if r["path"] in in_place])
    report.back_in_collection = len(back)
    return report


def _back_in_place(manifest: Path) -> set[str]:
    """The photos of a quarantine that an undo put back and that are still the files it moved."""
    entries = read_manifest(Path(os.path.expanduser(manifest)))
    return {e.original for e in entries if not e.moved and _is_restored(e, Path(e.original))}

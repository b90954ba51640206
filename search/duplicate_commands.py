"""``dualens duplicates``: list exact and near-duplicate photos, export the list, move copies aside
(``--quarantine DIR``) and put them back (``--undo MANIFEST``). Nothing is ever deleted."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.core.errors import UsageError
from indexer.core.text import printable

if TYPE_CHECKING:
    from search.duplicates import DuplicateGroup, Member
    from search.quarantine import QuarantineReport, UndoReport


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from search.limits import DUPLICATE_THRESHOLD as DEFAULT_THRESHOLD

    p = subparsers.add_parser(
        "duplicates",
        parents=[common],
        help="find exact and near-duplicate photos (never deletes; --quarantine moves copies aside)",
        description="Groups of exact copies (same content) and near-duplicates (re-encoded, resized, "
        "cropped, slightly rotated or edited copies), each with a suggested keeper: most pixels, then "
        "the oldest, then the largest file.",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the groups as JSON")
    out.add_argument("--csv", action="store_true", help="print the groups as CSV, a row per photo")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cosine similarity at or above which photos are near-duplicates (default {DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--quarantine",
        metavar="DIR",
        default=None,
        help="move the sure copies (identical content or pixels) into DIR, with a manifest that --undo "
        "restores",
    )
    p.add_argument(
        "--include-similar",
        action="store_true",
        help="with --quarantine: also move the copies that are only similar (review the list first)",
    )
    p.add_argument("--undo", metavar="MANIFEST", default=None, help="move the photos of a quarantine back")
    p.add_argument(
        "--sort",
        choices=("relevance", "date"),
        default="relevance",
        help="relevance: largest groups first (default); date: the group with the newest photo first",
    )
    p.set_defaults(func=run_duplicates)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def run_duplicates(args: argparse.Namespace) -> int:
    if args.undo:
        if args.quarantine or args.json or args.csv or args.include_similar:
            raise UsageError("--undo takes no other option")
        report = _undo(args, Path(args.undo))
        for line in report.skipped:
            print(f"not restored: {printable(line)}", file=sys.stderr)
        restored = len(report.restored)
        if not restored and not report.skipped:
            back = report.back_in_collection  # put back in place by an earlier undo, their rows now
            print(f"every photo of this quarantine is in its place; {back} back in the collection now"
                  if back else "nothing to undo: every photo of this quarantine is in its place")  # fmt: skip
            return 0
        later = max(0, restored - report.back_in_collection)
        tail = f"; {later} return at the next `dualens index`" if later else ", back in the collection"
        print(f"restored {restored} photo(s){tail}")
        return 0 if not report.skipped else 1
    if args.include_similar and not args.quarantine:
        raise UsageError("--include-similar goes with --quarantine DIR")
    return _find(args)


def _undo(args: argparse.Namespace, manifest: Path) -> UndoReport:
    """Move a quarantine's photos back and put their kept rows into the collection at once (as the
    UI's Undo does); without a collection to open, the files alone (the next `dualens index` adds them)."""
    from indexer.core.errors import CollectionError
    from indexer.core.storage.collection import Collection
    from search.quarantine import undo, undo_quarantine

    try:
        collection = Collection.open(args.data, db_url=args.db)
    except CollectionError:
        return undo(manifest)
    with collection:
        return undo_quarantine(collection, manifest)


def _find(args: argparse.Namespace) -> int:
    from indexer.core.storage.collection import Collection
    from search.duplicates import find_duplicates, newest_first
    from search.render import print_json

    with Collection.open(args.data, db_url=args.db) as collection:
        groups = find_duplicates(collection, args.threshold)
        if args.sort == "date":
            groups = newest_first(groups)
    if args.json:
        print_json({"threshold": args.threshold, "groups": [g.to_json() for g in groups]})
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["group", "role", "id", "path", "size", "width", "height", "date", "date_taken",
                         "file_type", "similarity", "exact", "sure"])  # fmt: skip
        for n, group in enumerate(groups, 1):
            for m in group.members:
                role = "keep" if m is group.keeper else "copy"
                writer.writerow([n, role, m.id, printable(m.path), m.size, m.width, m.height,
                                 m.date.isoformat(), m.date_taken, printable(m.file_type),
                                 f"{m.similarity:.4f}", m.exact, m.sure])  # fmt: skip
    else:
        _print_groups(groups)
    if args.quarantine and groups:
        chosen = [m for g in groups for m in g.copies if m.sure or (args.include_similar and not m.linked)]
        report = _move_aside(args, [m.id for m in chosen])
        left = sum(len(g.copies) for g in groups) - len(chosen)
        if left:
            print(
                f"left {left} copies in place that are only similar or that a link leads to: review them "
                "(--include-similar moves the similar ones too)",
                file=sys.stderr,
            )
        print(
            f"moved {len(report.moved)} copies to {printable(str(report.manifest.parent))}; undo with "
            f"`dualens duplicates --undo {printable(str(report.manifest))}`",
            file=sys.stderr,
        )
        return 0 if not report.skipped else 1
    return 0


def _move_aside(args: argparse.Namespace, ids: list[int]) -> QuarantineReport:
    """Move these photos into the quarantine and take their rows out of the collection at once
    (:func:`search.quarantine.quarantine_photos`, as the UI's Move aside does)."""
    from indexer.core.storage.collection import Collection
    from search.quarantine import quarantine_photos

    with Collection.open(args.data, db_url=args.db) as collection:
        report, _ = quarantine_photos(collection, ids, Path(args.quarantine))
    for line in report.skipped:
        print(f"not moved: {printable(line)}", file=sys.stderr)
    return report


def _likeness(m: Member) -> str:
    if m.linked:
        return "  a link leads to it: not moved"
    if m.exact:
        return "  identical"
    return f"  {'same pixels' if m.sure else 'similar: review'} ({m.similarity:.3f})"


def _print_groups(groups: list[DuplicateGroup]) -> None:
    if not groups:
        print("No duplicates found.")
        return
    for n, group in enumerate(groups, 1):
        kind = "exact copies" if group.exact else "near-duplicates"
        print(f"group {n}: {len(group.members)} photos ({kind}); keep: {group.reason}")
        for m in group.members:
            role = "keep" if m is group.keeper else "copy"
            when = f"{m.date:%Y-%m-%d %H:%M} ({'taken' if m.date_taken else 'file date'})"
            same = "" if m is group.keeper else _likeness(m)
            print(f"  {role}  {printable(m.path)}  {m.width}x{m.height}  {_megabytes(m.size)}  {when}{same}")
    copies = sum(len(g.copies) for g in groups)
    size = sum(m.size for g in groups for m in g.copies)
    print(
        f"{len(groups)} group(s), {copies} copies ({_megabytes(size)}); nothing was changed. "
        "Export with --json or --csv; move the sure copies aside with --quarantine DIR"
    )

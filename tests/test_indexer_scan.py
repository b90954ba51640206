"""Point 1 of the indexer issue: what the scan finds, and the per-file plan (point 6)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.core.errors import NotFoundError, UsageError
from indexer.core.storage.rows import ExistingRow
from indexer.core.storage.schema import PhotoStatus
from indexer.plan import make_plan
from indexer.scan import normalise_roots, scan
from tests.helpers.images import save_as, save_jpeg, write_text_as_image


def _paths(result) -> set[str]:
    return {Path(f.path).name for f in result.files}


def test_scan_finds_every_supported_format_recursively(tmp_path: Path) -> None:
    save_jpeg(tmp_path / "a.jpg")
    save_jpeg(tmp_path / "deep" / "er" / "b.JPEG")
    for ext, fmt in [("png", "PNG"), ("webp", "WEBP"), ("gif", "GIF"), ("bmp", "BMP"), ("tif", "TIFF")]:
        save_as(tmp_path / "formats" / f"c.{ext}", fmt)
    write_text_as_image(tmp_path / "notes.txt")
    result = scan(normalise_roots([tmp_path]))
    assert _paths(result) == {"a.jpg", "b.JPEG", "c.png", "c.webp", "c.gif", "c.bmp", "c.tif"}
    types = {Path(f.path).suffix.lower(): f.file_type for f in result.files}
    assert types[".jpeg"] == "jpg" and types[".tif"] == "tiff"


def test_scan_skips_hidden_folders_and_files(tmp_path: Path) -> None:
    save_jpeg(tmp_path / "visible.jpg")
    save_jpeg(tmp_path / ".thumbnails" / "hidden.jpg")
    save_jpeg(tmp_path / "._resource-fork.jpg")
    assert _paths(scan(normalise_roots([tmp_path]))) == {"visible.jpg"}


def test_scan_follows_symlinks_inside_the_root_without_looping(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    save_jpeg(root / "album" / "a.jpg")
    save_jpeg(root / "other" / "c.jpg")
    os.symlink(root, root / "album" / "loop")  # a loop back to the root
    os.symlink(root / "album", root / "album-again")  # the same folder twice
    os.symlink(root / "other" / "c.jpg", root / "c-link.jpg")  # a file link inside the root: followed
    result = scan(normalise_roots([root]))
    assert sorted(_paths(result)) == ["a.jpg", "c-link.jpg", "c.jpg"]
    assert result.skipped_dirs >= 1


def test_scan_does_not_follow_links_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "photos", tmp_path / "elsewhere"
    save_jpeg(root / "a.jpg")
    save_jpeg(outside / "b.jpg")
    os.symlink(outside, root / "linked")  # a folder link out of the root
    os.symlink(outside / "b.jpg", root / "b-link.jpg")  # a file link out of the root
    assert _paths(scan(normalise_roots([root]))) == {"a.jpg"}
    # the target given as a root of its own is indexed there, under its own path, once
    both = scan(normalise_roots([root, outside]))
    assert sorted(f.path for f in both.files) == [str(outside / "b.jpg"), str(root / "a.jpg")]


def test_scan_takes_several_roots_and_drops_nested_ones(tmp_path: Path) -> None:
    save_jpeg(tmp_path / "one" / "a.jpg")
    save_jpeg(tmp_path / "two" / "sub" / "b.jpg")
    roots = normalise_roots([tmp_path / "one", tmp_path / "two", tmp_path / "two" / "sub"])
    assert roots == (str(tmp_path / "one"), str(tmp_path / "two"))
    result = scan(roots)
    assert {(Path(f.path).name, f.root) for f in result.files} == {
        ("a.jpg", str(tmp_path / "one")),
        ("b.jpg", str(tmp_path / "two")),
    }


def test_missing_root_is_a_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="folder not found"):
        normalise_roots([tmp_path / "nope"])
    save_jpeg(tmp_path / "file.jpg")
    with pytest.raises(UsageError, match="not a folder"):
        normalise_roots([tmp_path / "file.jpg"])


def _row(id_: int, path: Path, size: int, mtime_ns: int, status=PhotoStatus.INDEXED, h="h") -> ExistingRow:
    return ExistingRow(id_, str(path), size, mtime_ns, status, f"{h}{id_}", status == PhotoStatus.INDEXED)


def test_plan_sorts_files_into_unchanged_new_changed_and_missing(tmp_path: Path) -> None:
    same = save_jpeg(tmp_path / "same.jpg", seed=1)
    changed = save_jpeg(tmp_path / "changed.jpg", seed=2)
    failed = save_jpeg(tmp_path / "failed-before.jpg", seed=3)
    save_jpeg(tmp_path / "new.jpg", seed=4)
    st_same, st_changed, st_failed = same.stat(), changed.stat(), failed.stat()
    existing = [
        _row(1, same, st_same.st_size, st_same.st_mtime_ns),
        _row(2, changed, st_changed.st_size, st_changed.st_mtime_ns - 1),
        _row(3, failed, st_failed.st_size, st_failed.st_mtime_ns, PhotoStatus.ERROR),
        _row(4, tmp_path / "gone.jpg", 10, 10),
        _row(5, tmp_path.parent / "other-root" / "x.jpg", 10, 10),  # not under the scanned root
    ]
    plan = make_plan(scan(normalise_roots([tmp_path])), existing, retry_failed=True)
    assert plan.unchanged == 1
    todo = {Path(i.file.path).name: i for i in plan.todo}
    assert set(todo) == {"changed.jpg", "failed-before.jpg", "new.jpg"}
    assert todo["new.jpg"].existing_id is None
    assert todo["changed.jpg"].existing_id == 2 and todo["changed.jpg"].old_hash == "h2"
    assert todo["failed-before.jpg"].existing_id == 3 and todo["failed-before.jpg"].old_hash is None
    assert [r.id for r in plan.missing] == [4]
    # only rows whose vector cannot change during the run lend it to moves and duplicates
    assert set(plan.by_hash.values()) == {1, 4, 5}


def test_plan_does_not_read_a_failed_file_again_until_it_changes(tmp_path: Path) -> None:
    failed = save_jpeg(tmp_path / "failed-before.jpg", seed=3)
    st = failed.stat()
    roots = normalise_roots([tmp_path])
    plan = make_plan(scan(roots), [_row(3, failed, st.st_size, st.st_mtime_ns, PhotoStatus.ERROR)])
    assert (plan.todo, plan.known_failed, plan.unchanged) == ([], 1, 0)
    touched = make_plan(scan(roots), [_row(3, failed, st.st_size, st.st_mtime_ns - 1, PhotoStatus.ERROR)])
    assert [i.existing_id for i in touched.todo] == [3] and touched.known_failed == 0


def test_plan_keeps_a_folder_whose_every_photo_is_gone_but_sweeps_a_photo_deleted_beside_others(
    tmp_path: Path,
) -> None:
    kept = save_jpeg(tmp_path / "keep" / "a.jpg", seed=1)
    st = kept.stat()
    existing = [
        _row(1, kept, st.st_size, st.st_mtime_ns),
        _row(2, tmp_path / "keep" / "gone.jpg", 10, 10),  # deleted beside a photo still there
        _row(3, tmp_path / "disk" / "x" / "1.jpg", 10, 10),  # the whole of disk/ is gone
        _row(4, tmp_path / "disk" / "x" / "2.jpg", 10, 10),
        _row(5, tmp_path / "disk" / "3.jpg", 10, 10),
    ]
    scanned = scan(normalise_roots([tmp_path]))
    plan = make_plan(scanned, existing)
    assert [r.id for r in plan.missing] == [2] and [r.id for r in plan.unreachable] == [3, 4, 5]
    assert plan.unreachable_folders == plan.emptied_folders == (str(tmp_path / "disk"),)  # the topmost
    assert plan.settle({3}) == ([plan.missing[0], existing[3], existing[4]], 0, ())  # renamed: moves
    assert plan.settle(set()) == (plan.missing, 3, (str(tmp_path / "disk"),))
    pruned = make_plan(scanned, existing, prune=True)
    assert [r.id for r in pruned.missing] == [2, 3, 4, 5] and pruned.unreachable == []

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


def test_scan_follows_symlinks_without_looping(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    save_jpeg(root / "album" / "a.jpg")
    outside = tmp_path / "elsewhere"
    save_jpeg(outside / "b.jpg")
    os.symlink(outside, root / "linked")  # followed
    os.symlink(root, root / "album" / "loop")  # a loop back to the root
    os.symlink(root / "album", root / "album-again")  # the same folder twice
    result = scan(normalise_roots([root]))
    assert sorted(_paths(result)) == ["a.jpg", "b.jpg"]
    assert result.skipped_dirs >= 1


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
    plan = make_plan(scan(normalise_roots([tmp_path])), existing)
    assert plan.unchanged == 1
    todo = {Path(i.file.path).name: i for i in plan.todo}
    assert set(todo) == {"changed.jpg", "failed-before.jpg", "new.jpg"}
    assert todo["new.jpg"].existing_id is None
    assert todo["changed.jpg"].existing_id == 2 and todo["changed.jpg"].old_hash == "h2"
    assert todo["failed-before.jpg"].existing_id == 3 and todo["failed-before.jpg"].old_hash is None
    assert [r.id for r in plan.missing] == [4]
    # only rows whose vector cannot change during the run lend it to moves and duplicates
    assert set(plan.by_hash.values()) == {1, 4, 5}

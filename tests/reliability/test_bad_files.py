"""Bad files: every broken or odd input is indexed correctly or recorded with a reason; the run finishes.

One folder mixes good photos with every kind of bad input the issue lists, all generated here; it is
indexed through the `dualens index` command (decoder worker processes included), then `dualens errors`
must list exactly the failures and `dualens check` must pass. A second run over the same folder
finishes the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

import indexer.decode as decode_module
import indexer.pipeline as pipeline_module
from indexer.core.errors import ImageError, ImageProblem
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from tests.helpers.images import (
    Exif,
    pattern,
    save_animated_gif,
    save_as,
    save_cmyk_jpeg,
    save_jpeg,
    save_palette_transparent,
    save_png16,
    write_bomb_png,
    write_random_bytes,
    write_text_as_image,
    write_truncated_jpeg,
    write_zero_bytes,
)
from ui.cli import main

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

MAX_PIXELS = 5_000_000


@dataclass(frozen=True)
class Expect:
    status: str  # "indexed", "error" or "absent" (no row: not a photo file)
    reason: str = ""  # a fragment of the recorded reason
    size: tuple[int, int] | None = None  # (width, height) recorded for an indexed photo


def _build_folder(root: Path) -> dict[str, Expect]:
    """Write the bad inputs and a few good photos; returns what each path must become."""
    e: dict[str, Expect] = {}

    def put(rel: str, expect: Expect, writer) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
        e[rel] = expect

    for i in range(4):
        put(
            f"good/g{i}.jpg",
            Expect("indexed", size=(40, 30)),
            lambda p, i=i: save_jpeg(p, pattern((40, 30), seed=i)),
        )
    # broken files
    put("bad/truncated.jpg", Expect("error", "truncated"), write_truncated_jpeg)
    put("bad/zero.jpg", Expect("error", "empty"), write_zero_bytes)
    put("bad/random.jpg", Expect("error", "not an image"), write_random_bytes)
    put("bad/text.png", Expect("error", "not an image"), write_text_as_image)
    put("bad/bomb-header.png", Expect("error", "too large"), write_bomb_png)
    put(
        "bad/bomb-real.png",
        Expect("error", "too large"),
        lambda p: Image.new("L", (3000, 2000), 128).save(p, "PNG"),  # 6 MP > --max-pixels, a 10 KB file
    )
    put("bad/broken\nname with newline.jpg", Expect("error", "empty"), write_zero_bytes)
    put("bad/vanishes.jpg", Expect("error", "vanished"), lambda p: save_jpeg(p, seed=90))
    put("bad/unreadable.jpg", Expect("error", "unreadable"), lambda p: save_jpeg(p, seed=91))
    # odd but valid images
    put(
        "odd/tall.png",
        Expect("indexed", size=(1, 20000)),
        lambda p: Image.new("RGB", (1, 20000), (9, 99, 199)).save(p),
    )
    put(
        "odd/wide.png",
        Expect("indexed", size=(20000, 1)),
        lambda p: Image.new("RGB", (20000, 1), (199, 9, 99)).save(p),
    )
    put(
        "odd/wide.jpg",
        Expect("indexed", size=(20000, 1)),
        lambda p: save_jpeg(p, pattern((20000, 1), seed=5)),
    )
    put("odd/cmyk.jpg", Expect("indexed", size=(64, 48)), save_cmyk_jpeg)
    put("odd/sixteen-bit.png", Expect("indexed", size=(32, 24)), save_png16)
    put("odd/palette-transparent.png", Expect("indexed", size=(32, 32)), save_palette_transparent)
    put("odd/animated.gif", Expect("indexed", size=(64, 48)), save_animated_gif)
    put(
        "odd/grey.tiff",
        Expect("indexed", size=(64, 48)),
        lambda p: save_as(p, "TIFF", pattern(seed=6).convert("L")),
    )
    bogus = [
        Exif(orientation=0, taken_at="0000:00:00 00:00:00"),
        Exif(orientation=9, taken_at="2020:13:45 25:61:61"),
        Exif(orientation=65535, taken_at="not a date at all", make="\x00\x00", model="\xff" * 300),
        Exif(orientation=6, taken_at="9999:99:99 99:99:99"),  # valid rotation: 60x40 shows as 40x60
    ]
    for i, exif in enumerate(bogus):
        size = (40, 60) if exif.orientation == 6 else (60, 40)
        put(
            f"exif/bogus{i}.jpg",
            Expect("indexed", size=size),
            lambda p, x=exif, i=i: save_jpeg(p, pattern((60, 40), seed=20 + i), exif=x),
        )
    # names
    for i, name in enumerate(
        ["café 東京.jpg", "with  spaces .jpg", "new\nline.jpg", "📷 émoji.JPG", "-dash.jpg", "quote'\"s.jpg"]
    ):
        put(
            f"names/{name}",
            Expect("indexed", size=(40, 30)),
            lambda p, i=i: save_jpeg(p, pattern((40, 30), seed=40 + i)),
        )
    # not photo files: no row at all
    loop = root / "loop"
    loop.mkdir()
    (loop / "again").symlink_to(loop, target_is_directory=True)  # a symlink loop
    (root / "self.jpg").symlink_to(root / "self.jpg")  # a symlink to itself
    os.mkfifo(root / "pipe.jpg")  # opening a FIFO would block the run
    (root / "folder.jpg").mkdir()
    e.update({"self.jpg": Expect("absent"), "pipe.jpg": Expect("absent"), "folder.jpg": Expect("absent")})
    return e


def _inject_vanish_and_unreadable(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Delete one file between the scan and its decoding; make another unreadable.

    Tests run as root, which chmod 000 does not stop, so the permission error is injected at the
    indexer's one file-reading function. Decoder workers are forked after this, so they inherit it.
    """
    real_scan = pipeline_module.scan

    def scan_then_delete(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        (root / "bad" / "vanishes.jpg").unlink(missing_ok=True)
        return result

    real_read = decode_module.read_file
    unreadable = str(root / "bad" / "unreadable.jpg")

    def read_file(path: Path, name: str = "the image", max_bytes: int | None = None):
        if str(path) == unreadable:  # what the real reader makes of EACCES from open()
            raise ImageError(
                f"{name} cannot be read", kind=ImageProblem.UNREADABLE, detail="Permission denied"
            )
        return real_read(path, name, max_bytes)

    monkeypatch.setattr(pipeline_module, "scan", scan_then_delete)
    monkeypatch.setattr(decode_module, "read_file", read_file)
    os.chmod(unreadable, 0)


def _rows(data: Path) -> dict[str, Photo]:
    with Collection.open(data) as collection, collection.session() as s:
        rows = list(s.scalars(select(Photo)))
        s.expunge_all()
    return {r.path: r for r in rows}


def _assert_outcomes(data: Path, root: Path, expected: dict[str, Expect], *, first_run: bool) -> list[str]:
    rows = _rows(data)
    problems = []
    for rel, want in expected.items():
        path = str(root / rel)
        row = rows.get(path)
        if want.status == "absent" or (not first_run and rel == "bad/vanishes.jpg"):
            if row is not None:
                problems.append(f"{rel!r}: should have no row, has {row.status}")
            continue
        if row is None:
            problems.append(f"{rel!r}: no row (the file was lost)")
            continue
        status = row.status.value if hasattr(row.status, "value") else str(row.status)
        if status != want.status:
            problems.append(f"{rel!r}: {status} ({row.error}), expected {want.status}")
        elif want.status == "error" and (not row.error or want.reason not in row.error):
            problems.append(f"{rel!r}: reason {row.error!r} lacks {want.reason!r}")
        elif want.status == "indexed":
            vector = np.frombuffer(row.vector or b"", dtype=np.float32)
            if vector.size == 0 or abs(float(np.linalg.norm(vector)) - 1) > 1e-3:
                problems.append(f"{rel!r}: indexed without a unit vector")
            if want.size is not None and (row.width, row.height) != want.size:
                problems.append(f"{rel!r}: size {(row.width, row.height)}, expected {want.size}")
    unexpected = sorted(set(rows) - {str(root / rel) for rel in expected})
    if unexpected:
        problems.append(f"unexpected rows: {unexpected}")
    return problems


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-process"])
def test_every_bad_file_is_recorded_with_a_reason_or_indexed_and_the_run_finishes(
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    workers: int,
) -> None:
    root = tmp_path / "photos"
    expected = _build_folder(root)
    _inject_vanish_and_unreadable(monkeypatch, root)
    data = tmp_path / "data"
    argv = [
        "index", "--data", str(data), "--model", str(tiny_model_dir), "--workers", str(workers),
        "--threads", "1", "--batch-size", "4", "--max-pixels", str(MAX_PIXELS), "--no-progress", str(root),
    ]  # fmt: skip

    assert main(argv) == 0
    summary = capsys.readouterr().out
    n_errors = sum(x.status == "error" for x in expected.values())
    n_indexed = sum(x.status == "indexed" for x in expected.values())
    assert f"indexed {n_indexed}," in summary and f"failed {n_errors}" in summary, summary
    assert _assert_outcomes(data, root, expected, first_run=True) == []

    assert main(["errors", "--data", str(data), "--json"]) == 0
    listed = {item["path"]: item["error"] for item in json.loads(capsys.readouterr().out)}
    assert set(listed) == {str(root / rel) for rel, x in expected.items() if x.status == "error"}
    assert all(listed.values())
    assert main(["check", "--data", str(data)]) == 0, capsys.readouterr().out

    # A second run retries the failures, keeps the rest, drops the vanished file, and finishes again.
    assert main(argv) == 0
    capsys.readouterr()
    assert _assert_outcomes(data, root, expected, first_run=False) == []
    assert main(["check", "--data", str(data)]) == 0, capsys.readouterr().out


def test_errors_lists_one_line_per_failure_even_with_a_newline_in_a_file_name(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "photos"
    save_jpeg(root / "good.jpg")
    write_zero_bytes(root / "broken\nname.jpg")
    write_text_as_image(root / "plain.png")
    data = tmp_path / "data"
    argv = ["index", "--data", str(data), "--model", str(tiny_model_dir), "--workers", "0", "--no-progress"]
    assert main([*argv, str(root)]) == 0
    capsys.readouterr()
    assert main(["errors", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, f"one line per failed file expected, got {lines}"
    assert all("\t" in line for line in lines)

"""`dualens duplicates` and its quarantine under adversarial collections (issue #27, items 2, 14, 19,
20 and the CSV part of 23): a kept link never dangles, look-alikes that are not copies are never moved
without a look, a failed or killed cross-disk move leaves nothing truncated and `--undo` stays
clean, the inside-a-root guard sees through symlinks, and CSV output carries no raw control codes.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from indexer.core.models.onnx_backend import sample_images
from indexer.core.storage.collection import Collection
from indexer.pipeline import IndexOptions, run_index
from search.duplicates import DEFAULT_THRESHOLD, find_duplicates
from search.quarantine import Expected, move_aside, read_manifest, undo
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg
from tests.test_duplicates import _save_shot, _scene
from ui.cli import main


def _index(data: Path, root: Path, encoder: object | None = None) -> None:
    run_index(data, [root], IndexOptions(workers=0, batch_size=8), encoder=encoder)  # type: ignore[arg-type]


def _stamp(path: Path, year: int) -> None:
    seconds = int(np.datetime64(f"{year}-06-01T12:00:00").astype("datetime64[s]").astype(int))
    os.utime(path, (seconds, seconds), follow_symlinks=False)


def _groups(data: Path) -> list[list[str]]:
    with Collection.open(data) as c:
        return [sorted(Path(m.path).name for m in g.members) for g in find_duplicates(c)]


def _quarantined_files(folder: Path) -> list[Path]:
    kept = ("manifest.json", "rows.json")  # the quarantine's own files beside the photos
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in kept)


# --- item 2: a kept symlink never loses its target ----------------------------------------------


def test_a_symlink_and_its_target_are_one_file_not_a_keeper_and_a_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    original = save_jpeg(root / "2019" / "IMG_1.jpg", seed=1)
    (root / "fav").mkdir()
    (root / "fav" / "best.jpg").symlink_to(Path("..") / "2019" / "IMG_1.jpg")
    for i in range(3):
        save_jpeg(root / f"other{i}.jpg", seed=10 + i)
    _index(data, root, FakeEncoder(visual_dim=6))
    assert _groups(data) == []  # the old keeper order kept fav/best.jpg (shorter path), moved IMG_1.jpg
    assert main(["duplicates", "--data", str(data), "--quarantine", str(tmp_path / "q")]) == 0
    assert original.exists() and (root / "fav" / "best.jpg").read_bytes() == original.read_bytes()
    capsys.readouterr()


def test_quarantine_never_moves_the_target_of_a_link_it_keeps(tmp_path: Path) -> None:
    """An older real copy elsewhere: the old order kept it (oldest) and moved the linked file."""
    root, data = tmp_path / "photos", tmp_path / "data"
    original = save_jpeg(root / "2019" / "IMG_1.jpg", seed=1)
    backup = root / "backup" / "IMG_1 copy.jpg"
    backup.parent.mkdir()
    backup.write_bytes(original.read_bytes())
    _stamp(backup, 2018)
    _stamp(original, 2019)
    (root / "fav").mkdir()
    link = root / "fav" / "best.jpg"
    link.symlink_to(Path("..") / "2019" / "IMG_1.jpg")
    for i in range(3):
        save_jpeg(root / f"other{i}.jpg", seed=10 + i)
    _index(data, root, FakeEncoder(visual_dim=6))
    assert main(["duplicates", "--data", str(data), "--quarantine", str(tmp_path / "q")]) == 0
    assert link.exists(), "the kept link dangles: its target was moved"
    assert not backup.exists()  # the real duplicate was moved aside
    (moved,) = _quarantined_files(tmp_path / "q")
    assert moved.read_bytes() == original.read_bytes()


def test_a_copy_that_another_link_leads_to_is_listed_but_never_moved(tmp_path: Path) -> None:
    """Two real copies, each the target of a link: whichever is not kept would leave a link dangling."""
    root, data = tmp_path / "photos", tmp_path / "data"
    first = save_jpeg(root / "2019" / "IMG_1.jpg", seed=1)
    second = root / "backup" / "IMG_1.jpg"
    second.parent.mkdir()
    second.write_bytes(first.read_bytes())
    (root / "fav").mkdir()
    (root / "fav" / "a.jpg").symlink_to(first)
    (root / "fav" / "b.jpg").symlink_to(second)
    _index(data, root, FakeEncoder(visual_dim=6))
    with Collection.open(data) as c:
        (group,) = find_duplicates(c)
    assert {Path(m.path).parent.name for m in group.members} == {"2019", "backup"}  # links resolved
    assert [(m.linked, m.sure) for m in group.copies] == [(True, False)]
    argv = ["duplicates", "--data", str(data), "--quarantine", str(tmp_path / "q"), "--include-similar"]
    assert main(argv) == 0
    assert (root / "fav" / "a.jpg").exists() and (root / "fav" / "b.jpg").exists()
    assert _quarantined_files(tmp_path / "q") == []


# --- item 14: look-alikes that are not copies ---------------------------------------------------

_WORDS = ["the", "of", "and", "to", "in", "photo", "page", "lorem",
          "ipsum", "dolor", "sit", "amet", "data", "image", "vector", "search"]  # fmt: skip


def _text_page(seed: int) -> Image.Image:
    """A page of random words, like a scanned document: what the model sees as 'a page of text'."""
    rng = np.random.default_rng(seed)
    page = Image.new("RGB", (850, 1100), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=22)
    for y in range(80, 1000, 34):
        draw.text((80, y), " ".join(rng.choice(_WORDS, 12)), fill="black", font=font)
    return page


def _noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (375, 500, 3), dtype=np.uint8))


@pytest.mark.parametrize("make", [_text_page, _noise], ids=["text-pages", "noise"])
def test_different_low_information_images_are_not_grouped_but_their_copies_are(
    tmp_path: Path, make: Callable[[int], Image.Image]
) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    for seed in range(5):
        make(seed).save(root / f"page{seed}.png")
    buffer = io.BytesIO()
    make(0).save(buffer, "JPEG", quality=90)
    (root / "page0 (copy).jpg").write_bytes(buffer.getvalue())  # the same pixels, re-encoded
    _index(data, root)
    assert _groups(data) == [["page0 (copy).jpg", "page0.png"]]


class _AngleEncoder(FakeEncoder):
    """Visual vectors at an angle set by the grey of the image's top band (0 -> 0°, 255 -> 90°), so
    the test chooses every cosine; the joint vectors are the fake projection."""

    def embed_pixels_pair(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        joint, _ = super().embed_pixels_pair(pixel_values)
        band = np.asarray(pixel_values, dtype=np.float32)[:, :, :2, :].mean(axis=(1, 2, 3))
        theta = (band + 1) / 2 * (np.pi / 2)
        visual = np.zeros((len(band), 6), dtype=np.float32)
        visual[:, 0], visual[:, 1] = np.cos(theta), np.sin(theta)
        return joint, visual


def _banded(seed: int, degrees: float) -> Image.Image:
    image = sample_images()[seed].resize((400, 300))
    grey = round(degrees / 90 * 255)
    ImageDraw.Draw(image).rectangle((0, 0, 400, 90), fill=(grey, grey, grey))
    return image


def test_groups_are_cliques_not_chains(tmp_path: Path) -> None:
    """A ~ B (cosine 0.91) and B ~ C (0.91), but A and C at 0.64: one group never holds A and C."""
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    for name, seed, degrees in (("a", 0, 0.0), ("b", 1, 25.0), ("c", 2, 50.0)):
        _banded(seed, degrees).save(root / f"{name}.png")
    _index(data, root, _AngleEncoder(visual_dim=6))
    with Collection.open(data) as c:
        groups = find_duplicates(c)
        space = c.similarity_space()
        ids = {Path(p.path).stem: p.id for p in c.photos(c.load_index(space).ids().tolist()).values()}
        vectors = dict(zip(*c.indexed_vectors(list(ids.values()), space=space), strict=True))
    assert float(vectors[ids["a"]] @ vectors[ids["b"]]) >= DEFAULT_THRESHOLD  # the chain exists
    assert float(vectors[ids["b"]] @ vectors[ids["c"]]) >= DEFAULT_THRESHOLD
    assert float(vectors[ids["a"]] @ vectors[ids["c"]]) < DEFAULT_THRESHOLD
    assert groups, "A and B are still near-duplicates"
    for group in groups:
        for x in group.members:
            for y in group.members:
                assert float(vectors[x.id] @ vectors[y.id]) >= DEFAULT_THRESHOLD - 1e-6, (x.path, y.path)


def test_burst_frames_without_dates_are_listed_but_never_moved_and_a_re_encoded_copy_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    first = _scene((40, 100))
    _save_shot(first, root / "frame_a.jpg", None)
    _save_shot(_scene((300, 120)), root / "frame_b.jpg", None)
    _save_shot(first, root / "frame_a (small copy).jpg", None, quality=40)
    for name, year in (("frame_a.jpg", 2020), ("frame_b.jpg", 2020), ("frame_a (small copy).jpg", 2024)):
        _stamp(root / name, year)
    _index(data, root)
    with Collection.open(data) as c:
        (group,) = find_duplicates(c)
    sure = {Path(m.path).name: m.sure for m in group.copies}
    assert sure == {"frame_a (small copy).jpg": True, "frame_b.jpg": False}
    assert main(["duplicates", "--data", str(data), "--quarantine", str(tmp_path / "q")]) == 0
    assert (root / "frame_b.jpg").exists() and (root / "frame_a.jpg").exists()
    assert not (root / "frame_a (small copy).jpg").exists()
    assert "left 1 copies in place" in capsys.readouterr().err


# --- item 19: cross-disk moves that fail or are killed ------------------------------------------


def _cross_device(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """os.rename between the photos and anywhere else fails with EXDEV, as across two disks."""
    real_rename = os.rename

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(src).is_relative_to(root) != Path(dst).is_relative_to(root):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "_USE_CP_SENDFILE", False)  # every copy goes through copyfileobj


def _half_then(fail: Callable[[], None]) -> Callable[..., None]:
    """A copyfileobj that writes half of the file, then ``fail()``s."""

    def copy(src: Any, dst: Any, length: int = 0) -> None:
        data = src.read()
        dst.write(data[: len(data) // 2])
        dst.flush()
        fail()

    return copy


def _photos(root: Path, n: int = 2) -> list[Expected]:
    paths = [save_jpeg(root / f"p{i}.jpg", seed=i) for i in range(n)]
    return [Expected(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def test_a_disk_full_cross_device_quarantine_leaves_no_truncated_file_and_undo_is_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "photos"
    files = _photos(root)
    before = {f.path: Path(f.path).read_bytes() for f in files}
    _cross_device(monkeypatch, root)

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", _half_then(disk_full))
    report = move_aside(files, tmp_path / "q")
    assert not report.moved and all("No space left" in line for line in report.skipped)
    assert _quarantined_files(tmp_path / "q") == []  # no truncated copy, no partial file
    assert {f.path: Path(f.path).read_bytes() for f in files} == before
    assert main(["duplicates", "--undo", str(report.manifest)]) == 0
    assert "nothing to undo" in capsys.readouterr().out


@pytest.mark.parametrize("kill_at", ["mid-copy", "before-delete"])
def test_undo_after_a_cross_device_quarantine_killed_mid_move_is_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kill_at: str
) -> None:
    """SIGKILL in a forked child part-way through the first file; undo then cleans up, exit 0."""
    root = tmp_path / "photos"
    files = _photos(root)
    before = {f.path: Path(f.path).read_bytes() for f in files}
    pid = os.fork()
    if pid == 0:  # the child: a quarantine run that is killed
        try:
            _cross_device(monkeypatch, root)

            def die() -> None:
                os.kill(os.getpid(), signal.SIGKILL)

            if kill_at == "mid-copy":
                monkeypatch.setattr(shutil, "copyfileobj", _half_then(die))
            else:
                real_unlink = os.unlink

                def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
                    if Path(path).is_relative_to(root):
                        die()
                    real_unlink(path, *args, **kwargs)

                monkeypatch.setattr(os, "unlink", unlink)
            move_aside(files, tmp_path / "q")
        finally:
            os._exit(3)  # never reached: killed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    (manifest,) = (tmp_path / "q").glob("dualens-*/manifest.json")
    assert main(["duplicates", "--undo", str(manifest)]) == 0, capsys.readouterr().err
    assert "nothing to undo" in capsys.readouterr().out
    assert {f.path: Path(f.path).read_bytes() for f in files} == before
    assert _quarantined_files(tmp_path / "q") == []


def test_a_cross_device_quarantine_and_its_undo_keep_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "photos"
    files = _photos(root)
    before = {f.path: (Path(f.path).read_bytes(), Path(f.path).stat().st_mtime_ns) for f in files}
    _cross_device(monkeypatch, root)
    report = move_aside(files, tmp_path / "q")
    assert len(report.moved) == 2 and not any(Path(f.path).exists() for f in files)
    assert [p.name for p in _quarantined_files(tmp_path / "q")] == ["p0.jpg", "p1.jpg"]
    result = undo(report.manifest)
    assert sorted(result.restored) == sorted(before) and not result.skipped
    assert {f.path: (Path(f.path).read_bytes(), Path(f.path).stat().st_mtime_ns) for f in files} == before


def test_undo_run_twice_says_nothing_to_undo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _photos(tmp_path / "photos")
    report = move_aside(files, tmp_path / "q")
    assert main(["duplicates", "--undo", str(report.manifest)]) == 0
    assert "restored 2 photo(s)" in capsys.readouterr().out
    assert main(["duplicates", "--undo", str(report.manifest)]) == 0
    assert "nothing to undo" in capsys.readouterr().out
    assert not any(e.moved for e in read_manifest(report.manifest))


# --- item 20: the inside-a-root guard resolves symlinks -----------------------------------------


def test_quarantine_into_a_root_through_a_symlinked_path_is_refused(tmp_path: Path) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    original = save_jpeg(root / "a.jpg", seed=1)
    copy = root / "backup" / "a copy.jpg"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    _index(data, root, FakeEncoder(visual_dim=6))
    (tmp_path / "elsewhere").symlink_to(root, target_is_directory=True)
    assert main(["duplicates", "--data", str(data), "--quarantine", str(tmp_path / "elsewhere" / "q")]) == 2
    assert copy.exists() and not (root / "q").exists()


# --- item 23 (part): CSV output carries no raw control characters --------------------------------


def test_duplicates_csv_escapes_control_characters_in_file_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    original = save_jpeg(root / "a.jpg", seed=1)
    (root / "evil\x1b[2J\rname.jpg").write_bytes(original.read_bytes())
    _index(data, root, FakeEncoder(visual_dim=6))
    assert main(["duplicates", "--data", str(data), "--csv"]) == 0
    out = capsys.readouterr().out
    assert "evil\\x1b[2J\\rname.jpg" in out
    assert "\x1b" not in out and "\r" not in out.replace("\r\n", "\n")

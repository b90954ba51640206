"""`dualens duplicates`: exact copies and near-duplicates grouped with a keeper; quarantine and undo."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from indexer.core.errors import UsageError
from indexer.core.models.onnx_backend import sample_images
from indexer.core.storage.collection import VISUAL, Collection
from indexer.pipeline import IndexOptions, run_index
from search.duplicates import DEFAULT_THRESHOLD, find_duplicates
from search.quarantine import Expected, move_aside, read_manifest, undo
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.images import save_jpeg
from ui.cli import main


def _index(data: Path, root: Path, encoder: object | None = None) -> None:
    run_index(data, [root], IndexOptions(workers=0, batch_size=8), encoder=encoder)  # type: ignore[arg-type]


def _stamp(path: Path, year: int) -> None:
    seconds = int(np.datetime64(f"{year}-06-01T12:00:00").astype("datetime64[s]").astype(int))
    os.utime(path, (seconds, seconds))


def _photo(seed: int) -> Image.Image:
    """A photo-like image (gradients, shapes, texture), 500x375."""
    return sample_images()[seed % 4].resize((500, 375)).rotate(90 * (seed // 4))


@pytest.fixture
def exact_world(tmp_path: Path) -> tuple[Path, Path]:
    root, data = tmp_path / "photos", tmp_path / "data"
    original = save_jpeg(root / "2019" / "beach.jpg", seed=1)
    (root / "backup").mkdir(parents=True)
    copy = root / "backup" / "beach (1).jpg"
    copy.write_bytes(original.read_bytes())
    _stamp(original, 2019)
    _stamp(copy, 2023)
    for i in range(3):
        save_jpeg(root / f"other{i}.jpg", seed=10 + i)
    _index(data, root, FakeEncoder(visual_dim=6))
    return root, data


def test_exact_copies_form_a_group_and_the_oldest_is_kept(exact_world: tuple[Path, Path]) -> None:
    root, data = exact_world
    with Collection.open(data) as c:
        groups = find_duplicates(c)
    assert len(groups) == 1
    group = groups[0]
    assert group.exact and group.reason == "oldest"
    assert Path(group.keeper.path) == root / "2019" / "beach.jpg"
    assert [Path(m.path).name for m in group.copies] == ["beach (1).jpg"]


def test_the_threshold_must_be_a_cosine(exact_world: tuple[Path, Path]) -> None:
    _, data = exact_world
    with Collection.open(data) as c, pytest.raises(UsageError, match="threshold"):
        find_duplicates(c, threshold=2.0)
    assert main(["duplicates", "--data", str(data), "--threshold", "0.1"]) == 2


def test_duplicates_lists_groups_as_text_json_and_csv(
    exact_world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = exact_world
    assert main(["duplicates", "--data", str(data)]) == 0
    text = capsys.readouterr().out
    assert "group 1: 2 photos (exact copies); keep: oldest" in text
    assert "nothing was changed" in text
    assert main(["duplicates", "--data", str(data), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["threshold"] == DEFAULT_THRESHOLD
    (group,) = body["groups"]
    assert group["kind"] == "exact" and len(group["members"]) == 2
    assert group["members"][0]["path"] == str(root / "2019" / "beach.jpg")
    assert main(["duplicates", "--data", str(data), "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("group,role,id,path")
    assert [line.split(",")[1] for line in lines[1:]] == ["keep", "copy"]


def test_quarantine_moves_the_copies_and_undo_restores_them(
    exact_world: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = exact_world
    copy = root / "backup" / "beach (1).jpg"
    before = copy.read_bytes()
    assert main(["duplicates", "--data", str(data), "--quarantine", str(tmp_path / "q")]) == 0
    assert not copy.exists() and (root / "2019" / "beach.jpg").exists()
    (manifest,) = (tmp_path / "q").glob("dualens-*/manifest.json")
    (entry,) = read_manifest(manifest)
    assert entry.moved and Path(entry.quarantined).read_bytes() == before
    assert "--undo" in capsys.readouterr().err
    assert main(["duplicates", "--data", str(data), "--undo", str(manifest)]) == 0
    assert copy.read_bytes() == before
    assert not Path(entry.quarantined).exists()


def test_quarantine_refuses_a_folder_inside_an_indexed_root(exact_world: tuple[Path, Path]) -> None:
    root, data = exact_world
    assert main(["duplicates", "--data", str(data), "--quarantine", str(root / "dupes")]) == 2
    assert (root / "backup" / "beach (1).jpg").exists()


def test_a_file_changed_since_indexing_is_not_moved(tmp_path: Path) -> None:
    photo = save_jpeg(tmp_path / "photos" / "a.jpg", seed=1)
    st = photo.stat()
    photo.write_bytes(photo.read_bytes() + b"edited")
    report = move_aside([Expected(str(photo), st.st_size, st.st_mtime_ns)], tmp_path / "q")
    assert not report.moved and "changed since it was indexed" in report.skipped[0]
    assert photo.exists()


def test_undo_after_a_stopped_quarantine_restores_what_was_moved_and_never_overwrites(tmp_path: Path) -> None:
    photos = [save_jpeg(tmp_path / "photos" / f"p{i}.jpg", seed=i) for i in range(3)]
    files = [Expected(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in photos]
    report = move_aside(files, tmp_path / "q")
    assert len(report.moved) == 3
    # a run killed after its first move: the manifest already lists every planned move
    manifest = json.loads(report.manifest.read_text())
    for entry in manifest["entries"][1:]:
        Path(entry["quarantined"]).rename(entry["original"])
        entry["moved"] = False
    report.manifest.write_text(json.dumps(manifest))
    photos[0].write_bytes(b"a new file in its place")
    result = undo(report.manifest)
    assert result.restored == []
    assert "a file is there again" in result.skipped[0]
    assert photos[0].read_bytes() == b"a new file in its place"
    assert Path(manifest["entries"][0]["quarantined"]).exists()  # still safe in the quarantine


def test_undo_of_something_else_is_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "notes.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="not a dualens quarantine manifest"):
        undo(other)
    assert main(["duplicates", "--undo", str(tmp_path / "missing.json")]) == 2


def test_edited_copies_are_near_duplicates_and_other_photos_are_not(tmp_path: Path) -> None:
    """The offline default model's visual vectors: re-encoded, resized, cropped, rotated and
    brightened copies join their original; the other photos stay apart."""
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    original = _photo(0)
    original.save(root / "original.jpg", quality=95)
    buffer = io.BytesIO()
    original.save(buffer, "JPEG", quality=40)
    (root / "recompressed.jpg").write_bytes(buffer.getvalue())
    original.resize((250, 188)).save(root / "small.jpg", quality=95)
    original.crop((25, 19, 475, 356)).save(root / "cropped.jpg", quality=95)
    original.rotate(5, resample=Image.Resampling.BICUBIC).save(root / "rotated.jpg", quality=95)
    ImageEnhance.Brightness(original).enhance(1.2).save(root / "brighter.png")
    for seed in (1, 2, 3, 5):
        _photo(seed).save(root / f"other{seed}.jpg", quality=95)
    _index(data, root)
    with Collection.open(data) as c:
        assert c.similarity_space() is VISUAL
        groups = find_duplicates(c)
    assert len(groups) == 1, [[Path(m.path).name for m in g.members] for g in groups]
    names = {Path(m.path).name for m in groups[0].members}
    assert names == {
        "original.jpg",
        "recompressed.jpg",
        "small.jpg",
        "cropped.jpg",
        "rotated.jpg",
        "brighter.png",
    }
    assert groups[0].keeper.pixels == 500 * 375  # never the resized or cropped copy


def _scene(subject_at: tuple[int, int], seed: int = 10) -> Image.Image:
    """One scene (a textured background with shapes) with a subject at ``subject_at``: frames of a
    burst where the subject moves."""
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    h, w = 360, 480
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    waves = [127.5 + 100 * np.sin(rng.uniform(0.3, 2) * x / w * 6.28 + rng.uniform(0.3, 2) * y / h * 6.28)
             for _ in range(3)]  # fmt: skip
    image = Image.fromarray(
        np.clip(np.stack(waves, -1) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    )
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0, size = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60)), int(rng.integers(30, 140))
        draw.rectangle((x0, y0, x0 + size, y0 + size), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    sx, sy = subject_at
    draw.ellipse((sx, sy, sx + 110, sy + 160), fill=(230, 40, 40))
    return image.filter(ImageFilter.GaussianBlur(1.2))


def _save_shot(
    image: Image.Image, path: Path, taken: str | None, subsec: str | None = None, quality: int = 92
) -> None:
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
        if subsec:
            exif.get_ifd(0x8769)[0x9291] = subsec
    image.save(path, "JPEG", quality=quality, exif=exif.tobytes())


def test_burst_frames_are_not_duplicates_but_a_copy_of_one_is(tmp_path: Path) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    first, second, third = _scene((40, 100)), _scene((300, 120)), _scene((170, 60))
    _save_shot(first, root / "IMG_0001.jpg", "2024:07:14 18:30:05")
    _save_shot(second, root / "IMG_0002.jpg", "2024:07:14 18:30:07")  # two seconds later
    _save_shot(third, root / "IMG_0003.jpg", "2024:07:14 18:30:07", subsec="50")  # the same second, later
    _save_shot(first, root / "IMG_0001 (small copy).jpg", "2024:07:14 18:30:05", quality=40)
    _index(data, root)
    with Collection.open(data) as c:
        groups = find_duplicates(c)
        space, index = c.similarity_space(), c.load_index(c.similarity_space())
        ids = {Path(p.path).name: p.id for p in c.photos(index.ids().tolist()).values()}
        vectors = dict(zip(*c.indexed_vectors(list(ids.values()), space=space), strict=True))
    burst = float(vectors[ids["IMG_0001.jpg"]] @ vectors[ids["IMG_0002.jpg"]])
    assert burst >= DEFAULT_THRESHOLD  # as alike as copies: only their dates tell them apart
    assert [sorted(Path(m.path).name for m in g.members) for g in groups] == [
        ["IMG_0001 (small copy).jpg", "IMG_0001.jpg"]
    ]


def test_alike_photos_without_dates_are_grouped(tmp_path: Path) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    _save_shot(_scene((40, 100)), root / "a.jpg", None)
    _save_shot(_scene((300, 120)), root / "b.jpg", None)
    _index(data, root)
    with Collection.open(data) as c:
        (group,) = find_duplicates(c)
    assert {Path(m.path).name for m in group.members} == {"a.jpg", "b.jpg"}


def test_sort_date_lists_the_group_with_the_newest_photo_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, data = tmp_path / "photos", tmp_path / "data"
    old = save_jpeg(root / "old.jpg", seed=1)  # three copies, all from 2019: the larger group
    new = save_jpeg(root / "new.jpg", seed=2)  # two copies, the newest from 2023
    for name, source, year in [("old2.jpg", old, 2019), ("old3.jpg", old, 2019), ("new2.jpg", new, 2023)]:
        (root / name).write_bytes(source.read_bytes())
        _stamp(root / name, year)
    _stamp(old, 2019)
    _stamp(new, 2021)
    _index(data, root, FakeEncoder(visual_dim=6))
    keepers = {}
    for sort in ("relevance", "date"):
        assert main(["duplicates", "--data", str(data), "--json", "--sort", sort]) == 0
        groups = json.loads(capsys.readouterr().out)["groups"]
        keepers[sort] = [Path(g["members"][0]["path"]).name for g in groups]
    assert keepers == {"relevance": ["old.jpg", "new.jpg"], "date": ["new.jpg", "old.jpg"]}

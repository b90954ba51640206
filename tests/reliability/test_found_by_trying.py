"""Twelve ways to break a collection, found by trying as an adversarial user: each one reproduced.

Tests that need a non-root user's permissions drop root's permission override with ``setpriv``
(CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the bounding set) and say so; the disk-full test
mounts a small tmpfs. Each is skipped, with the reason, where that cannot be done. The FIFO and
decode-bomb tests are bounded in time by their timeout markers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import indexer.decode_pool as pool_module
import indexer.pipeline as pipeline_module
from indexer.core.errors import CollectionError, ImageError, ImageProblem
from indexer.core.imaging import open_image
from indexer.core.storage.collection import Collection
from indexer.decode import DecodeFailure, DecodeOptions, DecodeTask
from indexer.decode_pool import DecoderPool
from indexer.pipeline import IndexOptions, run_index
from search import Searcher
from tests.helpers.fake_encoder import FAKE_PREPROCESS, FakeEncoder
from tests.helpers.faults import CliForkServer
from tests.helpers.images import save_jpeg, write_scan_bomb
from tests.helpers.tiny_models import make_tiny_dual_encoder
from ui.backend import Backend, SearchRequest
from ui.config import UiConfig
from ui.safety import decode_upload

ROOT = Path(__file__).resolve().parents[2]
NO_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


# ---------------------------------------------------------------- helpers
def _photos(root: Path, n: int, seed: int = 0) -> Path:
    for i in range(n):
        save_jpeg(root / f"d{i % 3}" / f"p{i:03d}.jpg", seed=seed * 1000 + i)
    return root


def _fake_index(data: Path, *dirs: Path, **options: object) -> pipeline_module.IndexSummary:
    opts = IndexOptions(**{"workers": 0, "batch_size": 8, **options})  # type: ignore[arg-type]
    return run_index(data, list(dirs), opts, encoder=FakeEncoder())


def _one_line_error(output: str) -> bool:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return "Traceback" not in output and len(lines) == 1 and lines[0].startswith("dualens: error: ")


def _digests(folder: Path) -> dict[str, str]:
    """The database and index files (SQLite's -wal/-shm come and go with connections)."""
    files = sorted(p for p in folder.iterdir() if p.name in ("dualens.sqlite", "vectors.faiss"))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _unprivileged(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a command as root without its permission override, as an ordinary user would."""
    if os.geteuid() != 0:
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop root's permission override")
    return subprocess.run([*NO_DAC, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _fake_index_code(data: Path, root: Path, *extra: str) -> list[str]:
    """``python -c`` arguments that index ``root`` with the fake encoder and print the summary."""
    code = (
        "from indexer.pipeline import IndexOptions, run_index\n"
        "from tests.helpers.fake_encoder import FakeEncoder\n"
        f"s = run_index({str(data)!r}, [{str(root)!r}], IndexOptions(workers=0{''.join(extra)}), "
        "encoder=FakeEncoder())\n"
        "print(s.removed, s.kept_unreachable)\n"
    )
    return [sys.executable, "-c", code]


_HOLD_LOCK = (
    "import sys\n"
    "from indexer.core.settings import CollectionPaths\n"
    "from indexer.core.storage.locks import collection_lock\n"
    "with collection_lock(CollectionPaths.from_option(sys.argv[1])):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dual_encoder(tmp_path_factory.mktemp("tiny-model"), "vtde")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, model: Path) -> tuple[Path, Path]:
    """(data, photos): 12 photos indexed with the tiny model, never changed by the tests."""
    base = tmp_path_factory.mktemp("found")
    photos, data = _photos(base / "photos", 12), base / "data"
    run_index(data, [photos], IndexOptions(model=str(model), workers=0))
    return data, photos


@pytest.fixture
def copy_of(collection: tuple[Path, Path], tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(collection[0], data)
    return data


# ---------------------------------------------------------------- 1. names that are not UTF-8
def test_1_names_that_are_not_utf8_are_indexed_losslessly_and_shown_escaped(
    cli: CliForkServer, tmp_path: Path, model: Path
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    save_jpeg(photos / "plain.jpg", seed=1)
    latin1 = Path(os.fsdecode(os.fsencode(photos) + b"/5\xe9t\xe9.jpg"))
    folder = Path(os.fsdecode(os.fsencode(photos) + b"/f\xeate"))
    save_jpeg(latin1, seed=2)
    save_jpeg(folder / "x.jpg", seed=3)
    index = ["index", "--data", str(data), "--model", str(model), "--workers", "0", str(photos)]
    first = cli.run(index)
    assert first.rc == 0 and "indexed 3," in first.output and "failed 0" in first.output, first.output
    again = cli.run(index)
    assert "unchanged 3" in again.output, again.output  # the stored name matches the file exactly
    assert cli.run(["check", "--data", str(data)]).output.startswith("OK: 3 indexed")

    table = cli.run(["search", "--data", str(data), "a photo"])
    assert table.rc == 0 and "5\\xe9t\\xe9.jpg" in table.output and "f\\xeate/x.jpg" in table.output
    as_json = cli.run(["search", "--data", str(data), "a photo", "--json"])
    paths = {hit["path"] for hit in json.loads(as_json.output)["hits"]}
    assert str(latin1) in paths and str(folder / "x.jpg") in paths  # JSON gives the exact name back
    similar = cli.run(["similar", "--data", str(data), str(latin1), "--json"])
    assert similar.rc == 0 and len(json.loads(similar.output)["hits"]) == 2
    latin1.unlink()
    assert "removed 1" in cli.run(index).output  # and deletions are swept as for any file


# ---------------------------------------------------------------- 2. unreadable folders
def test_2_an_unreadable_folder_or_root_keeps_its_photos(tmp_path: Path) -> None:
    """Needs a non-root view of permissions: runs the indexer under setpriv without DAC override."""
    photos, data = _photos(tmp_path / "photos", 9), tmp_path / "data"
    _fake_index(data, photos)
    sub = photos / "d1"
    sub.chmod(0)
    try:
        result = _unprivileged(*_fake_index_code(data, photos))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["0", "3"]  # nothing removed, the folder's 3 photos kept
        photos.chmod(0)
        result = _unprivileged(*_fake_index_code(data, photos.parent / "photos"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["0", "9"]  # an unreadable root keeps all its photos
    finally:
        photos.chmod(0o755)
        sub.chmod(0o755)
    with Collection.open(data) as c:
        assert c.info().n_indexed == 9
    assert _fake_index(data, photos).unchanged == 9  # readable again: nothing to redo


# ---------------------------------------------------------------- 3. a FIFO where a photo was
@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [0, 1])
def test_3_a_file_replaced_by_a_fifo_after_the_scan_fails_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    photos, data = _photos(tmp_path / "photos", 6), tmp_path / "data"
    victim = photos / "d0" / "p000.jpg"
    real_scan = pipeline_module.scan

    def scan_then_swap(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        result = real_scan(*args, **kwargs)  # type: ignore[arg-type]
        victim.unlink()
        os.mkfifo(victim)
        return result

    monkeypatch.setattr(pipeline_module, "scan", scan_then_swap)
    summary = _fake_index(data, photos, workers=workers)
    assert (summary.indexed, summary.failed) == (5, 1)
    with Collection.open(data) as c, c.session() as s:
        from sqlalchemy import select

        from indexer.core.storage.schema import Photo

        error = s.scalar(select(Photo.error).where(Photo.path == str(victim)))
    assert error == "unreadable file: not a regular file"


# ---------------------------------------------------------------- 4. a model changed in place
def test_4_a_model_retrained_in_place_is_noticed_by_index_and_search(
    cli: CliForkServer, tmp_path: Path
) -> None:
    model = make_tiny_dual_encoder(tmp_path / "model", "vtde", seed=0)
    photos, data = _photos(tmp_path / "photos", 4), tmp_path / "data"
    argv = ["index", "--data", str(data), "--model", str(model), "--workers", "0", str(photos)]
    assert cli.run(argv).rc == 0
    shutil.rmtree(model)
    make_tiny_dual_encoder(model, "vtde", seed=1)  # `dualens train --out M` over the model in use
    save_jpeg(photos / "new.jpg", seed=77)
    refused = cli.run(argv)
    assert refused.rc == 1 and _one_line_error(refused.output) and "has changed" in refused.output
    search = cli.run(["search", "--data", str(data), "a dog"])
    assert search.rc == 1 and _one_line_error(search.output) and "has changed" in search.output
    assert cli.run([*argv, "--reindex"]).rc == 0
    assert cli.run(["search", "--data", str(data), "a dog"]).rc == 0
    assert cli.run(["check", "--data", str(data)]).output.startswith("OK: 5 indexed")


def test_4_an_open_searcher_switches_its_text_encoder_with_a_reindexed_collection(tmp_path: Path) -> None:
    first = make_tiny_dual_encoder(tmp_path / "m1", "vtde", seed=0)
    second = make_tiny_dual_encoder(tmp_path / "m2", "vtde", seed=5)  # same dimension, other weights
    photos, data = _photos(tmp_path / "photos", 4), tmp_path / "data"
    run_index(data, [photos], IndexOptions(model=str(first), workers=0))
    with Searcher.open(data) as searcher:  # what a UI left open holds
        searcher.search("a dog", k=2)
        run_index(data, [photos], IndexOptions(model=str(second), workers=0, reindex=True))
        assert searcher.reload_if_stale()
        assert searcher.encoder.model_id == str(second.resolve())
        from indexer.core.models import DualEncoder
        from search.query import parse_query

        want = DualEncoder(second).embed_texts(["a dog"])[0]
        np.testing.assert_allclose(searcher.embed_query(parse_query("a dog")), want, atol=1e-5)


# ---------------------------------------------------------------- 5. garbage inside database pages
@pytest.mark.parametrize("offset", [8192, 65536])
def test_5_garbage_in_database_pages_is_one_line_and_nothing_is_written(
    cli: CliForkServer, tmp_path: Path, offset: int
) -> None:
    photos, data = _photos(tmp_path / "photos", 40), tmp_path / "data"
    run_index(data, [photos], IndexOptions(workers=0), encoder=FakeEncoder(dim=512))  # ~100 KB of vectors
    database = data / "dualens.sqlite"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert database.stat().st_size > offset + 512
    with database.open("r+b") as fh:
        fh.seek(offset)
        fh.write(np.random.default_rng(offset).bytes(512))
    before = _digests(data)
    check = cli.run(["check", "--data", str(data)])
    assert check.rc == 1 and check.output.startswith("FAILED") and "integrity" in check.output
    for argv in (
        ["errors"],
        ["rebuild-index"],
        ["search", "a dog"],
        ["similar", "1"],
        ["index", str(photos)],
    ):
        result = cli.run([argv[0], "--data", str(data), *argv[1:]])
        assert "Traceback" not in result.output, (argv, result.output)
        assert result.rc == 0 or _one_line_error(result.output), (argv, result.output)
    index = cli.run(["index", "--data", str(data), str(photos)])
    assert index.rc == 1 and "damaged" in index.output
    assert _digests(data) == before


# ---------------------------------------------------------------- 6. decode bombs
@pytest.mark.timeout(90)
def test_6_a_progressive_jpeg_decode_bomb_is_refused_at_once(tmp_path: Path) -> None:
    photos, data = _photos(tmp_path / "photos", 3), tmp_path / "data"
    bomb = write_scan_bomb(photos / "bomb.jpg")
    assert bomb.stat().st_size < 100_000
    summary = _fake_index(data, photos, workers=1)
    assert (summary.indexed, summary.failed) == (3, 1)
    with pytest.raises(ImageError) as upload:
        decode_upload(bomb.read_bytes(), max_bytes=20 << 20, max_pixels=50_000_000)
    assert upload.value.kind is ImageProblem.TOO_SLOW and "decode" in str(upload.value)
    with pytest.raises(ImageError):
        open_image(bomb)  # query images and thumbnails read through the same function


@pytest.mark.timeout(60)
def test_6_a_decoder_stuck_on_one_file_is_stopped_and_the_file_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = _photos(tmp_path / "photos", 6)
    files = sorted(str(p) for p in photos.rglob("*.jpg"))
    stuck = files[2]
    real_decode = pool_module.decode_file

    def decode(task: DecodeTask, opts: DecodeOptions, known: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
        if task.path == stuck:
            time.sleep(3600)  # a decoder that never returns (workers are forked: they inherit this)
        return real_decode(task, opts, known)

    monkeypatch.setattr(pool_module, "decode_file", decode)
    tasks = [DecodeTask(i, path) for i, path in enumerate(files)]
    with DecoderPool(DecodeOptions(FAKE_PREPROCESS), workers=2, chunk_size=1, decode_timeout=1.0) as pool:
        results = {r.item_no: r for r in pool.decode(tasks)}
    assert sorted(results) == list(range(6))
    failed = [r for r in results.values() if isinstance(r, DecodeFailure)]
    assert [(f.item_no, f.kind) for f in failed] == [(2, ImageProblem.TOO_SLOW)]


# ---------------------------------------------------------------- 7. another program's database
def test_7_another_program_s_sqlite_file_is_never_modified(cli: CliForkServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with contextlib.closing(sqlite3.connect(data / "dualens.sqlite")) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('my shopping list')")
        conn.commit()
    before = _digests(data)
    photos = _photos(tmp_path / "photos", 2)
    for argv in (["check"], ["errors"], ["search", "a dog"], ["index", str(photos)]):
        result = cli.run([argv[0], "--data", str(data), *argv[1:]])
        assert result.rc == 1 and _one_line_error(result.output), (argv, result.output)
        assert "another program's database" in result.output
    assert _digests(data) == before
    assert not {"dualens.sqlite-wal", "dualens.sqlite-shm", "vectors.faiss"} & {
        p.name for p in data.iterdir()
    }


# ---------------------------------------------------------------- 8. another collection's index file
def test_8_an_index_file_from_another_collection_is_detected_and_rebuilt(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _fake_index(a, _photos(tmp_path / "pa", 5, seed=1))
    _fake_index(b, _photos(tmp_path / "pb", 5, seed=2))
    with Collection.open(a) as ca, Collection.open(b) as cb:
        assert ca.generation() == cb.generation()  # the same generation and dimension
        own_ids = sorted(ca.load_index().ids().tolist())
    shutil.copy(b / "vectors.faiss", a / "vectors.faiss")
    from indexer.check import check_collection

    with Collection.open(a) as ca:
        report = check_collection(ca)
        assert not report.ok and any("another collection" in p for p in report.problems)
        assert sorted(ca.load_index().ids().tolist()) == own_ids  # rebuilt in memory from the database
    _fake_index(a, tmp_path / "pa")  # an incremental run replaces it
    with Collection.open(a) as ca:
        assert check_collection(ca).ok


# ---------------------------------------------------------------- 10. control characters
def test_10_control_characters_in_names_never_reach_the_terminal(
    cli: CliForkServer, tmp_path: Path, model: Path
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    save_jpeg(photos / "evil\x1b[31mred\nline.jpg", seed=1)
    save_jpeg(photos / "plain.jpg", seed=2)
    assert (
        cli.run(["index", "--data", str(data), "--model", str(model), "--workers", "0", str(photos)]).rc == 0
    )
    for argv in (["search", "a photo"], ["similar", str(photos / "plain.jpg")]):
        result = cli.run([argv[0], "--data", str(data), *argv[1:]])
        assert result.rc == 0 and "\x1b" not in result.output
        assert "evil\\x1b[31mred\\nline.jpg" in result.output
        rows = [
            line
            for line in result.output.strip().splitlines()
            if not line.startswith(("No good matches", "-- weaker matches"))  # the match-band notes
        ]
        assert len(rows) == 2 + (argv[0] == "search")  # header + one row each: the newline stayed escaped


# ---------------------------------------------------------------- 11. tracebacks instead of one line
def test_11_bad_arguments_are_one_line(
    cli: CliForkServer, collection: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = collection
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    cases = [
        ["search", "--data", str(data), "a dog", "--folder", "x" * 300],
        ["similar", "--data", str(data), "/" + "y" * 300 + ".jpg"],
        ["similar", "--data", str(data), "²"],
        ["classify", "--data", str(data), "²", "--labels", "a,b"],
        ["search", "--data", str(a_file), "a dog"],
        ["index", "--data", str(a_file), str(tmp_path)],
        ["search", "--data", "", "a dog"],
    ]
    for argv in cases:
        result = cli.run(argv)
        assert result.rc != 0 and _one_line_error(result.output), (argv, result.output)
    assert "is a file" in cli.run(cases[4]).output and "empty" in cli.run(cases[6]).output


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["flipped-header-bit", "directory", "fifo"])
def test_11_a_broken_index_file_is_one_line_never_a_hang(
    cli: CliForkServer, copy_of: Path, damage: str
) -> None:
    index = copy_of / "vectors.faiss"
    if damage == "flipped-header-bit":
        raw = bytearray(index.read_bytes())
        raw[30] ^= 0x04  # inside the JSON header
        index.write_bytes(bytes(raw))
    else:
        index.unlink()
        index.mkdir() if damage == "directory" else os.mkfifo(index)
    result = cli.run(["search", "--data", str(copy_of), "a dog"])
    assert result.rc == 1 and _one_line_error(result.output) and "vector index" in result.output
    if damage != "flipped-header-bit":
        index.rmdir() if damage == "directory" else index.unlink()
    assert cli.run(["rebuild-index", "--data", str(copy_of)]).rc == 0
    assert cli.run(["check", "--data", str(copy_of)]).output.startswith("OK")


def test_11_a_read_only_data_folder_is_one_line(copy_of: Path) -> None:
    """Needs a non-root view of permissions: runs `dualens rebuild-index` under setpriv."""
    modes = {p: p.stat().st_mode for p in [copy_of, *copy_of.iterdir()]}
    try:
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        result = _unprivileged(sys.executable, "-m", "ui.cli", "rebuild-index", "--data", str(copy_of))
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert result.returncode == 1 and _one_line_error(result.stderr), result.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 400 KB file system (tmpfs), so writes fail with the kernel's own ENOSPC."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_11_a_full_disk_is_one_line_and_the_next_run_recovers(small_disk: Path, tmp_path: Path) -> None:
    photos, data = _photos(tmp_path / "photos", 120), small_disk / "data"
    with pytest.raises(CollectionError, match=r"disk is full|No space left"):
        run_index(data, [photos], IndexOptions(workers=0, batch_size=8), encoder=FakeEncoder(dim=1024))
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    summary = run_index(data, [photos], IndexOptions(workers=0, batch_size=8), encoder=FakeEncoder(dim=1024))
    from indexer.check import check_collection

    with Collection.open(data) as c:
        assert check_collection(c).ok and c.info().n_indexed == 120
    assert summary.indexed + summary.unchanged == 120


@pytest.mark.slow  # builds the real default model (about 20 s)
def test_11_a_truncated_default_model_file_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.core.models import DualEncoder
    from indexer.core.models.default_model import ensure_default_model

    location = tmp_path / "models" / "default"
    monkeypatch.setenv("DUALENS_DEFAULT_MODEL_DIR", str(location))
    ensure_default_model(location)
    weights = location / "model.safetensors"
    with weights.open("r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    vectors = DualEncoder("default").embed_texts(["a dog"])
    assert vectors.shape[0] == 1 and abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-5


# ---------------------------------------------------------------- 12. smaller ones
def test_12_interrupted_default_model_builds_are_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import indexer.core.models.default_model as default_model

    location = tmp_path / "models" / "default"
    leftovers = [tmp_path / "models" / ".default-k1ll3d", tmp_path / "models" / ".default-old-123"]
    for folder in leftovers:
        (folder / "half-written").mkdir(parents=True)

    def build(out: Path, spec: object = None, *, force: bool = False) -> None:  # the real build takes 20 s
        out.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(default_model, "build_default_model", build)
    default_model.rebuild_default_model(location)
    assert location.is_dir() and not any(folder.exists() for folder in leftovers)


def test_12_similar_refuses_a_photo_that_points_out_of_the_indexed_folders(
    tmp_path: Path, model: Path
) -> None:
    photos, data, outside = _photos(tmp_path / "photos", 4), tmp_path / "data", tmp_path / "private"
    secret = save_jpeg(outside / "secret.jpg", seed=99)
    shutil.copyfile(secret, photos / "link.jpg")  # the indexer does not follow a link out of the root:
    run_index(data, [photos], IndexOptions(model=str(model), workers=0))
    (photos / "link.jpg").unlink()  # the link replaces a photo once indexed
    (photos / "link.jpg").symlink_to(secret)
    backend = Backend.open(data, UiConfig())
    try:
        with Collection.open(data) as c, c.session() as s:
            from sqlalchemy import select

            from indexer.core.storage.schema import Photo

            link_id = s.scalar(select(Photo.id).where(Photo.path == str(photos / "link.jpg")))
        assert link_id is not None and backend.photo(link_id) is None
        with pytest.raises(Exception, match="not available"):
            backend.run(SearchRequest(kind="similar", photo_id=link_id))
    finally:
        backend.close()


def test_12_a_second_indexer_waits_for_the_lock_before_touching_the_database(tmp_path: Path) -> None:
    photos, data = _photos(tmp_path / "photos", 2), tmp_path / "data"
    holder = subprocess.Popen(  # POSIX locks belong to a process: another one must hold it
        [sys.executable, "-c", _HOLD_LOCK, str(data)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(CollectionError, match="another dualens indexer"):
            _fake_index(data, photos)
    finally:
        holder.communicate(b"")
    assert not (data / "dualens.sqlite").exists()  # the loser created nothing

"""Corrupt state: a damaged or missing FAISS file is detected and rebuilt; a damaged database is
reported in one line and never overwritten."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.vector_index import VectorIndex
from search import Searcher
from tests.helpers.faults import check_ok, index_in_process, make_photos, read_state, sha256
from ui.cli import main


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """(data dir, photo root) of a collection of 12 photos indexed with the tiny model."""
    base = tmp_path_factory.mktemp("corrupt")
    root = base / "photos"
    make_photos(root, 12, seed=7)
    data = base / "data"
    index_in_process(data, [root], tiny_model_dir)
    assert check_ok(data) == []
    return data, root


@pytest.fixture
def data(indexed: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(indexed[0], copy)
    return copy


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_clear_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("dualens: error: "), lines[0]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- the FAISS file
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(path.stat().st_size))


def _flip_one_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


INDEX_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "random bytes": _random_bytes,
    "one flipped byte": _flip_one_payload_byte,
    "empty": _empty,
}


@pytest.mark.parametrize("damage", INDEX_DAMAGE, ids=list(INDEX_DAMAGE))
def test_damaged_index_file_is_detected_at_load_and_rebuilt_by_rebuild_index(
    data: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    index_file = data / "vectors.faiss"
    INDEX_DAMAGE[damage](index_file)

    with pytest.raises(CollectionError, match=r"damaged.*rebuild-index"):
        VectorIndex.load(index_file)
    with Collection.open(data) as collection, pytest.raises(CollectionError, match="rebuild-index"):
        collection.load_index()
    with pytest.raises(CollectionError, match="rebuild-index"):
        Searcher.open(data)
    rc, _, err = _cli(capsys, "search", "--data", str(data), "a red car")
    assert rc == 1
    _assert_one_clear_line(err, "vectors.faiss", "rebuild-index")
    rc, out, _ = _cli(capsys, "check", "--data", str(data))
    assert rc == 1 and "damaged" in out

    rc, out, err = _cli(capsys, "rebuild-index", "--data", str(data))
    assert rc == 0, err
    assert check_ok(data) == []
    _assert_index_holds_the_database_vectors(data)


def test_missing_index_file_is_rebuilt_in_memory_reported_by_check_and_restored(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data / "vectors.faiss").unlink()
    with Collection.open(data) as collection:
        assert collection.load_index().ntotal == 12  # searches keep working from the database
    rc, out, _ = _cli(capsys, "check", "--data", str(data))
    assert rc == 1 and "missing" in out and "rebuild-index" in out
    rc, _, err = _cli(capsys, "rebuild-index", "--data", str(data))
    assert rc == 0, err
    assert check_ok(data) == []
    _assert_index_holds_the_database_vectors(data)


def _assert_index_holds_the_database_vectors(data: Path) -> None:
    state = read_state(data)
    index = VectorIndex.load(data / "vectors.faiss")
    ids, vectors = index.contents()
    with Collection.open(data) as collection:
        stored = collection.vectors(ids.tolist())
    assert sorted(ids.tolist()) == list(state.indexed_ids)
    np.testing.assert_allclose(vectors, stored, atol=1e-6)


# ---------------------------------------------------------------- the database file
def _garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[16:100] = random.Random(1).randbytes(84)
    path.write_bytes(bytes(data))


def _garble_pages(path: Path) -> None:
    """Keep the 100-byte header and the first page, overwrite everything after with random bytes."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page:] = random.Random(2).randbytes(len(data) - page)
    path.write_bytes(bytes(data))


DB_DAMAGE: dict[str, Callable[[Path], None]] = {
    "random bytes": _random_bytes,
    "truncated": _truncate,
    "garbled header": _garble_header,
    "garbled pages": _garble_pages,
}
COMMANDS: list[list[str]] = [
    ["check"],
    ["errors"],
    ["rebuild-index"],
    ["search", "a red car"],
    ["similar", "1"],
    ["index", "{root}", "--workers", "0", "--threads", "1"],
]


@pytest.mark.parametrize("damage", DB_DAMAGE, ids=list(DB_DAMAGE))
def test_damaged_database_is_reported_in_one_line_and_never_overwritten(
    data: Path, indexed: tuple[Path, Path], damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = data / "dualens.sqlite"
    DB_DAMAGE[damage](db)
    before = {p.name: sha256(p) for p in data.iterdir() if p.is_file() and p.name != ".index.lock"}

    for create in (False, True):
        with pytest.raises(CollectionError, match="database"):
            Collection.open(data, create=create).close()
    with pytest.raises(CollectionError):
        Searcher.open(data)
    for template in COMMANDS:
        argv = [a.format(root=indexed[1]) for a in template]
        rc, _, err = _cli(capsys, argv[0], "--data", str(data), *argv[1:])
        assert rc != 0, f"dualens {' '.join(argv)} succeeded on a damaged database"
        _assert_one_clear_line(err, "database")

    after = {p.name: sha256(p) for p in data.iterdir() if p.is_file() and p.name != ".index.lock"}
    assert after == before, "a command changed the files of a damaged collection"

"""Power loss during a write: a failure while the FAISS file or the database is written leaves the previous
good state readable, and the next run ends consistent (equal to an uninterrupted run).

Failures are simulated two ways: an exception injected at the write (disk full, I/O error), and a
SIGKILL of a `dualens index` process parked inside the write (the closest a test gets to pulling the
plug: no cleanup code runs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import indexer.core.storage.batches as writer_module
from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.vector_index import VectorIndex
from search import Searcher
from tests.helpers.faults import (
    CliForkServer,
    check_ok,
    index_in_process,
    make_photos,
    read_state,
    sha256,
    state_differences,
)


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _leftover_temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------- the FAISS file, in process
@pytest.mark.parametrize("failing", ["serialize", "write", "fsync", "rename"])
def test_failure_while_saving_the_index_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "vectors.faiss"
    old = VectorIndex.build(np.arange(10), _unit(10), 16, generation=1)
    old.save(path)
    before = sha256(path)
    new = VectorIndex.build(np.arange(20), _unit(20, seed=1), 16, generation=2)

    def boom(*_args: object, **_kw: object) -> None:
        raise OSError(28, "No space left on device")

    import indexer.core.storage.vector_index as vi

    if failing == "serialize":
        monkeypatch.setattr(vi.faiss, "serialize_index", boom)
    elif failing == "write":
        real_fdopen = os.fdopen

        class FailingFile:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc: object) -> None:
                self.fh.close()

            def write(self, data: bytes) -> None:
                self.fh.write(data[: len(data) // 3])  # a partial write, then the disk fills up
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(vi.os, "fdopen", lambda fd, mode: FailingFile(real_fdopen(fd, mode)))
    elif failing == "fsync":
        monkeypatch.setattr(vi.os, "fsync", boom)
    else:
        monkeypatch.setattr(vi.os, "replace", boom)

    with pytest.raises((OSError, CollectionError), match="No space"):  # one line for the user
        new.save(path)
    monkeypatch.undo()
    assert sha256(path) == before
    loaded = VectorIndex.load(path)
    assert (loaded.generation, loaded.ntotal) == (1, 10)
    assert _leftover_temp_files(tmp_path) == []


# ---------------------------------------------------------------- through the indexer, in process
@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    make_photos(root, 20, seed=3)
    return root


@pytest.fixture
def reference(tmp_path: Path, photos: Path, tiny_model_dir: Path):
    """The state of an uninterrupted run over ``photos`` (computed on demand, after the test changed them)."""

    def compute():
        data = tmp_path / "reference"
        index_in_process(data, [photos], tiny_model_dir)
        return read_state(data)

    return compute


def test_disk_full_while_saving_the_index_at_the_end_of_a_run(
    tmp_path: Path, photos: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, reference
) -> None:
    data = tmp_path / "data"
    index_in_process(data, [photos], tiny_model_dir)
    before = sha256(data / "vectors.faiss")
    make_photos(photos / "more", 6, seed=4)

    def disk_full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorIndex, "save", disk_full)
    with pytest.raises(OSError):
        index_in_process(data, [photos], tiny_model_dir)
    monkeypatch.undo()

    assert sha256(data / "vectors.faiss") == before  # the previous index file is untouched...
    assert VectorIndex.load(data / "vectors.faiss").ntotal == 20
    with Searcher.open(data) as searcher:  # ...and the collection stays searchable (rebuilt from the DB)
        assert searcher.index.ntotal == 26
        assert len(searcher.search("a red car", k=30)) == 26
    index_in_process(data, [photos], tiny_model_dir)
    assert check_ok(data) == []
    assert state_differences(read_state(data), reference()) == []


def test_exception_inside_a_database_transaction_rolls_the_batch_back(
    tmp_path: Path, photos: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, reference
) -> None:
    data = tmp_path / "data"
    real = writer_module.bump_generation
    calls = []

    def failing_third_commit(session):
        calls.append(1)
        generation = real(session)  # the batch's rows are flushed in the open transaction by now
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return generation

    monkeypatch.setattr(writer_module, "bump_generation", failing_third_commit)
    with pytest.raises(OSError):
        index_in_process(data, [photos], tiny_model_dir, batch_size=4)
    monkeypatch.undo()

    with Collection.open(data) as collection:
        stats = collection.info()
        assert (stats.n_indexed, stats.n_failed, stats.n_pending) == (8, 0, 0)  # two whole batches, no more
        assert collection.load_index().ntotal == 8
    index_in_process(data, [photos], tiny_model_dir)
    assert check_ok(data) == []
    assert state_differences(read_state(data), reference()) == []


# ---------------------------------------------------------------- SIGKILL inside a write
HANG_IN_INDEX_FSYNC = """
import os, time
_real_fsync = os.fsync
def _fsync(fd):
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    if "vectors.faiss" in name and name.endswith(".tmp"):
        open(MARKER, "w").close()
        time.sleep(120)  # parked: the temporary file is written, not yet renamed
    return _real_fsync(fd)
os.fsync = _fsync
"""

HANG_IN_THIRD_TRANSACTION = """
import time
import indexer.core.storage.batches as _w
_real = _w.bump_generation
_calls = []
def _bump(session):
    _calls.append(1)
    generation = _real(session)
    if len(_calls) == 3:
        open(MARKER, "w").close()
        time.sleep(120)  # parked inside the third batch's transaction, before its commit
    return generation
_w.bump_generation = _bump
"""


def _kill_when_parked(cli: CliForkServer, argv: list[str], hook: str, marker: Path) -> None:
    pid, log = cli.start(argv, pre=f"MARKER = {str(marker)!r}\n" + hook)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            cli.wait(pid)
            pytest.fail(f"the indexer never reached the write:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    os.kill(pid, 9)
    assert cli.wait(pid) == -9


def _cli_index(data: Path, photos: Path, model: Path) -> list[str]:
    return [
        "index", "--data", str(data), "--model", str(model), "--batch-size", "4", "--workers", "0",
        "--threads", "1", "--no-progress", str(photos),
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_while_the_index_file_is_written_keeps_the_previous_file(
    cli: CliForkServer, tmp_path: Path, photos: Path, tiny_model_dir: Path, reference
) -> None:
    data = tmp_path / "data"
    argv = _cli_index(data, photos, tiny_model_dir)
    assert cli.run(argv).rc == 0
    before = sha256(data / "vectors.faiss")
    make_photos(photos / "more", 6, seed=4)

    _kill_when_parked(cli, argv, HANG_IN_INDEX_FSYNC, tmp_path / "parked")
    assert sha256(data / "vectors.faiss") == before
    with Collection.open(data) as collection:
        assert collection.load_index().ntotal == 26  # the database is ahead; the index is rebuilt from it

    result = cli.run(argv)
    assert result.rc == 0, result.output
    assert cli.run(["check", "--data", str(data)]).rc == 0
    assert state_differences(read_state(data), reference()) == []
    assert _leftover_temp_files(data) == [], "the killed run's temporary index file was never cleaned up"


@pytest.mark.slow
def test_sigkill_inside_a_database_transaction_loses_only_that_batch(
    cli: CliForkServer, tmp_path: Path, photos: Path, tiny_model_dir: Path, reference
) -> None:
    data = tmp_path / "data"
    argv = _cli_index(data, photos, tiny_model_dir)
    _kill_when_parked(cli, argv, HANG_IN_THIRD_TRANSACTION, tmp_path / "parked")

    with Collection.open(data) as collection:
        stats = collection.info()
        assert (stats.n_indexed, stats.n_failed, stats.n_pending) == (8, 0, 0)
        assert collection.load_index().ntotal == 8
    result = cli.run(argv)
    assert result.rc == 0, result.output
    assert cli.run(["check", "--data", str(data)]).rc == 0
    assert state_differences(read_state(data), reference()) == []

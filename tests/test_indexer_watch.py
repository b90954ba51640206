"""`dualens index DIR --watch`: a real watcher process (watchdog, inotify) follows changes on disk."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.db import count_indexed, rows, vectors_by_path
from tests.helpers.images import save_jpeg
from tests.helpers.slow_commits import spawn

pytestmark = [pytest.mark.sqlite_only, pytest.mark.timeout(240)]


def _until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"the watcher did not {what}"
        time.sleep(0.2)


def _ids(data: Path) -> dict[str, int]:
    return {path: int(i) for i, path in rows(data, "SELECT id, path FROM photos WHERE status = 'indexed'")}


def test_the_watcher_follows_additions_edits_moves_and_deletions(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "photos" / ".dualens"  # data inside a watched root
    for i in range(3):
        save_jpeg(photos / f"p{i}.jpg", seed=i)
    run = spawn(
        "index", "--data", str(data), "--model", str(tiny_model_dir), "--no-progress", str(photos),
        "--watch", "--debounce", "0.3", "--rescan-every", "3600",
    )  # fmt: skip
    try:
        _until(lambda: count_indexed(data) == 3, "index the first photos")
        save_jpeg(photos / "sub" / "new.jpg", seed=10)  # added, in a new folder
        _until(lambda: count_indexed(data) == 4, "index an added photo")

        before = vectors_by_path(data)[str(photos / "p0.jpg")]
        save_jpeg(photos / "p0.jpg", seed=11)  # edited in place
        _until(
            lambda: not np.allclose(vectors_by_path(data)[str(photos / "p0.jpg")], before),
            "re-embed an edited photo",
        )

        moved_id = _ids(data)[str(photos / "p1.jpg")]
        os.rename(photos / "p1.jpg", photos / "sub" / "p1-moved.jpg")  # moved: same row, same vector
        _until(lambda: str(photos / "sub" / "p1-moved.jpg") in _ids(data), "follow a move")
        assert _ids(data)[str(photos / "sub" / "p1-moved.jpg")] == moved_id

        (photos / "p2.jpg").unlink()
        _until(lambda: str(photos / "p2.jpg") not in _ids(data), "drop a deleted photo")
        assert count_indexed(data) == 3
        time.sleep(1.0)  # the watcher's own writes under .dualens must not start runs of their own
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert "watching" in out and out.rstrip().endswith("stopped watching")
    assert "Traceback" not in err
    runs = [line for line in out.splitlines() if "indexed " in line]
    assert len(runs) == 5, out  # the first run and one per change: none for unchanged rescans or own files


def test_watch_with_the_ray_engine_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ui.cli import main

    save_jpeg(tmp_path / "photos" / "a.jpg", seed=1)
    code = main(
        ["index", "--data", str(tmp_path / "d"), str(tmp_path / "photos"), "--watch", "--engine", "ray"]
    )
    assert code == 2 and "--watch works with the local engine" in capsys.readouterr().err

"""Point 7 of the indexer issue: SIGKILL in the middle of `dualens index`, re-run, consistent state."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.check import check_collection
from indexer.core.storage.collection import Collection
from indexer.pipeline import IndexOptions, run_index
from tests.helpers.db import count_indexed, vectors_by_path
from tests.helpers.images import save_jpeg, write_zero_bytes
from tests.helpers.slow_commits import spawn

pytestmark = pytest.mark.usefixtures("database")  # on SQLite and on PostgreSQL

N_PHOTOS = 24


def _group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow  # two `dualens` processes (torch + transformers start-up): ~10-25 s
@pytest.mark.timeout(120)
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_state(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(N_PHOTOS):
        save_jpeg(photos / f"set{i % 3}" / f"p{i:02d}.jpg", seed=i)
    write_zero_bytes(photos / "broken.jpg")
    args = (
        "index",
        "--data",
        str(data),
        "--model",
        str(tiny_model_dir),
        "--batch-size",
        "2",
        "--workers",
        "1",
    )

    victim = spawn(*args, str(photos), pause_s=0.25, start_new_session=True)
    deadline = time.monotonic() + 90
    while count_indexed(data) < 6 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, victim.communicate()
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    committed = count_indexed(data)
    assert 6 <= committed < N_PHOTOS
    assert _group_gone(victim.pid, timeout=10), "decoder workers outlived the killed indexer"

    resumed = spawn(*args, str(photos))
    out, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err
    unchanged = int(re.search(r"unchanged (\d+)", out).group(1))  # type: ignore[union-attr]
    assert unchanged >= committed  # it continued where it stopped

    with Collection.open(data) as collection:
        report = check_collection(collection)
        assert report.ok, report.lines()
        assert (report.n_indexed, report.n_failed) == (N_PHOTOS, 1)

    reference = tmp_path / "reference"
    run_index(reference, [photos], IndexOptions(model=str(tiny_model_dir), workers=0))
    got, want = vectors_by_path(data), vectors_by_path(reference)
    assert sorted(got) == sorted(want)
    for path, vector in want.items():
        np.testing.assert_allclose(got[path], vector, atol=1e-4)

"""Ray failures under `dualens index --engine ray` (#27 item 18), on a real local Ray cluster
(started by the driver on this machine's 2 cores, as in tests/test_indexer_ray.py).

A dead raylet ends the run with one line that says how to resume, and the next run resumes; a
restarted embedding actor leaves no Ray notice on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.db import count_indexed
from tests.helpers.faults import check_ok
from tests.helpers.images import pattern, save_jpeg
from tests.helpers.slow_commits import spawn

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

EMBED_ACTOR = "ray::MapWorker(MapBatches(EmbedWorker))"
N = 96


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_models import make_tiny_dual_encoder

    return make_tiny_dual_encoder(tmp_path_factory.mktemp("slow-vtde"), "vtde-slow")


def _photos(root: Path) -> Path:
    for i in range(N):
        save_jpeg(root / f"d{i % 4}" / f"p{i:03d}.jpg", pattern((48, 36), seed=i))
    return root


def _program(pid: int) -> str:
    return (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]).decode(errors="replace")


def _parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def _pids(driver: int, matches: re.Pattern[str]) -> list[int]:
    """Processes of this run's Ray cluster whose program name matches: those of the driver's process
    group (the raylet among them), and their children (the workers the raylet starts). Other
    developers' Ray processes on the machine are never touched."""
    found, ours = [], set()
    entries = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    for pid in entries:
        with contextlib.suppress(OSError, ProcessLookupError):
            if os.getpgid(pid) == driver:
                ours.add(pid)
    for pid in entries:
        with contextlib.suppress(OSError, ProcessLookupError, IndexError, ValueError):
            if (pid in ours or _parent(pid) in ours) and matches.search(_program(pid)):
                found.append(pid)
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _index(data: Path, photos: Path, model: Path, *extra: str, pause_s: float = 0.0) -> subprocess.Popen:
    argv = ["index", "--data", str(data), "--model", str(model), "--batch-size", "8", *extra, str(photos)]
    return spawn(*argv, pause_s=pause_s, start_new_session=True)


def _finish(run: subprocess.Popen) -> tuple[str, str]:
    try:
        return run.communicate(timeout=240)
    finally:
        run.kill()
        with contextlib.suppress(ProcessLookupError):  # Ray's processes follow their driver
            os.killpg(run.pid, signal.SIGKILL)


def test_a_dead_raylet_ends_the_run_in_one_line_and_the_next_run_resumes(
    tmp_path: Path, slow_model_dir: Path
) -> None:
    photos, data = _photos(tmp_path / "photos"), tmp_path / "data"
    run = _index(data, photos, slow_model_dir, "--engine", "ray", pause_s=0.2)
    try:
        _wait_for(lambda: bool(_pids(run.pid, re.compile(re.escape(EMBED_ACTOR)))), 180, run)
        raylets = _pids(run.pid, re.compile(r"/raylet$"))
        assert raylets, "no raylet in the driver's process group"
        for pid in raylets:
            os.kill(pid, signal.SIGKILL)
    finally:
        out, err = _finish(run)
    assert run.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dualens: error: "), err
    assert "raylet" in lines[0] and "again to resume" in lines[0], lines[0]  # the two ways Ray reports it
    assert "(raylet)" not in out and "Traceback" not in out + err, out
    committed = count_indexed(data)
    assert committed < N
    again = _index(data, photos, slow_model_dir)  # the local engine: resuming needs no cluster
    out, err = _finish(again)
    assert again.returncode == 0, err
    assert re.search(rf"^indexed {N - committed}, unchanged {committed},", out, re.MULTILINE), out
    assert count_indexed(data) == N
    assert check_ok(data) == []


def test_a_restarted_embedding_actor_leaves_no_ray_notice_on_the_terminal(
    tmp_path: Path, slow_model_dir: Path
) -> None:
    photos, data = _photos(tmp_path / "photos"), tmp_path / "data"
    run = _index(data, photos, slow_model_dir, "--engine", "ray", pause_s=0.1)
    try:
        actor = re.compile(re.escape(EMBED_ACTOR))
        _wait_for(lambda: any(_cpu_seconds(pid) > 2.0 for pid in _pids(run.pid, actor)), 180, run)
        for pid in _pids(run.pid, actor):  # busy embedding: it has loaded the model and is at work
            os.kill(pid, signal.SIGKILL)
    finally:
        out, err = _finish(run)
    assert run.returncode == 0, err
    assert err == ""
    assert [line.split()[0] for line in out.splitlines() if line.strip()] == ["model", "indexed", "time"], out
    assert f"indexed {N}," in out
    assert count_indexed(data) == N and check_ok(data) == []

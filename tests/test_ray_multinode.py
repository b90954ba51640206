"""A real multi-node Ray cluster on this machine (issue 31, item 4): a head and two worker nodes, each
its own `ray start` process tree with its own resources; `dualens index --engine ray --ray-address`
on it; the worker node that hosts the embedding actor killed mid-run (its raylet and workers); the
run completes or the next one resumes, every photo indexed exactly once and `dualens check` OK.

Only this test's processes are ever signalled (the trees of the `ray start` processes it started):
other people's Ray clusters on the machine are left alone, so no `ray stop`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.db import count_indexed, rows
from tests.helpers.faults import check_ok
from tests.helpers.images import pattern, save_jpeg
from tests.helpers.slow_commits import REPO, spawn

RAY = Path(sys.executable).parent / "ray"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),  # 4m44s at a load average of 29 on the 2-core dev VM
    pytest.mark.skipif(not RAY.exists(), reason="no `ray` command next to this Python"),
]

N = 150
STORE = ["--object-store-memory", str(80 * 2**20)]  # each node's: three share this machine's memory
EMBED_ACTOR = re.compile(re.escape("ray::MapWorker(MapBatches(EmbedWorker))"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the raylet, its workers, the node's agents)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(_children(p))
    return found


def _program(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _kill_tree(node: subprocess.Popen[bytes]) -> list[str]:
    """SIGKILL a node: every process of its tree (found first, then killed), and its process group;
    returns their command lines (Ray's workers run in sessions of their own: only the tree finds them)."""
    pids = _tree(node.pid)
    programs = [_program(pid) for pid in pids]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait(timeout=30)
    return programs


class Cluster:
    """A head (no CPUs: it only hosts the driver) and worker nodes with 2 logical CPUs each, every
    port chosen free, the session files in a short temporary directory of its own."""

    def __init__(self) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="dlray-"))  # socket paths must stay short
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
            "RAY_AUTH_MODE": "disabled",  # a cluster of this machine's processes: no tokens to hand round
        }  # fmt: skip

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        """One node's `ray start --block`, its own process group; started again (at most twice more)
        when it gives up, as Ray's node does after 30 s of a loaded machine without its raylet."""
        for attempt in range(3):
            ports = [
                "--dashboard-agent-listen-port", str(_free_port()),
                "--dashboard-agent-grpc-port", str(_free_port()),
                "--metrics-export-port", str(_free_port()),
                "--runtime-env-agent-port", str(_free_port()),
            ]  # fmt: skip
            argv = [str(RAY), "start", "--block", "--disable-usage-stats", *STORE]
            log_path = self.temp / f"node{len(self.nodes)}-{attempt}.log"
            with log_path.open("wb") as log:
                node = subprocess.Popen(
                    [*argv, *ports, *args], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            if self._started(node, log_path):
                self.nodes.append(node)
                return node
            _kill_tree(node)
        raise AssertionError(f"a Ray node did not start: {log_path.read_text(errors='replace')[-3000:]}")

    def start(self, workers: int) -> None:
        self._start(
            "--head", "--port", str(self.port), "--num-cpus", "0", "--resources", '{"head_node": 1}',
            "--include-dashboard", "false", "--temp-dir", str(self.temp),
        )  # fmt: skip
        for n in range(workers):  # one at a time: a loaded machine's GCS registers them in turn
            self._start("--address", self.address, "--num-cpus", "2", "--resources", f'{{"worker_{n}": 1}}')

    @staticmethod
    def _started(node: subprocess.Popen[bytes], log: Path) -> bool:
        """Whether the node's `ray start` says its runtime started (its raylet registered)."""
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.poll() is None:
                _kill_tree(node)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the driver's too
    c = Cluster()
    try:
        c.start(workers=2)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_models import make_tiny_dual_encoder

    return make_tiny_dual_encoder(tmp_path_factory.mktemp("slow-vtde"), "vtde-slow")


def _index(data: Path, photos: Path, model: Path, address: str, pause_s: float = 0.0) -> subprocess.Popen:
    argv = ["index", "--data", str(data), "--model", str(model), "--batch-size", "8"]
    return spawn(
        *argv,
        "--engine",
        "ray",
        "--ray-address",
        address,
        str(photos),
        pause_s=pause_s,
        start_new_session=True,
    )


def _hosts_actor(node: subprocess.Popen[bytes]) -> bool:
    return any(EMBED_ACTOR.search(_program(pid)) for pid in _tree(node.pid))


def _finish(run: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return run.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)


def test_a_worker_node_killed_mid_run_leaves_every_photo_indexed_exactly_once(
    tmp_path: Path, cluster: Cluster, slow_model_dir: Path
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    for i in range(N):
        save_jpeg(photos / f"d{i % 5}" / f"p{i:03d}.jpg", pattern((48, 36), seed=i))
    run = _index(data, photos, slow_model_dir, cluster.address, pause_s=0.2)
    try:
        deadline, victim = time.monotonic() + 150, None
        while victim is None:
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no embedding actor on a worker node"
            if count_indexed(data) > 0:  # mid-run: batches committed
                victim = next((n for n in cluster.nodes[1:] if _hosts_actor(n)), None)
            time.sleep(0.1)
        killed = _kill_tree(victim)
        assert any(EMBED_ACTOR.search(p) for p in killed) and any("/raylet " in p for p in killed), killed
        before = count_indexed(data)
        _, err = _finish(run, timeout=200)
    except BaseException:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _finish(run, timeout=1)
        raise
    assert before < N, "the run ended before the node was killed"
    if run.returncode != 0:  # the cluster could not carry on: one line, and the next run resumes
        assert "again to resume" in err, err
        again = _index(data, photos, slow_model_dir, cluster.address)
        _, err = _finish(again, timeout=200)
        assert again.returncode == 0, err
    assert count_indexed(data) == N
    ((n_rows, n_paths),) = rows(data, "SELECT COUNT(*), COUNT(DISTINCT path) FROM photos")
    assert (n_rows, n_paths) == (N, N)  # every photo once
    assert check_ok(data) == []

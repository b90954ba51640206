"""The Ray engine keeps every guarantee of the local one (a real local Ray cluster, num_cpus=2)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.core.errors import UsageError
from indexer.core.settings import DB_URL_ENV
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from indexer.pipeline import IndexOptions, IndexSummary, run_index
from indexer.ray_engine import RayOptions
from tests.helpers.db import Databases, count_indexed
from tests.helpers.faults import check_ok
from tests.helpers.images import pattern, save_jpeg, write_truncated_jpeg, write_zero_bytes
from tests.helpers.postgres import PostgresServer
from tests.helpers.slow_commits import spawn

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EMBED_ACTOR = "ray::MapWorker(MapBatches(EmbedWorker))"


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_models import make_tiny_dual_encoder

    return make_tiny_dual_encoder(tmp_path_factory.mktemp("slow-vtde"), "vtde-slow")


def _rows(data: Path, db_url: str | None) -> dict[str, tuple]:
    with Collection.open(data, db_url=db_url) as c, c.session() as s:
        photos = s.query(Photo).all()
        return {
            p.path: (
                p.status.value,
                (p.error or "").split(":")[0],
                p.width,
                p.height,
                p.content_hash,
                p.vector,
            )
            for p in photos
        }


def _same_collections(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert a.keys() == b.keys()
    for path in a:
        *meta_a, vec_a = a[path]
        *meta_b, vec_b = b[path]
        assert meta_a == meta_b, path
        if vec_a is None or vec_b is None:
            assert vec_a is vec_b is None, path
            continue
        cosine = float(np.frombuffer(vec_a, np.float32) @ np.frombuffer(vec_b, np.float32))
        assert cosine >= 1 - 1e-5, (path, cosine)


def _index(data: Path, photos: Path, model: Path, dbs: Databases, engine: str) -> IndexSummary:
    options = IndexOptions(
        model=str(model), workers=0, batch_size=8, engine=engine, ray=RayOptions(workers=1)
    )
    return run_index(data, [photos], options, db_url=dbs.url(data))


def test_a_ray_built_collection_equals_a_local_one_and_re_runs_embed_only_what_changed(
    tmp_path: Path, tiny_model_dir: Path, databases: Databases
) -> None:
    photos = tmp_path / "photos"
    for i in range(30):
        save_jpeg(photos / f"d{i % 3}" / f"p{i:02d}.jpg", seed=i)
    save_jpeg(photos / "copy.jpg", seed=3)  # a duplicate: its vector is copied
    write_zero_bytes(photos / "bad" / "empty.jpg")
    write_truncated_jpeg(photos / "bad" / "cut.jpg")
    local, ray = tmp_path / "local", tmp_path / "ray"

    first = _index(ray, photos, tiny_model_dir, databases, "ray")
    first_local = _index(local, photos, tiny_model_dir, databases, "local")
    for summary in (first, first_local):  # the bad files recorded, not stopping the run
        assert (summary.indexed + summary.reused, summary.failed) == (31, 2)
    _same_collections(_rows(ray, databases.url(ray)), _rows(local, databases.url(local)))

    for i in range(3):
        save_jpeg(photos / "new" / f"n{i}.jpg", seed=100 + i)
    save_jpeg(photos / "d0" / "p00.jpg", seed=200)  # changed content
    (photos / "d1" / "p01.jpg").unlink()
    again = _index(ray, photos, tiny_model_dir, databases, "ray")
    again_local = _index(local, photos, tiny_model_dir, databases, "local")
    for summary in (again, again_local):
        assert (summary.indexed, summary.updated, summary.removed) == (3, 1, 1)
    assert again.unchanged == again_local.unchanged
    _same_collections(_rows(ray, databases.url(ray)), _rows(local, databases.url(local)))
    assert check_ok(ray, databases.url(ray)) == []


def _pids_titled(title: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace") == title:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


N_SLOW = 160


def _slow_photos(root: Path) -> Path:
    for i in range(N_SLOW):
        save_jpeg(root / f"d{i % 4}" / f"p{i:03d}.jpg", pattern((48, 36), seed=i))
    return root


def test_killing_an_embedding_worker_mid_run_loses_nothing(tmp_path: Path, slow_model_dir: Path) -> None:
    photos, data = _slow_photos(tmp_path / "photos"), tmp_path / "data"
    argv = ["index", "--data", str(data), "--engine", "ray", "--model", str(slow_model_dir)]
    run = spawn(*argv, "--batch-size", "8", str(photos), pause_s=0.1)
    try:
        _wait_for(lambda: count_indexed(data) >= 8 and _pids_titled(EMBED_ACTOR), 120, run)
        victims = _pids_titled(EMBED_ACTOR)
        committed = count_indexed(data)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        out, err = run.communicate(timeout=240)
    finally:
        run.kill()
    assert committed < N_SLOW, "the worker was killed after the run had embedded everything"
    assert run.returncode == 0, err
    assert f"indexed {N_SLOW}," in out
    assert count_indexed(data) == N_SLOW
    assert check_ok(data) == []


def test_killing_the_driver_mid_run_then_re_running_resumes_without_re_embedding(
    tmp_path: Path, slow_model_dir: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL (the cluster's database; the worker-kill test above runs on SQLite)."""
    name = postgres_server.new_database()
    monkeypatch.setenv(DB_URL_ENV, postgres_server.url(name))
    photos, data = _slow_photos(tmp_path / "photos"), tmp_path / "data"
    argv = [
        "index",
        "--data",
        str(data),
        "--engine",
        "ray",
        "--model",
        str(slow_model_dir),
        "--batch-size",
        "8",
    ]
    victim = spawn(*argv, str(photos), pause_s=0.3, start_new_session=True)
    try:
        _wait_for(lambda: count_indexed(data) >= 16, 120, victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        victim.kill()
        time.sleep(1)  # Ray's processes follow their driver (fate sharing); make sure of it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.pid, signal.SIGKILL)
    committed = count_indexed(data)
    assert 16 <= committed < N_SLOW
    resumed = spawn(*argv, str(photos))
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert re.search(rf"^indexed {N_SLOW - committed}, unchanged {committed},", out, re.MULTILINE), out
    assert count_indexed(data) == N_SLOW
    check = spawn("check", "--data", str(data))
    assert check.wait(timeout=120) == 0, check.communicate()


def test_an_unreachable_ray_address_is_one_line_before_anything_is_written(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ui.cli import main

    save_jpeg(tmp_path / "photos" / "a.jpg", seed=1)
    with pytest.raises(UsageError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1: "):
        run_index(
            tmp_path / "data",
            [tmp_path / "photos"],
            IndexOptions(model=str(tiny_model_dir), engine="ray", ray=RayOptions(address="127.0.0.1:1")),
        )
    photos = str(tmp_path / "photos")
    code = main(
        ["index", "--data", str(tmp_path / "d2"), "--engine", "ray", "--ray-address", "nohost", photos]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--ray-address 'nohost' is not HOST:PORT" in err and err.count("\n") == 1
    assert not (tmp_path / "data" / "dualens.sqlite").exists() and not (tmp_path / "d2").exists()


def test_a_worker_that_cannot_load_the_model_is_one_line_and_no_photo_is_written(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from ui.cli import main

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")  # the driver reads only the configs
    save_jpeg(tmp_path / "photos" / "a.jpg", seed=1)
    data = tmp_path / "data"
    code = main(
        ["index", "--data", str(data), "--engine", "ray", "--model", str(broken), str(tmp_path / "photos")]
    )
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert (
        err.startswith("dualens: error: a Ray worker failed: cannot load model") and err.count("\n") == 1
    ), err
    with Collection.open(data) as c:
        assert c.info().n_indexed == 0
    # the same collection then indexes with a model that loads
    assert main(["index", "--data", str(data), "--model", str(tiny_model_dir), str(tmp_path / "photos")]) == 0


def test_rebuild_index_on_ray_adds_the_shards_as_tasks_and_equals_the_local_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from indexer.core.storage import compressed
    from indexer.ray_engine import RayShardExecutor
    from tests.helpers.search_collection import FakePhoto, make_collection
    from tests.helpers.synthetic_vectors import Mixture
    from ui.cli import main

    mixture = Mixture.make(dim=64, n_clusters=40, seed=4)
    x, queries = mixture.sample(12_000, seed=5), mixture.queries(40, seed=6)
    data = tmp_path / "data"
    photos = [FakePhoto(f"d{i % 7}/{i}.jpg", x[i]) for i in range(len(x))]
    make_collection(data, tmp_path / "p", photos, model_id="m", save_index=False)
    monkeypatch.setattr(compressed, "ONDISK_MIN_VECTORS", 1000)  # merged on disk from shards, as at 1M
    monkeypatch.setattr(compressed, "SHARD_VECTORS", 3000)
    tasks: list[str] = []
    submit = RayShardExecutor.submit

    def counted(self, fn, /, *args):  # type: ignore[no-untyped-def]
        tasks.append(fn.__name__)
        return submit(self, fn, *args)

    monkeypatch.setattr(RayShardExecutor, "submit", counted)

    def top10() -> np.ndarray:
        with Collection.open(data) as c:
            index = c.load_index()
            assert index.describe().on_disk
            return index.search(queries, 10).ids

    argv = ["rebuild-index", "--data", str(data), "--index", "ivfpq"]
    assert main([*argv, "--engine", "ray"]) == 0
    assert tasks == ["_add_shard"] * 4
    on_ray = top10()
    assert main(argv) == 0
    assert np.array_equal(top10(), on_ray)
    assert main(["check", "--data", str(data)]) == 0
    assert "rebuilt" in capsys.readouterr().out
    assert main([*argv, "--ray-address", "127.0.0.1:1"]) == 2
    assert "--ray-address needs --engine ray" in capsys.readouterr().err

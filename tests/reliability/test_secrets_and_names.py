"""Secrets, odd names and odd states found by trying (#27 items 6, 8, 11, 16 and parts of 23).

- a database password never shows: not in CLI errors (userinfo, ``?password=``, libpq keywords), not
  on the unauthenticated ``/health`` (which shows no database details at all);
- a file name that is not UTF-8 is listed, described and served by the API (a real uvicorn server);
- ``--before 9999`` (and ``9999-12``, ``9999-12-31``) is an open-ended range, not a crash;
- a thumbnail cache that cannot be written serves thumbnails uncached;
- a model file rewritten with its old size and mtime gets a new fingerprint;
- a collection this process may not write is searched without writing a byte;
- garbage inside a stored vector is one line in ``check`` and a clear error in ``similar``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from indexer.core.models.resolve import local_fingerprint
from indexer.core.settings import DB_URL_ENV
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo
from search import Filters, parse_date
from tests.helpers.api_server import KEY, REPO, Server
from tests.helpers.faults import index_in_process, make_photos
from tests.helpers.postgres import PASSWORD, PASSWORD_USER, PostgresServer
from tests.helpers.ui_fixtures import build_collection
from tests.helpers.ui_fixtures import make_photos as make_ui_photos
from ui.cli import main

pytestmark = pytest.mark.timeout(240)

NON_UTF8 = b"caf\xe9-\xff.jpg"  # Latin-1 bytes: no UTF-8 decoding of this name exists


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dualens: error: "), err
    return lines[0]


def _photo_id(data: Path, path: str, db_url: str | None = None) -> int:
    with Collection.open(data, db_url=db_url) as collection, collection.session() as s:
        found = s.scalar(select(Photo.id).where(Photo.path == path))
    assert found is not None, path
    return int(found)


# ---------------------------------------------------------------- 6: the database password
def test_database_passwords_never_appear_in_cli_errors(
    postgres_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = postgres_server.port
    cases = {  # URL -> what the one line still says
        f"postgresql+psycopg://{PASSWORD_USER}@127.0.0.1:{port}/no_such_db?password={PASSWORD}": "no_such_db",
        f"postgresql+psycopg://{PASSWORD_USER}:{PASSWORD}-wrong@127.0.0.1:{port}/postgres": "password",
        f"postgresql+psycopg://u@/db?password={PASSWORD}&host={tmp_path}/down": "cannot use",
        f"host=127.0.0.1 port={port} password={PASSWORD} dbname=postgres": "is not a database URL",
        f"host=127.0.0.1 password = '{PASSWORD} x' dbname=postgres": "is not a database URL",
    }
    for url, said in cases.items():
        rc, out, err = _cli(capsys, "search", "--data", str(tmp_path / "data"), "--db", url, "a dog")
        line = _one_error_line(err)
        assert rc != 0 and PASSWORD not in out + err, (url, err)
        assert said in line and "***" in line, (url, line)


def test_health_shows_no_database_details_when_the_database_is_down(
    postgres_server: PostgresServer, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = postgres_server.new_database()
    url = f"postgresql+psycopg://{PASSWORD_USER}@127.0.0.1:{postgres_server.port}/{name}?password={PASSWORD}"
    make_ui_photos(tmp_path / "photos", n=4)
    build_collection(tmp_path / "data", tmp_path / "photos", tiny_model_dir, db_url=url)
    monkeypatch.setenv(DB_URL_ENV, url)
    server = Server(tmp_path / "data")
    try:
        assert httpx.get(f"{server.url}/health", timeout=30).json()["photos"] == 4
        postgres_server.drop_database(name)  # the database is gone (connections closed) under the server
        health = httpx.get(f"{server.url}/health", timeout=30)
        assert health.status_code == 503
        assert PASSWORD not in health.text and name not in health.text and "postgres" not in health.text
        stats = httpx.get(f"{server.url}/stats", timeout=30)  # no key configured: the details, redacted
        assert stats.status_code == 503 and name in stats.text and PASSWORD not in stats.text
    finally:
        server.stop()
        postgres_server.drop_database(name)


# ---------------------------------------------------------------- 8, 11, 16: the HTTP API
@pytest.fixture(scope="module")
def odd_world(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[tuple[Server, Path]]:
    """A served collection holding a photo whose name is not UTF-8, its thumbnail cache unwritable
    (a plain file stands where the cache folder goes)."""
    base = tmp_path_factory.mktemp("odd")
    photos, data = base / "photos", base / "data"
    made = make_ui_photos(photos, n=6)
    odd = os.path.join(os.fsencode(photos / "beach"), NON_UTF8)
    with Image.open(made[1]) as image:
        image.rotate(90).save(os.fsdecode(odd), "JPEG")  # its own content
    build_collection(data, photos, tiny_model_dir)
    (data / "thumbnails").write_text("not a folder")
    server = Server(data)
    yield server, Path(os.fsdecode(odd))
    server.stop()


def test_a_file_name_that_is_not_utf8_is_described_listed_and_served(odd_world: tuple[Server, Path]) -> None:
    server, odd = odd_world
    photo_id = _photo_id(server_data(server), str(odd))
    described = httpx.get(f"{server.url}/photos/{photo_id}", timeout=30)
    assert described.status_code == 200, described.text
    assert described.json()["path"] == str(odd)  # the exact name, as \\udce9 escapes in ASCII JSON
    original = httpx.get(f"{server.url}/photos/{photo_id}/original", timeout=30)
    assert original.status_code == 200, original.text
    assert original.content == odd.read_bytes()
    listed = httpx.get(f"{server.url}/search", params={"q": "a photo", "k": 50}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert photo_id in [hit["id"] for hit in listed.json()["hits"]]
    similar = httpx.get(f"{server.url}/similar/{photo_id}", params={"k": 50}, timeout=30)
    assert similar.status_code == 200, similar.text
    other = listed.json()["hits"][0]["id"] if listed.json()["hits"][0]["id"] != photo_id else 1
    around = httpx.get(f"{server.url}/similar/{other}", params={"k": 50}, timeout=30)
    assert around.status_code == 200 and photo_id in [hit["id"] for hit in around.json()["hits"]]


def server_data(server: Server) -> Path:
    argv = server.proc.args
    assert isinstance(argv, list)
    return Path(argv[argv.index("--data") + 1])


def test_thumbnails_are_served_uncached_when_the_cache_cannot_be_written(
    odd_world: tuple[Server, Path],
) -> None:
    server, _ = odd_world
    with Collection.open(server_data(server)) as collection, collection.session() as s:
        ids = list(s.scalars(select(Photo.id)))
    assert len(ids) == 7
    for photo_id in ids:
        for preview in ("false", "true"):
            url = f"{server.url}/photos/{photo_id}/thumbnail"
            got = httpx.get(url, params={"preview": preview}, timeout=30)
            assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg", got.text
            assert got.content.startswith(b"\xff\xd8")
    assert (server_data(server) / "thumbnails").is_file()  # nothing was cached


def test_dates_up_to_the_last_day_of_year_9999_are_an_open_ended_range(
    api_server: Server, api_world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key = {"X-API-Key": KEY}
    every = httpx.get(f"{api_server.url}/search", params={"q": "x", "k": 50}, headers=key).json()["hits"]
    assert len(every) == 12
    for before in ("9999", "9999-12", "9999-12-31"):
        params = {"q": "x", "k": 50, "before": before}
        got = httpx.get(f"{api_server.url}/search", params=params, headers=key, timeout=30)
        assert got.status_code == 200, got.text
        assert [h["id"] for h in got.json()["hits"]] == [h["id"] for h in every]
        params = {"q": "x", "after": before}
        after = httpx.get(f"{api_server.url}/search", params=params, headers=key, timeout=30)
        assert after.status_code == 200 and after.json()["hits"] == []
        argv = ["search", "--data", str(api_world[0]), "--before", before, "-k", "50", "x"]
        rc, out, err = _cli(capsys, *argv)
        assert rc == 0 and "Traceback" not in err and len(out.splitlines()) >= 12, err
    assert Filters(date_to=parse_date("9999", end=True)).date_to == parse_date("9999-12-31", end=False)


# ---------------------------------------------------------------- 23: model fingerprints
def test_a_model_file_rewritten_with_its_old_size_and_mtime_gets_a_new_fingerprint(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = local_fingerprint(model)
    config = model / "config.json"
    stat = config.stat()
    text = config.read_bytes()
    changed = text.replace(b'"', b"'", 1) if b'"' in text else text[::-1]
    assert changed != text and len(changed) == len(text)
    while config.stat().st_ctime_ns == stat.st_ctime_ns:  # a change time the clock can tell apart
        config.write_bytes(changed)
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # touch -r: size and mtime as before
    assert (config.stat().st_size, config.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = local_fingerprint(model)
    assert after != before
    (model / ".dualens-fingerprint.json").unlink()
    assert local_fingerprint(model) == after  # the content's own hash, not a stale one


# ---------------------------------------------------------------- 23: a read-only collection
def _as_reader() -> dict[str, object]:
    """Popen arguments that run the command as a user who may read the collection, not write it:
    ``nobody`` when the tests run as root (who may write anything), else the test's own user."""
    return {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}


def _reader_can_run_python() -> bool:
    """Whether that user can start this interpreter (a root-only pyenv under /root cannot be)."""
    try:
        run = subprocess.run([sys.executable, "-c", "pass"], capture_output=True, timeout=60, **_as_reader())  # type: ignore[call-overload]
    except OSError:
        return False
    return run.returncode == 0


@pytest.mark.sqlite_only
def test_a_collection_this_process_may_not_write_is_searched_read_only_in_process(
    tmp_path: Path,
    tiny_model_dir: Path,
    database: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same as below without a second user: the data folder and database are reported not
    writable (as they are to a user without the permission), and SQLite's own read-only mode must
    then keep every byte as it was (root's writes would otherwise succeed)."""
    from indexer.core.storage import schema
    from ui.cli import main

    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, 6, seed=3)
    index_in_process(data, [photos], tiny_model_dir)
    database_file = data / "dualens.sqlite"
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if mode & os.W_OK and Path(str(path)).resolve().is_relative_to(data.resolve()):
            return False
        return real_access(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schema.os, "access", access)
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    before = hashlib.sha256(database_file.read_bytes()).hexdigest()
    listing = sorted(p.name for p in data.iterdir())
    for argv in (["search", "a photo"], ["similar", "1"], ["check"]):
        assert main([*argv, "--data", str(data)]) == 0, (argv, capsys.readouterr().err)
    assert "read-only" not in capsys.readouterr().err
    assert hashlib.sha256(database_file.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in data.iterdir()) == listing  # no -wal, no -shm


@pytest.mark.sqlite_only
def test_a_collection_that_cannot_be_written_is_searched_without_writing_a_byte(
    tiny_model_dir: Path, database: str | None
) -> None:
    if not _reader_can_run_python():
        pytest.skip("the unprivileged user cannot start this Python (the in-process test above covers it)")
    with tempfile.TemporaryDirectory(prefix="dualens-ro-") as name:  # outside pytest's private tmp
        base = Path(name)
        base.chmod(0o755)
        model, photos, data, home = base / "model", base / "photos", base / "data", base / "home"
        shutil.copytree(tiny_model_dir, model)
        make_photos(photos, 6, seed=3)
        index_in_process(data, [photos], model)
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        for path in [base, *base.rglob("*")]:
            if path != home and not path.is_relative_to(home):
                path.chmod(0o555 if path.is_dir() else 0o444)
        database_file = data / "dualens.sqlite"
        before = hashlib.sha256(database_file.read_bytes()).hexdigest()
        listing = sorted(p.name for p in data.iterdir())
        env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
        env.pop(DB_URL_ENV, None)
        try:
            for argv in (["search", "a photo"], ["similar", "1"], ["check"]):
                run = subprocess.run(
                    [sys.executable, "-m", "ui.cli", *argv, "--data", str(data)],
                    capture_output=True, text=True, env=env, cwd=home, timeout=120, **_as_reader(),  # type: ignore[call-overload]
                )  # fmt: skip
                assert run.returncode == 0, (argv, run.stderr)
                assert "read-only" not in run.stderr
            assert hashlib.sha256(database_file.read_bytes()).hexdigest() == before
            assert sorted(p.name for p in data.iterdir()) == listing  # no -wal, no -shm
        finally:
            for path in [base, *base.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)


# ---------------------------------------------------------------- 23: garbage in a stored vector
def test_garbage_in_a_stored_vector_is_one_line_in_check_and_a_clear_error_in_similar(
    tmp_path: Path, tiny_model_dir: Path, database: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, 5, seed=11)
    index_in_process(data, [photos], tiny_model_dir)
    garbage = np.full(16, 3e38, np.float32)
    garbage[0] = np.nan
    with Collection.open(data) as collection, collection.session() as s, s.begin():
        victim = int(s.scalar(select(Photo.id).order_by(Photo.id).limit(1)) or 0)
        dim = len(s.scalar(select(Photo.vector).where(Photo.id == victim)) or b"") // 4
        s.execute(update(Photo).where(Photo.id == victim).values(vector=np.resize(garbage, dim).tobytes()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        rc, out, err = _cli(capsys, "check", "--data", str(data))
        assert rc == 1 and "Warning" not in out + err
        damaged = [line for line in out.splitlines() if "damaged" in line]
        assert len(damaged) == 1 and f"ids {victim};" in damaged[0], out
        rc, out, err = _cli(capsys, "similar", "--data", str(data), str(victim))
    assert rc == 1 and "No photos match" not in out
    assert f"photo {victim} is damaged" in _one_error_line(err)

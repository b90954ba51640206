"""Fault injection for the reliability suite: a fork server for fast `dualens` runs, and state snapshots.

Starting ``dualens`` costs seconds of imports (torch, transformers) on a small machine, which would
make dozens of SIGKILL trials far too slow. :class:`CliForkServer` starts ONE Python process that
imports dualens once (no torch op is run in it, so forking is safe) and forks a fresh child per
command. Each child runs exactly ``ui.cli.main(argv)`` — the code path of the ``dualens`` executable —
in its own process, which the test can SIGKILL like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from indexer.check import check_collection
from indexer.core.settings import DB_URL_ENV
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, PhotoStatus
from indexer.core.storage.vector_index import VectorIndex
from indexer.pipeline import IndexSummary
from tests.helpers.images import pattern, save_jpeg

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The fork server: reads one JSON request per line, answers one JSON line per request.
_SERVER = r"""
import json, os, sys, time
import ui.cli
ui.cli.build_parser()                       # the parser (command modules are imported on use)
import indexer.commands, indexer.model_commands, indexer.quality.commands  # noqa: F401
import search.commands, ui.commands  # noqa: F401
import search, indexer.pipeline, indexer.check, indexer.core.models  # noqa: F401
import transformers.models.vision_text_dual_encoder.modeling_vision_text_dual_encoder  # noqa: F401
import transformers.models.vit.modeling_vit, transformers.models.bert.modeling_bert  # noqa: F401
try:  # transformers builds a table of ~1000 regexes on the first model load (1 s); children inherit it
    import transformers.conversion_mapping as _cm
    _cm.get_checkpoint_conversion_mapping("vit")
except Exception:
    pass
out = sys.stdout
sys.stdout = sys.stderr
out.write(json.dumps({"ready": True}) + "\n"); out.flush()
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "run":
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                os.setpgid(0, 0)
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1); os.dup2(fd, 2)
                sys.stdout = os.fdopen(1, "w", buffering=1); sys.stderr = sys.stdout
                for key, value in req.get("env", {}).items():  # the test's own settings
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                if req.get("pre"):
                    exec(req["pre"], {"__name__": "__dualens_fault__"})
                code = ui.cli.main(req["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback; traceback.print_exc()
                code = 71
            finally:
                try:
                    sys.stdout.flush()
                finally:
                    os._exit(code)
        out.write(json.dumps({"pid": pid}) + "\n"); out.flush()
    elif req["op"] == "wait":
        _, status = os.waitpid(req["pid"], 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        out.write(json.dumps({"rc": rc}) + "\n"); out.flush()
"""


@dataclass(frozen=True)
class CliResult:
    rc: int  # exit code; -9 when SIGKILLed
    output: str  # stdout and stderr together
    seconds: float


class CliForkServer:
    """Run ``dualens`` commands in forked children of one pre-imported process."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "CI": "1"}
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), full_env.get("PYTHONPATH")])
        )
        full_env.update(env or {})
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(workdir / "server.log", "wb"),  # noqa: SIM115 - lives as long as the server
            cwd=PROJECT_ROOT,
            env=full_env,
            text=True,
        )
        self._n = 0
        ready = self._answer()
        if not ready.get("ready"):
            raise RuntimeError(f"fork server failed to start: {ready}")

    def _answer(self) -> dict:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            log = (self.workdir / "server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"fork server died:\n{log}")
        return json.loads(line)

    def _ask(self, request: dict) -> dict:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._answer()

    def start(self, argv: list[str], pre: str = "") -> tuple[int, Path]:
        """Fork a child running ``dualens ARGV`` (after executing ``pre``); returns (pid, log file)."""
        self._n += 1
        log = self.workdir / f"run-{self._n}.log"
        env = {DB_URL_ENV: os.environ.get(DB_URL_ENV)}  # the `database` fixture's choice, as it is now
        pid = int(self._ask({"op": "run", "argv": argv, "log": str(log), "pre": pre, "env": env})["pid"])
        return pid, log

    def wait(self, pid: int) -> int:
        return int(self._ask({"op": "wait", "pid": pid})["rc"])

    def run(self, argv: list[str], pre: str = "") -> CliResult:
        start = time.perf_counter()
        pid, log = self.start(argv, pre)
        rc = self.wait(pid)
        return CliResult(rc, log.read_text(errors="replace"), time.perf_counter() - start)

    def run_and_kill(self, argv: list[str], after_s: float, pre: str = "") -> CliResult:
        """Start ``dualens ARGV`` and SIGKILL it (and its decoder workers) ``after_s`` seconds later."""
        start = time.perf_counter()
        pid, log = self.start(argv, pre)
        time.sleep(max(0.0, after_s))
        with contextlib.suppress(ProcessLookupError):  # it may have finished already
            os.kill(pid, signal.SIGKILL)
        rc = self.wait(pid)
        with contextlib.suppress(ProcessLookupError):  # decoder workers exit on their own; make sure
            os.killpg(pid, signal.SIGKILL)
        # a kill in the child's first instants comes before it opened its log: it printed nothing
        output = log.read_text(errors="replace") if log.exists() else ""
        return CliResult(rc, output, time.perf_counter() - start)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


# ---------------------------------------------------------------- photos and state
def make_photos(root: Path, n: int, *, seed: int = 0, size: tuple[int, int] = (40, 30)) -> list[Path]:
    """``n`` small distinct JPEGs in a few sub-folders."""
    paths = []
    for i in range(n):
        paths.append(
            save_jpeg(
                root / f"d{i % 5}" / f"p{i:04d}.jpg", pattern(size, seed=seed * 100_003 + i), quality=80
            )
        )
    return paths


@dataclass(frozen=True)
class RowState:
    status: str
    error: str | None
    vector: np.ndarray | None


@dataclass(frozen=True)
class CollectionState:
    rows: dict[str, RowState]  # by path
    index_ids: tuple[int, ...]  # ids held by the FAISS file on disk (sorted)
    n_rows: int  # rows in the table (a path held twice would show here)
    indexed_ids: tuple[int, ...]  # ids of the rows marked indexed (sorted)

    @property
    def indexed_paths(self) -> set[str]:
        return {p for p, r in self.rows.items() if r.status == PhotoStatus.INDEXED.value}


def read_state(data: Path, db_url: str | None = None) -> CollectionState:
    """Every row (path, status, error, vector) and the ids in the FAISS file."""
    with Collection.open(data, db_url=db_url) as collection:
        with collection.session() as s:
            result = s.execute(select(Photo.id, Photo.path, Photo.status, Photo.error, Photo.vector)).all()
        index = VectorIndex.load(collection.paths.vector_index)
    rows = {
        r.path: RowState(
            r.status.value if hasattr(r.status, "value") else str(r.status),
            r.error,
            None if r.vector is None else np.frombuffer(r.vector, dtype=np.float32).copy(),
        )
        for r in result
    }
    indexed = tuple(sorted(int(r.id) for r in result if r.status == PhotoStatus.INDEXED))
    return CollectionState(rows, tuple(sorted(index.ids().tolist())), len(result), indexed)


def check_ok(data: Path, db_url: str | None = None) -> list[str]:
    """Problems reported by the consistency check (empty when it passes)."""
    with Collection.open(data, db_url=db_url) as collection:
        return check_collection(collection).problems


def state_differences(got: CollectionState, want: CollectionState, atol: float = 1e-4) -> list[str]:
    """How ``got`` differs from ``want``: paths, statuses, vectors, duplicates, index vs database."""
    problems: list[str] = []
    if got.n_rows != len(got.rows):
        problems.append(f"{got.n_rows} rows for {len(got.rows)} distinct paths (a file indexed twice)")
    if len(set(got.index_ids)) != len(got.index_ids):
        problems.append("an id appears twice in the FAISS index")
    if got.index_ids != got.indexed_ids:
        problems.append(
            f"index holds {len(got.index_ids)} ids, database marks {len(got.indexed_ids)} rows indexed"
        )
    lost = sorted(set(want.rows) - set(got.rows))
    extra = sorted(set(got.rows) - set(want.rows))
    if lost:
        problems.append(f"{len(lost)} file(s) lost, e.g. {lost[0]}")
    if extra:
        problems.append(f"{len(extra)} unexpected row(s), e.g. {extra[0]}")
    for path in sorted(set(got.rows) & set(want.rows)):
        g, w = got.rows[path], want.rows[path]
        if g.status != w.status:
            problems.append(f"{path}: status {g.status}, uninterrupted run: {w.status}")
        elif (g.vector is None) != (w.vector is None):
            problems.append(f"{path}: vector presence differs")
        elif (
            g.vector is not None
            and w.vector is not None
            and (g.vector.shape != w.vector.shape or not np.allclose(g.vector, w.vector, atol=atol))
        ):
            problems.append(f"{path}: vector differs from the uninterrupted run")
    return problems


def index_in_process(data: Path, roots: list[Path], model_dir: Path, **options: object) -> IndexSummary:
    """``dualens index`` through the library, decoding in this process (monkeypatches apply)."""
    from indexer.pipeline import IndexOptions, run_index

    opts = IndexOptions(**{"model": str(model_dir), "workers": 0, "threads": 1, "batch_size": 8, **options})  # type: ignore[arg-type]
    return run_index(data, [str(r) for r in roots], opts)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

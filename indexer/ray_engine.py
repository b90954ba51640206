"""The Ray engine: decode on the cluster's CPUs, embed in an actor pool, write on the driver.

    driver    scan + plan (as the local engine), then one writer: a transaction per batch
    decode    Ray Data ``map_batches`` tasks (CPU): read, hash and decode files (``indexer.ray_stages``)
    embed     ``map_batches`` with a callable class: an actor pool, the model loaded once per actor,
              on a GPU (fp16) when the actor has one, else on CPU (ONNX Runtime or torch)

On PostgreSQL each embedding actor also writes: it COPYs the rows of its batch's new files into the
run's staging table over its own connection (``indexer.core.storage.staging``), and only the small
results travel back; the driver commits each batch with one ``INSERT … SELECT`` in its transaction.
On SQLite (one file, one writer) the vectors travel back and the driver writes them. Either way the
driver commits every batch, so the database and FAISS guarantees of the local engine hold unchanged.
Ray retries tasks and restarts actors whose worker process dies; a driver that dies loses at most the
batch in flight, and the next run resumes from what was committed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.core.errors import ClusterError, DualensError, ModelError, UsageError
from indexer.core.storage.staging import StageSpec
from indexer.decode import DecodeOptions, DecodeResult, DecodeTask
from indexer.ray_stages import EmbedWorker, decode_batch

__all__ = ["EmbedSpec", "EmbedWorker", "RayOptions", "RayShardExecutor", "decode_batch", "ray_session"]

log = logging.getLogger(__name__)

DECODE_BATCH = 16  # files per decode task
DECODE_CPUS = 0.5  # logical CPUs per decode task (a task also waits on reads from the file system)


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start Ray on this machine's cores; "auto": the local cluster
    workers: int | None = None  # embedding actors; None: one per GPU of the cluster, else one
    gpus_per_worker: float = 0.0  # 0: embed on CPU
    cpus_per_worker: float = 1.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray: pip install 'dualens[ray]'") from exc
    return ray


def check_address(address: str) -> None:
    """UsageError at once when nothing listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address
    (Ray itself would retry for a minute before failing with a long traceback)."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379 or ray://host:10001)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; "
            "is `ray start --head` running there?"
        ) from exc


def preflight(options: RayOptions) -> None:
    """UsageError when Ray is missing or the cluster's address does not answer."""
    _import_ray()
    if options.address:
        check_address(options.address)


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Connect to the cluster at ``options.address``, or start Ray on this machine (stopped after)."""
    ray = _import_ray()
    if options.address:
        check_address(options.address)

    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.ERROR,  # failures raise; notices stay off the user's terminal
            "include_dashboard": False,
            "configure_logging": True,
        }
        if options.address:
            kwargs["address"] = options.address
        else:
            # Logical CPUs: each embedding actor holds one, and decoding tasks need one beside them.
            kwargs["num_cpus"] = max(os.cpu_count() or 2, (options.workers or 1) + 1)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = options.address or "this machine"
            raise UsageError(f"cannot start Ray on {where}: {str(exc).strip().splitlines()[0]}") from exc
    # Ray's threads print the errors its workers push (tracebacks, "(raylet) Task ... failed" notices
    # of restarted actors, a dead raylet's last log lines) on stdout, until it is shut down, and its
    # C++ core writes notices straight to file descriptor 2; a failure reaches the user as one line
    # through the exception instead. ``-v`` shows everything.
    with redirect_stdout(_LogStream()), _quiet_native_stderr():
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()


# Ray's core ends the driver process at once (exit status 1, no Python code runs) when its raylet
# dies; what it says then goes to fd 2. This watcher reads fd 2 while a session runs and, when that
# pipe closes without the driver's "done" after something was said, tells the user in one line on
# the real stderr.
_DONE = b"\n[dualens: ray session done]\n"
_WATCHER = r"""
import os, sys
done, seen = sys.argv[1].encode("latin-1"), b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    seen = (seen + chunk)[-65536:]
if seen.strip() and done not in seen:  # killed with nothing said (SIGKILL by a person): silent
    sys.stderr.write(
        "dualens: error: Ray's core ended the run (a raylet or the cluster's head died); the batches "
        "written are kept: run `dualens index` again to resume\n"
    )
"""


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Point fd 2 at a watcher (see ``_WATCHER``) while Python's own stderr (progress bar, logging)
    keeps the terminal."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, io.UnsupportedOperation):  # no real stderr (a test capture, a GUI)
        yield
        return
    watcher = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHER, _DONE.decode("latin-1")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=saved, start_new_session=True,
    )  # fmt: skip
    assert watcher.stdin is not None
    original = sys.stderr
    try:
        os.dup2(watcher.stdin.fileno(), 2)
        sys.stderr = os.fdopen(saved, "w", buffering=1, closefd=False)
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = original
        with contextlib.suppress(OSError):
            os.write(2, _DONE)
        os.dup2(saved, 2)
        os.close(saved)
        watcher.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a child holding fd 2: it ends on EOF
            watcher.wait(timeout=5)


class _LogStream(io.TextIOBase):
    """A stdout that sends what is printed to the debug log."""

    def write(self, text: str) -> int:
        if text.strip():
            log.debug("ray: %s", text.rstrip())
        return len(text)


# ---------------------------------------------------------------- the driver
@dataclass(frozen=True)
class EmbedSpec:
    """What each actor needs to load the driver's model."""

    model: str
    backend: str
    model_id: str
    fingerprint: str | None
    batch_size: int


def embedded_results(
    tasks: Sequence[DecodeTask],
    opts: DecodeOptions,
    known: frozenset[str],
    spec: EmbedSpec,
    options: RayOptions,
    stage: StageSpec | None = None,
    roots: Sequence[tuple[str, str, bool]] = (),
) -> Iterator[tuple[DecodeResult, np.ndarray, np.ndarray | None, str]]:
    """(result, vector, visual vector or None, token) of every task, in completion order; the vectors
    are meaningful for Decoded only. With ``stage`` (``roots``: each task's root, file type and
    whether its row exists), the actors stage new files' rows: those come back with the call's token
    and an empty vector, the rest with token "".

    Must run inside :func:`ray_session`.
    """
    import ray.data

    if not log.isEnabledFor(logging.DEBUG):  # failures come back as one ModelError line (-v: all)
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    context = ray.data.DataContext.get_current()
    context.log_internal_stack_trace_to_stdout = False
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    workers = options.workers or _default_workers(ray, options.gpus_per_worker)
    items = [{"item_no": t.item_no, "path": t.path, "old_hash": t.old_hash or ""} for t in tasks]
    if stage is not None:
        for item, (root, file_type, existing) in zip(items, roots, strict=True):
            item.update(root=root, file_type=file_type, existing=existing)
    blocks = max(1, min(len(items) // DECODE_BATCH, 4 * (os.cpu_count() or 2) * workers))
    dataset = (
        ray.data.from_items(items, override_num_blocks=blocks)
        .map_batches(
            decode_batch,  # type: ignore[arg-type]
            fn_kwargs={"opts": opts, "known": known},
            batch_size=DECODE_BATCH,
            batch_format="numpy",
            num_cpus=DECODE_CPUS,  # unlike the actors': Ray Data keeps the stages apart (no fusion)
        )
        .map_batches(
            EmbedWorker,
            fn_constructor_kwargs={
                "model": spec.model,
                "backend": spec.backend,
                "device": "cuda" if options.gpus_per_worker > 0 else "cpu",
                "model_id": spec.model_id,
                "fingerprint": spec.fingerprint,
                "stage": stage,
            },
            batch_size=spec.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_gpus=options.gpus_per_worker or None,
            num_cpus=options.cpus_per_worker,
        )
    )
    try:
        for batch in dataset.iter_batches(batch_size=spec.batch_size, batch_format="numpy"):
            tokens = batch.get("token", np.full(len(batch["result"]), "", dtype=object))
            rows = zip(batch["result"], batch["vector"], batch["visual"], tokens, strict=True)
            for packed, vector, visual, token in rows:
                yield pickle.loads(packed), vector, (visual if visual.size else None), str(token)
    except ray.exceptions.RayError as exc:
        raise _worker_error(exc) from exc


def _default_workers(ray: Any, gpus_per_worker: float) -> int:
    if gpus_per_worker > 0:
        return max(1, int(ray.cluster_resources().get("GPU", 0) // gpus_per_worker))
    return 1


# Ray's errors for processes of the cluster that died (a killed raylet shows as any of them, by timing).
_LOST = frozenset(
    {
        "LocalRayletDiedError", "NodeDiedError", "ActorDiedError", "ActorUnavailableError",
        "ActorUnschedulableError", "WorkerCrashedError", "OwnerDiedError", "ObjectLostError",
    }
)  # fmt: skip


def _cluster_lost(exc: BaseException) -> bool:
    """Whether a Ray error (or one it wraps) says a process of the cluster died, not a task failed."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if getattr(seen, "actor_init_failed", False):  # an actor's __init__ raised: not a lost process
            return False
        if {t.__name__ for t in type(seen).__mro__} & _LOST or "raylet died" in str(seen).lower():
            return True
        seen = getattr(seen, "cause", None) or seen.__cause__
    return False


def _worker_error(exc: BaseException) -> DualensError:
    """A failure inside the cluster as one line (a worker that cannot load the model, above all)."""
    cause = getattr(exc, "cause", None) or exc
    if _cluster_lost(exc):
        return ClusterError(
            "the Ray cluster lost a raylet or worker process during the run; the batches written are "
            "kept: run `dualens index` again to resume"
        )
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else repr(exc))
    reason = re.sub(r"^[\w.]+(Error|Exception): ", "", reason)  # the exception's class name
    return ModelError(f"a Ray worker failed: {reason[:400]}")


class RayShardExecutor:
    """Shards of an IVF-PQ build as Ray tasks (``VectorIndexes.rebuild(executor=...)``): each task
    adds one shard to a copy of the trained index and writes it next to the list file, so on a
    cluster the data directory must be on storage every node mounts at the same path."""

    def __init__(self, ray: Any, cpus: float = 1.0) -> None:
        self._ray = ray
        self._cpus = cpus
        self._tasks: dict[Any, Any] = {}

    def submit(self, fn: Any, /, *args: Any) -> _RayResult:
        if fn not in self._tasks:
            self._tasks[fn] = self._ray.remote(num_cpus=self._cpus, max_retries=2)(fn)
        return _RayResult(self._ray, self._tasks[fn].remote(*args))


@dataclass(frozen=True)
class _RayResult:
    ray: Any
    ref: Any

    def result(self) -> str:
        return str(self.ray.get(self.ref))

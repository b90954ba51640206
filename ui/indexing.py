"""Indexing a folder from the web page: `dualens index` run by the server in a process of its own.

The run is the command line's (``dualens index --progress-lines``): the same pipeline, locks and
messages. It runs in a child process, not a thread of the server, so the indexing lock (a POSIX
record lock, held per process) keeps its meaning: a `dualens index` in a terminal, a move aside of
the page and this run exclude one another. One run per data directory at a time is started from
the server (a second Start is refused in one line); the child's ``progress DONE TOTAL`` lines give
the progress, its last ``dualens: error:`` line the error, its summary the result. A finished run
is noticed by the page's next request (``Backend.refresh`` loads the newer index).

A folder typed into the page is checked before anything runs (:func:`check_folder`): absolute,
an existing readable folder, not the data directory, and inside the folders the server may read:
``$DUALENS_UI_ADD_FOLDERS`` (paths separated by ``os.pathsep``), else the user's home and the
collection's roots, judged by the UI's path guard (symlinks resolved).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from indexer.core.errors import UsageError
from indexer.core.text import printable
from ui.safety import PathGuard

ALLOWED_ENV = "DUALENS_UI_ADD_FOLDERS"
_PROJECT = Path(__file__).resolve().parents[1]
_ERROR = "dualens: error: "


@dataclass(frozen=True)
class Progress:
    """A run as the page shows it. ``total`` is None until the run has planned its work."""

    folder: str
    started: float
    done: int = 0
    total: int | None = None
    planned_at: float | None = None  # when the total was known: the rate counts from there
    finished: float | None = None
    text_done: int = 0  # the text stage's photos read, once it started (text_total set)
    text_total: int | None = None
    error: str | None = None
    summary: str = ""

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def rate(self) -> float | None:
        """Photos a second since the work was planned (None before the first photo)."""
        if self.planned_at is None or not self.done:
            return None
        elapsed = (self.finished or time.monotonic()) - self.planned_at
        return self.done / elapsed if elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None while unknown)."""
        rate = self.rate
        if rate is None or self.total is None:
            return None
        return max(0.0, (self.total - self.done) / rate)


def allowed_folders(roots: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The folders below which the page may add photos."""
    configured = [p for p in os.environ.get(ALLOWED_ENV, "").split(os.pathsep) if p.strip()]
    if configured:
        return [Path(p).expanduser() for p in configured]
    return [Path.home(), *(Path(r) for r in roots)]


def check_folder(raw: str, allowed: Sequence[Path], data_dir: str | os.PathLike[str]) -> Path:
    """The folder to index, resolved; UsageError in one line when the page may not index it."""
    text = raw.strip()
    if not text:
        raise UsageError("type the full path of a folder of photos")
    folder = Path(os.path.expanduser(text))
    shown = printable(text)
    if not folder.is_absolute() or ".." in folder.parts or "\x00" in text:
        raise UsageError(f"{shown} is not a full path: type it from the top, e.g. /home/me/Pictures")
    if not folder.is_dir():
        raise UsageError(f"there is no folder at {shown}")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UsageError(f"the server cannot read the folder {shown}")
    real = folder.resolve()
    if not PathGuard(allowed).inside_roots(real):
        places = ", ".join(printable(str(p)) for p in allowed) or "none"
        raise UsageError(
            f"{shown} is outside the folders this server may read ({places}); "
            f"start it with {ALLOWED_ENV}=/path/one:/path/two to allow others"
        )
    data = Path(data_dir).resolve()
    if real == data or data in real.parents or real in data.parents:
        raise UsageError(f"{shown} holds the collection's own data folder; choose the photos' folder")
    return real


class IndexRun:
    """One `dualens index` child process and what it has said so far."""

    def __init__(self, data_dir: str, folder: Path) -> None:
        self._lock = threading.Lock()
        self._progress = Progress(folder=str(folder), started=time.monotonic())
        command = [
            sys.executable, "-m", "ui.cli", "index", "--data", data_dir,
            "--no-progress", "--progress-lines", str(folder),
        ]  # fmt: skip
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by _follow)
        self._process = subprocess.Popen(
            command,
            cwd=_PROJECT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._follow, name="dualens-add-photos", daemon=True).start()

    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._progress = replace(self._progress, **changes)  # type: ignore[arg-type]

    def _follow(self) -> None:
        assert self._process.stdout is not None
        summary: list[str] = []
        for line in self._process.stdout:
            words = line.split()
            if len(words) == 3 and words[0] == "progress" and words[1].isdigit() and words[2].isdigit():
                done, total = int(words[1]), int(words[2])
                planned = self.progress().planned_at or time.monotonic()
                self._update(done=done, total=total, planned_at=planned)
            elif len(words) == 3 and words[0] == "text" and words[1].isdigit() and words[2].isdigit():
                self._update(text_done=int(words[1]), text_total=int(words[2]))
            elif line.startswith("indexed "):
                summary.append(line.strip())
        code = self._process.wait()
        self._stderr.seek(0)
        errors = [line[len(_ERROR) :].strip() for line in self._stderr if line.startswith(_ERROR)]
        self._stderr.close()
        error = None
        if code != 0:
            error = errors[-1] if errors else f"the indexer stopped (exit status {code}); see the server log"
        self._update(finished=time.monotonic(), error=error, summary=" ".join(summary))


_RUNS: dict[str, IndexRun] = {}
_RUNS_LOCK = threading.Lock()


def start(data_dir: str, folder: Path) -> IndexRun:
    """Start indexing ``folder`` (checked by :func:`check_folder`) into the collection in ``data_dir``;
    UsageError when a run started here is still going."""
    key = str(Path(data_dir).resolve())
    with _RUNS_LOCK:
        current = _RUNS.get(key)
        if current is not None and current.progress().running:
            raise UsageError(
                f"a run is in progress (adding {printable(current.progress().folder)}); wait for it to finish"
            )
        run = _RUNS[key] = IndexRun(data_dir, folder)
        return run


def latest(data_dir: str) -> IndexRun | None:
    """The run started last from this server for this collection, running or finished."""
    with _RUNS_LOCK:
        return _RUNS.get(str(Path(data_dir).resolve()))

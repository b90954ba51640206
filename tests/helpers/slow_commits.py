"""Make an indexer pause after each committed batch, so a test can kill it mid-run.

The production code has no test hook: this wraps :meth:`indexer.writer.BatchWriter.write` in the
process under test. Run ``python -m tests.helpers.slow_commits SECONDS dualens-args...`` for a
subprocess, or pass :func:`hook` as the ``pre`` code of the reliability fork server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def install(seconds: float) -> None:
    """Sleep ``seconds`` after every batch the indexer commits (in this process)."""
    from indexer.writer import BatchWriter

    original = BatchWriter.write
    if getattr(original, "_slowed", False):
        return

    def write(self, ops):  # type: ignore[no-untyped-def]
        outcome = original(self, ops)
        time.sleep(seconds)
        return outcome

    write._slowed = True  # type: ignore[attr-defined]
    BatchWriter.write = write  # type: ignore[method-assign]


def hook(seconds: float) -> str:
    """Python source that installs the pause (for the fork server's ``pre`` argument)."""
    return f"import tests.helpers.slow_commits as _slow; _slow.install({float(seconds)!r})"


def spawn(*args: str, pause_s: float = 0.0, **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """``dualens ARGS`` in a new process; with ``pause_s`` it pauses after each committed batch."""
    runner = ["-m", "tests.helpers.slow_commits", str(pause_s)] if pause_s else ["-m", "ui.cli"]
    return subprocess.Popen(
        [sys.executable, *runner, *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


if __name__ == "__main__":
    install(float(sys.argv[1]))
    from ui.cli import main

    sys.exit(main(sys.argv[2:]))

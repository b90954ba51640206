"""Make an indexer pause after each committed batch, so a test can kill it mid-run.

The production code has no test hook: this wraps :meth:`indexer.writer.BatchWriter.write` in the
process under test. Run ``python -m tests.helpers.slow_commits SECONDS dualens-args...`` for a
subprocess, or pass :func:`hook` as the ``pre`` code of the reliability fork server.
"""

from __future__ import annotations

import sys
import time


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


if __name__ == "__main__":
    install(float(sys.argv[1]))
    from ui.cli import main

    sys.exit(main(sys.argv[2:]))

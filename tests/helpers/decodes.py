"""Counting which files the indexer decodes (both decode paths), from the outside."""

from __future__ import annotations

from pathlib import Path

import pytest

import indexer.decode as decode_module
import indexer.decode_pool as pool_module


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files decoded from now on, in worker processes and in process (--workers 0)."""
    opened: list[str] = []
    real = pool_module.decode_file

    def counting(task, opts, known=frozenset()):  # type: ignore[no-untyped-def]
        opened.append(Path(task.path).name)
        return real(task, opts, known)

    monkeypatch.setattr(pool_module, "decode_file", counting)  # in a worker process
    monkeypatch.setattr(decode_module, "decode_file", counting)  # in process, with --workers 0
    return opened

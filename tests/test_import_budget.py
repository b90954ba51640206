"""Each `dualens` subcommand imports only what it uses (issue #31): a local search or check never loads
the web service's client or server, the UI, or PyTorch.

``python -X importtime`` of a new process lists every module it imported; the test asserts on module
names, never on times. PIL is allowed where the command can read an image: ``search`` (a composite
query may hold a photo) and ``similar`` (any image file), and ``--help``, which registers the model
builders (their option list comes from the model layer, which imports PIL).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.core.settings import DB_URL_ENV
from ui.cli import COMMANDS, build_parser, command_module

ROOT = Path(__file__).resolve().parents[1]
NEVER = ("httpx", "uvicorn", "streamlit", "fastapi", "starlette", "torch", "transformers", "ray")
IMAGE_READERS = {"search", "similar", "--help"}
OTHER_COMMAND_MODULES = ("indexer.model_commands", "indexer.quality.commands", "ui.commands", "ui.remote")
PROCESS_POOLS = (
    "multiprocessing",
    "concurrent.futures.process",
)  # only the writers of IVF-PQ shards use them


def imported_modules(argv: list[str]) -> set[str]:
    """Every module a new ``dualens`` process imports to run ``argv``, which must succeed."""
    env = {k: v for k, v in os.environ.items() if k not in (DB_URL_ENV, "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ui.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", done.stderr, re.MULTILINE))


@pytest.mark.parametrize(
    "command",
    [["search", "a dog on a beach"], ["similar", "1"], ["check"], ["--help"]],
    ids=lambda command: command[0],
)
def test_a_subcommand_imports_no_web_service_ui_or_torch(
    command: list[str], api_world: tuple[Path, Path]
) -> None:
    data = ["--data", str(api_world[0])] if command[0] != "--help" else []
    modules = imported_modules([command[0], *data, *command[1:]])
    packages = {name.split(".")[0] for name in modules}
    assert "indexer" in packages  # the listing was read
    assert sorted(packages & set(NEVER)) == []
    if command[0] not in IMAGE_READERS:
        assert "PIL" not in packages
    if (
        command[0] != "--help"
    ):  # a read of the collection starts no worker processes: never loads their modules
        assert sorted(modules & set(PROCESS_POOLS)) == []
    if command[0] == "search":  # the query ran: its text tower was loaded
        assert {"onnxruntime", "tokenizers", "faiss"} <= packages
        assert sorted(modules & set(OTHER_COMMAND_MODULES)) == []


def test_the_command_table_names_exactly_what_each_module_registers() -> None:
    for module, names in COMMANDS.items():
        assert command_module(module).__name__ == module
        assert _commands(build_parser(names[0])) == list(names)
    assert _commands(build_parser()) == [name for names in COMMANDS.values() for name in names]
    assert _commands(build_parser("no-such-command")) == _commands(build_parser())


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(subparsers.choices)

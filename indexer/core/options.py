"""The options the ``dualens`` subcommands share: one declaration each, with its checked range.

Every count and size is parsed by :func:`int_in` or :func:`float_in`, so an impossible value (``serve
--workers 0``, ``train --batch-size -1``) is refused while the command line is read, in one line,
before anything starts. Defaults that come from the environment (``--data``, ``--db``,
``--backend``) are left None here and resolved once, by :meth:`~indexer.core.settings.Settings.resolve`.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
from collections.abc import Callable
from typing import NoReturn

from indexer.core.settings import BACKEND_ENV, BACKENDS, DB_URL_HELP

MAX_PORT = 65535
MAX_BATCH = 65_536  # images or texts in one inference batch
MAX_WORKERS = 1024  # processes or actors of one command
MAX_THREADS = 1024


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if number < low or (high is not None and number > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {number}")
        return number

    parse.__name__ = "whole number"  # what argparse names in its own messages
    return parse


def float_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[low, high]`` (``low_open``: ``(low, high]``)."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        below = number <= low if low_open else number < low
        if not math.isfinite(number) or below or number > high:
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {bracket}{low:g}, {high:g}], not {text}")
        return number

    parse.__name__ = "number"
    return parse


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes read like every other dualens error: one line, exit status 2
    (``dualens: error: --workers must be from 1 to 64, not 0 (see `dualens serve --help`)``)."""

    def error(self, message: str) -> NoReturn:
        checked = re.match(r"argument ([^:]+): (must be .*)", message)
        if checked:  # "argument -w/--workers: must be ..." -> "--workers must be ..."
            message = f"{checked[1].split('/')[-1]} {checked[2]}"
        message = _with_suggestion(message)
        self.exit(2, f"dualens: error: {message} (see `{self.prog} --help`)\n")


def _with_suggestion(message: str) -> str:
    """argparse's "invalid choice" message in one short line, with the closest choice suggested
    (``unknown command 'serach'; did you mean `search`?``) instead of the list of every choice."""
    found = re.match(r"argument ([^:]+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if not found:
        return message
    what, given = found[1].split("/")[-1], found[2]
    choices = re.findall(r"'([^']*)'", found[3])
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
    name = "command" if what == "COMMAND" else f"choice for {what}"
    hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(choices)}"
    return f"unknown {name} {given!r}; {hint}"


positive = int_in(1)
non_negative = int_in(0)
port = int_in(1, MAX_PORT)


def common_options() -> argparse.ArgumentParser:
    """``--data``, ``--db`` and ``-v``: every subcommand accepts them (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="collection data directory (default: $DUALENS_DATA, else data/ in a checkout, "
        "else the platform's data directory, e.g. ~/.local/share/dualens)",
    )
    common.add_argument("--db", metavar="URL", default=None, help=DB_URL_HELP)
    common.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    return common


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend auto|torch|onnx`` (the inference backend), shared by every command that embeds."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="inference backend: onnx (ONNX Runtime, exported once per model), torch, or auto "
        f"(ONNX unless only PyTorch can use a GPU here); default ${BACKEND_ENV} or auto",
    )


def add_precision(parser: argparse.ArgumentParser, what: str) -> None:
    """``--precision fp32|int8``: the towers' numeric precision (int8: quantised, see docs/models.md)."""
    parser.add_argument("--precision", choices=("fp32", "int8"), default=None, help=what)


def add_engine(parser: argparse.ArgumentParser, engine_help: str, address_help: str) -> None:
    """``--engine local|ray`` and ``--ray-address ADDR``."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help=engine_help)
    parser.add_argument("--ray-address", metavar="ADDR", default=None, help=address_help)


def add_count(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    low: int = 1,
    high: int | None = None,
    default: int | None = None,
    help: str,
    metavar: str | None = None,
) -> None:
    """A whole-number option checked to lie in ``[low, high]``."""
    parser.add_argument(flag, type=int_in(low, high), default=default, help=help, metavar=metavar)


def add_port(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--port", type=port, default=default, help=f"port to listen on (default {default})")


def add_paging(parser: argparse.ArgumentParser, *, max_k: int, max_offset: int) -> None:
    """``-k`` (results, 1 to ``max_k``) and ``--offset`` (results skipped, 0 to ``max_offset``)."""
    parser.add_argument(
        "-k", type=int_in(1, max_k), default=20, help=f"number of results, 1 to {max_k} (default 20)"
    )
    parser.add_argument(
        "--offset", type=int_in(0, max_offset), default=0, help="skip this many results (paging)"
    )

"""The ``dualens`` command: one parser, subcommands contributed by indexer, quality, search and ui.

Library code raises :class:`~indexer.core.errors.DualensError`; this is the one place that turns
such an error into a one-line message and an exit code, so a user never sees a traceback for a
mistake of theirs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from indexer import commands as index_commands
from indexer import model_commands
from indexer.core.errors import DualensError, UsageError
from indexer.core.settings import DB_URL_ENV, DB_URL_HELP
from indexer.quality import commands as quality_commands
from search import commands as search_commands
from ui import commands as ui_commands

# Each module exposes ``register(subparsers, common)`` and sets ``func`` on its subparsers; each is
# light to import (no torch, no transformers): `dualens --help` stays fast.
COMMAND_MODULES = (
    model_commands,
    index_commands,
    search_commands,
    quality_commands,
    ui_commands,
)


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="collection data directory (default: $DUALENS_DATA or data/ in the project)",
    )
    common.add_argument("--db", metavar="URL", default=None, help=DB_URL_HELP)
    common.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualens",
        description="Find photos by describing them or by showing one.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()
    for module in COMMAND_MODULES:
        module.register(subparsers, common)
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # transformers and HF hub are chatty; keep the terminal for dualens' own output.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    before = os.environ.get(DB_URL_ENV)
    try:
        if args.db is not None:  # every command, and the processes it starts, use this database
            if not args.db.strip():
                raise UsageError("--db must be a database URL; it is empty")
            os.environ[DB_URL_ENV] = args.db
        return int(args.func(args) or 0)
    except DualensError as exc:
        print(f"dualens: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dualens: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:  # main() may be called more than once in a process (tests, embedding programs)
        if before is None:
            os.environ.pop(DB_URL_ENV, None)
        else:
            os.environ[DB_URL_ENV] = before


if __name__ == "__main__":
    sys.exit(main())

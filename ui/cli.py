"""The ``dualens`` command: one parser, subcommands contributed by indexer, quality, search and ui.

Library code raises :class:`~indexer.core.errors.DualensError`; this is the one place that turns
such an error into a one-line message and an exit code, so a user never sees a traceback for a
mistake of theirs. It is also where the settings are resolved, once (``--data``, ``--db``,
``--backend``, then the environment, then the platform's defaults), into ``args.settings``: every
command takes them from there, and no command writes them into the process environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from indexer import commands as index_commands
from indexer import model_commands
from indexer.core.errors import DualensError
from indexer.core.options import Parser
from indexer.core.options import common_options as common_options
from indexer.core.settings import Settings, shown_db_url
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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0), or a mistake on the command line (2, said in one line)
        return exc.code if isinstance(exc.code, int) else 2
    _configure_logging(args.verbose)
    try:
        settings = Settings.resolve(args.data, args.db, getattr(args, "backend", None))
        args.settings = settings
        # the namespace carries the resolved values too, for the commands that read args.data
        args.data, args.db = str(settings.data_dir), settings.db_url
        if hasattr(args, "backend"):
            args.backend = settings.backend
        if getattr(args, "names_collection", False) and not settings.data_given:
            where = shown_db_url(settings.db_url) if settings.db_url else settings.data_dir
            print(f"dualens: note: using the collection in {where}", file=sys.stderr)
        return int(args.func(args) or 0)
    except DualensError as exc:
        print(f"dualens: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dualens: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

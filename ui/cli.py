"""The ``dualens`` command: one parser, subcommands contributed by indexer, quality, search and ui,
imported only when chosen.

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
from types import ModuleType

from indexer.core.errors import DualensError
from indexer.core.options import Parser
from indexer.core.options import common_options as common_options
from indexer.core.settings import Settings, installed_version, shown_db_url

# The subcommands each commands module registers, in `dualens --help` order. Only the module of the
# command named on the command line is imported (a local search loads neither the web service's
# client nor the model builders); `dualens --help` and a mistyped command import them all. Each
# module is light to import: its commands' own imports sit in the functions that run them, and
# tests/test_import_budget.py keeps it so.
COMMANDS: dict[str, tuple[str, ...]] = {
    "indexer.model_commands": ("build-default-model", "export-default-head", "build-model"),
    "indexer.commands": ("index", "check", "errors", "rebuild-index"),
    "search.commands": ("search", "similar", "classify", "index-info", "duplicates"),
    "indexer.quality.commands": ("eval", "train"),
    "ui.commands": ("ui", "serve"),
}


def command_module(name: str) -> ModuleType:
    """Import one commands module of :data:`COMMANDS` (plain imports: tests/test_layout.py sees them).

    Each exposes ``register(subparsers, common)``, which adds its subcommands and sets ``func``.
    """
    match name:
        case "indexer.model_commands":
            from indexer import model_commands

            return model_commands
        case "indexer.commands":
            from indexer import commands

            return commands
        case "search.commands":
            from search import commands as search_commands

            return search_commands
        case "indexer.quality.commands":
            from indexer.quality import commands as quality_commands

            return quality_commands
        case "ui.commands":
            from ui import commands as ui_commands

            return ui_commands
    raise KeyError(name)


def module_of(command: str | None) -> str | None:
    """The commands module that registers ``command``, None when no module does."""
    return next((module for module, names in COMMANDS.items() if command in names), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``dualens`` parser: with ``command``, only the subcommands of the module that registers it
    (enough to parse that command line); else, or when no module registers it, every subcommand."""
    parser = Parser(
        prog="dualens",
        description="Find photos by describing them or by showing one.",
    )
    parser.add_argument("--version", action="store_true", help="print dualens's version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()
    chosen = module_of(command)
    for name in [chosen] if chosen else COMMANDS:
        command_module(name).register(subparsers, common)
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # transformers and HF hub are chatty; keep the terminal for dualens' own output.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


_LEADING_VALUE_OPTIONS = ("--data", "--db")  # common options (common_options) that take a value
_LEADING_FLAGS = ("-v", "--verbose")


def command_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with the common options written before the command (``dualens --data X search …``)
    moved after it, where the command's parser reads them; anything else is left as it is."""
    lead: list[str] = []
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        option = rest[0]
        if option in _LEADING_FLAGS or any(option.startswith(o + "=") for o in _LEADING_VALUE_OPTIONS):
            lead.append(rest.pop(0))
        elif option in _LEADING_VALUE_OPTIONS and len(rest) > 1:
            lead += [rest.pop(0), rest.pop(0)]
        else:
            return list(argv)  # --help, --version, an unknown option: the parser says what it is
    return [rest[0], *lead, *rest[1:]] if rest and lead else list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = command_first(sys.argv[1:] if argv is None else list(argv))
    if argv[:1] == ["--version"]:
        print(f"dualens {installed_version()}")
        return 0
    # the subcommand is the first word: every option is the subcommand's (common_options)
    parser = build_parser(argv[0] if argv else None)
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

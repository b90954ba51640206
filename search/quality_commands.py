"""Subcommands of ``dualens`` contributed by this package (see ui/cli.py)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands. Each subparser sets ``func(args) -> int``."""

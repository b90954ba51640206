"""Streamlit entry script: ``streamlit run ui/app.py -- --data DIR`` (``dualens ui`` runs this).

The data directory comes from ``--data`` after ``--`` or from ``$DUALENS_DATA``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[1]
if str(_PROJECT) not in sys.path:  # streamlit puts ui/ on sys.path, not the project
    sys.path.insert(0, str(_PROJECT))

from ui.page import main  # noqa: E402


def _data_option(argv: list[str]) -> str | None:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--data", default=None)
    known, _ = parser.parse_known_args(argv)
    return known.data


main(_data_option(sys.argv[1:]))

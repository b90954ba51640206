"""Streamlit entry script: ``streamlit run ui/app.py -- --data DIR`` (``dualens ui`` runs this).

The data directory comes from ``--data`` after ``--`` or from ``$DUALENS_DATA``. The page shell
(style and title) is drawn first; the model layer, whose import takes seconds on a fresh server,
is imported after it, under a spinner.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[1]
if str(_PROJECT) not in sys.path:  # streamlit puts ui/ on sys.path, not the project
    sys.path.insert(0, str(_PROJECT))

import streamlit as st  # noqa: E402

from ui import chrome  # noqa: E402


def _data_option(argv: list[str]) -> str | None:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--data", default=None)
    known, _ = parser.parse_known_args(argv)
    return known.data


# "auto": the sidebar starts collapsed on a phone (it opened over the search box) and open on a desktop
st.set_page_config(page_title="dualens", page_icon="🔎", layout="wide", initial_sidebar_state="auto")
chrome.inject_css()
chrome.page_script()
chrome.header()
with st.spinner("Starting dualens: loading the model layer…"):
    from ui import page  # seconds on a fresh server; cached by Python afterwards
page.main(_data_option(sys.argv[1:]))

"""Streamlit entry script: ``streamlit run ui/app.py -- --data DIR`` (``dualens ui`` runs this).

The data directory comes from ``--data`` after ``--`` or from ``$DUALENS_DATA``. The page shell
(style and title) is drawn first, then, while the collection's backend is still loading on this
server (ui/warmup.py), the search box and a loading note; the page's modules, whose import takes
seconds on a fresh server, are imported only after that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[1]
if str(_PROJECT) not in sys.path:  # streamlit puts ui/ on sys.path, not the project
    sys.path.insert(0, str(_PROJECT))

import streamlit as st  # noqa: E402

from ui import chrome, warmup  # noqa: E402


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
data = _data_option(sys.argv[1:])
warmup.while_loading(data)  # the first visit after the start: the search box at once, a rerun when loaded
with st.spinner("Starting dualens: loading the model layer…"):
    from ui import page  # seconds on a fresh server; cached by Python afterwards
page.main(data)

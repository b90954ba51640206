"""``python -m ui.launch STREAMLIT-ARGS``: the web UI's server process (``dualens ui`` runs it).

It starts loading the collection's backend (model, FAISS index, database) in a background thread
at once (ui/warmup.py), its text tower first (search/prestart.py: before Streamlit and the page's
modules are imported), then runs Streamlit in this process; the rest of the load (CPU-bound imports,
the collection's open) starts as soon as Streamlit's server has started, before a browser connects.
The first visitor therefore does not wait for the model from scratch: the page draws its search box
at once and a loading note until that same load has finished, and every later page finds it loaded.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("dualens.ui")

READY = "dualens: the collection is loaded"  # printed once the backend is ready (tests wait for it)


def _data_dir(argv: list[str]) -> str | None:
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    return rest[rest.index("--data") + 1] if "--data" in rest[:-1] else None


def _server_started(timeout_s: float = 60.0) -> None:
    """Return once Streamlit's runtime in this process has started (or after ``timeout_s``); imports nothing.

    The backend's CPU-bound part waits for it: on a busy machine it would otherwise slow Streamlit's own
    start, and with it the search box, which needs the server and not the backend.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runtime = getattr(sys.modules.get("streamlit.runtime.runtime"), "Runtime", None)
        if runtime is not None and runtime.exists() and runtime.instance().state.name != "INITIAL":
            return
        time.sleep(0.05)


def _warm(data: str | None, after_text_tower: Callable[[], object] | None = None) -> None:
    """Load the collection's backend (ui/warmup.py: the load the page waits for); say when it is ready."""
    import os

    from ui import warmup

    if os.environ.get(warmup.API_URL_ENV):
        return  # a client of a `dualens serve`: nothing to load here
    try:
        load = warmup.begin(warmup.data_dir_of(data), after_text_tower)
    except Exception as exc:  # a --data that is no folder: the page says so on the first visit
        log.info("the collection was not loaded at start: %s", exc)
        return
    load.done.wait()
    if load.error is None:
        print(READY, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    warm = threading.Thread(target=_warm, args=(_data_dir(args), _server_started), name="dualens-ready")
    warm.daemon = True
    warm.start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *args]
    cli.main()


if __name__ == "__main__":
    main()

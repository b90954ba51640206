"""``python -m ui.launch STREAMLIT-ARGS``: the web UI's server process (``dualens ui`` runs it).

It starts loading the collection's backend (model, FAISS index, database) in a background thread
at once (ui/warmup.py), its text tower first (search/prestart.py: before Streamlit and the page's
modules are imported), then runs Streamlit in this process. The first visitor therefore does not
wait for the model from scratch: the page draws its search box at once and a loading note until
that same load has finished, and every later page finds it loaded.
"""

from __future__ import annotations

import logging
import sys
import threading

log = logging.getLogger("dualens.ui")

READY = "dualens: the collection is loaded"  # printed once the backend is ready (tests wait for it)


def _data_dir(argv: list[str]) -> str | None:
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    return rest[rest.index("--data") + 1] if "--data" in rest[:-1] else None


def _warm(data: str | None) -> None:
    """Load the collection's backend (ui/warmup.py: the load the page waits for); say when it is ready."""
    import os

    from ui import warmup

    if os.environ.get(warmup.API_URL_ENV):
        return  # a client of a `dualens serve`: nothing to load here
    try:
        load = warmup.begin(warmup.data_dir_of(data))
    except Exception as exc:  # a --data that is no folder: the page says so on the first visit
        log.info("the collection was not loaded at start: %s", exc)
        return
    load.done.wait()
    if load.error is None:
        print(READY, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    threading.Thread(target=_warm, args=(_data_dir(args),), name="dualens-warm-up", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *args]
    cli.main()


if __name__ == "__main__":
    main()

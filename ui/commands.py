"""Subcommands of ``dualens`` contributed by this package (see ui/cli.py).

``dualens ui [--data DIR] [--port 8501] [--host 127.0.0.1]`` serves the web UI with
``streamlit run ui/app.py``: headless, on localhost unless told otherwise, with the data
directory passed both as a script argument and, with the other settings, in the server's
environment (:meth:`~indexer.core.settings.Settings.child_environ`): the only way settings travel
through the environment is to a child process.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from indexer.core import options as opts
from indexer.core.errors import UsageError
from indexer.core.settings import Settings
from ui import theme
from ui.config import UiConfig, read_api_key

APP = Path(__file__).resolve().parent / "app.py"
MAX_SERVE_WORKERS = 64


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands. Each subparser sets ``func(args) -> int``."""
    parser = subparsers.add_parser(
        "ui",
        parents=[common],
        help="open the web UI (Streamlit) on the collection",
        description="Serve the search UI for a collection in the browser.",
    )
    opts.add_port(parser, 8501)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--api",
        default=None,
        metavar="URL",
        help="use the search service of a `dualens serve` at URL instead of loading the model and index here",
    )
    parser.add_argument(
        "--api-key-file", default=None, metavar="PATH", help="with --api: the service's API key, in this file"
    )
    opts.add_backend(parser)
    parser.set_defaults(func=run_ui)

    parser = subparsers.add_parser(
        "serve",
        parents=[common],
        help="serve the HTTP JSON API (search, similar, classify, photos) on the collection",
        description="A read-only HTTP JSON API over the collection (OpenAPI schema at /openapi.json, "
        "interactive docs at /docs). Several worker processes share the index files.",
    )
    opts.add_port(parser, 8000)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    opts.add_count(
        parser, "--workers", high=MAX_SERVE_WORKERS, default=1, help="server processes (default 1)"
    )
    parser.add_argument(
        "--api-key-file", default=None, metavar="PATH", help="require the key in this file on every request"
    )
    opts.add_backend(parser)
    parser.set_defaults(func=run_serve)


def streamlit_argv(data_dir: Path, host: str, port: int, config: UiConfig | None = None) -> list[str]:
    """The ``streamlit run`` command line for one data directory."""
    cfg = config or UiConfig.from_env()
    return [
        sys.executable,
        "-m",
        "ui.launch",  # streamlit, with the collection loading from the start (ui/launch.py)
        "run",
        str(APP),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        f"--server.maxUploadSize={cfg.max_upload_mb}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--client.showErrorDetails=none",
        "--client.toolbarMode=minimal",
        *theme.STREAMLIT_FLAGS,  # a light and a dark theme: the page follows the system (ui/theme.py)
        "--",
        "--data",
        str(data_dir),
    ]


def _check_port_free(host: str, port: int) -> None:
    """UsageError, before anything is announced, when the address cannot be served (port taken)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise UsageError(
            f"cannot serve on {host}:{port} ({exc.strerror or exc}); choose another port with --port"
        ) from exc


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from search import Searcher
    from ui.remote import API_KEY_FILE_ENV

    if not 1 <= int(args.port) <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, not {args.port}")
    if not 1 <= int(args.workers) <= MAX_SERVE_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_SERVE_WORKERS}, not {args.workers}")
    settings = _settings(args)
    data_dir = settings.data_dir
    # no collection, a database that does not answer: one line now, not in each worker
    with Searcher.open(data_dir, backend=settings.backend, db_url=settings.db_url):
        pass
    if args.api_key_file:
        read_api_key(args.api_key_file)
    _check_port_free(args.host, int(args.port))
    # uvicorn builds the app in this process or in its worker processes, from the environment
    child = settings.child_environ(os.environ)
    for name in set(os.environ) - set(child):
        del os.environ[name]
    os.environ.update(child)
    if args.api_key_file:
        os.environ[API_KEY_FILE_ENV] = str(Path(args.api_key_file).resolve())
    url = f"http://{args.host}:{args.port}"
    print(
        f"dualens: serving the API of {data_dir} at {url}  (docs: {url}/docs; Ctrl-C to stop)",
        file=sys.stderr,
    )
    uvicorn.run(
        "ui.api:app_from_env",
        factory=True,
        host=args.host,
        port=int(args.port),
        workers=int(args.workers),
        log_level="warning",
        limit_concurrency=256,
        timeout_keep_alive=5,
    )
    return 0


def run_ui(args: argparse.Namespace) -> int:
    from ui.config import API_KEY_FILE_ENV, API_URL_ENV  # not ui.remote's: it loads the HTTP client

    if not 1 <= int(args.port) <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, not {args.port}")
    settings = _settings(args)
    data_dir = settings.data_dir
    env = settings.child_environ(os.environ)
    if args.api:
        _check_service(args.api, args.api_key_file)
        env[API_URL_ENV] = args.api
        if args.api_key_file:
            env[API_KEY_FILE_ENV] = str(Path(args.api_key_file).resolve())
        source = f"{args.api} (a remote dualens serve)"
    else:
        if args.api_key_file:
            raise UsageError("--api-key-file goes with --api URL (the search service's key)")
        if not settings.paths.exists():
            print(
                f"dualens: note: no collection in {data_dir} yet; the page will say how to make one",
                file=sys.stderr,
            )
        source = str(data_dir)
        env.pop(API_URL_ENV, None)
    _check_port_free(args.host, int(args.port))
    print(f"dualens: serving {source} at http://{args.host}:{args.port}  (Ctrl-C to stop)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = streamlit_argv(data_dir, args.host, int(args.port))
    # Replace this process: Ctrl-C and SIGTERM reach streamlit directly and no child is orphaned.
    os.execve(argv[0], argv, env)
    return 0  # not reached


def _settings(args: argparse.Namespace) -> Settings:
    """The settings ``dualens`` resolved (``args.settings``); resolved here for a namespace built
    without it (a direct call)."""
    given = getattr(args, "settings", None)
    if isinstance(given, Settings):
        return given
    return Settings.resolve(
        getattr(args, "data", None), getattr(args, "db", None), getattr(args, "backend", None)
    )


def _check_service(url: str, key_file: str | None) -> None:
    """A DualensError (one line) unless a `dualens serve` answers at ``url`` and takes the key."""
    from ui.remote import RemoteBackend

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--api {url!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8000)")
    RemoteBackend.open(url, api_key=read_api_key(key_file) if key_file else None).close()

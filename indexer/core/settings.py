"""Where things live and how dualens runs: resolved once, at the entry point, into one :class:`Settings`.

Order: flags, then the environment (``$DUALENS_DATA``, ``$DUALENS_DB_URL``, ``$DUALENS_BACKEND``,
``$DUALENS_DEFAULT_MODEL_DIR``), then the platform's defaults. A checkout (the source tree, with
pyproject.toml beside the packages: what ``make index`` runs) keeps its collection in ``data/``; an
installed dualens uses the platform's data directory (``~/.local/share/dualens`` on Linux), never
site-packages. The environment only hands settings to child processes (:meth:`Settings.child_environ`);
the Python API (``Searcher.open(data)``, ``run_index``) resolves its defaults the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import platformdirs

from indexer.core.errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def is_checkout(root: Path) -> bool:
    """Whether ``root`` (the folder above the ``indexer`` package) is dualens' source tree, not an
    installation's site-packages: pyproject.toml lies beside the packages only in a checkout."""
    return (root / "pyproject.toml").is_file() and (root / "indexer").is_dir()


def platform_default_data(root: Path = PROJECT_ROOT) -> Path:
    """The data directory used without --data or $DUALENS_DATA: ``data/`` in a checkout (what
    ``make index`` fills), else the platform's user data directory (never site-packages)."""
    return root / "data" if is_checkout(root) else platformdirs.user_data_path("dualens", appauthor=False)


DEFAULT_DATA = platform_default_data()
PROJECT_DATA = DEFAULT_DATA  # its older name

DATA_ENV = "DUALENS_DATA"
DB_URL_ENV = "DUALENS_DB_URL"
DB_URL_HELP = (
    "collection database URL, e.g. postgresql+psycopg://user@host/dualens "
    f"(default: ${DB_URL_ENV}, else the SQLite file in the data directory)"
)
BACKEND_ENV = "DUALENS_BACKEND"  # default of --backend: auto, torch or onnx
BACKENDS = ("auto", "torch", "onnx")
DEFAULT_MODEL_ENV = "DUALENS_DEFAULT_MODEL_DIR"
DEFAULT_MODEL_NAME = "default"


def resolve_data_dir(
    data: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """``--data`` if given, else ``$DUALENS_DATA``, else :data:`DEFAULT_DATA`.

    UsageError for an empty ``--data`` (it would silently mean the default folder) and for one
    that is a file.
    """
    env = os.environ if environ is None else environ
    if data is not None and not os.fspath(data).strip():
        raise UsageError("--data must name a folder; it is empty")
    raw = data if data is not None else env.get(DATA_ENV)
    try:
        path = Path(raw).expanduser().resolve() if raw else DEFAULT_DATA
    except (OSError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--data {raw!r} is not a usable folder path ({exc})") from exc
    if path.exists() and not path.is_dir():
        raise UsageError(f"--data {path} is a file; give the folder of a collection")
    return path


def default_model_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Directory of the offline default model (built on first use): shared by every collection.

    ``$DUALENS_DEFAULT_MODEL_DIR``, else ``models/default`` in :data:`DEFAULT_DATA`.
    """
    raw = (os.environ if environ is None else environ).get(DEFAULT_MODEL_ENV)
    return Path(raw).expanduser().resolve() if raw else DEFAULT_DATA / "models" / DEFAULT_MODEL_NAME


def shown_db_url(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def check_db_url(url: str) -> str:
    """``url`` when it can name a collection's database; else UsageError, one line.

    Refused: an empty URL, a port that is not a number from 0 to 65535, a broken ``[IPv6]`` host,
    and an in-memory SQLite database (the collection would vanish when the process ends).
    """
    if not url.strip():
        raise UsageError("--db must be a database URL; it is empty")
    shown = shown_db_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        raise UsageError(f"the database URL {shown} is not valid: {exc}") from exc
    if parts.scheme.split("+")[0] == "sqlite":
        in_memory = parts.path in ("", "/", "/:memory:") or "memory" in parse_qs(parts.query).get("mode", [])
        if in_memory:
            raise UsageError(
                f"the database URL {shown} is an in-memory database: the collection would vanish when "
                "dualens exits; give a file (sqlite:////path/to/file.sqlite) or leave --db out"
            )
    return url


def resolve_db_url(db_url: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """``--db`` if given, else ``$DUALENS_DB_URL``, else None (the data directory's SQLite file); checked."""
    if db_url is not None:
        return check_db_url(db_url)
    raw = (os.environ if environ is None else environ).get(DB_URL_ENV)
    return check_db_url(raw) if raw else None


def resolve_backend(backend: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``--backend`` if given, else ``$DUALENS_BACKEND`` when it names a backend, else ``auto``."""
    if backend is not None:
        if backend not in BACKENDS:
            raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        return backend
    value = (os.environ if environ is None else environ).get(BACKEND_ENV, "").strip().lower()
    return value if value in BACKENDS else "auto"


OCR_ENV = (
    "DUALENS_OCR"  # "off" (or 0, no, false): index without reading the text in photos; "gate": the text gate
)
_OFF = ("off", "0", "no", "false")


def ocr_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether indexing reads the text in photos when ``--no-ocr`` is not given: yes, unless
    ``$DUALENS_OCR`` says off (``off``, ``0``, ``no`` or ``false``); ``gate`` reads the photos the text
    gate lets through (indexer/ocr_gate.py), ``all`` every photo (as on); any other value is an error."""
    value = (os.environ if environ is None else environ).get(OCR_ENV, "").strip().lower()
    if value in ("", "on", "1", "yes", "true", "all", "gate"):
        return True
    if value in _OFF:
        return False
    raise UsageError(f"${OCR_ENV} must be on or off, not {value!r}")


def default_backend() -> str:
    """``$DUALENS_BACKEND`` when it names a backend, else ``auto``."""
    return resolve_backend(None)


@dataclass(frozen=True)
class Settings:
    """One resolved configuration: resolved once at the entry point, then passed down explicitly.

    ``db_url`` None means the data directory's own SQLite file. ``data_given``: whether ``--data`` or
    ``$DUALENS_DATA`` chose ``data_dir`` (False: the default, which commands then name).
    """

    data_dir: Path
    db_url: str | None
    backend: str
    default_model_dir: Path
    data_given: bool

    @classmethod
    def resolve(
        cls,
        data: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        backend: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Flags (the arguments), then ``environ`` (default: the process environment), then defaults.

        UsageError (one line) for a value that cannot work: an empty or file ``--data``, a bad URL.
        """
        env = os.environ if environ is None else environ
        return cls(
            data_dir=resolve_data_dir(data, env),
            db_url=resolve_db_url(db_url, env),
            backend=resolve_backend(backend, env),
            default_model_dir=default_model_dir(env),
            data_given=data is not None or bool(env.get(DATA_ENV)),
        )

    @property
    def paths(self) -> CollectionPaths:
        return CollectionPaths(self.data_dir, self.db_url)

    def child_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with these settings in the variables a child process (a Streamlit or uvicorn
        worker, a Ray worker) resolves its own :class:`Settings` from."""
        env = dict(base)
        env[DATA_ENV] = str(self.data_dir)
        env[BACKEND_ENV] = self.backend
        env[DEFAULT_MODEL_ENV] = str(self.default_model_dir)
        if self.db_url:
            env[DB_URL_ENV] = self.db_url
        else:
            env.pop(DB_URL_ENV, None)
        return env


@dataclass(frozen=True)
class CollectionPaths:
    """The files of one collection inside its data directory."""

    root: Path
    db_url: str | None = None  # a database server's URL; None: the SQLite file in ``root``

    @property
    def database(self) -> Path:
        return self.root / "dualens.sqlite"

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def database_url(self) -> str:
        return self.db_url or self.default_database_url

    @property
    def uses_sqlite_file(self) -> bool:
        """Whether the database is the data directory's own SQLite file (not a server's URL)."""
        return self.database_url == self.default_database_url

    def exists(self) -> bool:
        """Whether there may be a collection to open (cheap: a database server is asked on opening)."""
        return not self.uses_sqlite_file or self.database.exists()

    @property
    def vector_index(self) -> Path:
        return self.root / "vectors.faiss"

    @property
    def visual_index(self) -> Path:
        """The FAISS index of the visual vectors (image-to-image search), when the model has them."""
        return self.root / "visual.faiss"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def lock(self) -> Path:
        return self.root / ".index.lock"

    @classmethod
    def from_option(
        cls, data: str | os.PathLike[str] | None = None, db_url: str | None = None
    ) -> CollectionPaths:
        """``data`` and ``db_url`` resolved as :meth:`Settings.resolve` does (flag, environment, default)."""
        return cls(resolve_data_dir(data), resolve_db_url(db_url))


def installed_version() -> str:
    """dualens's version as installed (``pip install -e .`` in a checkout too); "unknown" when not."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dualens")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"

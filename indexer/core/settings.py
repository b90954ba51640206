"""Where things live: the collection's data directory and the default model directory."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from indexer.core.errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DATA = PROJECT_ROOT / "data"

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


def resolve_data_dir(data: str | os.PathLike[str] | None = None) -> Path:
    """``--data`` if given, else ``$DUALENS_DATA``, else ``data/`` in the project.

    UsageError for an empty ``--data`` (it would silently mean the project's folder) and for one
    that is a file.
    """
    if data is not None and not os.fspath(data).strip():
        raise UsageError("--data must name a folder; it is empty")
    raw = data if data is not None else os.environ.get(DATA_ENV)
    try:
        path = Path(raw).expanduser().resolve() if raw else PROJECT_DATA
    except (OSError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--data {raw!r} is not a usable folder path ({exc})") from exc
    if path.exists() and not path.is_dir():
        raise UsageError(f"--data {path} is a file; give the folder of a collection")
    return path


def default_model_dir() -> Path:
    """Directory of the offline default model (built on first use): shared by every collection."""
    raw = os.environ.get(DEFAULT_MODEL_ENV)
    return Path(raw).expanduser().resolve() if raw else PROJECT_DATA / "models" / DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class CollectionPaths:
    """The files of one collection inside its data directory."""

    root: Path
    db_url: str | None = None  # a database server's URL; None: $DUALENS_DB_URL, else the SQLite file

    @property
    def database(self) -> Path:
        return self.root / "dualens.sqlite"

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def database_url(self) -> str:
        return self.db_url or os.environ.get(DB_URL_ENV) or self.default_database_url

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
        if db_url is not None and not db_url.strip():
            raise UsageError("--db must be a database URL; it is empty")
        return cls(resolve_data_dir(data), db_url or None)


def default_backend() -> str:
    """``$DUALENS_BACKEND`` when it names a backend, else ``auto``."""
    value = os.environ.get(BACKEND_ENV, "").strip().lower()
    return value if value in BACKENDS else "auto"


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend auto|torch|onnx`` (the inference backend), shared by every command that embeds."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default_backend(),
        help="inference backend: onnx (ONNX Runtime, exported once per model), torch, or auto "
        f"(ONNX unless only PyTorch can use a GPU here); default ${BACKEND_ENV} or auto",
    )

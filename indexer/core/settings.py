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
BACKEND_ENV = "DUALENS_BACKEND"  # default of --backend: auto, torch or onnx
BACKENDS = ("auto", "torch", "onnx")  # a database URL other than the data directory's SQLite file
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

    @property
    def database(self) -> Path:
        return self.root / "dualens.sqlite"

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def database_url(self) -> str:
        return os.environ.get(DB_URL_ENV) or self.default_database_url

    def exists(self) -> bool:
        """Whether there is a collection database to open (the one cheap existence check)."""
        return bool(os.environ.get(DB_URL_ENV)) or self.database.exists()

    @property
    def vector_index(self) -> Path:
        return self.root / "vectors.faiss"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def lock(self) -> Path:
        return self.root / ".index.lock"

    @classmethod
    def from_option(cls, data: str | os.PathLike[str] | None = None) -> CollectionPaths:
        return cls(resolve_data_dir(data))


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

"""Storage shared by indexer and search: the collection database (SQLite or PostgreSQL, through
SQLAlchemy) and the FAISS vector index derived from it."""

# Every kind of index file must be readable wherever the package is used: IVF-PQ registers its reader.
from indexer.core.storage import compressed as _compressed  # noqa: F401

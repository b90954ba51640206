"""Storage shared by indexer and search: the collection database (SQLite or PostgreSQL, through
SQLAlchemy) and the FAISS vector index derived from it."""

# Every kind of index file must be readable wherever the package is used: IVF-PQ registers its reader.
from indexer.core.storage import compressed as _compressed  # noqa: F401

# What search reads, named for what it needs (search/ composes no SQL).
from indexer.core.storage.search_reads import (
    HIT_COLUMNS,
    DateRange,
    PhotoFilter,
    allowed_ids,
    date_range,
    folder_rows,
    hit_rows,
    model_fingerprint,
    place_counts,
    shared_content_hashes,
    stored_index_generation,
    vector_chunks,
)

__all__ = [
    "HIT_COLUMNS",
    "DateRange",
    "PhotoFilter",
    "allowed_ids",
    "date_range",
    "folder_rows",
    "hit_rows",
    "model_fingerprint",
    "place_counts",
    "shared_content_hashes",
    "stored_index_generation",
    "vector_chunks",
]

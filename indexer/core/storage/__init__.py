"""Storage shared by indexer and search: the collection database (SQLite or PostgreSQL, through
SQLAlchemy) and the FAISS vector indexes derived from it. SQL is composed here and nowhere else.

    collection.py    Collection: the unit of data other code holds (open, and what readers ask)
    database.py      Database: engine, sessions, snapshots, migrations, collection_info, server lock
    rows.py          PhotoRows: reads of the photo rows, and the small writes (places, roots)
    batches.py       RowWriter: a run's batches, one transaction each, the generation bumped in it
    runs.py          the start of a run (model check and record, --reindex) and its end
    spaces.py        the joint and visual vector spaces
    indexes.py       VectorIndexes: the one owner of both spaces' FAISS files (load, update, rebuild)
    locks.py         the one exclusive-indexing context (lock file, then the server's lock)
    vector_index.py, compressed.py   the FAISS index types; schema.py, migrations/   the tables
"""

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

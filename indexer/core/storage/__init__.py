"""Storage shared by indexer and search: the SQLite/SQLAlchemy schema and the FAISS vector index."""

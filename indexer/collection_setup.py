"""Start of a run: check the model against the collection and record it.

A collection holds vectors of ONE model; indexing with another raises ModelMismatchError unless
``--reindex`` (the rules and their one transaction: ``indexer.core.storage.runs``).
"""

from __future__ import annotations

from indexer.core.models.interface import Encoder
from indexer.core.storage.collection import Collection
from indexer.core.storage.runs import RunModel, start_run


def record_model(collection: Collection, encoder: Encoder, *, reindex: bool) -> int:
    """Check/record the model; with ``reindex`` mark every indexed row pending. Returns the run number."""
    model = RunModel(encoder.model_id, getattr(encoder, "fingerprint", None), encoder.visual_dim)
    return start_run(collection.database, model, reindex=reindex)

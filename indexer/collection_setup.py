"""Start of a run: check the model against the collection and record it.

A collection holds vectors of ONE model; indexing with another raises ModelMismatchError unless
``--reindex`` (the rules and their one transaction: ``indexer.core.storage.runs``).
"""

from __future__ import annotations

from indexer.core.models.interface import Encoder
from indexer.core.storage.collection import Collection
from indexer.core.storage.runs import RunModel, RunStart, start_run


def record_model(collection: Collection, encoder: Encoder, *, reindex: bool) -> RunStart:
    """Check/record the model; ``reindex`` (or the model of an unfinished re-index) stages the new
    model's vectors beside the served ones. Returns the run number and whether it stages."""
    precision = getattr(encoder, "precision", "fp32")
    model = RunModel(encoder.model_id, getattr(encoder, "fingerprint", None), encoder.visual_dim, precision)
    return start_run(collection.database, model, reindex=reindex)

"""The start and end of an indexing run in the database: the model check and record, ``--reindex``.

A collection holds vectors of ONE model (its ``model_id`` and ``dim`` are recorded). Indexing with
another model raises ModelMismatchError: use another ``--data`` directory per model, or
``--reindex`` to re-embed the whole collection with the new model. ``--reindex`` marks every
indexed row ``pending`` (vector dropped) in one transaction, so an interrupted re-index resumes
where it stopped and never mixes two models' vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from indexer.core.errors import ModelMismatchError
from indexer.core.storage.database import (
    Database,
    InfoKey,
    bump_generation,
    delete_info,
    get_info,
    get_int,
    set_info,
    utcnow,
)
from indexer.core.storage.indexes import drop_visual
from indexer.core.storage.schema import Photo, PhotoStatus


@dataclass(frozen=True)
class RunModel:
    """The model of a run, as the collection records it."""

    model_id: str
    fingerprint: str | None  # content hash of a local model directory
    visual_dim: int  # 0: the model has no visual vectors


def start_run(database: Database, model: RunModel, *, reindex: bool) -> int:
    """Check/record the model in one transaction; with ``reindex`` mark every indexed row pending.
    Returns the run number."""
    with database.writing() as s:
        stored = get_info(s, InfoKey.MODEL_ID)
        if stored is not None and stored != model.model_id and not _holds_vectors(s):
            # nothing embedded yet (a first run that failed, e.g. a model that would not load): no
            # vectors to keep comparable, so the new model simply takes over
            delete_info(s, InfoKey.DIM)
            stored = None
        if stored is not None and stored != model.model_id and not reindex:
            raise ModelMismatchError(
                f"this collection ({database.paths.root}) was indexed with model {stored!r}, not "
                f"{model.model_id!r}; use another --data directory for a second model, or "
                "`dualens index --reindex` to re-embed every photo with the new model"
            )
        stored_print = get_info(s, InfoKey.MODEL_FINGERPRINT)
        if stored == model.model_id and stored_print and model.fingerprint != stored_print and not reindex:
            raise ModelMismatchError(
                f"the model in {model.model_id} has changed since this collection was indexed (its "
                "files differ), so new and old vectors would not be comparable; re-embed every photo "
                "with `dualens index --reindex`, or index with the old model"
            )
        if reindex:
            s.execute(
                update(Photo)
                .where(Photo.status == PhotoStatus.INDEXED)
                .values(status=PhotoStatus.PENDING, vector=None)
            )
            delete_info(s, InfoKey.DIM)
            bump_generation(s)
        _record_visual(database, s, model.visual_dim, reindex=reindex)
        set_info(s, InfoKey.MODEL_ID, model.model_id)
        if model.fingerprint:
            set_info(s, InfoKey.MODEL_FINGERPRINT, model.fingerprint)
        elif stored_print:
            delete_info(s, InfoKey.MODEL_FINGERPRINT)
        run = get_int(s, InfoKey.RUN) + 1
        set_info(s, InfoKey.RUN, run)
    return run


def _record_visual(database: Database, s: Session, visual_dim: int, *, reindex: bool) -> None:
    """Keep the model's visual vector size; a re-index, or a model without visual vectors, drops the
    old ones (rows of an older release lacking theirs are re-embedded by the plan)."""
    stored = get_int(s, InfoKey.VISUAL_DIM)
    if reindex or stored != visual_dim:
        drop_visual(s, database)
    if visual_dim:
        set_info(s, InfoKey.VISUAL_DIM, visual_dim)


def _holds_vectors(s: Session) -> bool:
    return s.scalar(select(Photo.id).where(Photo.vector.is_not(None)).limit(1)) is not None


def finish_run(database: Database) -> None:
    """Record the end of a `dualens index` run (shown by `index-info`)."""
    with database.writing() as s:
        set_info(s, InfoKey.LAST_INDEXED_AT, utcnow().isoformat(timespec="seconds"))

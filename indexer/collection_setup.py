"""Start of a run: check the model against the collection, record it and the roots.

A collection holds vectors of ONE model (its ``model_id`` and ``dim`` are recorded). Indexing with
another model raises ModelMismatchError: use another ``--data`` directory per model, or
``--reindex`` to re-embed the whole collection with the new model. ``--reindex`` marks every
indexed row ``pending`` (vector dropped) in one transaction, so an interrupted re-index resumes
where it stopped and never mixes two models' vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from indexer.core.errors import ModelMismatchError
from indexer.core.models.interface import Encoder
from indexer.core.storage.collection import Collection, InfoKey, bump_generation, get_info, set_info, utcnow
from indexer.core.storage.schema import CollectionInfo, Photo, PhotoStatus, Root


def record_model(collection: Collection, encoder: Encoder, *, reindex: bool) -> int:
    """Check/record the model; with ``reindex`` mark every indexed row pending. Returns the run number."""
    with collection.session() as s, s.begin():
        stored = get_info(s, InfoKey.MODEL_ID)
        if stored is not None and stored != encoder.model_id and not _holds_vectors(s):
            # nothing embedded yet (a first run that failed, e.g. a model that would not load): no
            # vectors to keep comparable, so the new model simply takes over
            s.execute(delete(CollectionInfo).where(CollectionInfo.key == InfoKey.DIM))
            stored = None
        if stored is not None and stored != encoder.model_id and not reindex:
            raise ModelMismatchError(
                f"this collection ({collection.paths.root}) was indexed with model {stored!r}, not "
                f"{encoder.model_id!r}; use another --data directory for a second model, or "
                "`dualens index --reindex` to re-embed every photo with the new model"
            )
        stored_print = get_info(s, InfoKey.MODEL_FINGERPRINT)
        current_print = getattr(encoder, "fingerprint", None)
        if stored == encoder.model_id and stored_print and current_print != stored_print and not reindex:
            raise ModelMismatchError(
                f"the model in {encoder.model_id} has changed since this collection was indexed (its "
                "files differ), so new and old vectors would not be comparable; re-embed every photo "
                "with `dualens index --reindex`, or index with the old model"
            )
        if reindex:
            s.execute(
                update(Photo)
                .where(Photo.status == PhotoStatus.INDEXED)
                .values(status=PhotoStatus.PENDING, vector=None)
            )
            s.execute(delete(CollectionInfo).where(CollectionInfo.key == InfoKey.DIM))
            bump_generation(s)
        _record_visual(collection, s, encoder.visual_dim, reindex=reindex)
        set_info(s, InfoKey.MODEL_ID, encoder.model_id)
        if current_print:
            set_info(s, InfoKey.MODEL_FINGERPRINT, current_print)
        elif stored_print:
            s.execute(delete(CollectionInfo).where(CollectionInfo.key == InfoKey.MODEL_FINGERPRINT))
        run = int(get_info(s, InfoKey.RUN) or 0) + 1
        set_info(s, InfoKey.RUN, run)
    return run


def _record_visual(collection: Collection, s: Session, visual_dim: int, *, reindex: bool) -> None:
    """Keep the model's visual vector size; a re-index, or a model without visual vectors, drops the
    old ones (rows of an older release lacking theirs are re-embedded by the plan)."""
    stored = int(get_info(s, InfoKey.VISUAL_DIM) or 0)
    if reindex or stored != visual_dim:
        collection.drop_visual(s)
    if visual_dim:
        set_info(s, InfoKey.VISUAL_DIM, visual_dim)


def _holds_vectors(s: Session) -> bool:
    return s.scalar(select(Photo.id).where(Photo.vector.is_not(None)).limit(1)) is not None


def record_roots(collection: Collection, roots: Sequence[str]) -> None:
    with collection.session() as s, s.begin():
        known = set(s.scalars(select(Root.path)))
        for root in roots:
            if root not in known:
                s.add(Root(path=root, added_at=utcnow()))

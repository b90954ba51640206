"""The start of an indexing run in the database (the model check and record, ``--reindex``), the
switch to a re-indexed model, and the end of a run.

A collection serves vectors of ONE model (its ``model_id`` and ``dim`` are recorded). Indexing with
another model raises ModelMismatchError: use another ``--data`` directory per model, or
``--reindex`` to re-embed the whole collection with the new model.

A re-index is *staged*: the new model is recorded as ``next_model_id`` and each batch writes its
vectors to ``next_vector``/``next_visual``, while every row keeps serving the old model's vectors
(searches, ``similar`` and the text tower stay the old model's). An interrupted re-index resumes
where it stopped: a run whose model is the pending one (a plain ``dualens index`` takes it) embeds
only the rows still lacking a next vector. When a run has given every reachable row its next
vector, :func:`switch_model` swaps in ONE transaction (vectors, model, dimension, fingerprint,
generation bumped and recorded as ``model_generation``: an index file of an older generation holds
the old model's vectors, and a searcher never pairs it with the new text tower); the FAISS files are
then rebuilt from the database. Two models' vectors are never served together. While a re-index is
pending, a run with any other model is refused, except ``--reindex``, which starts a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, update
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

_NEXT_KEYS = (
    InfoKey.NEXT_MODEL_ID,
    InfoKey.NEXT_DIM,
    InfoKey.NEXT_FINGERPRINT,
    InfoKey.NEXT_VISUAL_DIM,
    InfoKey.NEXT_PRECISION,
)
_SERVABLE = (PhotoStatus.INDEXED, PhotoStatus.PENDING)


@dataclass(frozen=True)
class RunModel:
    """The model of a run, as the collection records it."""

    model_id: str
    fingerprint: str | None  # content hash of a local model directory
    visual_dim: int  # 0: the model has no visual vectors
    precision: str = "fp32"  # of the towers (fp32 or int8): part of the model's identity


@dataclass(frozen=True)
class RunStart:
    """``run``: the run number. ``staging``: the run writes the next model's vectors (a re-index)."""

    run: int
    staging: bool = False


def start_run(database: Database, model: RunModel, *, reindex: bool) -> RunStart:
    """Check/record the model in one transaction; ``reindex`` (or a run with the model of a pending
    re-index) stages the new model's vectors beside the old ones."""
    with database.writing() as s:
        staging = _start_staging(database, s, model, reindex=reindex)
        if not staging:
            _record_model(database, s, model, reindex=reindex)
        run = get_int(s, InfoKey.RUN) + 1
        set_info(s, InfoKey.RUN, run)
    return RunStart(run, staging)


def _start_staging(database: Database, s: Session, model: RunModel, *, reindex: bool) -> bool:
    """Begin or resume a staged re-index; False for an ordinary run (raises for a refused one)."""
    pending = get_info(s, InfoKey.NEXT_MODEL_ID)
    if not _holds_vectors(s):  # nothing served: no old vectors to keep, the model simply takes over
        if pending is not None:
            _clear_staged(s)
        return False
    resumes = (
        pending == model.model_id
        and get_info(s, InfoKey.NEXT_FINGERPRINT) == model.fingerprint
        and (get_info(s, InfoKey.NEXT_PRECISION) or "fp32") == model.precision
    )
    if pending is not None and not resumes and not reindex:
        raise ModelMismatchError(
            f"a re-index of this collection ({database.paths.root}) with model {pending!r} is "
            "unfinished; run `dualens index` to finish it, or `dualens index --reindex --model M` "
            "to re-index with another model"
        )
    if not reindex and not resumes:
        return False
    if pending is not None and not resumes:
        _clear_staged(s)  # another model than the pending re-index's: start again
    set_info(s, InfoKey.NEXT_MODEL_ID, model.model_id)
    if model.fingerprint:
        set_info(s, InfoKey.NEXT_FINGERPRINT, model.fingerprint)
    set_info(s, InfoKey.NEXT_VISUAL_DIM, model.visual_dim)
    set_info(s, InfoKey.NEXT_PRECISION, model.precision)
    return True


def _record_model(database: Database, s: Session, model: RunModel, *, reindex: bool) -> None:
    """The checks and record of an ordinary run (``reindex`` here: nothing is served yet)."""
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
    _check_precision(database, s, model, reindex=reindex)
    if reindex:  # rows of an older release's interrupted re-index: no vector served, embed them all
        s.execute(update(Photo).where(Photo.status == PhotoStatus.INDEXED).values(status=PhotoStatus.PENDING))
        delete_info(s, InfoKey.DIM)
        bump_generation(s)
    _record_visual(database, s, model.visual_dim, reindex=reindex)
    set_info(s, InfoKey.MODEL_ID, model.model_id)
    if model.fingerprint:
        set_info(s, InfoKey.MODEL_FINGERPRINT, model.fingerprint)
    elif stored_print:
        delete_info(s, InfoKey.MODEL_FINGERPRINT)
    set_info(s, InfoKey.PRECISION, model.precision)


def _check_precision(database: Database, s: Session, model: RunModel, *, reindex: bool) -> None:
    """Vectors of two precisions never mix: another precision than the stored vectors' needs
    ``--reindex`` (as another model does)."""
    stored = get_info(s, InfoKey.PRECISION) or "fp32"
    if stored != model.precision and not reindex and _holds_vectors(s):
        raise ModelMismatchError(
            f"this collection ({database.paths.root}) was indexed at {stored} precision, not "
            f"{model.precision}; index with `--precision {stored}`, or re-embed every photo with "
            f"`dualens index --precision {model.precision} --reindex`"
        )


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


def _clear_staged(s: Session) -> None:
    """Forget a pending re-index: its staged vectors, its model; rows it found stay pending."""
    staged = or_(Photo.next_vector.is_not(None), Photo.next_visual.is_not(None))
    s.execute(update(Photo).where(staged).values(next_vector=None, next_visual=None))
    delete_info(s, *_NEXT_KEYS)


def switch_model(database: Database) -> bool:
    """Serve the staged re-index, in ONE transaction: every staged vector replaces the served one,
    the next model becomes the collection's, the generation moves. Rows the re-index could not reach
    (a folder kept unreachable) have no next vector: they turn pending, embedded when back. Returns
    False when no re-index is pending. The FAISS files are stale afterwards: rebuild them."""
    with database.writing() as s:
        next_model = get_info(s, InfoKey.NEXT_MODEL_ID)
        if next_model is None:
            return False
        s.execute(
            update(Photo)
            .where(Photo.next_vector.is_(None), Photo.status.in_(_SERVABLE))
            .values(status=PhotoStatus.PENDING, vector=None, visual=None)
        )
        s.execute(
            update(Photo)
            .where(Photo.next_vector.is_not(None), Photo.status.in_(_SERVABLE))
            .values(
                status=PhotoStatus.INDEXED,
                vector=Photo.next_vector,
                visual=Photo.next_visual,
                next_vector=None,
                next_visual=None,
            )
        )
        next_dim, next_print = get_info(s, InfoKey.NEXT_DIM), get_info(s, InfoKey.NEXT_FINGERPRINT)
        visual_dim = get_int(s, InfoKey.NEXT_VISUAL_DIM)
        set_info(s, InfoKey.MODEL_ID, next_model)
        set_info(s, InfoKey.PRECISION, get_info(s, InfoKey.NEXT_PRECISION) or "fp32")
        if next_dim is None:
            delete_info(s, InfoKey.DIM)
        else:
            set_info(s, InfoKey.DIM, next_dim)
        if next_print is None:
            delete_info(s, InfoKey.MODEL_FINGERPRINT)
        else:
            set_info(s, InfoKey.MODEL_FINGERPRINT, next_print)
        if visual_dim:
            set_info(s, InfoKey.VISUAL_DIM, visual_dim)
        else:
            drop_visual(s, database)
        delete_info(s, *_NEXT_KEYS)
        set_info(s, InfoKey.MODEL_GENERATION, bump_generation(s))
    return True


def finish_run(database: Database) -> None:
    """Record the end of a `dualens index` run (shown by `index-info`)."""
    with database.writing() as s:
        set_info(s, InfoKey.LAST_INDEXED_AT, utcnow().isoformat(timespec="seconds"))

"""Typed errors. Library code raises these; the CLI and the UI decide how to show them.

Every subclass of :class:`DualensError` is a *user-facing* condition: its message is one clear
sentence that can be shown as is, without a traceback. ``http_status`` is the status the HTTP API
(``dualens serve``) answers it with, and the one its client (``dualens ui --api``) reads back.
"""

from __future__ import annotations

import enum


class DualensError(Exception):
    """Base class of every error a user can cause or fix."""

    exit_code: int = 1
    http_status: int = 400


class UsageError(DualensError):
    """Bad arguments: empty query, negative k, unknown option value."""

    exit_code = 2


class NotFoundError(DualensError):
    """A path, photo, model or collection that does not exist."""

    http_status = 404


class ModelError(DualensError):
    """A model that cannot be loaded or built."""

    http_status = 503


class ModelMismatchError(DualensError):
    """The model asked for does not match the one the collection was indexed with."""


class CollectionError(DualensError):
    """Missing, damaged or inconsistent collection state (database or vector index)."""

    http_status = 503


class ClusterError(DualensError):
    """A compute cluster (Ray) that failed under a run; what was committed is kept, a re-run resumes."""


def is_storage_problem(exc: BaseException) -> bool:
    """Whether an error is about the collection's stored state (a damaged database or index)."""
    return isinstance(exc, CollectionError)


class ImageProblem(enum.StrEnum):
    """Why an image could not be used (recorded per file by the indexer)."""

    EMPTY = "empty file"
    NOT_IMAGE = "not an image"
    TRUNCATED = "truncated image"
    CORRUPT = "corrupt image"
    TOO_LARGE = "too large"
    TOO_SLOW = "too slow to decode"
    UNSUPPORTED = "unsupported image"
    UNREADABLE = "unreadable file"
    VANISHED = "file vanished"
    CRASHED = "decoder crashed"


class ImageError(DualensError):
    """An image that cannot be read or decoded: ``kind`` says why, ``detail`` in a few words."""

    http_status = 422

    def __init__(self, message: str, *, kind: ImageProblem = ImageProblem.CORRUPT, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail or message


class QueryError(UsageError):
    """A query that cannot be parsed or embedded."""


class UnsafePathError(DualensError):
    """A path that lies outside the indexed roots."""

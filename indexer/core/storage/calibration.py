"""A collection's search calibration, kept beside its vector index until the index changes.

Search calibrates its relevance bands (search/relevance.py) by running nonsense queries through the
text tower: a fraction of a second that depends only on the vector index and the model, so it is
computed once and stored here instead of once per process. The file ``relevance.json`` in the data
directory carries the :class:`CalibrationKey` it was measured for; a read returns the values only
while every part of the key still matches (same collection, index generation, model, model files
and rule), so a new index generation, a re-index with another model or a changed rule makes it stale
and the next search measures and stores it again.

Invariants: the file is replaced atomically (a reader sees the old or the new calibration, never a
torn one); an unreadable, damaged or foreign file reads as "no calibration"; a data directory that
cannot be written only costs the re-measurement (writes report failure, they never raise).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CALIBRATION_FILE = "relevance.json"


@dataclass(frozen=True)
class CalibrationKey:
    """What a calibration was measured for: it is current only while all of it is unchanged."""

    collection_id: str  # the vector index's collection (a new collection in the same directory differs)
    generation: int  # the vector index generation
    model_id: str
    model_fingerprint: str  # the model files' content hash ("" when the model has none)
    rule: str  # the version of the rule that produced the values


def calibration_file(root: Path) -> Path:
    """Where the calibration of the collection whose data directory is ``root`` is kept."""
    return Path(root) / CALIBRATION_FILE


def read_calibration(root: Path, key: CalibrationKey) -> dict[str, float] | None:
    """The stored values when they were measured for ``key``; None when missing, stale or unreadable."""
    try:
        stored = json.loads(calibration_file(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != asdict(key):
        return None
    values = stored.get("values")
    if not isinstance(values, dict):
        return None
    try:
        out = {str(name): float(value) for name, value in values.items()}
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out.values()) else None


def write_calibration(root: Path, key: CalibrationKey, values: Mapping[str, float]) -> bool:
    """Store ``values`` for ``key`` (atomically); False when the data directory cannot be written."""
    path = calibration_file(root)
    body = json.dumps({"key": asdict(key), "values": {k: float(v) for k, v in values.items()}})
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        log.info("not storing the relevance calibration in %s: %s", path.parent, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False

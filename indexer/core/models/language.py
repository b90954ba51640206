"""Which text tower a ``dualens-default-v5`` query takes: English ones go to v4.2's text side.

A packaged, offline language identifier (``py3langid``: langid.py's naive Bayes over byte n-grams,
its model inside the wheel) restricted to the languages USE Multilingual v3 serves says whether a
query is English. Only a confident "English" (probability >= :data:`ENGLISH_CONFIDENCE`) routes to
the English text side: sending a German query there costs far more (German R@10 7.9 instead of
42) than sending an English one to USE (R@10 about 50 instead of 52), so every doubt, a one-word
query the identifier cannot tell included, goes to USE. The identifier loads on first use (~0.07 s
from the package; a few ms from the packed copy an ONNX export keeps, :func:`pack`) and classifies a
query in well under a millisecond. Without py3langid every query goes to USE (logged once).
"""

from __future__ import annotations

import logging
import threading
import zipfile
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# USE Multilingual v3's languages, as langid.py names them (zh covers zh-cn and zh-tw)
USE_LANGUAGES = ("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh")
ENGLISH_CONFIDENCE = 0.95
MAX_CHARS = 1000  # a text's language is told from its start (the identifier counts n-grams in uint16)

_lock = threading.Lock()
_identifier: Any = None  # the loaded identifier; False: py3langid is not installed


def _load(packed: Path | None = None) -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError:
                log.warning("py3langid is not installed: every query takes the multilingual text tower")
                _identifier = False
            else:
                _identifier = _unpack(packed) if packed is not None and packed.is_file() else None
                if _identifier is None:
                    _identifier = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
                    _identifier.set_languages(list(USE_LANGUAGES))
        return _identifier


def pack(path: Path) -> None:
    """Save the identifier, restricted to :data:`USE_LANGUAGES`, as one uncompressed ``.npz`` that
    loads in milliseconds (the package's own file is an LZMA pickle)."""
    identifier = _load()
    if identifier is False:
        return
    states = sorted(identifier.tk_output)
    outputs = [identifier.tk_output[state] for state in states]
    with path.open("wb") as fh:
        np.savez(
            fh,
            nb_ptc=identifier.nb_ptc,
            nb_pc=identifier.nb_pc,
            nb_classes=np.array(identifier.nb_classes),
            nextmove=np.frombuffer(identifier.tk_nextmove, dtype=np.uint16),
            states=np.array(states, dtype=np.int64),
            counts=np.array([len(o) for o in outputs], dtype=np.int64),
            features=np.array([f for o in outputs for f in o], dtype=np.int64),
        )


def _unpack(path: Path) -> Any:
    """The identifier :func:`pack` saved; None when the file cannot be read."""
    from py3langid.langid import LanguageIdentifier

    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {name: z[name] for name in z.files}
        nextmove = array("H")
        nextmove.frombytes(parts["nextmove"].astype(np.uint16).tobytes())
        ends = np.cumsum(parts["counts"]).tolist()
        features = parts["features"].tolist()
        starts = [0, *ends[:-1]]
        output = {
            int(s): tuple(features[a:b])
            for s, a, b in zip(parts["states"].tolist(), starts, ends, strict=True)
        }
        ptc, pc = parts["nb_ptc"], parts["nb_pc"]
        classes = [str(c) for c in parts["nb_classes"]]
        return LanguageIdentifier(ptc, pc, ptc.shape[0], classes, nextmove, output, norm_probs=True)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring the unreadable packed language identifier %s: %s", path, exc)
        return None


def language_of(text: str) -> tuple[str, float]:
    """The most probable of :data:`USE_LANGUAGES` and its probability ("" and 0 without py3langid),
    told from the first :data:`MAX_CHARS` characters."""
    identifier = _load()
    if identifier is False:
        return "", 0.0
    language, probability = identifier.classify(text[:MAX_CHARS])
    return str(language), float(probability)


def is_english(text: str) -> bool:
    """Whether ``text`` is confidently English (the English route's queries)."""
    language, probability = language_of(text)
    return language == "en" and probability >= ENGLISH_CONFIDENCE


def english_mask(texts: Sequence[str]) -> np.ndarray:
    """(n,) bool: which texts take the English route."""
    return np.fromiter((is_english(t) for t in texts), dtype=bool, count=len(texts))


def prefetch(packed: Path | None = None) -> None:
    """Load the identifier now, from ``packed`` (:func:`pack`) when that file is there."""
    _load(packed)

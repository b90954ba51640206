"""Which text tower a ``dualens-default-v5`` query takes: English ones go to v4.2's text side.

A packaged, offline language identifier (``py3langid``: langid.py's naive Bayes over byte n-grams,
its model inside the wheel) restricted to the languages USE Multilingual v3 serves says whether a
query is English. Only a confident "English" (probability >= :data:`ENGLISH_CONFIDENCE`) routes to
the English text side: sending a German query there costs far more (German R@10 7.9 instead of
42) than sending an English one to USE (R@10 about 50 instead of 52), so every doubt, a one-word
query the identifier cannot tell included, goes to USE. The identifier loads on first use
(~0.07 s) and classifies a query in well under a millisecond. Without py3langid every query goes to
USE (logged once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# USE Multilingual v3's languages, as langid.py names them (zh covers zh-cn and zh-tw)
USE_LANGUAGES = ("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh")
ENGLISH_CONFIDENCE = 0.95

_lock = threading.Lock()
_identifier: Any = None  # the loaded identifier; False: py3langid is not installed


def _load() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError:
                log.warning("py3langid is not installed: every query takes the multilingual text tower")
                _identifier = False
            else:
                identifier = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
                identifier.set_languages(list(USE_LANGUAGES))
                _identifier = identifier
        return _identifier


def language_of(text: str) -> tuple[str, float]:
    """The most probable of :data:`USE_LANGUAGES` and its probability ("" and 0 without py3langid)."""
    identifier = _load()
    if identifier is False:
        return "", 0.0
    language, probability = identifier.classify(text)
    return str(language), float(probability)


def is_english(text: str) -> bool:
    """Whether ``text`` is confidently English (the English route's queries)."""
    language, probability = language_of(text)
    return language == "en" and probability >= ENGLISH_CONFIDENCE


def english_mask(texts: Sequence[str]) -> np.ndarray:
    """(n,) bool: which texts take the English route."""
    return np.fromiter((is_english(t) for t in texts), dtype=bool, count=len(texts))


def prefetch() -> None:
    """Load the identifier now (a background thread's work before a query)."""
    _load()

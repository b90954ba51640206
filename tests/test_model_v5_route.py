"""dualens-default-v5's language routing: which text tower a query takes (no model is built here)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from indexer.core.models.default_spec import DEFAULT_SPEC, V5_SPEC, head_path
from indexer.core.models.routed import route_texts

pytest.importorskip("py3langid", reason="py3langid is not installed")
pytestmark = pytest.mark.timeout(60)

ENGLISH = [
    "a dog running on the beach",
    "two children play soccer on a field",
    "a man riding a bike down a city street",
    "a photo of a golden retriever.",
    "people sitting at a table in a restaurant",
]
OTHER = [
    "Hund am Strand",
    "Ein schwarzer Hund rennt durch den Schnee.",
    "un chien sur la plage",
    "Deux enfants jouent au football dans un parc.",
    "niños jugando al fútbol",
    "Un perro corre en la playa.",
    "coche rojo",
    "rotes Auto",
    "東京の夜景",
]


def test_confident_english_queries_take_the_english_route() -> None:
    from indexer.core.models.language import is_english

    assert [q for q in ENGLISH if not is_english(q)] == []


def test_german_french_spanish_and_other_queries_take_the_multilingual_tower() -> None:
    from indexer.core.models.language import is_english

    assert [q for q in OTHER if is_english(q)] == []


def test_a_word_the_identifier_cannot_place_takes_the_multilingual_tower() -> None:
    from indexer.core.models.language import is_english

    assert not is_english("x") and not is_english("")


def _recorder(
    calls: list[tuple[str, list[str]]], name: str, value: float
) -> Callable[[list[str]], np.ndarray]:
    def embed(texts: list[str]) -> np.ndarray:
        calls.append((name, list(texts)))
        return np.full((len(texts), 3), value, dtype=np.float32)

    return embed


def test_route_texts_keeps_the_order_and_calls_only_the_routes_it_needs() -> None:
    calls: list[tuple[str, list[str]]] = []
    texts = [ENGLISH[0], OTHER[0], ENGLISH[1], OTHER[2]]
    out = route_texts(texts, 3, _recorder(calls, "en", 1.0), _recorder(calls, "use", 2.0))
    assert out[:, 0].tolist() == [1.0, 2.0, 1.0, 2.0]
    assert sorted(calls) == [("en", [ENGLISH[0], ENGLISH[1]]), ("use", [OTHER[0], OTHER[2]])]
    calls.clear()
    route_texts([OTHER[1]], 3, _recorder(calls, "en", 1.0), _recorder(calls, "use", 2.0))
    assert [name for name, _ in calls] == ["use"]
    calls.clear()
    route_texts([ENGLISH[2]], 3, _recorder(calls, "en", 1.0), _recorder(calls, "use", 2.0))
    assert [name for name, _ in calls] == ["en"]


def test_the_english_head_ships_and_v4_2s_spec_is_unchanged_by_it() -> None:
    from safetensors.numpy import load_file

    english = load_file(str(head_path(V5_SPEC.english)))["english_map"]
    visual = load_file(str(head_path(V5_SPEC.head)))["v42_visual_map"]
    assert english.shape == visual.shape == (512, 384)
    assert "english" not in DEFAULT_SPEC.as_json() and V5_SPEC.as_json()["english"] == V5_SPEC.english


def test_dualens_search_starts_the_text_tower_its_query_words_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.core.settings import Settings
    from search import prestart

    asked: list[str | None] = []

    class Recorder:
        def prefetch_text(self, query: str | None = None) -> None:
            asked.append(query)

        fingerprint = None

    settings = Settings.resolve(tmp_path, None, "auto")
    settings.paths.database.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.paths.database) as db:
        db.execute("CREATE TABLE collection_info (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO collection_info VALUES ('model_id', 'dualens-default-v5')")
    monkeypatch.setattr(prestart, "query_encoder", lambda *args: Recorder())
    monkeypatch.setattr(prestart, "_hint", None)
    prestart.hint("Hund am Strand")
    prestart.start(settings)
    assert prestart.claim("dualens-default-v5", None) is not None
    assert asked == ["Hund am Strand"]

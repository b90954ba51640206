"""Side files a run loads whole (the text gate's weights, v5's packed language identifier) damaged on
disk: empty, cut short or not an archive. The run goes on as without them, never with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer import ocr_gate
from indexer.core.models import language

pytestmark = pytest.mark.timeout(60)

DAMAGES = {"empty": b"", "not an archive": b"x" * 100, "cut short": b"PK\x03\x04" + b"\0" * 40}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_gate_file_leaves_every_photo_read_instead_of_failing_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    weights = tmp_path / "gate.npz"
    weights.write_bytes(DAMAGES[damage])
    monkeypatch.setattr(ocr_gate, "GATE_FILE", weights)
    assert ocr_gate.gate_for(ocr_gate.DEFAULT_MODEL_ID, environ={"DUALENS_OCR": "gate"}) is None


def test_an_intact_gate_file_still_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ocr_gate.gate_for(ocr_gate.DEFAULT_MODEL_ID, environ={"DUALENS_OCR": "gate"}) is not None


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_packed_language_identifier_is_ignored_not_raised(tmp_path: Path, damage: str) -> None:
    pytest.importorskip("py3langid", reason="py3langid is not installed")
    packed = tmp_path / "langid.npz"
    packed.write_bytes(DAMAGES[damage])
    assert language._unpack(packed) is None


def test_a_very_long_text_is_told_apart_by_its_start_without_overflow() -> None:
    pytest.importorskip("py3langid", reason="py3langid is not installed")
    assert language.is_english("a dog running on the beach " * 5000)
    assert language.language_of("x" * 100_000)[0] in language.USE_LANGUAGES

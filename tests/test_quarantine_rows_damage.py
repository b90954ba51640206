"""A quarantine's kept rows (rows.json beside its manifest) damaged on disk: the undo is refused in
one line before any file moves, and says how to put the photos back without them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from search.quarantine import quarantine_photos, undo_quarantine
from tests.helpers.ui_fixtures import build_collection, make_photos

pytestmark = pytest.mark.timeout(120)


def _lose_path(rows: list[dict[str, Any]]) -> None:
    del rows[0]["path"]


def _add_field(rows: list[dict[str, Any]]) -> None:
    rows[0]["not_a_column"] = 1


def _not_a_row(rows: list[dict[str, Any]]) -> None:
    rows[0] = "text"  # type: ignore[call-overload]


@pytest.mark.parametrize("damage", [_lose_path, _add_field, _not_a_row])
def test_an_undo_with_damaged_kept_rows_is_refused_in_one_line_before_any_file_moves(
    tmp_path: Path, tiny_model_dir: Path, damage: Any
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=2)
    build_collection(data, photos, tiny_model_dir, None)
    with Collection.open(data) as collection:
        (first,) = sorted(collection.photos(list(range(1, 100))))[:1]
        original = Path(collection.photos([first])[first].path)
        report, _ = quarantine_photos(collection, [first], tmp_path / "q")
        kept = report.manifest.parent / "rows.json"
        body = json.loads(kept.read_text())
        damage(body["rows"])
        kept.write_text(json.dumps(body))
        with pytest.raises(CollectionError, match="remove that file") as refused:
            undo_quarantine(collection, report.manifest)
        assert "\n" not in str(refused.value)
        assert not original.exists()  # nothing moved back half-way
        kept.unlink()  # as the message says: the photos come back without their rows
        assert undo_quarantine(collection, report.manifest).restored == [str(original)]
        assert original.exists()


def test_an_undo_given_the_manifest_under_a_tilde_puts_the_rows_back_with_the_files(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=2)
    build_collection(data, photos, tiny_model_dir, None)
    monkeypatch.setenv("HOME", str(tmp_path))
    with Collection.open(data) as collection:
        (first,) = sorted(collection.photos(list(range(1, 100))))[:1]
        report, _ = quarantine_photos(collection, [first], tmp_path / "q")
        typed = Path("~") / report.manifest.relative_to(tmp_path)  # as `--undo '~/q/…/manifest.json'`
        undone = undo_quarantine(collection, typed)
        assert len(undone.restored) == 1 and undone.back_in_collection == 1
        assert collection.photos([first]).keys() == {first}

"""The one move aside and undo over a Collection (search/quarantine.py), which the CLI's
`dualens duplicates --quarantine/--undo` and the UI's Move aside/Undo both call."""

from __future__ import annotations

from pathlib import Path

from indexer.core.storage.collection import Collection
from search.quarantine import Expected, quarantine_photos, undo_quarantine
from tests.helpers.ui_fixtures import build_collection, make_photos


def _collection(tmp_path: Path, tiny_model_dir: Path, database: str | None) -> Path:
    photos, data = tmp_path / "photos", tmp_path / "data"
    make_photos(photos, n=4)
    build_collection(data, photos, tiny_model_dir, database)
    return data


def test_quarantine_photos_moves_the_accepted_files_and_takes_their_rows_out_until_the_undo(
    tmp_path: Path, tiny_model_dir: Path, database: str | None
) -> None:
    data = _collection(tmp_path, tiny_model_dir, database)
    with Collection.open(data, db_url=database) as collection:
        ids = sorted(collection.photos(list(range(1, 100))))
        first, second = ids[0], ids[1]
        paths = {i: Path(r.path) for i, r in collection.photos([first, second]).items()}

        def accept(photo_id: int, file: Expected) -> bool:
            return photo_id == first and file.path == str(paths[first])

        report, rows = quarantine_photos(collection, [first, second, 10_000], tmp_path / "q", accept)
        assert [e.original for e in report.moved] == [str(paths[first])]
        assert [r["id"] for r in rows] == [first]
        assert not paths[first].exists() and paths[second].exists()
        assert collection.photos([first, second]).keys() == {second}
        assert (report.manifest.parent / "rows.json").exists()  # kept for an undo after a restart

        undone = undo_quarantine(collection, report.manifest)  # the rows from beside the manifest
        assert undone.restored == [str(paths[first])] and undone.back_in_collection == 1
        assert paths[first].exists()
        assert collection.photos([first, second]).keys() == {first, second}


def test_undo_quarantine_puts_back_the_rows_of_photos_an_earlier_undo_restored_once_only(
    tmp_path: Path, tiny_model_dir: Path, database: str | None
) -> None:
    from search.quarantine import undo

    data = _collection(tmp_path, tiny_model_dir, database)
    with Collection.open(data, db_url=database) as collection:
        (first,) = sorted(collection.photos(list(range(1, 100))))[:1]
        report, _ = quarantine_photos(collection, [first], tmp_path / "q")
        assert undo(report.manifest).restored  # the files alone (an undo without this collection)
        assert collection.photos([first]) == {}
        again = undo_quarantine(collection, report.manifest)
        assert again.restored == [] and again.back_in_collection == 1
        assert collection.photos([first]).keys() == {first}
        assert undo_quarantine(collection, report.manifest).back_in_collection == 0

"""The search subcommands through ui.cli.main: tables, JSON, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.core.models import DualEncoder
from search.filters import parse_date
from tests.helpers.search_collection import FakePhoto, make_collection
from ui.cli import main


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory, tiny_clip_dir: Path, module_db_url: str | None):
    encoder = DualEncoder(tiny_clip_dir)
    base = tmp_path_factory.mktemp("cli")
    root = base / "photos"
    dog = encoder.embed_texts(["dog"])[0]
    rng = np.random.default_rng(3)
    photos = [FakePhoto("pets/dog.jpg", dog, taken_at=datetime(2020, 7, 4))]
    photos += [
        FakePhoto(f"misc/{i}.png", rng.standard_normal(encoder.dim), file_type="png") for i in range(12)
    ]
    ids = make_collection(base / "data", root, photos, model_id=encoder.model_id, db_url=module_db_url)
    image = base / "query.png"
    Image.new("RGB", (48, 40), (10, 200, 90)).save(image)
    return base / "data", root, ids, image


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_prints_an_aligned_table(capsys, cli_world):
    data, root, *_ = cli_world
    code, out, err = run(capsys, "search", "--data", str(data), "dog", "-k", "3")
    assert code == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("--")]  # the divider line aside
    assert lines[0].split() == ["#", "match", "cosine", "logit", "prob", "date", "path"]
    assert len(lines) == 4
    assert lines[1].split()[0] == "1" and lines[1].endswith(str(root / "pets/dog.jpg"))
    assert lines[1].split()[5] == "2020-07-04"
    path_column = {line.index(str(root)) for line in lines[1:]}
    assert len(path_column) == 1  # aligned


def test_search_json_is_machine_readable(capsys, cli_world):
    data, _root, *_ = cli_world
    code, out, _ = run(
        capsys, "search", "--data", str(data), "--json", "-k", "5", "--offset", "1", '"dog" - "cat"'
    )
    assert code == 0
    payload = json.loads(out)
    assert payload["query"] == '"dog" - "cat"' and payload["offset"] == 1
    assert [h["rank"] for h in payload["hits"]] == [2, 3, 4, 5, 6]
    assert {"id", "path", "cosine", "logit", "probability", "taken_at", "mtime"} <= set(payload["hits"][0])


def test_search_filters_from_the_command_line(capsys, cli_world):
    data, root, *_ = cli_world
    code, out, _ = run(
        capsys,
        "search",
        "--data",
        str(data),
        "dog",
        "--json",
        "--type",
        "jpeg",
        "--after",
        "2020",
        "--before",
        "2020-07",
    )
    assert code == 0
    assert [h["path"] for h in json.loads(out)["hits"]] == [str(root / "pets/dog.jpg")]
    code, out, _ = run(
        capsys, "search", "--data", str(data), "dog", "--folder", "misc", "--min-score", "0.99"
    )
    assert code == 0 and out.strip() == "No photos match."


def test_similar_by_id_by_path_and_by_external_file(capsys, cli_world):
    data, root, ids, image = cli_world
    code, by_id, _ = run(capsys, "similar", "--data", str(data), str(ids[0]), "--json")
    assert code == 0
    hits = json.loads(by_id)["hits"]
    assert ids[0] not in [h["id"] for h in hits] and len(hits) == 12
    code, by_path, _ = run(capsys, "similar", "--data", str(data), str(root / "pets/dog.jpg"), "--json")
    assert [h["id"] for h in json.loads(by_path)["hits"]] == [h["id"] for h in hits]
    code, external, err = run(capsys, "similar", "--data", str(data), str(image), "-k", "2")
    assert code == 0, err
    assert len(external.splitlines()) == 3


def test_classify_prints_label_probabilities(capsys, cli_world, tiny_clip_dir):
    data, _, ids, image = cli_world
    code, out, err = run(
        capsys, "classify", "--data", str(data), str(image), "--labels", "cat,dog,car", "--json"
    )
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert sorted(x["label"] for x in labels) == ["car", "cat", "dog"]
    assert sum(x["probability"] for x in labels) == pytest.approx(1.0)
    code, out, _ = run(capsys, "classify", "--data", str(data), str(ids[0]), "--labels", "cat, dog")
    assert code == 0 and out.splitlines()[0].split() == ["label", "prob"] and len(out.splitlines()) == 3
    code, out, err = run(
        capsys,
        "classify",
        "--data",
        str(data / "none"),
        str(image),
        "--labels",
        "a,b",
        "--model",
        str(tiny_clip_dir),
    )
    assert code == 0, err


def test_index_info_reports_type_memory_and_recall(capsys, cli_world):
    data, *_ = cli_world
    code, out, _ = run(capsys, "index-info", "--data", str(data))
    assert code == 0
    assert "exact (IndexIDMap2 + IndexFlatIP)" in out and "recall@10:" in out and "memory:" in out
    code, out, _ = run(capsys, "index-info", "--data", str(data), "--json", "--queries", "5")
    payload = json.loads(out)
    assert payload["kind"] == "flat" and payload["ntotal"] == 13 and payload["recall_at_10"] == 1.0
    assert payload["memory_bytes"] > 0 and payload["recall_queries"] == 5


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["search", "   "], 2, "query is empty"),
        (["search", '#1 "cat"'], 2, "expected + or -"),
        (["search", "dog", "-k", "0"], 2, "k must be"),
        (["search", "dog", "--offset", "-1"], 2, "--offset must be"),
        (["similar", "1", "-k", "10001"], 2, "-k must be"),
        (["index-info", "--queries", "0"], 2, "--queries must be"),
        (["search", "dog", "--after", "last week"], 2, "is not a date"),
        (["search", "dog", "--min-score", "3"], 2, "minimum score"),
        (["similar", "{image_dir}/broken.jpg"], 1, "damaged or unreadable"),
        (["similar", "{image_dir}/missing.jpg"], 1, "does not exist"),
        (["similar", "424242"], 1, "not an indexed photo"),
        (["classify", "{image_dir}/query.png", "--labels", " , "], 2, "at least one label"),
        (["search", "dog", "--model", "{other_model}"], 1, "indexed with"),
    ],
)
def test_errors_are_one_sentence_and_a_non_zero_exit(capsys, cli_world, tiny_model_dir, argv, code, message):
    data, _, _, image = cli_world
    (image.parent / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    argv = [a.format(image_dir=image.parent, other_model=tiny_model_dir) for a in argv]
    got, _out, err = run(capsys, *argv[:1], "--data", str(data), *argv[1:])
    assert got == code
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dualens: error: ")
    assert message in err


def test_missing_collection_is_one_clear_sentence(capsys, tmp_path):
    got, _, err = run(capsys, "search", "--data", str(tmp_path / "empty"), "dog")
    assert got == 1
    empty = tmp_path / "empty"
    assert (
        err.strip() == f"dualens: error: no collection in {empty}; run `dualens index --data {empty} PHOTOS`"
    )


def test_partial_dates_cover_their_whole_period():
    assert parse_date("2020", end=False) == datetime(2020, 1, 1).date()
    assert parse_date("2020", end=True) == datetime(2020, 12, 31).date()
    assert parse_date("2024-02", end=True) == datetime(2024, 2, 29).date()
    assert parse_date("2024-02-03", end=True) == datetime(2024, 2, 3).date()


def test_a_query_refused_while_the_text_tower_loads_exits_cleanly(cli_world) -> None:
    """The process exits with its one-line error, not an abort from a model still loading."""
    from tests.helpers.slow_commits import spawn

    data = cli_world[0]
    runs = [
        spawn("search", "--data", str(data), "--backend", "onnx", "dog", "--folder", "x") for _ in range(4)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 1, err
        assert err.strip().splitlines() == [
            "dualens: error: no indexed photos in the folder x (see `dualens check` for the roots)"
        ]


def test_text_hits_carry_a_match_band_and_nonsense_gets_no_good_matches(capsys, cli_world) -> None:
    data = cli_world[0]
    code, out, _ = run(capsys, "search", "--data", str(data), "dog", "-k", "5")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["#", "match"]
    assert lines[1].split()[1] in ("good", "strong") and lines[1].endswith("pets/dog.jpg")  # it is "dog"
    assert any(line.startswith("-- weaker matches") for line in lines)
    code, out, _ = run(capsys, "search", "--data", str(data), "--json", "dog", "-k", "1")
    assert json.loads(out)["hits"][0]["relevance"] in ("good", "strong")
    code, out, _ = run(capsys, "search", "--data", str(data), "xqzvbnm plorf wubble", "-k", "3")
    assert code == 0 and out.startswith("No good matches")
    assert [line.split()[1] for line in out.splitlines()[2:]] == ["weak"] * 3
    code, out, _ = run(capsys, "search", "--data", str(data), "xqzvbnm plorf wubble", "--min-match", "good")
    assert code == 0 and out.strip() == "No photos match."
    code, out, _ = run(capsys, "search", "--data", str(data), "dog", "--min-match", "good", "--json")
    assert {h["relevance"] for h in json.loads(out)["hits"]} <= {"good", "strong"}
    code, out, _ = run(capsys, "similar", "--data", str(data), str(cli_world[2][0]), "-k", "2")
    assert code == 0 and "match" not in out.splitlines()[0]  # image queries: no bands (another score scale)


def test_search_without_data_says_on_stderr_which_collection_it_read(
    capsys, cli_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.core import settings

    data = cli_world[0]
    monkeypatch.delenv(settings.DATA_ENV, raising=False)
    monkeypatch.setattr(settings, "DEFAULT_DATA", data)  # the default data directory, as if installed
    code, out, err = run(capsys, "search", "--json", "dog", "-k", "1")
    assert code == 0 and json.loads(out)["hits"][0]["path"].endswith("dog.jpg")  # stdout stays JSON
    expected = (
        settings.shown_db_url(os.environ[settings.DB_URL_ENV]) if settings.DB_URL_ENV in os.environ else data
    )
    assert err == f"dualens: note: using the collection in {expected}\n"
    code, _, err = run(capsys, "search", "--data", str(data), "dog", "-k", "1")
    assert code == 0 and err == ""  # named by --data: nothing to say

"""Crash anywhere: SIGKILL `dualens index` at seeded random moments, re-run, compare with a clean run.

Each trial kills the indexer once or twice at a moment drawn uniformly from [0, duration of an
uninterrupted run] (model loading, scan, any of the ~25 batch commits, the final FAISS write, or
after the end), then re-runs it to completion and checks that:

* `dualens check` passes (every indexed row has exactly one vector in the index, and no other);
* no path has two rows, the FAISS ids equal the ids of the indexed rows;
* the set of paths, their status and their vectors equal those of an uninterrupted run.

Trials alternate between a fresh collection and an incremental run that turns the folder into the
other of two variants (10 files deleted, 10 added, 5 modified, 5 moved), so kills also land in
re-embedding, moves and the final sweep.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexer.core.errors import CollectionError
from indexer.core.storage.collection import Collection
from indexer.core.storage.schema import Photo, vector_to_blob
from tests.helpers import slow_commits
from tests.helpers.db import Databases
from tests.helpers.faults import (
    CliForkServer,
    CollectionState,
    index_in_process,
    make_photos,
    read_state,
    state_differences,
)
from tests.helpers.images import pattern, save_jpeg

TRIALS = int(os.environ.get("DUALENS_CRASH_TRIALS", "20"))
N_PHOTOS = 100
BATCH_SIZE = "4"  # ~25 commits per fresh run
# A short pause after each commit (installed in each child) spreads the kill moments over the run.
_DELAY_HOOK = slow_commits.hook(0.02)


def _variants(tmp: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Folder contents A (100 photos) and B (A with 10 deleted, 10 new, 5 modified, 5 moved)."""
    src = tmp / "src"
    paths = make_photos(src / "a", N_PHOTOS, seed=1)
    a = {str(p.relative_to(src / "a")): p.read_bytes() for p in paths}
    names = sorted(a)
    b = dict(a)
    for name in names[0:10]:
        del b[name]
    for i in range(10):
        b[f"new/n{i:02d}.jpg"] = save_jpeg(
            src / "b" / f"n{i}.jpg", pattern((40, 30), seed=5000 + i)
        ).read_bytes()
    for i, name in enumerate(names[10:15]):
        b[name] = save_jpeg(src / "b" / f"m{i}.jpg", pattern((40, 30), seed=6000 + i)).read_bytes()
    for name in names[15:20]:
        b[f"moved/{Path(name).name}"] = b.pop(name)
    return a, b


def _sync(folder: Path, want: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly ``want`` (changed files get a fresh mtime)."""
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        rel = str(path.relative_to(folder))
        if rel not in want or path.read_bytes() != want[rel]:
            path.unlink()
    for rel, data in want.items():
        path = folder / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _index_argv(data: Path, folder: Path, model: Path, dbs: Databases) -> list[str]:
    # --prune: a folder the switch between variants removes whole is deleted, as in the reference
    # (without it that folder's photos are kept, by design: a vanished folder may be an unmounted disk)
    return [
        "index", "--data", str(data), *dbs.argv(data), "--model", str(model), "--batch-size", BATCH_SIZE,
        "--workers", "1", "--threads", "1", "--no-progress", "--prune", str(folder),
    ]  # fmt: skip


def _readable_after_kill(data: Path, db_url: str | None) -> list[str]:
    """What a killed run left must open: no collection yet, or a database whose vectors load."""
    try:
        collection = Collection.open(data, db_url=db_url)
    except CollectionError as exc:
        return [] if "no collection" in str(exc) else [f"after the kill: {exc}"]
    with collection:
        try:
            index = collection.load_index()
        except CollectionError as exc:
            return [f"after the kill the index cannot be loaded: {exc}"]
        stats = collection.info()
    if index.ntotal != stats.n_indexed:
        return [f"after the kill: index of {index.ntotal} vectors for {stats.n_indexed} indexed rows"]
    return []


def _run_seconds(output: str, default: float) -> float:
    """The duration `dualens index` reports ("time 1.23s: ..."), plus the fork's own start."""
    found = re.search(r"^time (\d+(?:\.\d+)?)s", output, re.MULTILINE)
    return float(found.group(1)) + 0.05 if found else default


@dataclass
class Tally:
    trials: int = 0
    kills: int = 0
    kills_mid_run: int = 0  # the process was still running when killed
    inconsistent_trials: int = 0
    lost_files: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"crash-anywhere: {self.trials} trials, {self.kills} SIGKILLs ({self.kills_mid_run} mid-run), "
            f"{self.inconsistent_trials} inconsistencies, {self.lost_files} lost files"
        )


def _reference(
    cli: CliForkServer,
    tmp: Path,
    folder: Path,
    contents: dict[str, bytes],
    model: Path,
    name: str,
    dbs: Databases,
):
    _sync(folder, contents)
    data = tmp / f"ref-{name}"
    result = cli.run(_index_argv(data, folder, model, dbs), pre=_DELAY_HOOK)
    assert result.rc == 0, result.output
    assert cli.run(["check", "--data", str(data), *dbs.argv(data)]).rc == 0
    state = read_state(data, dbs.url(data))
    assert len(state.indexed_paths) == len(contents)
    return state, result.seconds, data


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_duplicates_a_file(
    cli: CliForkServer,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    databases: Databases,
) -> None:
    dbs = databases
    a, b = _variants(tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    ref_a, t_fresh, data_ref_a = _reference(cli, tmp_path, folder, a, tiny_model_dir, "a", dbs)
    ref_b, _, _ = _reference(cli, tmp_path, folder, b, tiny_model_dir, "b", dbs)

    # An uninterrupted incremental run A -> B must give B's state too (and times the incremental kind).
    incr = tmp_path / "incr"
    shutil.copytree(data_ref_a, incr)
    dbs.url(incr, copy_of=data_ref_a)
    _sync(folder, b)
    result = cli.run(_index_argv(incr, folder, tiny_model_dir, dbs), pre=_DELAY_HOOK)
    assert result.rc == 0, result.output
    assert state_differences(read_state(incr, dbs.url(incr)), ref_b) == []
    # Kill moments are drawn in [0, horizon]; a kill that comes after the end shows the machine got
    # faster (it is shared): the horizon then moves towards that run's own duration.
    horizons = {"fresh": t_fresh, "incremental": result.seconds}

    refs: dict[str, tuple[dict[str, bytes], CollectionState]] = {"a": (a, ref_a), "b": (b, ref_b)}
    tally = Tally()
    data, variant = tmp_path / "trial-0", "b"
    for seed in range(TRIALS):
        rng = random.Random(seed)
        fresh = seed % 4 == 0
        variant = "a" if variant == "b" else "b"
        if fresh:
            data = tmp_path / f"trial-{seed}"
        contents, reference = refs[variant]
        _sync(folder, contents)
        argv = _index_argv(data, folder, tiny_model_dir, dbs)
        kind = "fresh" if fresh else "incremental"
        trial_problems: list[str] = []
        for n_kill in range(1 + (rng.random() < 0.3)):
            killed = cli.run_and_kill(argv, rng.uniform(0.0, horizons[kind]), pre=_DELAY_HOOK)
            tally.kills += 1
            tally.kills_mid_run += killed.rc == -9
            if killed.rc == 0 and n_kill == 0:
                horizons[kind] = 0.5 * horizons[kind] + 0.5 * _run_seconds(killed.output, horizons[kind])
            if killed.rc not in (0, -9):
                trial_problems.append(f"killed run exited with {killed.rc}: {killed.output[-500:]}")
            trial_problems += _readable_after_kill(data, dbs.url(data))
        resumed = cli.run(argv, pre=_DELAY_HOOK)
        if resumed.rc != 0:
            trial_problems.append(f"re-run failed ({resumed.rc}): {resumed.output[-800:]}")
        check = cli.run(["check", "--data", str(data), *dbs.argv(data)])
        if check.rc != 0:
            trial_problems.append(f"dualens check failed: {check.output[-800:]}")
        if resumed.rc == 0:
            got = read_state(data, dbs.url(data))
            trial_problems += state_differences(got, reference)
            tally.lost_files += len(reference.indexed_paths - got.indexed_paths)
        tally.trials += 1
        if trial_problems:
            tally.inconsistent_trials += 1
            tally.problems += [f"trial {seed} ({kind} {variant}): {p}" for p in trial_problems]
    with capsys.disabled():  # the figures go into the README's reliability table
        print(f"\n{tally.line()} ({dbs.kind})")
    assert tally.problems == [], "\n".join(tally.problems)
    assert tally.trials >= 20 or TRIALS < 20
    assert tally.kills_mid_run >= tally.trials // 2, f"most kills came after the end: {tally.line()}"


def test_the_state_comparison_detects_lost_duplicated_and_changed_entries(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The crash test can fail: each kind of damage it looks for is reported."""
    root = tmp_path / "photos"
    make_photos(root, 6, seed=2)
    data = tmp_path / "data"
    index_in_process(data, [root], tiny_model_dir)
    reference = read_state(data)
    assert state_differences(reference, reference) == []

    with Collection.open(data) as collection:
        with collection.session() as s, s.begin():
            first, second = s.scalars(select(Photo).order_by(Photo.id).limit(2)).all()
            vector = np.frombuffer(second.vector or b"", np.float32).copy()
            second.vector = vector_to_blob(-vector)  # a changed vector
            s.delete(first)  # a lost file
        index = collection.load_index()
        index.add(np.array([10_000]), vector.reshape(1, -1))  # a vector without a row
        collection.indexes.save(index)
    problems = state_differences(read_state(data), reference)
    assert any("lost" in p for p in problems)
    assert any("vector differs" in p for p in problems)
    assert any("index holds" in p for p in problems)

"""Cold start of the ``dualens`` command (``make bench-cold``, also run by ``make bench-search``).

Each figure is the wall time of a new process, from start to exit, against the bare import of the
libraries a query needs (``python -c "import onnxruntime, tokenizers, faiss, sqlalchemy, numpy"``),
measured pair by pair in the same run so that the machine's load falls on both alike. Beside each
wall time, the process's CPU time (user + system, from ``getrusage`` of the finished child): on a
shared machine whose load changes during the run, the CPU ratio is the steadier of the two:

    dualens search "a dog on a beach"   (the target: p50 <= 1.6x the bare import)
    dualens search '"a dog on a beach" - "a cat"'   (no relevance bands: nothing measured per process)
    dualens similar 1
    dualens check
    dualens --help

on a collection of 32 generated photos indexed with the default model (``make model``). With
``--baseline-tree DIR`` (a checkout of another commit, e.g. ``git worktree add /tmp/base main``),
the same commands of that tree are timed in the same rounds, for a before/after comparison.

Run: ``python -m tests.bench.bench_cold [--repeat 9] [--baseline-tree DIR]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.images import pattern, save_jpeg

ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.6  # dualens search, issue #31
BARE_IMPORT = "import onnxruntime, tokenizers, faiss, sqlalchemy, numpy"
PHOTOS = 32


def commands(data: Path) -> dict[str, list[str]]:
    """The timed command lines, after ``dualens``."""
    where = ["--data", str(data)]
    return {
        "search": ["search", *where, "a dog on a beach"],
        # a composite with a negative term has no relevance bands: the query path without measuring them
        "search-nobands": ["search", *where, '"a dog on a beach" - "a cat"'],
        "similar": ["similar", *where, "1"],
        "check": ["check", *where],
        "--help": ["--help"],
    }


def dualens(tree: Path, argv: list[str]) -> list[str]:
    """``python -m ui.cli`` of ``tree``: the entry point's own code path (ui.cli:main)."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); {_MAIN}", *argv]


_MAIN = "from ui.cli import main; sys.exit(main())"


def wall(argv: list[str], cwd: Path) -> float:
    """Seconds from start to exit of a new process; it must succeed."""
    env = {**os.environ, "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr.decode()[-2000:]}")
    return elapsed


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a new process, from start to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = wall(argv, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build_collection(data: Path, photos: Path) -> None:
    photos.mkdir()
    for i in range(PHOTOS):
        save_jpeg(photos / f"photo_{i:03d}.jpg", pattern((224, 168), seed=i))
    argv = dualens(ROOT, ["index", "--data", str(data), "--model", "default", "--no-progress", str(photos)])
    wall(argv, ROOT)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="rounds (each: bare import + every command)")
    parser.add_argument("--baseline-tree", type=Path, default=None, help="another checkout, timed alike")
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT}
    if args.baseline_tree:
        trees["baseline tree"] = args.baseline_tree.resolve()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        data = Path(tmp) / "data"
        build_collection(data, Path(tmp) / "photos")
        lines = commands(data)
        bare = [sys.executable, "-c", BARE_IMPORT]
        for tree in trees.values():  # warm the page cache and the bytecode of both trees once
            for line in lines.values():
                wall(dualens(tree, line), tree)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        bare_times: dict[str, list[tuple[float, float]]] = {name: [] for name in lines}
        for _ in range(args.repeat):
            for name, line in lines.items():
                bare_times[name].append(timed(bare, ROOT))  # the pair: bare import, then each tree
                for label, tree in trees.items():
                    times.setdefault((label, name), []).append(timed(dualens(tree, line), tree))
    print(f"load average at end: {os.getloadavg()[0]:.2f}; {args.repeat} rounds")
    print(f"bare import = python -c {BARE_IMPORT!r}")
    for name in lines:
        base = p50([w for w, _ in bare_times[name]])
        base_cpu = p50([c for _, c in bare_times[name]])
        for label in trees:
            took = p50([w for w, _ in times[(label, name)]])
            cpu = p50([c for _, c in times[(label, name)]])
            ratio = took / base
            verdict = ""
            if name == "search":
                verdict = f"  target <= {TARGET_RATIO}x: {'MET' if ratio <= TARGET_RATIO else 'NOT MET'}"
            print(
                f"cold {name:14s} {label:13s} p50 {took:6.3f} s | bare import p50 {base:6.3f} s | "
                f"ratio {ratio:4.2f}x | CPU {cpu:5.3f} s vs {base_cpu:5.3f} s {cpu / base_cpu:4.2f}x{verdict}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The plan of the house: no import cycles, and each package imports only what it may.

indexer.core      shared by everything; imports nothing else of dualens
indexer.quality   evaluation and training; imports indexer.core
indexer           the indexing pipeline; imports indexer.core
search            the search API; imports indexer.core
ui                Streamlit app and CLI; imports search (its public package) and indexer.core;
                  the `dualens` entry point (ui.cli) also imports each package's commands module
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "search", "ui")
ENTRY_POINT = "ui.cli"
COMMAND_MODULES = {
    "indexer.commands",
    "indexer.model_commands",
    "indexer.quality.commands",
    "search.commands",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every dualens module ``name`` imports (module level, in functions, or for type checking)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules)
    out.discard(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _allowed(importer: str, imported: str) -> bool:
    def within(module: str, package: str) -> bool:
        return module == package or module.startswith(package + ".")

    if within(imported, "indexer.core"):
        return True
    if within(importer, "indexer.core"):
        return False
    if within(importer, "indexer.quality"):
        return within(imported, "indexer.quality")
    if within(importer, "indexer"):
        return within(imported, "indexer") and not within(imported, "indexer.quality")
    if within(importer, "search"):
        return within(imported, "search")
    if importer == ENTRY_POINT and imported in COMMAND_MODULES:
        return True
    return within(imported, "ui") or imported == "search"


def test_no_module_imports_another_package_s_private_modules() -> None:
    graph = _graph()
    assert len(graph) > 50  # the whole code base was read
    wrong = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if not _allowed(a, b))
    assert wrong == []


def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_command_line_registers_its_commands_with_plain_imports() -> None:
    source = (ROOT / "ui" / "cli.py").read_text(encoding="utf-8")
    assert "importlib" not in source and "__import__" not in source
    assert _graph()[ENTRY_POINT] >= COMMAND_MODULES


def test_no_module_of_search_imports_sqlalchemy() -> None:
    """search/ composes no SQL: it reads through indexer/core/storage/search_reads.py."""
    offenders = []
    for path in sorted((ROOT / "search").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n == "sqlalchemy" or n.startswith("sqlalchemy.") for n in names):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports that are not relative."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _session_calls(path: Path) -> list[int]:
    """Lines that open a database session (``x.session()``) or reach for an engine (``x.engine.y``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "session" and not node.args:
                lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and getattr(node.value, "attr", None) == "engine":
            lines.append(node.lineno)  # collection.engine.connect(), .dialect, ...
    return lines


def test_the_indexer_reaches_the_database_only_through_storage() -> None:
    """SQL is composed in ``indexer.core.storage`` alone: no other indexer module imports SQLAlchemy
    or opens a session of its own."""
    indexer = {name: path for name, path in _modules().items() if name.split(".")[0] == "indexer"}
    outside = {n: p for n, p in indexer.items() if not n.startswith("indexer.core.storage")}
    assert "indexer.pipeline" in outside and "indexer.core.storage.database" in indexer
    storage = indexer["indexer.core.storage.rows"]
    assert "sqlalchemy" in _third_party_imports(storage) and _session_calls(storage)  # the checks see
    importing = sorted(n for n, p in outside.items() if "sqlalchemy" in _third_party_imports(p))
    assert importing == []
    sessions = sorted(f"{n}:{line}" for n, p in outside.items() for line in _session_calls(p))
    assert sessions == []


def test_the_development_guide_lists_every_module() -> None:
    """docs/development.md's layout names every module of the three packages by its path."""
    guide = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    layout = guide[guide.index("## Layout") : guide.index("## Tests")]
    modules = sorted(
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    )
    assert modules, "no modules found"
    assert [m for m in modules if m not in layout] == []


def test_the_front_ends_reach_the_database_only_through_search_and_storage() -> None:
    """ui/ (the page, the CLI, the HTTP service) imports no SQLAlchemy and opens no session."""
    front = {name: path for name, path in _modules().items() if name.split(".")[0] == "ui"}
    assert "ui.api" in front
    assert sorted(n for n, p in front.items() if "sqlalchemy" in _third_party_imports(p)) == []
    assert sorted(f"{n}:{line}" for n, p in front.items() for line in _session_calls(p)) == []

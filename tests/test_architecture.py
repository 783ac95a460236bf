"""Import rules of DESIGN §1, checked on the AST of every module (and, for torch, at run time)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "desktop_app", "training")


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


FORBIDDEN = {
    "engine": {"desktop_app", "training", "PySide6", "PyQt5", "PyQt6", "sounddevice"},
    "desktop_app": {"training"},
    "training": {"desktop_app", "PySide6", "sounddevice"},
}


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package: str) -> None:
    bad = []
    for path in _modules(package):
        hit = _top(_imports(path)) & FORBIDDEN[package]
        if hit:
            bad.append(f"{path.relative_to(ROOT)} imports {sorted(hit)}")
    assert not bad, "\n".join(bad)


def test_storage_layer_never_imports_torch_statically() -> None:
    checked = [*_modules("engine")]
    storage = [p for p in checked if p.parent.name == "storage"] + [
        ROOT / "engine" / n for n in ("library.py", "status.py", "bundle.py", "errors.py", "audio.py")
    ]
    assert storage, "no storage modules found"
    for path in storage:
        if path.exists():
            assert "torch" not in _top(_imports(path)), f"{path.relative_to(ROOT)} imports torch"


def test_storage_layer_does_not_load_torch_at_run_time() -> None:
    code = (
        "import sys, engine.storage.db, engine.library, engine.status, engine.bundle, engine.search;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_only_the_player_imports_sounddevice() -> None:
    users = [p for p in _modules("desktop_app") if "sounddevice" in _top(_imports(p))]
    assert [p.name for p in users] in ([], ["player.py"])


def test_importing_modules_does_nothing_heavy() -> None:
    """Importing the CLI must not import torch (so `earshot --help` and `status` are instant)."""
    code = "import sys, engine.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, known: set[str]) -> str | None:
    """The most specific project module named by ``name`` (``a.b.c`` → ``a.b.c``, else ``a.b``, ...)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _import_graph(packages: tuple[str, ...] = (*PACKAGES, "scripts", "benchmarks")) -> dict[str, set[str]]:
    """Project module → project modules it imports (anywhere in the file, lazy imports included)."""
    paths = {_module_name(p): p for package in packages for p in _modules(package)}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in (_resolve(x, known) for x in targets) if t and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_reports_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_project_modules() -> None:
    graph = _import_graph()
    assert "training.data.debian.corpus" in graph["training.data.captions"], "the graph misses imports"
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


#: What the storage layer may import from the rest of the engine: leaf modules without state or torch.
STORAGE_MAY_IMPORT = {"engine.errors", "engine.metadata", "engine.ucs"}


def test_storage_never_imports_upward() -> None:
    """engine/storage/ uses only itself and leaf modules (it used to import engine.keyword for its table)."""
    bad = []
    for path in _modules("engine"):
        if path.parent.name != "storage":
            continue
        for name in _imports(path):
            if name.startswith("engine") and not name.startswith("engine.storage") and name not in STORAGE_MAY_IMPORT:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if name == "engine":
                bad.append(f"{path.relative_to(ROOT)} imports the engine package")
    assert not bad, "\n".join(bad)

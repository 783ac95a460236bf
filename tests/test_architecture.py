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

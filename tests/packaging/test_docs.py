"""The README and docs/ARCHITECTURE.md point only at things a clone has (a user's clone has no ../shared)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "ARCHITECTURE.md"]


def test_links_resolve_inside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert "../" not in text, f"{doc.name} refers outside the repository"
        for target in re.findall(r"\]\(([^)#\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            assert (doc.parent / target).resolve().is_relative_to(ROOT), (doc.name, target)
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_architecture_names_modules_that_exist() -> None:
    """Every ``something.py`` and ``package/`` the architecture page names is in the tree (renaming a
    module without updating the page fails here)."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    py_files = {p.name for pkg in ("engine", "desktop_app", "training", "tests") for p in (ROOT / pkg).rglob("*.py")}
    py_files.add("setup.py")
    named = set(re.findall(r"`(?:[\w/]+/)?(\w+\.py)`", text))
    assert len(named) >= 20
    assert named - py_files == set()
    for path in re.findall(r"`((?:engine|desktop_app|training|scripts|resources|tests)/[\w./-]*)`", text):
        if not path.startswith("engine/_shipped_models"):  # exists in the built wheel only
            assert (ROOT / path).exists(), path

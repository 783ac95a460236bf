"""Packaging glue that ``pyproject.toml`` cannot express (all other metadata lives there).

The model bundles are kept at the repository root in ``resources/models/`` (where training's export step and
``scripts/build_default_model.sh`` put them, one folder per bundle plus the ``DEFAULT`` marker). A wheel must
carry them, so the build copies that whole folder — whatever bundles it holds — into the built ``engine``
package as ``engine/_shipped_models/``; :func:`engine.bundle.shipped_models_dir` looks there first and falls
back to ``resources/models`` in a checkout (editable installs read the repository's copy: nothing is duplicated).
A weights file that several bundles carry byte for byte (every 2.x default has the same 9 MB aiSFX network) goes
into the wheel once, as ``_shipped_models/_shared/<sha256>.safetensors``
(:func:`engine.bundle.share_identical_weights`; the bundles' ids are unchanged).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MODELS_SRC = ROOT / "resources" / "models"
MODELS_DEST = ("engine", "_shipped_models")  # keep in step with engine.bundle.PACKAGED_MODELS


def _wanted(path: Path) -> bool:
    """Files of finished bundles only: no hidden entries (an export's temporary ``.tmp-…``/``.old`` folders),
    no caches."""
    rel = path.relative_to(MODELS_SRC)
    return path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts)


class BuildPyWithModels(build_py):
    """``build_py`` that also copies ``resources/models/**`` into the built ``engine`` package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not MODELS_SRC.is_dir():
            return
        dest = Path(self.build_lib).joinpath(*MODELS_DEST)
        shutil.rmtree(dest, ignore_errors=True)  # a bundle removed from resources/ must not linger in build/
        for src in sorted(MODELS_SRC.rglob("*")):
            if _wanted(src):
                target = dest / src.relative_to(MODELS_SRC)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
        sys.path.insert(0, str(ROOT))  # the engine being packaged (stdlib only at import), not an installed one
        try:
            from engine.bundle import share_identical_weights
        finally:
            sys.path.remove(str(ROOT))
        saved = share_identical_weights(dest)
        print(f"model bundles: {saved / 1e6:.1f} MB of identical weights files shared")


setup(cmdclass={"build_py": BuildPyWithModels})

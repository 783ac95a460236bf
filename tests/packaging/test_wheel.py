"""The built wheel carries everything Earshot reads at run time — every model bundle in resources/models/,
the UCS tables, the app's desktop entry and icon — and works unpacked, away from the checkout.
(``scripts/check_wheel.sh``, run by CI, goes further: a fresh virtualenv, real index/search/similar, the app.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "resources" / "models"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w",
         str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = out.glob("earshot-*.whl")
    return whl


def shipped_files() -> dict[str, Path]:
    return {
        p.relative_to(MODELS).as_posix(): p
        for p in MODELS.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(MODELS).parts)
    }


def test_wheel_carries_every_bundle_byte_for_byte(wheel) -> None:
    files = shipped_files()
    assert "DEFAULT" in files and any(name.endswith("/bundle.json") for name in files)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        packaged = {n.removeprefix("engine/_shipped_models/") for n in names if n.startswith("engine/_shipped_models/")}
        shared = {n for n in packaged if n.startswith("_shared/")}
        # Every bundle folder, nothing else (no hidden export leftovers); a weights file several bundles carry
        # byte for byte is there once, in _shared/ under its sha256, and each bundle.json names it.
        digests: dict[str, list[str]] = {}
        for rel, src in files.items():
            if rel.endswith(".safetensors"):
                digests.setdefault(hashlib.sha256(src.read_bytes()).hexdigest(), []).append(rel)
        assert shared == {f"_shared/{d}.safetensors" for d, rels in digests.items() if len(rels) > 1}
        assert shared, "the shipped bundles share their aiSFX network: it should be in the wheel once"
        for rel, src in files.items():
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
            if rel.endswith(".safetensors") and len(digests[digest]) > 1:
                assert rel not in packaged, rel
                assert z.read(f"engine/_shipped_models/_shared/{digest}.safetensors") == src.read_bytes(), rel
                folder, name = rel.split("/", 1)
                spec = json.loads(z.read(f"engine/_shipped_models/{folder}/bundle.json"))
                assert spec["shared_weights"][name] == digest, rel
            elif rel.endswith("/bundle.json"):
                spec = json.loads(z.read(f"engine/_shipped_models/{rel}"))
                spec.pop("shared_weights", None)
                assert spec == json.loads(src.read_bytes()), rel  # nothing else changed
            else:
                assert z.read(f"engine/_shipped_models/{rel}") == src.read_bytes(), rel
        assert packaged == (set(files) - {r for rels in digests.values() if len(rels) > 1 for r in rels}) | shared
        default = z.read("engine/_shipped_models/DEFAULT").decode().strip()
        assert f"engine/_shipped_models/{default}/bundle.json" in names
        # Other run-time data.
        for needed in (
            "engine/data/ucs/ucs-8.2.1-en.json",
            "engine/data/ucs/ucs-additions.json",
            "engine/data/fusion.json",
            "desktop_app/resources/earshot.desktop",
            "desktop_app/resources/earshot.svg",
            "training/data/debian_sfx_captions.csv",
            "training/recipes/sfx-small/common.toml",
        ):
            assert needed in names, needed
        # Only the three packages at the top level (no resources/, tests/, scripts/ in site-packages).
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert top == {"engine", "desktop_app", "training"}
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        for script in ("earshot = engine.cli:run", "earshot-app = desktop_app.main:main"):
            assert script in entry_points


def run_unpacked(wheel: Path, tmp_path: Path, *args: str) -> tuple[Path, subprocess.CompletedProcess]:
    """Unpack the wheel into ``tmp_path/site`` and run Python there with only it on the path (no
    environment pointing at other models). Returns the site folder and the finished process."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    env.pop("EARSHOT_MODELS_DIR", None)
    env.pop("EARSHOT_BUNDLE", None)
    res = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return site, res


def test_unpacked_wheel_finds_its_own_default_model(wheel, tmp_path) -> None:
    site, res = run_unpacked(wheel, tmp_path, "-m", "engine.cli", "models", "--json")
    (default,) = [m for m in json.loads(res.stdout) if m["default"]]
    assert Path(default["path"]).is_relative_to(site / "engine" / "_shipped_models")
    assert default["trained"] is True


def test_every_bundle_of_the_unpacked_wheel_verifies(wheel, tmp_path) -> None:
    """With the shared weights read from _shared/, every bundle's bytes still hash to its bundle_id."""
    code = ("import json; from engine.bundle import list_bundles, shipped_models_dir; "
            "print(json.dumps([[str(p), s['bundle_id'] if isinstance(s, dict) else f'ERROR {s}'] "
            "for p, s in list_bundles(verify=True) if p.parent == shipped_models_dir()]))")
    site, res = run_unpacked(wheel, tmp_path, "-c", code)
    got = json.loads(res.stdout)
    assert len(got) == len([d for d in MODELS.iterdir() if (d / "bundle.json").exists()])
    for path, bundle_id in got:
        assert Path(path).is_relative_to(site / "engine" / "_shipped_models")
        expected = json.loads((MODELS / Path(path).name / "bundle.json").read_text())["bundle_id"]
        assert bundle_id == expected, (path, bundle_id)

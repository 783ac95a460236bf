"""The embedded default model: the shipped bundle answers a query, and its one-command rebuild
(`scripts/build_default_model.sh`) runs end to end in a reduced form — the real sfx-small recipe (frozen
aiSFX + MiniLM, every stage, ensemble, export) on a few synthetic clips for one epoch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.bundle import default_bundle_name, load_bundle, resolve_bundle
from engine.indexing import Indexer
from engine.library import Library
from engine.search import Searcher
from tests.training import synthetic as syn

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "training" / "recipes" / "sfx-small"


def _shipped_aisfx_weights() -> Path:
    b = load_bundle(resolve_bundle(None))
    return b.file(b.audio_backbones["aisfx"]["weights"])


def test_shipped_default_loads_and_answers(tmp_path):
    assert default_bundle_name(), "resources/models/DEFAULT names no bundle"
    t0 = time.perf_counter()
    b = load_bundle(resolve_bundle(None))
    assert time.perf_counter() - t0 < 2.0  # hash check of ≤ 50 MB of weights included
    size = sum(p.stat().st_size for p in b.path.iterdir() if p.is_file())
    assert size <= 50 * 10**6  # the bound for the default bundle
    assert "CC BY 4.0" in b.model_card and "Ma" in b.model_card  # aiSFX attribution
    root = tmp_path / "s"
    corpus = syn.make_corpus(root)
    with Library(tmp_path / "lib") as lib:
        assert lib.bundle.bundle_id == b.bundle_id
        Indexer(lib).run([corpus["audio"]])
        hits = Searcher(lib).search("a high whistle", k=5)
        assert len(hits) == 5 and all(Path(h.path).exists() for h in hits)


def _quick_recipe(tmp: Path, corpus: dict[str, Path]) -> Path:
    d = tmp / "recipe"
    d.mkdir()
    src = f'{{format = "debian_sfx", path = "{corpus["captions"]}", audio_root = "{corpus["audio"]}", split = "%s"}}'
    (d / "common.toml").write_text(f"""
extends = "{RECIPE / 'common.toml'}"

[model.audio_backbone]
name = "aisfx"
arch = "aisfx_cnn"
config = {{pretrained = "{_shipped_aisfx_weights()}", time_pool = "max"}}
trainable = false
ship_weights = true

[data]
max_audio_s = 2.0
train = [{src % "train"}]

[data.eval.val]
sources = [{src % "val"}]
queries = {{path = "{corpus["queries"]}", audio_root = "{corpus["audio"]}"}}

[data.eval.dev]
sources = [{src % "val"}]
queries = {{path = "{corpus["queries"]}", audio_root = "{corpus["audio"]}"}}

[data.eval.test]
sources = [{src % "test"}]
queries = {{path = "{corpus["queries"]}", audio_root = "{corpus["audio"]}"}}

[data.eval.blind]
queries = {{path = "{corpus["queries"]}", audio_root = "{corpus["audio"]}"}}

[train]
batch_size = 16
plot = false

[augment]
mixes = 8

[clustering]
k = 4

[cache]
dir = "{tmp / 'cache'}"
""", encoding="utf-8")
    for name in ("stage1", "stage2", "stage3", "teacher", "ensemble", "export"):
        shutil.copy(RECIPE / f"{name}.toml", d / f"{name}.toml")
    return d


@pytest.mark.slow
def test_rebuild_command_runs_end_to_end_in_reduced_form(tmp_path):
    corpus = syn.make_corpus(tmp_path / "corpus")
    recipe = _quick_recipe(tmp_path, corpus)
    runs, dest = tmp_path / "runs", tmp_path / "bundle" / "earshot-sfx-small-quick"
    # The default chain (LAST_STAGE=3): stage 1, teacher, stages 2 and 3, ensemble (on dev), export.
    # JOBS=2: the seeds run side by side (stage 1 after the first seed, stages 2-3 after the teacher).
    env = {**os.environ, "QUICK": "1", "RECIPE": str(recipe), "SEEDS": "0 1", "EPOCHS": "1", "JOBS": "2",
           "PYTHON": sys.executable}
    env.pop("LAST_STAGE", None)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build_default_model.sh"), str(runs), str(dest)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("stage1-s0", "stage1-s1", "teacher", "stage2-s0", "stage3-s1", "ensemble", "kept/m0", "kept/m1"):
        assert (runs / stage).is_dir(), stage
    assert json.loads((runs / "ensemble" / "ensemble.json").read_text())["eval_set"] == "dev"
    b = load_bundle(dest)
    assert b.trained and b.sample_rate == 44100 and len(b.members) >= 2
    # the recipe's query-by-example member (export.examples) is built from the training captions
    assert b.members[-1].name == "examples" and b.members[-1].weight == pytest.approx(0.3)
    assert b.spec["training"]["metrics"]["test"]["queries"] == len(syn.QUERIES)
    with Library(tmp_path / "lib", dest) as lib:
        Indexer(lib).run([corpus["audio"]])
        assert len(Searcher(lib).search("a ticking clock", k=3)) == 3


SCRIPT = REPO / "scripts" / "build_default_model.sh"


def _script_lines() -> list[str]:
    return [ln.split("#", 1)[0] for ln in SCRIPT.read_text(encoding="utf-8").splitlines()]


def test_rebuild_script_reads_nothing_outside_the_clone():
    """A user's clone has no ../shared: the script names no path above the repository."""
    bad = [ln for ln in _script_lines() if "../" in ln or "shared/" in ln]
    assert not bad, bad


def test_rebuild_script_runs_no_relative_interpreter_inside_a_cd():
    """`(cd X && .venv/bin/python ...)` fails: every interpreter the script runs is an absolute path."""
    import re

    lines = _script_lines()
    assert any(re.match(r'\s*PY="\$\{PYTHON:-\$PWD/\.venv/bin/python\}"', ln) for ln in lines)
    relative = [ln for ln in lines if re.search(r"(^|[\s(&;|])\.?\.?/?\.venv/bin/", ln) and "$PWD/" not in ln]
    assert not relative, relative
    for ln in lines:
        if re.search(r"\bcd\b", ln):
            after_cd = ln.split("cd", 1)[1]
            assert not re.search(r"(^|[\s&;|])(python3?|\.venv|[\w./-]*bin/python)", after_cd), ln


def test_rebuild_script_inventories_are_committed_and_clean():
    """Every inventory the script builds from is in the repository, readable, and free of reserved packages."""
    import re

    from training.data.debian.corpus import RESERVED_PACKAGES, read_inventory

    paths = re.findall(r"--inventory\s+(\S+)", SCRIPT.read_text(encoding="utf-8"))
    assert "training/data/sfx_inventory.csv" in paths
    for rel in paths:
        rows = read_inventory(REPO / rel)
        assert rows, rel
        assert not {r.package for r in rows} & RESERVED_PACKAGES, rel

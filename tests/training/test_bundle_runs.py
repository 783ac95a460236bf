"""A shipped bundle's members as run directories (how 2.0.0 keeps the members of 1.0.0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from engine.errors import EarshotError
from training.bundle_runs import main, runs_from_bundle
from training.config import load_recipe
from training.model import load_run

REPO = Path(__file__).resolve().parents[2]
V1 = REPO / "resources" / "models" / "earshot-sfx-small-1.0.0"
STAGE1 = REPO / "training" / "recipes" / "sfx-small" / "stage1.toml"
AISFX = f'model.audio_backbone.config={{pretrained = "{V1 / "audio_aisfx.safetensors"}", time_pool = "max"}}'


def test_members_become_runs_and_export_back_to_the_same_weights(tmp_path):
    from training.export import export_bundle

    recipe = load_recipe(STAGE1, [AISFX])
    runs = runs_from_bundle(V1, tmp_path / "kept", recipe)
    assert [r.name for r in runs] == ["m0", "m1"]
    heads = load_file(str(V1 / "heads.safetensors"))
    run = load_run(runs[1])
    got = run.model.state_dict()
    assert got["audio_head.net.1.weight"].equal(heads["m1.audio.net.1.weight"].float())
    assert got["text_head.net.4.bias"].equal(heads["m1.text.net.4.bias"].float())
    # Exported again with 1.0's weights: the head and backbone weight files come out bit for bit.
    spec = json.loads((V1 / "bundle.json").read_text())
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps(
        {"members": [{"run": str(r), "weight": m["weight"]} for r, m in zip(runs, spec["members"], strict=True)],
         "eval_set": "val", "metric": "map@16", "metrics": spec["training"]["ensemble"]["metrics"]}))
    # (1.0 had no query-by-example member: the recipe's is left out)
    overrides = [AISFX, f'export.source="{ens}"', "export.evaluate=[]", "export.examples.weight=0"]
    out = export_bundle(load_recipe(STAGE1, overrides), tmp_path / "b")
    for name in ("heads.safetensors", "audio_aisfx.safetensors"):
        assert (out.path / name).read_bytes() == (V1 / name).read_bytes(), name
    # The card says what generated the kept members' augmented captions (1.0's rule-based fallback), read
    # from the members themselves, not from whatever augmentation cache this machine has (here: none).
    assert spec["training"]["augmentation"] == "rules"
    assert json.loads((out.path / "bundle.json").read_text())["training"]["augmentation"] == "rules"


def test_a_member_the_recipe_would_not_build_is_refused(tmp_path):
    cls = AISFX.replace('time_pool = "max"', 'time_pool = "max", classifiers = "logits"')
    with pytest.raises(EarshotError, match="audio backbone"):
        runs_from_bundle(V1, tmp_path / "a", load_recipe(STAGE1, [cls]))
    with pytest.raises(EarshotError, match="audio head"):
        runs_from_bundle(V1, tmp_path / "b", load_recipe(STAGE1, [AISFX, "model.audio_head.config.hidden=512"]))
    assert main([str(V1), str(tmp_path / "c"), "--config", str(STAGE1), "--set", "model.embed_dim=64"]) == 1

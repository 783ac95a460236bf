"""Recipes: the shipped TOML files parse; extends/overrides merge; unknown keys and bad types are named;
a saved recipe reads back identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import RecipeError, load_recipe, load_run_recipe, recipe_to_dict, save_recipe, to_toml

RECIPES = Path(__file__).resolve().parents[2] / "training" / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/*.toml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_recipes_parse(path: Path) -> None:
    r = load_recipe(path)
    assert r.model.embed_dim > 0 and r.data.train
    if path.stem in ("stage2", "stage3"):
        assert r.train.augment and r.loss.distill == 1.0 and r.train.init_from and r.train.teacher
    if path.stem == "stage3":
        assert r.loss.cluster_audio == r.loss.cluster_text == 0.05


def test_full_recipe_matches_the_seed_system() -> None:
    r = load_recipe(RECIPES / "passt-roberta" / "stage1.toml")
    assert (r.model.audio_backbone.arch, r.model.text_backbone.arch) == ("passt", "roberta")
    assert r.model.sample_rate == 32000 and r.model.embed_dim == 1024 and r.loss.tau == 0.05
    assert r.train.batch_size == 64 and r.train.epochs == 20
    assert (r.train.lr, r.train.lr_end) == (2e-5, 1e-7)
    assert r.model.text_backbone.config["max_tokens"] == 32
    small = load_recipe(RECIPES / "sfx-small" / "stage1.toml")
    assert not small.model.audio_backbone.trainable and not small.model.text_backbone.trainable
    assert small.model.audio_backbone.ship_weights


def test_extends_and_overrides(tmp_path: Path) -> None:
    base = RECIPES / "sfx-small" / "stage2.toml"
    r = load_recipe(
        base, ["train.seed=3", "train.out=runs/x", "augment.mix_gain_db=[-3.0, 0.0]", "loss.tau=0.07"]
    )
    assert r.train.seed == 3 and r.train.out == "runs/x" and r.augment.mix_gain_db == (-3.0, 0.0)
    assert r.loss.tau == 0.07 and r.loss.distill == 1.0  # stage2's own value survives the merge
    assert r.model.audio_backbone.name == "aisfx"  # from common.toml


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.sede=1", "train.sede"),
        ("train.seed=1.5", "train.seed must be an integer"),
        ("train.amp=fast", "train.amp"),
        ("loss.distill=-1", "loss.distill"),
        ("model.clip_pooling=median", "clip_pooling"),
        ("nonsense", "section.key=value"),
    ],
)
def test_bad_values_are_named(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(RECIPES / "sfx-small" / "stage1.toml", [override])


def test_missing_file_and_cycles(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.toml")
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(RecipeError, match="extends itself"):
        load_recipe(tmp_path / "a.toml")
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml")


def test_saved_recipe_reads_back_identical(tmp_path: Path) -> None:
    r = load_recipe(RECIPES / "passt-roberta" / "stage3.toml", ["data.eval.val.sources=[]"])
    save_recipe(r, tmp_path)
    again = load_run_recipe(tmp_path)
    assert again == r
    assert recipe_to_dict(again) == recipe_to_dict(r)
    with pytest.raises(RecipeError, match="not a training run"):
        load_run_recipe(tmp_path / "elsewhere")


def test_toml_writer_quotes_what_it_must() -> None:
    import tomllib

    doc = {"a": 'say "hi"\n', "b": {"weird key": [1, 2.5, True], "t": {"x": "y"}}, "c": [{"k": "v"}]}
    assert tomllib.loads(to_toml(doc)) == doc

"""Learning-rate schedule and optimiser groups."""

from __future__ import annotations

import pytest
from torch import nn

from training.optim import param_groups, warmup_cosine


def test_warmup_then_cosine_to_the_end_rate() -> None:
    lrs = [warmup_cosine(s, total=110, warmup=10, lr=2e-5, lr_end=1e-7) for s in range(110)]
    assert lrs[0] == pytest.approx(2e-6) and lrs[9] == pytest.approx(2e-5)
    assert lrs[10] == pytest.approx(2e-5) and lrs[-1] == pytest.approx(1e-7)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:], strict=False))  # monotone decay after warm-up
    assert warmup_cosine(60, total=110, warmup=10, lr=1.0, lr_end=0.0) == pytest.approx(0.5, abs=0.01)


def test_backbones_and_heads_get_their_own_rates_and_no_decay_on_biases() -> None:
    from tests.training.test_config import RECIPES
    from training.config import load_recipe

    recipe = load_recipe(
        RECIPES / "passt-roberta" / "stage1.toml",
        ["model.audio_backbone.lr=1e-5", "model.audio_head.lr=1e-3", "train.weight_decay=0.01"],
    )
    model = nn.Module()
    model.audio_backbone = nn.Linear(4, 4)
    model.audio_head = nn.Linear(4, 2)
    model.text_head = nn.Linear(4, 2)
    groups = {
        (g["lr"], g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in param_groups(model, recipe)
    }
    assert load_recipe(RECIPES / "passt-roberta" / "stage1.toml").train.weight_decay == 0.0  # the baseline's
    assert groups == {
        (1e-5, 0.01): 16,
        (1e-5, 0.0): 4,
        (1e-3, 0.01): 8,
        (1e-3, 0.0): 2,
        (2e-5, 0.01): 8,
        (2e-5, 0.0): 2,
    }

"""Optimiser and learning-rate schedule: AdamW, linear warm-up, cosine decay to ``lr_end`` (over
``train.decay_epochs``, or every remaining epoch), then flat at ``lr_end``."""

from __future__ import annotations

import math

import torch
from torch import nn

from training.config import Recipe


def warmup_cosine(
    step: int, *, total: int, warmup: int, lr: float, lr_end: float, decay: int = 0
) -> float:
    """Learning rate at optimiser step ``step`` (0-based): ``lr · (step + 1) / warmup`` during warm-up,
    then cosine from ``lr`` down to ``lr_end`` over ``decay`` steps (0: until ``total - 1``), then flat at
    ``lr_end``."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, decay if decay > 0 else total - warmup - 1)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return lr_end + 0.5 * (lr - lr_end) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """AdamW groups: each backbone and head at its own learning rate (``lr`` in the recipe section, else
    ``train.lr``); no weight decay on biases and normalisation weights."""
    m, t = recipe.model, recipe.train
    rates = {
        "audio_backbone.": m.audio_backbone.lr or t.lr,
        "text_backbone.": m.text_backbone.lr or t.lr,
        "audio_head.": m.audio_head.lr or t.lr,
        "text_head.": m.text_head.lr or t.lr,
    }
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = next((v for k, v in rates.items() if name.startswith(k)), m.audio_head.lr or t.lr)
        decay = p.ndim >= 2
        groups.setdefault((lr, decay), []).append(p)
    return [
        {"params": ps, "lr": lr, "base_lr": lr, "weight_decay": t.weight_decay if decay else 0.0}
        for (lr, decay), ps in groups.items()
    ]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, recipe), lr=recipe.train.lr)


def set_learning_rates(
    opt: torch.optim.Optimizer,
    step: int,
    *,
    total: int,
    warmup: int,
    recipe: Recipe,
    decay: int = 0,
) -> float:
    """Apply the schedule to every group (each scaled from its own base rate); returns ``train.lr``'s value.
    ``decay``: steps of cosine decay after warm-up (0: until the end)."""
    t = recipe.train
    ratio = t.lr_end / t.lr if t.lr > 0 else 0.0
    for g in opt.param_groups:
        g["lr"] = warmup_cosine(
            step, total=total, warmup=warmup, lr=g["base_lr"], lr_end=g["base_lr"] * ratio, decay=decay
        )
    return warmup_cosine(step, total=total, warmup=warmup, lr=t.lr, lr_end=t.lr_end, decay=decay)

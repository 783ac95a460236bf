"""Each loss term on tiny tensors with known answers; the task applies the weights once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from training.losses import (
    ClusterLoss,
    ContrastiveLoss,
    DistillationLoss,
    LossTask,
    caption_positives,
    carried_codes,
    positives_mask,
    window_similarity,
)


def test_single_positive_contrastive_is_symmetric_clip_loss() -> None:
    torch.manual_seed(0)
    sim = torch.randn(5, 5).tanh()
    target = torch.arange(5)
    expected = 0.5 * (F.cross_entropy(sim / 0.05, target) + F.cross_entropy(sim.T / 0.05, target))
    got = ContrastiveLoss(0.05)(sim, torch.eye(5, dtype=torch.bool))["contrastive"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_multi_positive_mask_treats_captions_of_one_clip_as_positives() -> None:
    # Two captions of the same clip: every entry is a positive, the target is uniform.
    sim = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = positives_mask(torch.tensor([7, 7]))
    assert pos.all()
    got = ContrastiveLoss(tau=1.0)(sim, pos)["contrastive"]
    # Row 0: -(log p00 + log p01) / 2 with p = softmax([1, 0]) → log(1 + e) - 1/2; all rows/columns alike.
    assert got.item() == pytest.approx(math.log(1 + math.e) - 0.5, rel=1e-6)
    single = ContrastiveLoss(tau=1.0)(sim, torch.eye(2, dtype=torch.bool))["contrastive"]
    assert single.item() == pytest.approx(math.log(1 + math.e) - 1.0, rel=1e-6)


def test_caption_positives_count_other_clips_that_carry_the_caption() -> None:
    # Clip 0 carries "piano note" (text 0) and "c4" (text 1); clip 1 carries "piano note" and "e4" (text 2);
    # clip 2 carries "dog bark" (text 3).
    pair_clip = np.array([0, 0, 1, 1, 2])
    pair_text = np.array([0, 1, 0, 2, 3])
    carried = carried_codes(pair_clip, pair_text, n_texts=4)
    # A batch: (clip 0, "c4"), (clip 1, "piano note"), (clip 2, "dog bark"), (clip 0, "piano note").
    clip_ids, text_ids = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 0, 3, 0])
    pos = caption_positives(clip_ids, text_ids, carried, n_texts=4)
    expected = torch.tensor(
        [
            [True, True, False, True],  # clip 0 carries "c4" and "piano note", not "dog bark"
            [False, True, False, True],  # clip 1 carries "piano note" only
            [False, False, True, False],
            [True, True, False, True],
        ]
    )
    assert torch.equal(pos, expected)
    # It only ever adds positives to the same-clip rule, and it changes the loss.
    assert (pos | positives_mask(clip_ids)).equal(pos)
    sim = torch.eye(4) * 0.5
    by_clip = ContrastiveLoss(0.05)(sim, positives_mask(clip_ids))["contrastive"]
    by_caption = ContrastiveLoss(0.05)(sim, pos)["contrastive"]
    assert by_caption.item() != pytest.approx(by_clip.item())


def test_distillation_is_cross_entropy_to_the_softmaxed_teacher() -> None:
    torch.manual_seed(1)
    student = torch.randn(4, 4).tanh().requires_grad_()
    teacher = torch.randn(4, 4).tanh()
    tau = 0.05
    got = DistillationLoss(tau)(student, teacher)["distill"]
    p_rows = F.softmax(teacher / tau, dim=1)
    p_cols = F.softmax(teacher / tau, dim=0)
    a2t = -(p_rows * F.log_softmax(student / tau, dim=1)).sum(1).mean()
    t2a = -(p_cols * F.log_softmax(student / tau, dim=0)).sum(0).mean()
    assert got.item() == pytest.approx((0.5 * (a2t + t2a)).item(), rel=1e-6)
    # The teacher gets no gradient; the student's gradient vanishes when it equals the teacher.
    same = teacher.clone().requires_grad_()
    DistillationLoss(tau)(same, teacher)["distill"].backward()
    assert same.grad is not None and same.grad.abs().max().item() < 1e-5


def test_cluster_loss_is_cross_entropy_of_each_head() -> None:
    torch.manual_seed(2)
    a, t = torch.randn(6, 3), torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = ClusterLoss()(a, t, y)
    assert out["cluster_audio"].item() == pytest.approx(F.cross_entropy(a, y).item())
    assert out["cluster_text"].item() == pytest.approx(F.cross_entropy(t, y).item())


def _inputs() -> dict:
    torch.manual_seed(3)
    return {
        "sim": torch.randn(4, 4).tanh(),
        "positives": positives_mask(torch.tensor([0, 1, 1, 2])),
        "teacher_sim": torch.randn(4, 4).tanh(),
        "audio_logits": torch.randn(4, 3),
        "text_logits": torch.randn(4, 3),
        "labels": torch.tensor([0, 2, 2, 1]),
    }


def test_total_applies_each_weight_exactly_once() -> None:
    weights = {"contrastive": 1.0, "distill": 1.0, "cluster_audio": 0.05, "cluster_text": 0.05}
    out = LossTask(weights, tau=0.05)(**_inputs())
    expected = sum(w * out[k] for k, w in weights.items())
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    # Doubling one weight adds exactly one more copy of that (unweighted) term.
    heavier = LossTask({**weights, "cluster_audio": 0.1}, tau=0.05)(**_inputs())
    assert heavier["total"].item() == pytest.approx(
        out["total"].item() + 0.05 * out["cluster_audio"].item(), rel=1e-6
    )
    # Terms are reported unweighted, identical to the modules' own outputs.
    assert out["contrastive"].item() == pytest.approx(
        ContrastiveLoss(0.05)(_inputs()["sim"], _inputs()["positives"])["contrastive"].item()
    )


def test_zero_weights_are_not_computed_and_missing_inputs_fail() -> None:
    task = LossTask({"contrastive": 1.0, "distill": 0.0})
    out = task(_inputs()["sim"], _inputs()["positives"])
    assert set(out) == {"total", "contrastive"} and not task.needs_teacher
    with pytest.raises(ValueError, match="teacher"):
        LossTask({"contrastive": 1.0, "distill": 1.0})(_inputs()["sim"], _inputs()["positives"])
    with pytest.raises(ValueError, match="unknown"):
        LossTask({"contrastiv": 1.0})
    with pytest.raises(ValueError, match="zero"):
        LossTask({"contrastive": 0.0})


def test_window_similarity_takes_the_best_valid_window() -> None:
    audio = F.normalize(torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]]), dim=-1)  # one clip, 3 windows
    text = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    mask = torch.tensor([[True, True, False]])  # the third window is padding
    sim = window_similarity(audio, mask, text)
    assert sim.tolist() == [[1.0, 0.0]]  # text 1 would match the padded window (1.0) but gets 0.0

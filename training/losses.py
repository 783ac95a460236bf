"""Loss terms, each a small module returning named terms; :class:`LossTask` weights and sums them once.

Notation: a batch holds ``B`` (audio, caption) pairs. ``sim`` is the ``[B, B]`` matrix of cosine
similarities between the audio of pair ``i`` (rows) and the caption of pair ``j`` (columns); ``positives``
is the bool ``[B, B]`` mask of pairs whose audio is the same clip (several captions of one clip in a
batch are all positives; the diagonal is always positive).

* :class:`ContrastiveLoss` — ``{"contrastive"}``: cross-entropy of ``softmax(sim / τ)`` against the
  uniform distribution over the positives, row-wise (audio→text) and column-wise (text→audio), averaged.
* :class:`DistillationLoss` — ``{"distill"}``: the teacher's similarity matrix (mean cosine of the
  stage-1 ensemble) divided by τ and soft-maxed is the target; cross-entropy to the student's
  ``log_softmax(sim / τ)`` in both directions, averaged.
* :class:`ClusterLoss` — ``{"cluster_audio", "cluster_text"}``: cross-entropy of each encoder's
  cluster-head logits against the caption's cluster id.

None of these modules knows its weight: only :class:`LossTask` multiplies by the recipe's weights, once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

TERMS = ("contrastive", "distill", "cluster_audio", "cluster_text")


def soft_cross_entropy(logits: Tensor, target: Tensor, dim: int) -> Tensor:
    """Mean over the other axis of ``-Σ target · log_softmax(logits)`` along ``dim`` (target rows sum to 1)."""
    return -(target * F.log_softmax(logits, dim=dim)).sum(dim=dim).mean()


class ContrastiveLoss(nn.Module):
    """Multi-positive symmetric InfoNCE with a fixed temperature ``tau``."""

    def __init__(self, tau: float = 0.05) -> None:
        super().__init__()
        self.tau = float(tau)

    def forward(self, sim: Tensor, positives: Tensor) -> dict[str, Tensor]:
        """``sim``: float ``[B, B]`` cosine similarities; ``positives``: bool ``[B, B]`` → ``{"contrastive"}``."""
        logits = sim.float() / self.tau
        pos = positives.to(logits.dtype)
        a2t = soft_cross_entropy(logits, pos / pos.sum(dim=1, keepdim=True), dim=1)
        t2a = soft_cross_entropy(logits, pos / pos.sum(dim=0, keepdim=True), dim=0)
        return {"contrastive": 0.5 * (a2t + t2a)}


class DistillationLoss(nn.Module):
    """Cross-entropy from the student's similarities to the teacher's soft targets (both directions)."""

    def __init__(self, tau: float = 0.05) -> None:
        super().__init__()
        self.tau = float(tau)

    def forward(self, sim: Tensor, teacher_sim: Tensor) -> dict[str, Tensor]:
        """``sim``: student cosine ``[B, B]``; ``teacher_sim``: teacher mean cosine ``[B, B]`` → ``{"distill"}``."""
        logits = sim.float() / self.tau
        target = teacher_sim.detach().float() / self.tau
        a2t = soft_cross_entropy(logits, F.softmax(target, dim=1), dim=1)
        t2a = soft_cross_entropy(logits, F.softmax(target, dim=0), dim=0)
        return {"distill": 0.5 * (a2t + t2a)}


class ClusterLoss(nn.Module):
    """Cluster classification of both encoders: logits ``[B, K]``, labels int64 ``[B]``."""

    def forward(self, audio_logits: Tensor, text_logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        return {
            "cluster_audio": F.cross_entropy(audio_logits.float(), labels),
            "cluster_text": F.cross_entropy(text_logits.float(), labels),
        }


class LossTask(nn.Module):
    """Computes the terms whose weight is positive and returns them with ``"total" = Σ weight · term``.

    ``forward(sim, positives, teacher_sim=None, audio_logits=None, text_logits=None, labels=None)``;
    the returned terms are unweighted (for logging); ``"total"`` is the only weighted value.
    """

    def __init__(self, weights: Mapping[str, float], tau: float = 0.05) -> None:
        super().__init__()
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {TERMS}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        if not self.weights:
            raise ValueError("every loss weight is zero: nothing to train")
        self.contrastive = ContrastiveLoss(tau)
        self.distillation = DistillationLoss(tau)
        self.cluster = ClusterLoss()

    @property
    def needs_teacher(self) -> bool:
        return "distill" in self.weights

    @property
    def needs_clusters(self) -> bool:
        return "cluster_audio" in self.weights or "cluster_text" in self.weights

    def forward(
        self,
        sim: Tensor,
        positives: Tensor,
        teacher_sim: Tensor | None = None,
        audio_logits: Tensor | None = None,
        text_logits: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        if "contrastive" in self.weights:
            terms.update(self.contrastive(sim, positives))
        if self.needs_teacher:
            if teacher_sim is None:
                raise ValueError("the distillation term needs the teacher's similarities")
            terms.update(self.distillation(sim, teacher_sim))
        if self.needs_clusters:
            if audio_logits is None or text_logits is None or labels is None:
                raise ValueError("the cluster terms need cluster logits and labels")
            terms.update(self.cluster(audio_logits, text_logits, labels))
        total = sum((self.weights[k] * v for k, v in terms.items() if k in self.weights), sim.new_zeros(()))
        return {"total": total, **terms}


def positives_mask(clip_ids: Tensor) -> Tensor:
    """Bool ``[B, B]``: pair ``i`` and pair ``j`` share their audio clip (``clip_ids`` int64 ``[B]``)."""
    return clip_ids.unsqueeze(1) == clip_ids.unsqueeze(0)


def caption_positives(clip_ids: Tensor, text_ids: Tensor, carried: np.ndarray, n_texts: int) -> Tensor:
    """Bool ``[B, B]``: clip ``i`` carries caption ``j``'s text, or pair ``i`` and ``j`` share their clip.

    ``carried``: the sorted codes ``clip * n_texts + text`` of every (clip, caption) pair of the table
    (:func:`carried_codes`).
    """
    codes = clip_ids.cpu().numpy()[:, None] * n_texts + text_ids.cpu().numpy()[None, :]
    found = np.searchsorted(carried, codes.ravel()).clip(max=len(carried) - 1)
    hit = torch.from_numpy((carried[found] == codes.ravel()).reshape(codes.shape)).to(clip_ids.device)
    return hit | positives_mask(clip_ids)


def carried_codes(pair_clip: np.ndarray, pair_text: np.ndarray, n_texts: int) -> np.ndarray:
    """The sorted unique codes ``clip * n_texts + text`` of a pair table (for :func:`caption_positives`)."""
    return np.unique(np.asarray(pair_clip, np.int64) * n_texts + np.asarray(pair_text, np.int64))


def window_similarity(audio: Tensor, audio_mask: Tensor, text: Tensor) -> Tensor:
    """Clip–caption similarity as the best window's cosine.

    ``audio``: L2-normalised ``[B, W, D]``; ``audio_mask``: bool ``[B, W]`` (valid windows, ≥ 1 per row);
    ``text``: L2-normalised ``[C, D]`` → ``[B, C]`` = ``max_w audio[b, w] · text[c]``.
    """
    sims = torch.einsum("bwd,cd->bwc", audio, text)
    if audio.shape[1] == 1:
        return sims[:, 0]
    sims = sims.masked_fill(~audio_mask.unsqueeze(-1), torch.finfo(sims.dtype).min)
    return sims.amax(dim=1)

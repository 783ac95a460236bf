"""The audio-backbone adapter contract shared by the 16 kHz transformers (BEATs, EAT).

:class:`SegmentedBackbone` takes ``wave: Tensor[B, S]`` float32 mono at ``sample_rate`` Hz (the bundle's
rate, e.g. 32 kHz so they ensemble with PaSST), resamples it to the network's rate, cuts it into
``segment_s`` segments (the last zero-padded), embeds every segment that holds audio and averages them —
the same rule as :class:`engine.models.passt.PasstBackbone`. Subclasses implement
:meth:`embed_segments` on segments at the network's rate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from engine.errors import ModelError
from engine.models.kaldi import resample
from engine.models.passt import content_lengths


class SegmentedBackbone(nn.Module):
    """Base class: ``forward(wave [B, S] at sample_rate) -> Tensor[B, out_dim]``."""

    sample_rate: int
    net_rate: int
    segment_s: float
    out_dim: int

    @property
    def segment_samples(self) -> int:
        """Samples of one segment at the network's rate."""
        return int(round(self.segment_s * self.net_rate))

    def embed_segments(self, segments: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``Tensor[M, segment_samples]`` at ``net_rate`` → ``Tensor[M, out_dim]``."""
        raise NotImplementedError

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Embed clips of any length: ``wave`` ``Tensor[B, S]`` float32 at ``sample_rate`` Hz, range ±1;
        ``lengths`` (optional ``Tensor[B]``, samples at ``sample_rate``; default: up to the last non-zero
        sample) → ``Tensor[B, out_dim]``, the mean over the segments holding audio."""
        name = type(self).__name__
        if wave.dim() != 2:
            raise ModelError(f"{name} expects a [batch, samples] waveform, got shape {tuple(wave.shape)}")
        wave = wave.to(torch.float32)
        if lengths is None:
            lengths = content_lengths(wave)
        if self.sample_rate != self.net_rate:
            wave = resample(wave, self.sample_rate, self.net_rate)
            lengths = torch.ceil(lengths.to(torch.float64) * self.net_rate / self.sample_rate).to(torch.long)
        batch, samples = wave.shape
        seg = self.segment_samples
        n_seg = max(1, math.ceil(samples / seg))
        wave = nn.functional.pad(wave, (0, n_seg * seg - samples))
        n_valid = torch.clamp((lengths.to(wave.device, torch.long) + seg - 1) // seg, 1, n_seg)
        used = torch.arange(n_seg, device=wave.device).unsqueeze(0) < n_valid.unsqueeze(1)
        embeddings = self.embed_segments(wave.reshape(batch * n_seg, seg)[used.reshape(-1)])
        per_segment = embeddings.new_zeros(batch, n_seg, self.out_dim)
        per_segment[used] = embeddings
        return per_segment.sum(dim=1) / n_valid.unsqueeze(1).to(embeddings.dtype)


def check_state(own: dict[str, Tensor], state: dict[str, Tensor], what: str) -> None:
    """Raise :class:`ModelError` unless ``state`` has exactly ``own``'s keys with the same shapes."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise ModelError(
            f"These {what} weights do not fit the configured architecture "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]})"
        )

"""Kaldi-compatible filter-bank features and band-limited resampling in plain torch (no torchaudio).

BEATs and EAT were pre-trained on ``torchaudio.compliance.kaldi.fbank`` features of 16 kHz audio; this
module computes the same features batched on any device (:func:`fbank`), and resamples the engine's
waveforms to 16 kHz with the windowed-sinc (Hann) interpolation ``torchaudio.functional.resample`` uses
(:func:`resample`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from engine.errors import ModelError
from engine.models.passt import kaldi_mel_banks

#: ``torch.finfo(torch.float).eps``: Kaldi's floor before the logarithm.
_EPS = 1.1920928955078125e-07


def _window(kind: str, length: int, device: torch.device) -> Tensor:
    if kind == "povey":  # Kaldi's default: a Hann window to the power 0.85
        return torch.hann_window(length, periodic=False, dtype=torch.float32, device=device).pow(0.85)
    if kind == "hanning":
        return torch.hann_window(length, periodic=False, dtype=torch.float32, device=device)
    if kind == "hamming":
        return torch.hamming_window(
            length, periodic=False, alpha=0.54, beta=0.46, dtype=torch.float32, device=device
        )
    raise ModelError(f"unknown Kaldi window type {kind!r}")


def num_frames(
    num_samples: int, sample_rate: int = 16000, frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0
) -> int:
    """Frames :func:`fbank` returns for ``num_samples`` (``snip_edges``: only whole frames)."""
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    return 0 if num_samples < size else 1 + (num_samples - size) // shift


def fbank(
    wave: Tensor,
    *,
    num_mel_bins: int = 128,
    sample_rate: int = 16000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window_type: str = "povey",
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> Tensor:
    """Log mel filter-bank energies as ``torchaudio.compliance.kaldi.fbank`` computes them (no dither,
    no energy, ``snip_edges``, power spectrum, FFT size rounded up to a power of two).

    ``wave``: ``Tensor[B, S]`` (the scale the model expects, e.g. ×2¹⁵ for BEATs), computed in float32
    (autocast off) → ``Tensor[B, frames, num_mel_bins]`` float32.
    """
    if wave.dim() != 2:
        raise ModelError(f"fbank expects [batch, samples], got shape {tuple(wave.shape)}")
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if wave.shape[1] < size:
        raise ModelError(f"fbank needs at least {size} samples, got {wave.shape[1]}")
    n_fft = 1 << (size - 1).bit_length()
    with torch.autocast(device_type=wave.device.type, enabled=False):
        return _fbank(
            wave.to(torch.float32),
            size,
            shift,
            n_fft,
            num_mel_bins,
            sample_rate,
            window_type,
            preemphasis,
            remove_dc_offset,
            low_freq,
            high_freq,
        )


def _fbank(
    x: Tensor,
    size: int,
    shift: int,
    n_fft: int,
    num_mel_bins: int,
    sample_rate: int,
    window_type: str,
    preemphasis: float,
    remove_dc_offset: bool,
    low_freq: float,
    high_freq: float,
) -> Tensor:
    frames = x.unfold(1, size, shift)  # [B, T, size]
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * previous
    frames = frames * _window(window_type, size, x.device)
    spectrum = torch.fft.rfft(frames, n=n_fft).abs().pow(2)  # [B, T, n_fft // 2 + 1]
    banks = kaldi_mel_banks(num_mel_bins, n_fft, sample_rate, low_freq, high_freq).to(x.device)
    mel = torch.matmul(spectrum, banks.T)
    return torch.log(torch.clamp(mel, min=_EPS))


def _sinc_kernel(
    orig: int, new: int, width_zeros: int, rolloff: float, device: torch.device
) -> tuple[Tensor, int]:
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64, device=device)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64, device=device)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    return (sinc * window * (base / orig)).to(torch.float32), width


def resample(
    wave: Tensor, orig_freq: int, new_freq: int, *, lowpass_filter_width: int = 6, rolloff: float = 0.99
) -> Tensor:
    """Band-limited resampling (windowed sinc, Hann window), as ``torchaudio.functional.resample`` with its
    defaults: ``Tensor[B, S]`` at ``orig_freq`` → ``Tensor[B, ceil(S · new / orig)]`` at ``new_freq``."""
    if orig_freq == new_freq:
        return wave
    if orig_freq <= 0 or new_freq <= 0:
        raise ModelError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    kernel, width = _sinc_kernel(orig, new, lowpass_filter_width, rolloff, wave.device)
    batch, length = wave.shape
    x = nn.functional.pad(wave.to(torch.float32)[:, None], (width, width + orig))
    with torch.autocast(device_type=wave.device.type, enabled=False):
        y = nn.functional.conv1d(x, kernel, stride=orig)  # [B, new, L]
    y = y.transpose(1, 2).reshape(batch, -1)
    return y[:, : math.ceil(new * length / orig)]


__all__ = ["fbank", "num_frames", "resample"]

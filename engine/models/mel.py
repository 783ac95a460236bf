"""Torch log-mel front-ends shared by audio architectures.

A front-end turns mono waveforms ``Tensor[B, S]`` (float32, range ±1, at the architecture's sample
rate) into log-mel spectrograms ``Tensor[B, T, n_mels]`` (float32, time first). Everything lives in
torch so the same code runs in training and in the engine, on CPU or GPU, and its settings are part of
the architecture's config (and therefore of the model bundle).

Frame convention: frames are centred (the signal is zero-padded by ``n_fft // 2`` on both sides), so
frame ``k`` is centred on sample ``k * hop_length``. With ``drop_edge_frame`` (the default) the last
frame, centred on the very end of the signal and seeing mostly padding, is dropped: a signal of
``N * hop_length`` samples gives exactly ``N`` frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

PEAK_NORMALIZE_MODES = ("window", "none")
COMPRESSIONS = ("log10_shift", "log", "none")
FILTER_NORMS = ("unit_sum", "none")


def hz_to_mel_htk(freq_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + f / 700)`` (``f`` in Hz)."""
    return 2595.0 * np.log10(1.0 + np.asarray(freq_hz, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel_htk`; returns Hz."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: float,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    norm: str = "unit_sum",
) -> np.ndarray:
    """Triangular HTK mel filterbank (as ``librosa.filters.mel(htk=True, norm=...)``).

    Band ``i`` rises linearly (in Hz) from mel point ``i`` to ``i + 1`` and falls to ``i + 2``, the
    ``n_mels + 2`` points being equally spaced on the HTK mel scale between ``fmin`` and ``fmax`` (Hz).

    Args:
        sample_rate: Hz.
        n_fft: FFT size; the filterbank covers its ``n_fft // 2 + 1`` non-negative frequency bins.
        n_mels: number of bands.
        fmin, fmax: band edges in Hz (``fmax`` defaults to Nyquist).
        norm: ``"unit_sum"`` scales each band's weights to sum to 1 (librosa ``norm=1``, essentia
            ``unit_sum``); ``"none"`` keeps peak-1 triangles. Bands with no FFT bin stay all-zero.

    Returns:
        ``np.ndarray[n_mels, n_fft // 2 + 1]`` float64.
    """
    if fmax is None:
        fmax = sample_rate / 2.0
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0 + 1e-6:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    if norm not in FILTER_NORMS:
        raise ValueError(f"norm must be one of {FILTER_NORMS}, got {norm!r}")
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(hz_to_mel_htk(fmin), hz_to_mel_htk(fmax), n_mels + 2)
    hz_points = mel_to_hz_htk(mel_points)
    widths = np.diff(hz_points)  # [n_mels + 1]
    ramps = hz_points[:, None] - fft_freqs[None, :]  # [n_mels + 2, n_freqs]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "unit_sum":
        sums = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return weights


class LogMelSpectrogram(nn.Module):
    """Waveform → (optionally peak-normalised) log-mel spectrogram, all in torch.

    Pipeline: peak normalisation per input row (``peak_normalize="window"``) → centred STFT with a
    periodic Hann window, zero padding → power spectrum → mel filterbank → compression → min–max scaling
    ``(x - norm_min) / (norm_max - norm_min)``.

    Compression: ``"log10_shift"`` is ``log10(log_scale * mel + 1)`` (essentia's ``shift_scale_log``),
    ``"log"`` is ``ln(mel + log_eps)``, ``"none"`` keeps the power mel.

    Input ``Tensor[B, S]`` (or ``[S]``) float32 at ``sample_rate`` Hz; output ``Tensor[B, T, n_mels]``
    float32 with ``T = num_frames(S)``. The window and the filterbank are non-persistent buffers: they
    never appear in a state dict and follow ``.to(device)``.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        win_length: int | None = None,
        fmin: float = 0.0,
        fmax: float | None = None,
        filter_norm: str = "unit_sum",
        compression: str = "log10_shift",
        log_scale: float = 1e4,
        log_eps: float = 1e-6,
        norm_min: float = 0.0,
        norm_max: float = 1.0,
        peak_normalize: str = "none",
        drop_edge_frame: bool = True,
    ) -> None:
        super().__init__()
        if peak_normalize not in PEAK_NORMALIZE_MODES:
            raise ValueError(f"peak_normalize must be one of {PEAK_NORMALIZE_MODES}, got {peak_normalize!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if not norm_max > norm_min:
            raise ValueError(f"norm_max ({norm_max}) must be greater than norm_min ({norm_min})")
        win_length = n_fft if win_length is None else win_length
        if not 0 < win_length <= n_fft or hop_length <= 0:
            raise ValueError(f"invalid STFT sizes n_fft={n_fft}, win_length={win_length}, hop={hop_length}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.n_mels = int(n_mels)
        self.compression = compression
        self.log_scale = float(log_scale)
        self.log_eps = float(log_eps)
        self.norm_min = float(norm_min)
        self.norm_max = float(norm_max)
        self.peak_normalize = peak_normalize
        self.drop_edge_frame = bool(drop_edge_frame)
        fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, filter_norm)
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(fb.T.astype(np.float32)), persistent=False)

    def num_frames(self, n_samples: int) -> int:
        """Number of frames ``T`` for a signal of ``n_samples`` samples (at least 1)."""
        full = 1 + n_samples // self.hop_length
        return max(1, full - 1) if self.drop_edge_frame else full

    def frames_to_seconds(self, frames: float) -> float:
        """Time (s) of frame index ``frames`` (frame ``k`` is centred on sample ``k * hop_length``)."""
        return frames * self.hop_length / self.sample_rate

    def power_spectrogram(self, wave: Tensor) -> Tensor:
        """``Tensor[B, S]`` float32 → power spectrogram ``Tensor[B, T, n_fft // 2 + 1]`` float32."""
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"expected a waveform Tensor[B, S], got shape {tuple(wave.shape)}")
        wave = wave.float()
        if self.peak_normalize == "window":
            peak = wave.abs().amax(dim=1, keepdim=True)
            wave = wave / torch.where(peak > 0, peak, torch.ones_like(peak))
        n_samples = wave.shape[1]
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # [B, F, T]
        power = power[:, :, : self.num_frames(n_samples)]
        return power.transpose(1, 2)

    def forward(self, wave: Tensor) -> Tensor:
        """``Tensor[B, S]`` float32 at ``sample_rate`` Hz → ``Tensor[B, T, n_mels]`` float32."""
        mel = torch.matmul(self.power_spectrogram(wave), self.mel_fb)
        if self.compression == "log10_shift":
            mel = torch.log10(self.log_scale * mel + 1.0)
        elif self.compression == "log":
            mel = torch.log(mel + self.log_eps)
        if self.norm_min != 0.0 or self.norm_max != 1.0:
            mel = (mel - self.norm_min) / (self.norm_max - self.norm_min)
        return mel

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop={self.hop_length}, n_mels={self.n_mels}, "
            f"compression={self.compression}, peak_normalize={self.peak_normalize}"
        )


# aiSFX front-end, as used to train the published weights (Ma & Lerch, ISMIR 2022): 44.1 kHz, STFT
# 2048/1024, 96 HTK bands 0–22050 Hz with unit-sum filters, log10(1e4 x + 1), min–max 0 … 9.4578.
AISFX_SAMPLE_RATE = 44100
AISFX_FRONTEND: dict = {
    "sample_rate": AISFX_SAMPLE_RATE,
    "n_fft": 2048,
    "win_length": 2048,
    "hop_length": 1024,
    "n_mels": 96,
    "fmin": 0.0,
    "fmax": 22050.0,
    "filter_norm": "unit_sum",
    "compression": "log10_shift",
    "log_scale": 1e4,
    "norm_min": 0.0,
    "norm_max": 9.457798957824707,
    "peak_normalize": "window",
    "drop_edge_frame": True,
}


def aisfx_frontend(**overrides: object) -> LogMelSpectrogram:
    """The aiSFX front-end (``Tensor[B, S]`` at 44.1 kHz → ``Tensor[B, T, 96]``), optionally overridden.

    A window of 102400 samples (≈ 2.32 s) gives the 100 frames the aiSFX network was trained on.
    """
    unknown = set(overrides) - set(AISFX_FRONTEND)
    if unknown:
        raise ValueError(f"unknown aiSFX front-end settings: {sorted(unknown)}")
    return LogMelSpectrogram(**{**AISFX_FRONTEND, **overrides})

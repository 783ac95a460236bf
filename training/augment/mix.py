"""Audio mixing for "LLM mix" augmentation: two clips summed, the second at a gain in dB."""

from __future__ import annotations

import numpy as np


def mix_signals(a: np.ndarray, b: np.ndarray, gain_db: float) -> np.ndarray:
    """``a + 10^(gain_db/20) · b`` (mono float32, same sample rate), as long as the longer input.

    The shorter signal is zero-padded at its end; the mixture is scaled down only if its peak exceeds
    0.99, so it never clips. Returns float32 ``[max(len(a), len(b))]``.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    out = np.zeros(max(len(a), len(b)), dtype=np.float32)
    out[: len(a)] += a
    out[: len(b)] += np.float32(10.0 ** (gain_db / 20.0)) * b
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 0.99:
        out *= np.float32(0.99 / peak)
    return out



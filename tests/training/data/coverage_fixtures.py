"""Helpers for the coverage-source tests: small WAV bytes and a pre-unpacked package in a cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from training.data.debian.fetch import _MARKER

SR = 16000


def tone(seconds: float, freq: float = 440.0, seed: int | None = None) -> np.ndarray:
    """A sine (or, with ``seed``, white noise) of ``seconds`` at :data:`SR`, float32."""
    n = int(seconds * SR)
    if seed is not None:
        return (0.3 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def wav_bytes(seconds: float, freq: float = 440.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, freq), SR, format="WAV")
    return buf.getvalue()


def unpacked(cache: Path, package: str, version: str = "1.0-1") -> Path:
    """``cache/extracted/PACKAGE`` marked as a complete ``dpkg -x`` (so the builder fetches nothing)."""
    root = cache / "extracted" / package
    root.mkdir(parents=True, exist_ok=True)
    (root / _MARKER).write_text(f"{package}_{version}_all.deb\n{version}\n", encoding="utf-8")
    return root

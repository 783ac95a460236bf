"""A small library whose file names describe five kinds of sound (for `earshot learn` tests)."""

from __future__ import annotations

from pathlib import Path

from engine import audio
from tests import audio_fixtures as af

SR = 16000
KINDS = {  # name words → a sound of that kind (parameter i varies it a little)
    "low_hum": lambda i, d: af.tone(100 + 5 * (i % 20), d, SR),
    "high_whistle": lambda i, d: af.tone(3000 + 40 * (i % 20), d, SR),
    "white_noise_hiss": lambda i, d: af.noise(d, SR, seed=i),
    "clock_ticks": lambda i, d: af.clicks(d, SR, rate_hz=3 + i % 4),
    "rising_chirp": lambda i, d: af.chirp(200 + 10 * (i % 20), 6000, d, SR),
}


def write_named_library(root: Path, per_kind: int = 12, dur_s: float = 2.0) -> list[Path]:
    """``per_kind`` files of each kind under ``root/<last word>/<kind>_NN.wav``."""
    return [af.write(root / kind.split("_")[-1] / f"{kind}_{i:02d}.wav", make(i, dur_s), SR)
            for kind, make in KINDS.items() for i in range(per_kind)]


def forbid_audio(monkeypatch) -> None:
    """Make every way of opening or decoding audio fail the test (a library that must not touch its files)."""
    def refuse(*a, **k):
        raise AssertionError("audio was opened")

    for name in ("_open", "probe", "iter_windows", "load_mono"):
        monkeypatch.setattr(audio, name, refuse)
    monkeypatch.setattr("engine.indexing.local.decode", refuse)

"""Decode + resample throughput of engine.audio on generated files, in multiples of real time.

Writes a 48 kHz stereo signal (pink noise plus a tone) as WAV PCM_24, FLAC, Ogg Vorbis and MP3 into a
temporary folder, then times ``iter_mono_blocks(path, 44100)`` (decode, downmix, resample) and, for
comparison, decoding alone at the file's own rate. Single process, single thread.

    .venv/bin/python -m benchmarks.bench_decode --seconds 120 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from engine import audio

_FORMATS: tuple[tuple[str, str, str | None], ...] = (
    ("wav 24-bit", "bench.wav", "PCM_24"),
    ("flac 24-bit", "bench.flac", "PCM_24"),
    ("ogg vorbis", "bench.ogg", "VORBIS"),
    ("mp3", "bench.mp3", "MPEG_LAYER_III"),
)


def _signal_chunks(seconds: float, sr: int, chunk_s: float = 10.0):
    """Yield ``(frames, 2)`` float32 chunks: pink-ish noise plus a 440 Hz tone, ~-10 dBFS."""
    rng = np.random.default_rng(0)
    done = 0
    total = int(round(seconds * sr))
    while done < total:
        n = min(int(chunk_s * sr), total - done)
        white = rng.standard_normal((n, 2))
        pink = np.cumsum(white, axis=0) * 0.002 + white * 0.05  # cheap tilt, bounded per chunk
        pink -= pink.mean(axis=0)
        t = (np.arange(n) + done) / sr
        x = 0.2 * np.sin(2 * np.pi * 440.0 * t)[:, None] + 0.1 * pink / (np.abs(pink).max() or 1.0)
        yield x.astype(np.float32)
        done += n


def _write(path: Path, subtype: str | None, seconds: float, sr: int) -> None:
    fmt = "MP3" if path.suffix == ".mp3" else None
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype=subtype, format=fmt) as f:
        for chunk in _signal_chunks(seconds, sr):
            f.write(chunk)


def _time_decode(path: Path, target_sr: int, repeat: int) -> tuple[float, int]:
    best = float("inf")
    samples = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        samples = sum(len(block) for block in audio.iter_mono_blocks(path, target_sr))
        best = min(best, time.perf_counter() - t0)
    return best, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each test file (s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per file (best is kept)")
    parser.add_argument("--target-sr", type=int, default=44100, help="output sample rate (Hz)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write files (default: temp)")
    args = parser.parse_args(argv)

    sr = 48000
    with tempfile.TemporaryDirectory(prefix="earshot-bench-") as tmp:
        root = args.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        header = f"{'format':<12} {'size MB':>8} {'write s':>8} {'decode s':>9} {'x RT':>8} {'decode+rs s':>12} {'x RT':>8}"
        print(f"{args.seconds:.0f} s, 48 kHz stereo -> {args.target_sr} Hz mono, best of {args.repeat}")
        print(header)
        print("-" * len(header))
        for label, name, subtype in _FORMATS:
            path = root / name
            try:
                t0 = time.perf_counter()
                _write(path, subtype, args.seconds, sr)
                write_s = time.perf_counter() - t0
            except (sf.SoundFileError, ValueError, TypeError) as exc:
                print(f"{label:<12} cannot write here: {exc}")
                continue
            size_mb = path.stat().st_size / 1e6
            dec_s, _ = _time_decode(path, sr, args.repeat)
            rs_s, samples = _time_decode(path, args.target_sr, args.repeat)
            dur = samples / args.target_sr
            print(
                f"{label:<12} {size_mb:>8.1f} {write_s:>8.2f} {dec_s:>9.3f} {dur / dec_s:>8.0f}"
                f" {rs_s:>12.3f} {dur / rs_s:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

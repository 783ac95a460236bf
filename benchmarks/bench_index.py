"""Indexing throughput (× realtime) with a model bundle, the decode + resample floor in the same run, and
text-query latency (encoding included).

    python -m benchmarks.bench_index [--folder DIR] [--minutes 10] [--model NAME] [--threads N]

Without ``--folder`` it synthesises a folder (tones, noise, chirps, clicks at mixed rates/formats). Prints
a table; copy it into benchmarks/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

QUERIES = [
    "glass shattering on a hard floor", "heavy wooden door creaking open", "distant thunder rumble",
    "footsteps on gravel", "metal clang", "laser gun shot", "crowd cheering", "rain on a tin roof",
    "explosion with debris", "dog barking", "water splash", "car engine idling", "wind howling",
    "short notification chime", "zipper", "sword swing whoosh", "fire crackling", "bird chirping",
    "keyboard typing", "electric hum",
]


def synth_folder(root: Path, minutes: float) -> Path:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests import audio_fixtures as af

    rng = np.random.default_rng(0)
    total, i = 0.0, 0
    while total < minutes * 60:
        dur = float(rng.choice([0.5, 1.0, 2.0, 4.0, 8.0, 30.0]))
        sr = int(rng.choice([22050, 44100, 48000, 96000]))
        kind = i % 4
        if kind == 0:
            data = af.tone(float(rng.uniform(80, 8000)), dur, sr, channels=2)
        elif kind == 1:
            data = af.noise(dur, sr, channels=2, color=str(rng.choice(["white", "pink", "brown"])), seed=i)
        elif kind == 2:
            data = af.chirp(100, 10000, dur, sr)
        else:
            data = af.clicks(dur, sr, rate_hz=float(rng.uniform(1, 20)))
        ext = [".wav", ".flac", ".ogg", ".wav"][i % 4]
        af.write(root / f"f{i:04d}{ext}", data, sr)
        total += dur
        i += 1
    return root


def decode_floor(files: list[Path], sr: int, window_s: float, hop_s: float) -> tuple[float, float]:
    from engine.audio import iter_windows, probe

    t0 = time.perf_counter()
    audio = 0.0
    for f in files:
        try:
            audio += probe(f).duration_s
            for _ in iter_windows(f, sr, window_s, hop_s, batch=64):
                pass
        except Exception:
            continue
    return audio, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path)
    p.add_argument("--minutes", type=float, default=10.0, help="audio to synthesise without --folder")
    p.add_argument("--model", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from engine.audio import AUDIO_EXTENSIONS
    from engine.indexing import Indexer
    from engine.library import Library
    from engine.search import Searcher

    tmp = Path(tempfile.mkdtemp(prefix="earshot-bench-"))
    folder = args.folder or synth_folder(tmp / "sounds", args.minutes)
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())

    lib = Library(tmp / "lib", args.model)
    b = lib.bundle
    audio_s, floor_s = decode_floor(files, b.sample_rate, b.window_s, b.hop_s)
    t_load = time.perf_counter()
    lib.encoder.embed_audio(__import__("numpy").zeros((1, int(round(b.window_s * b.sample_rate))), "float32"))
    load_s = time.perf_counter() - t_load
    lib.acquire_writer()
    s = Indexer(lib, batch_windows=args.batch, commit_windows=16 * args.batch).run([folder])
    lat = []
    searcher = Searcher(lib)
    searcher.search_text(QUERIES[0], k=16)  # warm the text tower
    for _ in range(3):
        for q in QUERIES:
            t0 = time.perf_counter()
            searcher.search_text(q, k=16)
            lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    lib.close()

    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"),
        ("bundle", f"{b.name} {b.version} (window {b.window_s:.2f} s, hop {b.hop_s:.2f} s, dim {b.dim})"),
        ("files / audio", f"{len(files)} files, {audio_s / 60:.1f} min ({s.windows} windows)"),
        ("decode+resample floor", f"{audio_s / floor_s:8.0f} × realtime ({floor_s:.1f} s)"),
        ("model load (audio side)", f"{load_s:8.2f} s"),
        ("indexing, end to end", f"{s.audio_s / s.seconds:8.0f} × realtime ({s.seconds:.1f} s, {s.failed} failed)"),
        ("query latency p50", f"{statistics.median(lat):8.1f} ms (text encoding + HNSW + SQL, k=16)"),
        ("query latency p95", f"{lat[int(0.95 * (len(lat) - 1))]:8.1f} ms"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'metric':<{w}}  value")
    print("-" * (w + 60))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

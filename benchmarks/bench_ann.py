"""HNSW index at library scale: build time, file size, recall@16 against exact search, latency, memory.

Usage (from the repository root)::

    python -m benchmarks.bench_ann [--sizes 10k,100k,1M] [--dim 512] [--configs 16:200,32:200]
                                   [--ef 64,128,256] [--threads N] [--json results.json]

Each (size, M, ef_construction) is built and saved in one subprocess, then loaded and queried in a
fresh one (as the app would), so each peak RSS is its own. Vectors are
synthetic but shaped like a sound library: "categories" (clusters) whose members vary inside a
per-category 48-dimensional subspace plus a little isotropic noise; "files" of 1–30 consecutive windows
that are close to one another (cos ≈ 0.9); and ~3 % of files duplicated with tiny noise (the same sample
in two packs). They are generated in deterministic chunks, so the worker never holds all N vectors —
the memory figures are the index's, not the benchmark's.

Two query sets of 200 each, both seeded at random data points: "near" (cos ≈ 0.9 to the seed, like
find-similar) and "far" (cos ≈ 0.5, like a text query landing in the audio space). Latency is one query
at a time through :meth:`VectorIndex.search` with k = 64 (the caller's over-fetch); recall@16 compares
the first 16 of those with the exact top 16.

Columns: build s (adding all vectors; data generation and save excluded), file MB, build peak MB (ru_maxrss
of the build process, including one transient 20k-row chunk of generated vectors and the exact-search
pass), load s (sidecar + file checks + hnswlib load, fresh process), base MB (that process before
loading: interpreter, numpy, hnswlib), index MB (its RSS growth from loading), peak MB (its ru_maxrss),
efS, recall@16 near/far, p50/p95 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHUNK = 20_000
SUBSPACE = 48


def _parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class SyntheticLibrary:
    """Deterministic clustered unit vectors, generated ``CHUNK`` rows at a time (float32, (n, dim))."""

    def __init__(self, n: int, dim: int, seed: int) -> None:
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng([seed, 0])
        self.clusters = max(32, n // 400)
        centres = rng.standard_normal((self.clusters, dim)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        basis = np.linalg.qr(rng.standard_normal((dim, SUBSPACE)))[0].astype(np.float32)  # (dim, r)
        self.basis = basis
        # each category varies in its own subspace: the shared basis with per-category sign flips
        self.sign = rng.choice(np.array([-1.0, 1.0], np.float32), (self.clusters, dim))
        self.spread = rng.uniform(0.5, 1.0, self.clusters).astype(np.float32)

    def _noise(self, rng: np.random.Generator, cluster: np.ndarray) -> np.ndarray:
        """Noise of squared norm ~1: 90 % in the category's subspace, 10 % isotropic."""
        n = cluster.shape[0]
        low = rng.standard_normal((n, SUBSPACE), dtype=np.float32) @ self.basis.T / np.sqrt(SUBSPACE)
        low *= self.sign[cluster]
        iso = rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        return np.sqrt(0.9) * low + np.sqrt(0.1) * iso

    def chunk(self, index: int) -> np.ndarray:
        start = index * CHUNK
        n = min(CHUNK, self.n - start)
        rng = np.random.default_rng([self.seed, 1, index])
        lengths = np.minimum(30, 1 + rng.geometric(1 / 6, n))
        files = int(np.searchsorted(np.cumsum(lengths), n)) + 1
        file_of_row = np.repeat(np.arange(files), lengths[:files])[:n]
        file_cluster = rng.integers(0, self.clusters, files)
        file_centre = self.centres[file_cluster] + self.spread[file_cluster, None] * self._noise(
            rng, file_cluster
        )
        file_centre /= np.linalg.norm(file_centre, axis=1, keepdims=True)
        # near-duplicate files: the same sound in two packs
        dup = np.flatnonzero(rng.random(files) < 0.03)
        dup = dup[dup > 0]
        source = rng.integers(0, dup, dup.size) if dup.size else dup
        file_centre[dup] = file_centre[source]
        row_cluster = file_cluster[file_of_row]
        x = file_centre[file_of_row] + 0.45 * self._noise(rng, row_cluster)
        tiny = np.isin(file_of_row, dup)
        x[tiny] += 0.01 * rng.standard_normal((int(tiny.sum()), self.dim), dtype=np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    @property
    def chunks(self) -> int:
        return (self.n + CHUNK - 1) // CHUNK


def _perturb(base: np.ndarray, target_cos: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at cosine ``target_cos`` from the rows of ``base`` (random orthogonal direction)."""
    noise = rng.standard_normal(base.shape).astype(np.float32)
    noise -= np.sum(noise * base, axis=1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = target_cos * base + np.sqrt(1 - target_cos**2) * noise
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _exact(lib: SyntheticLibrary, queries: np.ndarray, k: int) -> np.ndarray:
    from engine.storage.vector_index import exact_search

    best_ids = np.empty((queries.shape[0], 0), np.int64)
    best_scores = np.empty((queries.shape[0], 0), np.float32)
    for c in range(lib.chunks):
        rows = lib.chunk(c)
        ids, scores = exact_search(rows, np.arange(c * CHUNK, c * CHUNK + rows.shape[0]), queries, k)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(all_ids, order, axis=1)
        best_scores = np.take_along_axis(all_scores, order, axis=1)
    return best_ids


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    stem = Path(args.workdir) / f"bench-{args.n}-{args.dim}-{args.M}-{args.ef_construction}"
    return stem.with_suffix(".hnsw"), stem.with_suffix(".queries.npz")


def _build_phase(args: argparse.Namespace) -> dict:
    """Build and save the index; write the queries and their exact top-k next to it."""
    from engine.storage.vector_index import VectorIndex

    lib = SyntheticLibrary(args.n, args.dim, args.seed)
    path, query_file = _paths(args)
    gen_s = 0.0
    rng = np.random.default_rng([args.seed, 2])
    seeds = rng.choice(args.n, 2 * args.queries, replace=False)  # first half "near", second half "far"
    seed_rows = np.empty((seeds.size, args.dim), np.float32)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        nonlocal gen_s
        for c in range(lib.chunks):
            t0 = time.perf_counter()
            rows = lib.chunk(c)
            here = (seeds >= c * CHUNK) & (seeds < c * CHUNK + rows.shape[0])
            seed_rows[here] = rows[seeds[here] - c * CHUNK]
            gen_s += time.perf_counter() - t0
            yield np.arange(c * CHUNK, c * CHUNK + rows.shape[0]), rows

    t0 = time.perf_counter()
    index = VectorIndex.rebuild(
        args.dim,
        path,
        batches(),
        generation=1,
        M=args.M,
        ef_construction=args.ef_construction,
        capacity=args.n,
        num_threads=args.threads,
    )
    total_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.save(1)
    save_s = time.perf_counter() - t0
    del index
    queries = np.concatenate(
        [_perturb(seed_rows[: args.queries], 0.9, rng), _perturb(seed_rows[args.queries :], 0.5, rng)]
    )
    t0 = time.perf_counter()
    exact = _exact(lib, queries, args.k)
    np.savez(query_file, queries=queries, exact=exact)
    return {
        "build_s": round(total_s - save_s - gen_s, 2),
        "save_s": round(save_s, 2),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "build_peak_mb": round(_peak_rss_mb(), 1),
        "exact_s": round(time.perf_counter() - t0, 2),
        "gen_s": round(gen_s, 2),
    }


def _query_phase(args: argparse.Namespace) -> dict:
    """In a fresh process, like the app: load the saved index, then time single queries."""
    from engine.storage.vector_index import VectorIndex

    path, query_file = _paths(args)
    with np.load(query_file) as data:
        queries, exact = data["queries"], data["exact"]
    base_mb = _rss_mb()
    t0 = time.perf_counter()
    index = VectorIndex.load(args.dim, path, 1, num_threads=args.threads)
    load_s = time.perf_counter() - t0
    assert index is not None and index.count == args.n
    index_mb = _rss_mb() - base_mb
    rows = []
    for ef in args.ef:
        index.ef_search = ef
        recalls: dict[str, float] = {}
        latencies = []
        for name, part in (("near", slice(0, args.queries)), ("far", slice(args.queries, None))):
            qs, want = queries[part], exact[part]
            index.search(qs[0], args.fetch)  # warm-up
            hits = 0
            for i in range(qs.shape[0]):
                t0 = time.perf_counter()
                ids, _ = index.search(qs[i], args.fetch)
                latencies.append(time.perf_counter() - t0)
                hits += len(set(ids[0, : args.k].tolist()) & set(want[i].tolist()))
            recalls[name] = hits / (qs.shape[0] * args.k)
        lat_ms = np.array(latencies) * 1000
        rows.append(
            {
                "ef_search": ef,
                "recall_near": round(recalls["near"], 4),
                "recall_far": round(recalls["far"], 4),
                "p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
                "p95_ms": round(float(np.percentile(lat_ms, 95)), 3),
            }
        )
    return {
        "load_s": round(load_s, 2),
        "base_mb": round(base_mb, 1),
        "index_mb": round(index_mb, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "by_ef": rows,
    }


COLUMNS = [
    ("n", "N", 9),
    ("M", "M", 3),
    ("ef_construction", "efC", 4),
    ("build_s", "build s", 8),
    ("file_mb", "file MB", 8),
    ("build_peak_mb", "bld peak", 9),
    ("load_s", "load s", 7),
    ("base_mb", "base MB", 8),
    ("index_mb", "index MB", 9),
    ("peak_rss_mb", "peak MB", 8),
    ("ef_search", "efS", 4),
    ("recall_near", "R@16 near", 10),
    ("recall_far", "R@16 far", 9),
    ("p50_ms", "p50 ms", 7),
    ("p95_ms", "p95 ms", 7),
]


def _print_row(values: list[str]) -> None:
    print(
        "| " + " | ".join(v.rjust(w) for v, (_, _, w) in zip(values, COLUMNS, strict=True)) + " |", flush=True
    )


def _run_phase(phase: str, common: list[str]) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_ann", "--phase", phase, *common]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"{phase} phase exited with {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="comma-separated N (k/M suffixes)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--configs", default="16:200,32:200", help="comma-separated M:ef_construction")
    parser.add_argument("--ef", default="64,128,256", help="comma-separated ef_search values")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--fetch", type=int, default=64, help="k asked of the index (over-fetch)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="build threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir",
        default=None,
        help="keep the built indexes here and reuse them on the next run (default: a temp dir, removed)",
    )
    parser.add_argument("--json", default=None, help="also write all rows to this JSON file")
    parser.add_argument("--phase", choices=("build", "query"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--M", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ef-construction", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.ef = [int(v) for v in str(args.ef).split(",")]

    if args.phase:
        print(json.dumps((_build_phase if args.phase == "build" else _query_phase)(args)))
        return 0

    sizes = [_parse_size(s) for s in args.sizes.split(",")]
    configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",")]
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_ann-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"dim={args.dim} queries={args.queries} k={args.k} fetch={args.fetch} build threads={args.threads}")
    _print_row([h for _, h, _ in COLUMNS])
    _print_row(["-" * w for _, _, w in COLUMNS])
    all_rows = []
    status = 0
    try:
        for n in sizes:
            for m, efc in configs:
                common = [f"--n={n}", f"--M={m}", f"--ef-construction={efc}", f"--dim={args.dim}"]
                common += [
                    f"--ef={','.join(map(str, args.ef))}",
                    f"--queries={args.queries}",
                    f"--k={args.k}",
                ]
                common += [f"--fetch={args.fetch}", f"--threads={args.threads}", f"--seed={args.seed}"]
                common += [f"--workdir={workdir}"]
                stem = workdir / f"bench-{n}-{args.dim}-{m}-{efc}"
                cached = stem.with_suffix(".build.json")
                try:
                    if args.workdir and cached.exists():  # reuse a kept build (same N, dim, M, efC)
                        built = json.loads(cached.read_text())
                    else:
                        built = _run_phase("build", common)
                        cached.write_text(json.dumps(built))
                    queried = _run_phase("query", common)
                except RuntimeError as exc:
                    print(f"N={n} M={m} efC={efc} failed:\n{exc}", file=sys.stderr)
                    status = 1
                    continue
                finally:
                    if not args.workdir:
                        for leftover in workdir.glob(stem.name + ".*"):
                            leftover.unlink()
                for by_ef in queried.pop("by_ef"):
                    row = {
                        "n": n,
                        "dim": args.dim,
                        "M": m,
                        "ef_construction": efc,
                        **built,
                        **queried,
                        **by_ef,
                    }
                    all_rows.append(row)
                    _print_row([f"{row[key]:,}" if key == "n" else str(row[key]) for key, _, _ in COLUMNS])
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(all_rows, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

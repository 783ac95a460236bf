"""Fault-injection soak (issue 13): ``kill -9`` at random points, a disk that fills up, unmounted / emptied /
unreadable roots, NaN/Inf audio, damaged .hnsw / .db / -wal, two processes creating a library at once,
hostile queries and bundles. Prints one table: runs, survived, lost, duplicated, wrong results, tracebacks.

    python -m benchmarks.bench_faults [--kills 20] [--disk-full 3] [--create 20] [--seed 0] [--quick]

Each scenario runs the ``earshot`` CLI in subprocesses against a tiny random bundle and generated audio
(see ``tests/faults/harness.py`` for what each one does and checks). The disk-full runs mount a small
tmpfs in a private mount namespace (``unshare``); where that is impossible they are skipped with the reason.
Set ``EARSHOT_FAULTS_ENGINE=/path/to/checkout`` to probe another checkout (e.g. main, to see the defects).
"""

from __future__ import annotations

import argparse
import functools
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _disk_full(h, model, kb, seed, tmp):
    return h.disk_full(tmp, model, free_kb=kb, seed=seed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="kill -9 points (default 20)")
    p.add_argument("--disk-full", type=int, default=3, help="disk-full runs with different space left")
    p.add_argument("--create", type=int, default=20, help="concurrent-creation tries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="one run of each, few kills (a smoke test)")
    p.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    args = p.parse_args(argv)
    if args.quick:
        args.kills, args.disk_full, args.create = 3, 1, 3

    from tests.bundles import make_tiny_bundle
    from tests.faults import harness as h

    work = Path(tempfile.mkdtemp(prefix="earshot-faults-"))
    model = make_tiny_bundle(work / "tiny")
    rng = random.Random(args.seed)
    plan = [
        ("kill -9 while indexing", lambda t: h.kill9(t, model, points=args.kills, seed=args.seed)),
        *[(f"disk full #{i}", functools.partial(_disk_full, h, model, kb, i))
          for i, kb in enumerate(rng.sample([20, 60, 120, 200, 400, 800], k=min(6, args.disk_full)))],
        ("root emptied (unmounted)", lambda t: h.unmounted_root(t, model, mode="empty")),
        ("root lost most files", lambda t: h.unmounted_root(t, model, mode="most")),
        ("root unreadable", lambda t: h.unmounted_root(t, model, mode="unreadable")),
        ("NaN sample", lambda t: h.nonfinite_audio(t, model, value=float("nan"))),
        ("Inf sample", lambda t: h.nonfinite_audio(t, model, value=float("inf"))),
        (".hnsw random bytes", lambda t: h.damaged_hnsw(t, model, mode="bytes", seed=args.seed)),
        (".hnsw vectors (+ checksum)", lambda t: h.damaged_hnsw(t, model, mode="vectors", seed=args.seed)),
        (".hnsw labels (+ checksum)", lambda t: h.damaged_hnsw(t, model, mode="labels", seed=args.seed)),
        (".hnsw after database reset", lambda t: h.damaged_hnsw(t, model, mode="db-reset", seed=args.seed)),
        (".db 0 bytes", lambda t: h.damaged_db(t, model, mode="zero")),
        (".db garbled page", lambda t: h.damaged_db(t, model, mode="page", seed=args.seed)),
        ("-wal damaged", lambda t: h.damaged_db(t, model, mode="wal")),
        ("concurrent creation", lambda t: h.concurrent_create(t, model, tries=args.create)),
        ("hostile queries", lambda t: h.hostile_queries(t, model)),
        ("hostile bundles", lambda t: h.hostile_bundles(t, model)),
    ]
    if args.only:
        plan = [(n, f) for n, f in plan if any(o in n for o in args.only)]
    rows = []
    total = h.Outcome("total", runs=0)
    t_all = time.perf_counter()
    for i, (name, fn) in enumerate(plan):
        tmp = work / f"s{i:02d}"
        tmp.mkdir()
        t0 = time.perf_counter()
        try:
            o = fn(tmp)
        except Exception as exc:  # a harness failure is a failed scenario, not a crash of the bench
            o = h.Outcome(name, runs=1, survived=0, notes=[f"harness: {type(exc).__name__}: {exc}"])
        o.name = name
        rows.append((o, time.perf_counter() - t0))
        if o.runs:
            total.add(o)
        print(f"{name}: {o.survived}/{o.runs} survived ({time.perf_counter() - t0:.0f}s) "
              + "; ".join(o.notes[:3]), file=sys.stderr, flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| scenario | runs | survived | lost | duplicated | wrong results | tracebacks | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for o, secs in rows:
        note = f" (skipped: {o.notes[0][9:]})" if o.runs == 0 and o.notes else ""
        print(f"| {o.name}{note} | {o.runs} | {o.survived} | {o.lost} | {o.duplicated} | {o.wrong} | "
              f"{o.tracebacks} | {secs:.0f} |")
    print(f"| **total** | {total.runs} | {total.survived} | {total.lost} | {total.duplicated} | {total.wrong} | "
          f"{total.tracebacks} | {time.perf_counter() - t_all:.0f} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if total.clean else 1


if __name__ == "__main__":
    sys.exit(main())

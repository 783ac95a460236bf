"""Learn from a library (issue 10): held-out content-only retrieval before/after `earshot learn`, forgetting
on a general set, time to learn and to re-project, the cost of keeping backbone features at index time.

    python -m benchmarks.bench_learn --corpus data/debian_sfx/corpus [--work DIR] [--skip-scale]

* **library**: the TEST split of the Debian sound-effects corpus written as a professional library
  (``benchmarks/libraries.py`` variant ``ucs``: UCS file names, bext description, iXML USER block), indexed
  with the shipped default model. `earshot learn` holds out a random 20 % of its described files; the table
  gives their content-only mAP@16 / R@10 (queries = their own descriptions) before and after.
* **general set**: the VALIDATION split (variant ``plain``) with its hand-written queries, a set the library
  did not train: the forgetting check.
* **time**: learn + re-project at 1k and 10k files (the test library's files duplicated in the database:
  same windows and features under new names; timing only), re-projection of 100,000 windows (duplicated
  features), and indexing with vs without keeping features (interleaved, same files).

Prints tables; copy them into benchmarks/RESULTS.md with the machine, date and load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import libraries  # noqa: E402


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def index_library(src: Path, libdir: Path, model: str | None = None) -> dict:
    from engine.indexer import Indexer
    from engine.library import Library

    if (libdir / "earshot.db").exists():
        return {}
    with Library(libdir, model) as lib:
        return Indexer(lib).run([src]).as_dict()


def general_set(libdir: Path, mapping: dict[str, Path], split: str):
    """The split's hand-written queries over a library's stored features (:class:`training.learn.GeneralSet`)."""
    from engine.library import Library
    from engine.reproject import feature_keys
    from engine.storage import db
    from training.learn import GeneralSet

    relevant = libraries.relevant_sets(split, mapping)
    with Library(libdir) as lib, lib.engine.connect() as conn:
        paths = {}
        for fid, rel, root in conn.execute(db.select(db.File.id, db.File.rel_path, db.Root.path)
                                           .join(db.Root, db.Root.id == db.File.root_id)):
            paths[str(Path(root) / rel)] = int(fid)
        feats = {}
        for name, key in feature_keys(lib.bundle).items():
            feats[name] = db.features_of_files(conn, key, db.feature_dim(conn, key), paths.values())
    order = sorted(fid for fid in paths.values() if all(fid in f for f in feats.values()))
    index = {fid: i for i, fid in enumerate(order)}
    by_path = {p: index[f] for p, f in paths.items() if f in index}
    clips = [{n: feats[n][fid] for n in feats} for fid in order]
    queries = [q for q, rel in relevant.items() if any(p in by_path for p in rel)]
    return GeneralSet(f"{split} split, {len(clips)} clips", clips, queries,
                      [[by_path[p] for p in relevant[q] if p in by_path] for q in queries])


def duplicate(libdir: Path, out: Path, factor: int) -> int:
    """A copy of a library whose files (windows, features; no vectors, no keyword rows) appear ``factor``
    times under new folders; returns the number of windows. Timing only: duplicates are not new sounds."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    src = sqlite3.connect(libdir / "earshot.db")
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copy(libdir / "earshot.db", out / "earshot.db")
    con = sqlite3.connect(out / "earshot.db")
    cols = ("root_id, size, mtime_ns, content_hash, duration_s, sample_rate, channels, format, subtype, "
            "metadata_json, status, error_reason, error_message, indexed_at")
    files = con.execute("SELECT id FROM files ORDER BY id").fetchall()
    wins = con.execute("SELECT id, file_id, start_s, end_s FROM windows ORDER BY id").fetchall()
    feats = con.execute("SELECT window_id, backbone, data FROM features").fetchall()
    by_window: dict[int, list[tuple[str, bytes]]] = {}
    for wid, key, data in feats:
        by_window.setdefault(wid, []).append((key, data))
    for j in range(1, factor):
        fmap = {}
        for (fid,) in files:
            cur = con.execute(f"INSERT INTO files (rel_path, {cols}) SELECT 'dup{j}/' || rel_path, {cols} "
                              "FROM files WHERE id = ?", (fid,))
            fmap[fid] = cur.lastrowid
        for wid, fid, s, e in wins:
            new = con.execute("INSERT INTO windows (file_id, start_s, end_s) VALUES (?, ?, ?)",
                              (fmap[fid], s, e)).lastrowid
            con.executemany("INSERT INTO features (window_id, backbone, data) VALUES (?, ?, ?)",
                            [(new, k, d) for k, d in by_window.get(wid, [])])
    con.commit()
    n = con.execute("SELECT count(*) FROM windows").fetchone()[0]
    con.close()
    return n


def learn_timing(libdir: Path, models: Path, opts: dict) -> dict:
    from engine.library import Library
    from training.learn import learn_library

    with Library(libdir) as lib:
        t0 = time.perf_counter()
        r = learn_library(lib, {**opts, "dest": str(models)})
        r["total_seconds"] = time.perf_counter() - t0
    return r


def reproject_timing(libdir: Path, bundle: str | None = None) -> dict:
    """Re-project every window of a (duplicated) library that has features but no vector of the bundle."""
    import numpy as np

    from engine.library import Library
    from engine.reproject import feature_keys, reproject
    from engine.storage import db

    with Library(libdir, bundle) as lib:
        key = next(iter(feature_keys(lib.bundle).values()))
        with lib.engine.connect() as conn:
            dim = db.feature_dim(conn, key)
            n = conn.execute(db.select(db.func.count()).select_from(db.Feature)).scalar_one()
        x = np.random.default_rng(0).standard_normal((8192, dim)).astype(np.float32)
        lib.encoder.project_audio({next(iter(feature_keys(lib.bundle))): x})  # heads loaded before timing
        t0 = time.perf_counter()
        heads_only = 0.0
        for i in range(0, n, 8192):
            t1 = time.perf_counter()
            lib.encoder.project_audio({next(iter(feature_keys(lib.bundle))): x[: min(8192, n - i)]})
            heads_only += time.perf_counter() - t1
        t0 = time.perf_counter()
        s = reproject(lib)
        total = time.perf_counter() - t0
        lib.release_writer()
    return {"windows": s.windows, "seconds": total, "heads_seconds": heads_only}


def index_cost(src_files: list[Path], work: Path, rounds: int = 2) -> dict:
    """Indexing the same files with and without keeping features, interleaved; bytes per window."""
    from engine.indexer import Indexer
    from engine.library import Library
    from engine.storage import db

    folder = work / "idx-src"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in src_files:
        shutil.copy(p, folder / p.name)
    real = db.put_features
    out: dict[str, list[float]] = {"with": [], "without": []}
    sizes: dict[str, tuple[int, int]] = {}
    for r in range(rounds):
        for variant in (("with", "without") if r % 2 == 0 else ("without", "with")):
            lib_dir = work / f"idx-{variant}"
            shutil.rmtree(lib_dir, ignore_errors=True)
            db.put_features = real if variant == "with" else (lambda *a, **k: None)
            try:
                with Library(lib_dir) as lib:
                    s = Indexer(lib).run([folder])
                    out[variant].append(s.audio_s / s.seconds)
                    with lib.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                sizes[variant] = ((lib_dir / "earshot.db").stat().st_size, s.windows)
            finally:
                db.put_features = real
    return {"speed": {k: sorted(v) for k, v in out.items()}, "db_bytes": sizes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "debian_sfx" / "corpus")
    p.add_argument("--work", type=Path, default=REPO / "cache" / "bench_learn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-scale", action="store_true", help="only the accuracy table")
    args = p.parse_args(argv)
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    test = libraries.build(args.corpus, w / "test", libraries.clips_of("test"), ("ucs",))["ucs"]
    val = libraries.build(args.corpus, w / "val", libraries.clips_of("val"), ("plain",))["plain"]
    index_library(w / "test" / "ucs", w / "lib-test-ucs")
    index_library(w / "val" / "plain", w / "lib-val-plain")
    general = general_set(w / "lib-val-plain", val, "val")

    # Accuracy: learn on a copy of the named test library (the original stays on the shipped model).
    run = w / "run-learn"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(w / "lib-test-ucs", run)
    from engine.library import Library
    from training.learn import learn_library

    print(f"# bench_learn  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {_load()}, "
          f"{os.cpu_count()} cores)")
    with Library(run) as lib:
        base = f"{lib.bundle.name} {lib.bundle.version}"
        t0 = time.perf_counter()
        r = learn_library(lib, {"seed": args.seed, "dest": str(w / "models")}, general=general)
        learn_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        from engine.reproject import undo_learned

        undo = undo_learned(lib)
        undo_s = time.perf_counter() - t0
    b, a, g = r["heldout_before"], r["heldout_after"], r["general"]
    rel = 100 * (a["map@16"] / b["map@16"] - 1) if b["map@16"] else float("nan")
    print(f"\nlibrary: {len(test)} test clips as a UCS library ({r['described']} described); trained on "
          f"{r['train_files']} files ({r['pairs']} captions), held out {r['heldout_files']} "
          f"({int(b['queries'])} queries); {r['epochs']} epochs; learned bundle {r['bundle']}")
    print("| set | model | mAP@16 | R@10 |\n|---|---|---|---|")
    print(f"| held-out files, content only | {base} | {100 * b['map@16']:.1f} | {100 * b['R@10']:.1f} |")
    print(f"| held-out files, content only | learned | {100 * a['map@16']:.1f} ({rel:+.0f} % rel.) | "
          f"{100 * a['R@10']:.1f} |")
    print(f"| general: {g['name']}, {int(g['before']['queries'])} queries | {base} | "
          f"{100 * g['before']['map@16']:.1f} | {100 * g['before']['R@10']:.1f} |")
    print(f"| general: {g['name']} | learned | {100 * g['after']['map@16']:.1f} "
          f"({100 * (g['after']['map@16'] - g['before']['map@16']):+.1f} pt) | {100 * g['after']['R@10']:.1f} |")
    print(f"\nlearn end to end {learn_s:.1f} s (training {r['train_seconds']:.1f} s, re-projection "
          f"{r['reproject_seconds']:.2f} s of {r['reprojected_windows']} windows); undo {undo_s:.2f} s "
          f"({undo['reprojected_windows']} windows re-projected)")
    (w / "bench_learn.json").write_text(json.dumps(r, indent=1, default=str))
    if args.skip_scale:
        return 0

    print(f"\n## time ({_load()})\n| library | windows | learn (train) s | re-projection s |\n|---|---|---|---|")
    n_test_windows = None
    for files, factor in (("1k", 2), ("10k", 20)):
        d = w / f"dup-{files}"
        n = duplicate(w / "lib-test-ucs", d, factor)
        n_test_windows = n_test_windows or n // factor
        t = learn_timing(d, w / "models-dup", {"seed": args.seed})
        print(f"| {len(test) * factor} files ({files}, duplicated) | {n} | {t['total_seconds']:.0f} "
              f"({t['train_seconds']:.0f}) | {t['reproject_seconds']:.1f} |")
    d = w / "dup-100k"
    n = duplicate(w / "lib-test-ucs", d, math.ceil(100_000 / n_test_windows))
    rp = reproject_timing(d)
    print(f"\nre-projection of {rp['windows']:,} windows (shipped model over duplicated features): "
          f"{rp['seconds']:.1f} s in all ({rp['windows'] / rp['seconds']:,.0f} windows/s), of which the heads "
          f"{rp['heads_seconds']:.1f} s ({_load()})")
    cost = index_cost(sorted(test.values())[:120], w)
    (wb, nw), (wo, _) = cost["db_bytes"]["with"], cost["db_bytes"]["without"]
    sw, so = cost["speed"]["with"], cost["speed"]["without"]
    print(f"\nindexing 120 files ({nw} windows), interleaved, × realtime per run: with features {sw}, without "
          f"{so}; best {max(sw):.1f} vs {max(so):.1f} ({100 * (max(so) / max(sw) - 1):+.1f} % slower with)")
    print(f"database: {wb / nw:,.0f} bytes/window with features, {wo / nw:,.0f} without "
          f"(+{(wb - wo) / nw:,.0f}) ({_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

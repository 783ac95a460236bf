"""Re-scan of an unchanged tree of many files (target: 100k files ≤ 30 s), and where the time goes.

    python -m benchmarks.bench_rescan [--files 100000] [--per-folder 1000] [--dir DIR]

The tree holds tiny ``.wav`` files (their content is never read when nothing changed). The library is
built through the engine's own writer — the indexing committer (``engine.indexing.committer``) commits
real file rows for the scanned files with synthetic unit vectors, one window each; the file texts are the
real ``names.file_text`` of each file with synthetic vectors — so the re-scan sees exactly what a library
indexed by ``earshot index`` holds, without running the model on 100k files. Then a fresh process-like
``Library`` runs ``Indexer.run()`` over the unchanged tree. Prints a table; copy it into
benchmarks/RESULTS.md with the machine, date and load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def make_tree(root: Path, files: int, per_folder: int) -> None:
    for i in range(files):
        d = root / f"folder_{i // per_folder:04d}"
        if i % per_folder == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"Impact metal hit {i:06d}.wav").write_bytes(b"RIFF" + i.to_bytes(4, "little"))


def build_library(libdir: Path, root: Path, model: str | None) -> int:
    import numpy as np
    from sqlalchemy import select

    from engine.audio import AudioInfo
    from engine.indexing.batcher import FileResult
    from engine.indexing.committer import Committer
    from engine.indexing.plan import plan, scan_root
    from engine.indexing.progress import IndexSummary
    from engine.library import Library
    from engine.names import NAME_DIM, NAME_ENCODER_ID, file_text
    from engine.storage import db

    rng = np.random.default_rng(0)
    with Library(libdir, model) as lib:
        lib.acquire_writer()
        lib.sync_index()
        committer = Committer(lib, IndexSummary())
        rid = committer.root_ids([root])[root]
        p = plan([scan_root(root, rid, {}, cancelled=lambda: False)], fingerprint=lambda path: None)
        info = AudioInfo("WAV", "PCM_16", 44100, 1, 44100, 1.0)
        for start in range(0, len(p.jobs), 2000):
            part = p.jobs[start : start + 2000]
            vecs = rng.standard_normal((len(part), lib.bundle.dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            committer.commit([FileResult(j, info, None, np.zeros(1), vecs[k : k + 1]) for k, j in enumerate(part)])
        with lib.engine.begin() as conn:
            rows = conn.execute(select(db.File.id, db.File.rel_path)).all()
            vecs = rng.standard_normal((len(rows), NAME_DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            texts = [file_text(rel, root.as_posix(), None) for _, rel in rows]
            db.put_file_texts(conn, [(fid, t.text, t.informativeness, v)
                                     for (fid, _), t, v in zip(rows, texts, vecs, strict=True)], NAME_ENCODER_ID)
        committer.finish([root], set())
        return len(p.jobs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--per-folder", type=int, default=1000)
    ap.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    from engine.indexing import Indexer
    from engine.indexing.plan import scan_root
    from engine.library import Library

    work = args.dir or Path(tempfile.mkdtemp(prefix="earshot-rescan-"))
    root, libdir = work / "tree", work / "lib"
    t = time.perf_counter()
    if not root.exists():
        make_tree(root, args.files, args.per_folder)
    t_tree = time.perf_counter() - t
    t = time.perf_counter()
    n = build_library(libdir, root, args.model) if not libdir.exists() else args.files
    t_build = time.perf_counter() - t
    rows = [("machine", f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"),
            ("tree", f"{args.files} files in {args.files // args.per_folder} folders (made in {t_tree:.0f} s)"),
            ("library", f"{n} files, one window each (built in {t_build:.0f} s)")]
    for i in range(args.repeats):
        t = time.perf_counter()
        with Library(libdir) as lib:
            t_open = time.perf_counter() - t
            s = Indexer(lib).run(None)
        total = time.perf_counter() - t
        if s.new or s.changed or s.moved or s.deleted or s.unchanged != n:
            raise SystemExit(f"the re-scan was not a no-op: {s}")
        t = time.perf_counter()
        scan_root(root, 1, {}, cancelled=lambda: False)
        t_scan = time.perf_counter() - t
        rows.append((f"re-scan {i + 1}", f"{total:6.1f} s (open {t_open:.1f} s, of which walking the tree "
                     f"≈ {t_scan:.1f} s; load {os.getloadavg()[0]:.1f})"))
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A million windows, end to end (issue 11): fill a library through the engine's storage API, then time what a
user waits for — opening it, text queries (encoding and SQL included), find-similar, filtered, keyword and
hybrid queries, a cold ``earshot search`` — and the peak memory.

Usage (from the repository root)::

    python -m benchmarks.bench_scale [--windows 1M] [--library DIR] [--queries 60] [--cli-runs 5]
                                     [--baseline-src DIR] [--json out.json]

**The library.** ``--windows`` windows (default 1M) in about ``windows / 3.3`` files (300k at 1M): real
``files`` rows in a folder tree shaped like a sound library (vendors / UCS category / subcategory / pack),
UCS file names built from each category's own synonyms (``DOORWood_Heavy Slam Close 03_JD_Farmhouse.wav``),
durations from the window counts, sample rates, channels, formats, and the metadata a UCS-named file gives
(CatID, category, FX name, library, designer; a description for a third of them). Keyword rows (FTS5) and
the files' texts (``engine.names``) are the engine's own; the texts' vectors are synthetic (a hashed vector
per word, averaged) because embedding 300k names with MiniLM would take longer than the whole benchmark —
the name-space k-NN costs the same either way. Window vectors are the clustered synthetic vectors of
``bench_ann`` at the bundle's dimension. Everything is inserted through ``engine.storage.db`` and
``engine.keyword`` in bulk (``insert_windows_bulk``, ``put_documents``; the keyword tables merged at the
end, as after an index run of that size); the HNSW caches (windows and
names) are built by the library itself on first open, as after an upgrade. ``--library DIR`` keeps the
library and reuses it when it already holds that many windows.

**The measurements** run in fresh processes (so each peak RSS is its own):

* open (app): ``Library()`` + the window index + the name index + the text model, what the app does
  before its first query; then in the same process, warm, one query at a time with distinct texts (the
  query cache never helps): text (``--mode content``: encoding + HNSW + SQL), filtered by folder, by
  duration and by UCS category, keyword (``--mode keywords``), hybrid (``--mode both``, the default),
  find-similar from a stored file; p50/p95 in ms; the process's peak RSS.
* ``--rounds N``: the warm measurements above in N pairs of fresh processes, this checkout then the baseline
  on the same queries, pooled per side (on a shared machine the load drifts within minutes).
* ``earshot search`` cold: a fresh ``python -m engine.cli search`` per query, wall time p50 over
  ``--cli-runs`` runs, for this checkout (numpy text path), the same with ``EARSHOT_TEXT_BACKEND=torch``,
  and ``--baseline-src`` (another checkout, e.g. ``main`` before issue 11) interleaved run by run.

Targets (issue 11): text query p95 ≤ 30 ms warm, peak RSS ≤ 2.5 GB at 1M windows; cold CLI ≤ 0.8 s at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "resources" / "models" / "earshot-sfx-small-2.0.0"
WINDOWS_PER_FILE = 3.3
BATCH_FILES = 20_000

VENDORS = ["Boom Library", "Sound Ideas", "Pro Sound Effects", "Soundmorph", "Bluezone", "Airborne Sound",
           "Tonsturm", "Hzandbits", "Chuck Russom FX", "Articulated Sounds", "Glitchmachines", "Sonniss",
           "Frank Bry", "Rabbit Ears Audio", "The Recordist", "Detunized", "SoundBits", "Epic Stock Media",
           "Field Recs", "In House"]
DESIGNERS = ["JD", "AK", "MR", "SL", "TB", "EV", "NO", "PH"]
PROJECTS = ["Farmhouse", "Harbour", "Winter Forest", "City Night", "Foundry", "Desert Run", "Warehouse",
            "Old Town", "Studio B", "Mountain Pass"]
ADJECTIVES = ["heavy", "light", "distant", "close", "short", "long", "metallic", "wooden", "soft", "hard",
              "fast", "slow", "big", "small", "deep", "bright", "dry", "wet", "old", "loud"]
QUERIES = [
    "wooden door slam", "footsteps on gravel", "distant explosion", "glass shattering", "rain on a tin roof",
    "dog barking", "car engine start", "thunder rumble", "crowd cheering", "metal impact", "wind howling",
    "water splash", "sword clash", "typing on a keyboard", "helicopter flyby", "fire crackling",
    "birds chirping in the morning", "heavy machinery", "camera shutter click", "paper rustle",
    "gunshot in a tunnel", "bubbling liquid", "creaking floorboards", "horse galloping", "telephone ringing",
    "ocean waves", "zipper", "coins dropping", "whoosh", "bell ringing",
]


def _parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ms(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def query_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct realistic queries (the base list, then with an adjective in front)."""
    rng = random.Random(seed)
    out = list(dict.fromkeys(QUERIES))
    while len(out) < n:
        q = f"{rng.choice(ADJECTIVES)} {rng.choice(QUERIES)}"
        if q not in out:
            out.append(q)
    return out[:n]


# -- filling ---------------------------------------------------------------------------------------


def _categories(rng: np.random.Generator, n: int):
    """``n`` UCS categories that have synonyms, with Zipf-like weights (some categories are common)."""
    from engine.ucs import ucs_table

    rows = [r for r in ucs_table().values() if len(r.synonyms) >= 5]
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    cats = [rows[i] for i in pick]
    weights = 1.0 / np.arange(1, len(cats) + 1) ** 0.8
    return cats, weights / weights.sum()


class _WordVectors:
    """Synthetic sentence vectors: a fixed random unit vector per word (seeded by its crc32), averaged."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._cache: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        v = self._cache.get(word)
        if v is None:
            v = np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dim).astype(np.float32)
            self._cache[word] = v
        return v

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            words = t.lower().split()
            if words:
                v = np.sum([self._word(w) for w in words], axis=0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


def fill(libdir: Path, windows: int, *, bundle: Path = DEFAULT_BUNDLE, seed: int = 0, ef_construction: int | None = None,
         log=print) -> dict:
    """Fill an empty library at ``libdir`` with ``windows`` windows; return timings and counts.
    ``ef_construction``: build the two HNSW caches here with this beam width instead of letting the library
    build them with its default (200) — only to fit a 1M build into a shared machine's afternoon."""
    from sqlalchemy import insert

    from benchmarks.bench_ann import SyntheticLibrary
    from engine import keyword
    from engine.library import Library
    from engine.name_index import sync_file_texts
    from engine.names import NAME_DIM, NAME_ENCODER_ID
    from engine.storage import db, fts

    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    lib = Library(libdir, bundle)
    lib.acquire_writer()
    b = lib.bundle
    root = (libdir.parent / f"{libdir.name}-audio" / "Sound Library").as_posix()
    # windows per file: 1 + geometric, mean WINDOWS_PER_FILE, at most 120 (a 4.6-minute ambience)
    lengths = []
    total = 0
    while total < windows:
        part = np.minimum(120, 1 + rng.geometric(1 / (WINDOWS_PER_FILE - 1), 100_000))
        lengths.append(part)
        total += int(part.sum())
    lengths = np.concatenate(lengths)
    cum = np.cumsum(lengths)
    n_files = int(np.searchsorted(cum, windows)) + 1
    lengths = lengths[:n_files].copy()
    lengths[-1] -= int(cum[n_files - 1] - windows)
    cats, cat_p = _categories(rng, 180)
    file_cat = rng.choice(len(cats), size=n_files, p=cat_p)
    vectors = SyntheticLibrary(windows, b.dim, seed)
    chunk_i, chunk, chunk_pos = 0, vectors.chunk(0), 0

    def next_vectors(n: int) -> np.ndarray:
        nonlocal chunk_i, chunk, chunk_pos
        parts = []
        while n:
            if chunk_pos == len(chunk):
                chunk_i += 1
                chunk, chunk_pos = vectors.chunk(chunk_i), 0
            take = min(n, len(chunk) - chunk_pos)
            parts.append(chunk[chunk_pos : chunk_pos + take])
            chunk_pos += take
            n -= take
        return np.concatenate(parts)

    with lib.engine.begin() as conn:
        root_id = conn.execute(insert(db.Root).values(path=root, added_at=time.time(),
                                                      last_indexed_at=time.time())).inserted_primary_key[0]
    counters: dict[tuple[str, str], int] = {}
    for start in range(0, n_files, BATCH_FILES):
        stop = min(n_files, start + BATCH_FILES)
        files, docs, w_file, w_start, w_end = [], [], [], [], []
        for i in range(start, stop):
            fid = i + 1
            cat = cats[file_cat[i]]
            vendor = VENDORS[(file_cat[i] * 7 + i % 3) % len(VENDORS)]
            words = list(rng.choice(cat.synonyms, size=min(len(cat.synonyms), int(rng.integers(1, 4))), replace=False))
            fx = " ".join([str(rng.choice(ADJECTIVES)), *words]).title()
            key = (vendor, cat.cat_id)
            counters[key] = counters.get(key, 0) + 1
            n = counters[key]
            pack = f"Pack {1 + n // 150:02d}"  # with the take number below: unique names
            designer = DESIGNERS[i % len(DESIGNERS)]
            project = PROJECTS[(i // 7) % len(PROJECTS)]
            name = f"{cat.cat_id}_{fx} {1 + n % 150:03d}_{designer}_{project}.wav"
            rel = f"{vendor}/{cat.category.title()}/{cat.subcategory.title()}/{pack}/{name}"
            nw = int(lengths[i])
            duration = max(0.05, nw * b.hop_s + (b.window_s - b.hop_s) - float(rng.uniform(0, b.window_s * 0.95)))
            meta = {"cat_id": cat.cat_id, "category": cat.category, "subcategory": cat.subcategory,
                    "fx_name": fx, "library": vendor, "designer": designer}
            if i % 3 == 0:
                meta["description"] = f"{fx}, recorded at {project.lower()}, {rng.choice(ADJECTIVES)} perspective"
            sr = int(rng.choice([44100, 48000, 48000, 96000]))
            files.append({
                "id": fid, "root_id": root_id, "rel_path": rel, "size": int(duration * sr * 4),
                "mtime_ns": 1_700_000_000_000_000_000 + fid, "content_hash": f"{fid:016x}", "duration_s": duration,
                "sample_rate": sr, "channels": int(rng.choice([1, 2])), "format": "WAV", "subtype": "PCM_24",
                "metadata_json": db.metadata_dumps(meta), "status": "ok", "indexed_at": time.time(),
            })
            docs.append((fid, keyword.document_for(rel, root, meta)))
            starts = np.arange(nw) * b.hop_s
            w_file.append(np.full(nw, fid))
            w_start.append(starts)
            w_end.append(np.maximum(np.minimum(starts + b.window_s, duration), starts + 1e-3))
        w_file_a = np.concatenate(w_file)
        with lib.engine.begin() as conn:
            gen = db.generation(conn) + 1
            conn.execute(insert(db.File), files)
            keyword.put_documents(conn, docs)
            db.insert_windows_bulk(conn, w_file_a, np.concatenate(w_start), np.concatenate(w_end),
                                   next_vectors(len(w_file_a)), b.bundle_id, gen)
            db.bump_generation(conn)
        log(f"  filled {stop}/{n_files} files ({time.perf_counter() - t_start:.0f} s)")
    with lib.engine.begin() as conn:  # as an index run that wrote this many files ends (indexing.committer)
        fts.optimize(conn)
    t_rows = time.perf_counter() - t_start
    t0 = time.perf_counter()
    sync_file_texts(lib.engine, _WordVectors(NAME_DIM), NAME_ENCODER_ID)
    t_texts = time.perf_counter() - t0
    log(f"  file texts: {t_texts:.0f} s")
    if ef_construction is not None:
        from engine.storage.vector_index import VectorIndex

        with lib.engine.connect() as conn:
            t0 = time.perf_counter()
            VectorIndex.rebuild(b.dim, lib.index_path, db.iter_vectors(conn, b.bundle_id, b.dim),
                                generation=db.generation(conn), library_id=lib.library_id,
                                ef_construction=ef_construction, capacity=windows)
            log(f"  window index (ef_construction {ef_construction}): {time.perf_counter() - t0:.0f} s")
            VectorIndex.rebuild(NAME_DIM, lib.name_index.path, db.iter_file_text_vectors(conn, NAME_ENCODER_ID, NAME_DIM),
                                generation=db.names_generation(conn), library_id=lib.library_id,
                                ef_construction=ef_construction, capacity=n_files)
    t0 = time.perf_counter()
    lib.sync_index()
    t_index = time.perf_counter() - t0
    log(f"  window index: {t_index:.0f} s")
    t0 = time.perf_counter()
    lib.name_index.sync()
    t_names = time.perf_counter() - t0
    log(f"  name index: {t_names:.0f} s")
    lib.close()
    if ef_construction is not None:  # the builds above, then the library's loading and checking them
        t_index = t_names = 0.0
        t_index = time.perf_counter() - t_start - t_rows - t_texts
    return {"files": n_files, "windows": windows, "rows_s": t_rows, "texts_s": t_texts, "index_s": t_index,
            "ef_construction": ef_construction or 200,
            "names_index_s": t_names, "fill_s": time.perf_counter() - t_start, "root": root}


def library_windows(libdir: Path) -> int | None:
    from sqlalchemy import func, select

    from engine.storage import db

    if not (libdir / "earshot.db").exists():
        return None
    engine = db.open_engine(libdir / "earshot.db")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(db.Window)).scalar_one())
    finally:
        engine.dispose()


# -- measuring (a fresh process) ----------------------------------------------------------------------


def measure(libdir: Path, n_queries: int, seed: int = 0) -> dict:
    """Open the library as the app does, then time warm queries; the process's peak RSS."""
    from sqlalchemy import select

    from engine.library import Library
    from engine.search import Filters, Searcher
    from engine.storage import db

    out: dict = {}
    t0 = time.perf_counter()
    lib = Library(libdir)
    out["open_db_s"] = time.perf_counter() - t0
    lib.sync_index()
    out["open_index_s"] = time.perf_counter() - t0
    lib.name_index.sync()
    out["open_names_s"] = time.perf_counter() - t0
    (getattr(lib, "text_encoder", None) or lib.encoder).embed_text(["warm up"])  # (a baseline has no text_encoder)
    out["open_app_s"] = time.perf_counter() - t0
    s = Searcher(lib)
    rng = random.Random(seed)
    with lib.engine.connect() as conn:
        root = conn.execute(select(db.Root.path)).scalar_one()
        n_files = conn.execute(select(db.File.id).order_by(db.File.id.desc()).limit(1)).scalar_one()
        vendors = sorted({r.split("/")[0] for r in conn.execute(
            select(db.File.rel_path).where(db.File.id.in_(rng.sample(range(1, n_files + 1), min(n_files, 200))))
        ).scalars()})
        cats = conn.execute(select(db.File.metadata_json).where(db.File.id.in_(
            rng.sample(range(1, n_files + 1), min(n_files, 200))))).scalars().all()
    cat_ids = sorted({json.loads(m)["cat_id"] for m in cats})
    queries = query_texts(n_queries * 7, seed)
    cases = {
        "text": lambda q: s.search(q, 20, None, "content"),
        "filtered: folder": lambda q: s.search(q, 20, Filters(folder=f"{root}/{rng.choice(vendors)}"), "content"),
        "filtered: duration": lambda q: s.search(q, 20, Filters(min_duration=10.0, max_duration=30.0), "content"),
        "filtered: category": lambda q: s.search(q, 20, Filters(category=rng.choice(cat_ids)), "content"),
        "keyword": lambda q: s.search(q, 20, None, "keywords"),
        "hybrid": lambda q: s.search(q, 20, None, "both"),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    hits: dict[str, int] = {name: 0 for name in cases}
    for i in range(n_queries):  # interleaved: each case sees the same load
        for j, (name, fn) in enumerate(cases.items()):
            q = queries[i * len(cases) + j]
            t = time.perf_counter()
            got = fn(q)
            results[name].append(time.perf_counter() - t)
            hits[name] += bool(got)
    similar = []
    with lib.engine.connect() as conn:
        paths = [f"{root}/{r}" for r in conn.execute(select(db.File.rel_path).where(
            db.File.id.in_(rng.sample(range(1, n_files + 1), min(n_files, n_queries))))).scalars()]
    for p in paths:
        t = time.perf_counter()
        got = s.similar(p, 20)
        similar.append(time.perf_counter() - t)
    results["find similar"] = similar
    hits["find similar"] = len(similar)
    out["queries"] = {name: {"p50_ms": _ms(v)[0], "p95_ms": _ms(v)[1], "n": len(v), "answered": hits[name],
                             "ms": [t * 1000 for t in v]} for name, v in results.items()}
    out["peak_rss_mb"] = _peak_rss_mb()
    out["torch_imported"] = "torch" in sys.modules
    lib.close()
    return out


def _run_json(args: list[str], src: Path = ROOT) -> dict:
    """This script in a fresh process, the engine imported from ``src`` (this checkout or a baseline)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(src.resolve())}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                          cwd=src, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_scale {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pooled(runs: list[dict]) -> dict:
    """Measurements of several processes as one: each query kind's latencies pooled (p50/p95 over all), the
    opening times' median, the largest peak RSS."""
    out = {k: float(np.median([r[k] for r in runs])) for k in runs[0] if k.startswith("open_")}
    out["queries"] = {}
    for name in runs[0]["queries"]:
        ms = [t for r in runs for t in r["queries"][name]["ms"]]
        p50, p95 = (float(np.percentile(ms, q)) for q in (50, 95))
        out["queries"][name] = {"p50_ms": p50, "p95_ms": p95, "n": len(ms), "ms": ms,
                                "answered": sum(r["queries"][name]["answered"] for r in runs)}
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["torch_imported"] = any(r["torch_imported"] for r in runs)
    return out


def _measure_rounds(libdir: Path, args) -> tuple[dict, dict | None]:
    """The warm measurements of this checkout and the baseline: ``--rounds`` pairs of fresh processes, this
    checkout then the baseline, each pair on the same queries (seed ``--seed + round``), so both see the same
    stretches of a shared machine's load; pooled per side."""
    mine, base = [], []
    for r in range(args.rounds):
        common = ["--phase", "measure", "--library", str(libdir), "--seed", str(args.seed + r)]
        mine.append(_run_json([*common, "--queries", str(args.queries)]))
        if args.baseline_src is not None and args.baseline_queries > 0:
            base.append(_run_json([*common, "--queries", str(args.baseline_queries)], src=args.baseline_src))
    return _pooled(mine), (_pooled(base) if base else None)


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli_cold(libdir: Path, runs: int, baseline_src: Path | None, seed: int = 1) -> dict[str, dict[str, list[float]]]:
    """Fresh ``python -m engine.cli search`` processes, variants interleaved run by run: ``{variant:
    {"wall": [s], "cpu": [s]}}``. CPU time (user + system of the child) is what the wall time would be on
    an idle machine for this mostly single-threaded work; on a shared, loaded machine the wall time is
    mostly waiting for a core."""
    # Bytecode caches allowed (a sandbox may set PYTHONDONTWRITEBYTECODE): an installed Earshot has its .pyc
    # files (pip compiles a wheel at install), so compiling the engine's sources is no part of a user's start.
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"HF_HUB_OFFLINE": "1"}
    variants = {
        "this checkout (numpy text)": {**base_env, "PYTHONPATH": str(ROOT), "EARSHOT_TEXT_BACKEND": "auto"},
        "this checkout, torch text": {**base_env, "PYTHONPATH": str(ROOT), "EARSHOT_TEXT_BACKEND": "torch"},
    }
    if baseline_src is not None:
        variants[f"baseline ({baseline_src.name})"] = {**base_env, "PYTHONPATH": str(baseline_src.resolve())}
    queries = query_texts(runs * len(variants) + 1, seed)[1:]
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
    # one untimed run per variant first: the library's caches, each source tree's bytecode and the OS page
    # cache are warm, as for a user's second search
    for env in variants.values():
        subprocess.run([sys.executable, "-m", "engine.cli", "search", "warm up", "--library", str(libdir), "--json"],
                       capture_output=True, env=env, cwd=env["PYTHONPATH"], check=True)
    for i in range(runs):
        for j, (name, env) in enumerate(variants.items()):
            q = queries[i * len(variants) + j]
            t, cpu = time.perf_counter(), _children_cpu_s()
            proc = subprocess.run([sys.executable, "-m", "engine.cli", "search", q, "--library", str(libdir),
                                   "--json", "-k", "20"], capture_output=True, text=True, env=env,
                                  cwd=env["PYTHONPATH"])
            times[name]["wall"].append(time.perf_counter() - t)
            times[name]["cpu"].append(_children_cpu_s() - cpu)
            if proc.returncode != 0:
                raise RuntimeError(f"earshot search failed ({name}): {proc.stderr[-2000:]}")
            json.loads(proc.stdout)
    return times


IMPORTED = ["numpy", "sqlalchemy", "hnswlib", "tokenizers", "safetensors", "threadpoolctl", "torch", "transformers"]
CLI_IMPORTS = "import engine.cli, engine.library, engine.search"


def import_times(src: Path, runs: int = 5) -> dict[str, float]:
    """Median seconds (``python -X importtime``, cumulative) of importing each package of :data:`IMPORTED`
    alone in a fresh process, and of everything ``earshot search`` imports before its first query
    (:data:`CLI_IMPORTS`; with this checkout's text path that also loads numpy MiniLM's modules)."""
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    code = {name: f"import {name}" for name in IMPORTED}
    code["earshot search, all imports"] = CLI_IMPORTS
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, stmt in code.items():
            proc = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True,
                                  env=env, cwd=src)
            if proc.returncode != 0:
                continue  # not installed
            total = sum(int(line.split("|")[1]) for line in proc.stderr.splitlines()
                        if line.startswith("import time:") and line.split("|")[1].strip().isdigit()
                        and not line.split("|")[2].startswith("  "))  # top-level entries: their cumulative
            samples.setdefault(name, []).append(total / 1e6)
    return {k: float(np.median(v)) for k, v in samples.items()}


def table(fill_info: dict | None, m: dict, cli: dict, windows: int, base: dict | None = None,
          imports: dict | None = None) -> str:
    """The results as a Markdown table (a baseline column when ``base`` is given)."""
    def row(what: str, key, fmt, target: str = "") -> str:
        mine = fmt(m, key)
        cells = [what, mine] + ([fmt(base, key)] if base else []) + [target]
        return "| " + " | ".join(cells) + " |"

    def ms(d, key):
        return f"{d[key] * 1000:.0f} ms"

    def q(d, name):
        v = d["queries"].get(name)
        return "—" if v is None else f"{v['p50_ms']:.1f} / {v['p95_ms']:.1f} ms ({v['answered']}/{v['n']} answered)"

    head = ["what", "this checkout"] + (["baseline"] if base else []) + ["target (issue 11)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if fill_info:
        cell = (f"{fill_info['files']} files: rows {fill_info['rows_s']:.0f} s + texts {fill_info['texts_s']:.0f} s + "
                f"HNSW caches (ef_construction {fill_info.get('ef_construction', 200)}) "
                f"{fill_info['index_s'] + fill_info['names_index_s']:.0f} s = {fill_info['fill_s']:.0f} s")
        lines.append("| fill | " + cell + (" | ″" if base else "") + " | minutes |")
    lines.append(row("open (app): database", "open_db_s", ms))
    lines.append(row("open (app): + window index", "open_index_s", ms))
    lines.append(row("open (app): + name index", "open_names_s", ms))
    lines.append(row("open (app): + text model, first query ready", "open_app_s", ms))
    targets = {"text": "p95 ≤ 30 ms"}
    for name in m["queries"]:
        lines.append(row(f"{name} query p50 / p95", name, q, targets.get(name, "")))
    lines.append(row("peak RSS (open + all queries)", "peak_rss_mb", lambda d, k: f"{d[k]:.0f} MB", "≤ 2500 MB"))
    lines.append(row("torch imported by searching", "torch_imported", lambda d, k: "yes" if d[k] else "no", "no"))
    for name, t in (imports or {}).get("this checkout", {}).items():
        b = (imports or {}).get("baseline", {}).get(name)
        lines.append(f"| import {name} (`-X importtime`, p50) | {t * 1000:.0f} ms"
                     + (f" | {b * 1000:.0f} ms" if base else "") + " | |")
    for name, t in cli.items():
        w, c = t["wall"], t["cpu"]
        cell = f"{np.median(w):.2f} s ({min(w):.2f}–{max(w):.2f}); CPU {np.median(c):.2f} s"
        lines.append(f"| `earshot search` cold, {name}: wall p50 (min–max) of {len(w)}; CPU p50 | {cell}"
                     + (" | " if base else "") + " | ≤ 0.8 s at 100k windows |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--windows", default="1M", help="windows in the library (e.g. 20k, 100k, 1M)")
    p.add_argument("--library", type=Path, help="keep the library here (reused when it already holds --windows)")
    p.add_argument("--queries", type=int, default=60, help="queries per kind (distinct texts)")
    p.add_argument("--cli-runs", type=int, default=5, help="cold `earshot search` runs per variant")
    p.add_argument("--baseline-src", type=Path, help="another checkout (e.g. main) to time the same way: the cold "
                                                      "CLI interleaved, the warm queries in a process of its own")
    p.add_argument("--baseline-queries", type=int, default=20, help="queries per kind for the baseline (0: none)")
    p.add_argument("--rounds", type=int, default=1, help="warm measurements in this many pairs of processes "
                                                         "(this checkout, then the baseline), pooled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--fill-only", action="store_true", help="fill --library and stop")
    p.add_argument("--ef-construction", type=int, help="build the HNSW caches with this beam width (default: the "
                                                             "library builds them with its own, 200)")
    p.add_argument("--phase", choices=("all", "measure"), default="all", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase == "measure":
        print(json.dumps(measure(args.library, args.queries, args.seed)))
        return 0
    windows = _parse_size(args.windows)
    tmp = None
    if args.library is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_scale-")
        args.library = Path(tmp.name) / "lib"
    libdir = args.library.resolve()
    fill_info = None
    have = library_windows(libdir)
    if have != windows:
        if have is not None:
            print(f"{libdir} holds {have} windows, not {windows}: give another --library", file=sys.stderr)
            return 2
        print(f"filling {libdir} with {windows} windows…", file=sys.stderr)
        fill_info = fill(libdir, windows, seed=args.seed, ef_construction=args.ef_construction,
                         log=lambda s: print(s, file=sys.stderr, flush=True))
        (libdir / "bench_fill.json").write_text(json.dumps(fill_info))
    elif (libdir / "bench_fill.json").exists():
        fill_info = json.loads((libdir / "bench_fill.json").read_text())
    if args.fill_only:
        print(json.dumps(fill_info))
        return 0
    m, base = _measure_rounds(libdir, args)
    cli = cli_cold(libdir, args.cli_runs, args.baseline_src) if args.cli_runs > 0 else {}
    imports = {}
    if args.cli_runs > 0:
        imports["this checkout"] = import_times(ROOT, args.cli_runs)
        if args.baseline_src is not None:
            imports["baseline"] = import_times(args.baseline_src, args.cli_runs)
    load = os.getloadavg()
    print(f"bench_scale: {windows} windows, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    print(table(fill_info, m, cli, windows, base, imports))
    if args.json:
        args.json.write_text(json.dumps({"windows": windows, "fill": fill_info, "measure": m, "baseline": base, "cli": cli, "imports": imports,
                                         "load": load}, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The blind set through the engine: opaque library, hand-written queries, mAP@16 / R@k per mode.

The blind set (``training/data/blind/``: 207 clips from 13 Debian packages never used for training, 432
queries written apart from captioning) is laid out by ``python -m training.data.blind.build``. This
benchmark copies every clip into a temporary library as ``clip_0001.wav`` … (decoded and re-written as
PCM WAV, so no file name, folder or tag says what it is; the order is shuffled with a fixed seed), indexes
it with a bundle (default: the shipped default), runs every query through :class:`engine.search.Searcher`
in ``--mode content`` and ``--mode both`` and prints, per mode, mAP@16 and mAP@10 (DCASE: AP divided by
the number of relevant clips, :func:`training.metrics.average_precision_at_k`), R@1/5/10 and the share of
queries with no relevant clip in the top 16, then the same per query category
(``query_categories.csv``).

    python -m benchmarks.bench_blind [--clips data/blind/clips] [--model NAME_OR_PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BLIND = REPO / "training" / "data" / "blind"
K = 16
MODES = ("content", "both")

log = logging.getLogger(__name__)


def read_table(queries: Path, categories: Path | None) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Query → relevant clip paths, and query → category (``"-"`` when the category file lacks it)."""
    relevant: dict[str, set[str]] = defaultdict(set)
    with open(queries, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            relevant[" ".join(r["query"].split())].add(r["path"])
    cats: dict[str, str] = {}
    if categories is not None and categories.is_file():
        with open(categories, newline="", encoding="utf-8") as fh:
            cats = {" ".join(r["query"].split()): r["category"] for r in csv.DictReader(fh)}
    return dict(relevant), {q: cats.get(q, "-") for q in relevant}


def build_opaque_library(clips: Path, paths: list[str], out: Path, seed: int = 0) -> dict[str, Path]:
    """Decode each clip (``clips/<path>``) and write it as ``out/clip_NNNN.wav`` (16-bit PCM, native rate,
    mono as the engine hears it). Returns blind path → opaque file. Missing clips raise."""
    import soundfile as sf

    from engine.audio import load_mono, probe

    missing = [p for p in paths if not (clips / p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} blind clips are missing under {clips} (e.g. {missing[0]}); "
            "run: python -m training.data.blind.build --out " + str(clips)
        )
    order = sorted(paths)
    random.Random(seed).shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for i, rel in enumerate(order, 1):
        src = clips / rel
        dst = out / f"clip_{i:04d}.wav"
        if dst.is_file():  # written by an earlier run (same seed, same order): keep it, no re-index
            mapping[rel] = dst.resolve()
            continue
        sr = probe(src).sample_rate
        audio = np.asarray(load_mono(src, sr), dtype=np.float32)
        sf.write(dst, audio, sr, subtype="PCM_16")
        mapping[rel] = dst.resolve()
    return mapping


def score(ranked_paths: list[str], relevant: set[str]) -> dict[str, float]:
    """AP@16, AP@10, R@1/5/10 and ``miss`` (1 when nothing relevant is in the top 16) of one ranking."""
    from training.metrics import average_precision_at_k

    ranked = np.array([p in relevant for p in ranked_paths[:K]] + [False] * (K - len(ranked_paths[:K])))
    n = len(relevant)
    return {
        "map@16": average_precision_at_k(ranked, n, 16),
        "map@10": average_precision_at_k(ranked, n, 10),
        **{f"R@{k}": float(ranked[:k].sum() / n) for k in (1, 5, 10)},
        "miss@16": float(not ranked.any()),
    }


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} | {"queries": len(rows)}


def evaluate(
    libdir: Path, root: Path, mapping: dict[str, Path], relevant: dict[str, set[str]], model: str | None
) -> dict:
    """Index ``root`` into a library at ``libdir`` and score every query in each of :data:`MODES`.

    Returns ``{"bundle", "index_s", "per_query": {mode: {query: metrics}}}``.
    """
    from engine.indexing import Indexer
    from engine.library import Library
    from engine.search import Searcher

    back = {str(p): rel for rel, p in mapping.items()}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    with Library(libdir, model) as lib:
        t0 = time.perf_counter()
        summary = Indexer(lib).run([root])
        index_s = time.perf_counter() - t0
        log.info("indexed %s in %.0f s", summary, index_s)
        searcher = Searcher(lib)
        for mode in MODES:
            per_query[mode] = {}
            for q, rel in relevant.items():
                hits = searcher.search(q, k=K, mode=mode)
                ranked = [back.get(str(Path(h.path).resolve()), "") for h in hits]
                per_query[mode][q] = score(ranked, rel)
        bundle = f"{lib.bundle.name} {lib.bundle.version}"
    return {"bundle": bundle, "index_s": index_s, "per_query": per_query}


def report(result: dict, categories: dict[str, str], n_clips: int) -> str:
    """The printed tables: overall per mode, then per category (content mode and both)."""
    lines = [
        f"bundle: {result['bundle']}; {n_clips} clips (opaque names); indexing {result['index_s']:.0f} s",
        f"{'mode':<8} {'set':<12} {'queries':>7} {'mAP@16':>7} {'mAP@10':>7} {'R@1':>6} {'R@5':>6} "
        f"{'R@10':>6} {'miss@16':>8}",
    ]

    def row(mode: str, name: str, rows: list[dict[str, float]]) -> str:
        m = mean(rows)
        return (
            f"{mode:<8} {name:<12} {m['queries']:>7d} {m['map@16']:7.3f} {m['map@10']:7.3f} {m['R@1']:6.3f} "
            f"{m['R@5']:6.3f} {m['R@10']:6.3f} {m['miss@16']:8.1%}"
        )

    for mode, per in result["per_query"].items():
        lines.append(row(mode, "all", list(per.values())))
    for mode, per in result["per_query"].items():
        by_cat: dict[str, list[dict[str, float]]] = defaultdict(list)
        for q, m in per.items():
            by_cat[categories.get(q, "-")].append(m)
        for cat in sorted(by_cat):
            lines.append(row(mode, cat, by_cat[cat]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=Path, default=REPO / "data" / "blind" / "clips", help="built blind clips")
    p.add_argument("--queries", type=Path, default=BLIND / "queries.csv")
    p.add_argument("--categories", type=Path, default=BLIND / "query_categories.csv")
    p.add_argument("--model", default=None, help="bundle name or path (default: the shipped default)")
    p.add_argument("--work", type=Path, default=None, help="where to build the library (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write per-query metrics as JSON here")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed of the opaque names")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    relevant, categories = read_table(args.queries, args.categories)
    paths = sorted(set().union(*relevant.values()))
    inventory = BLIND / "inventory.csv"
    if args.queries == BLIND / "queries.csv" and inventory.is_file():
        with open(inventory, newline="", encoding="utf-8") as fh:
            paths = sorted({f"{r['package']}/{r['member_path']}" for r in csv.DictReader(fh)} | set(paths))
    work = args.work or Path(tempfile.mkdtemp(prefix="earshot-blind-"))
    try:
        mapping = build_opaque_library(args.clips, paths, work / "audio", args.seed)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = evaluate(work / "library", work / "audio", mapping, relevant, args.model)
    print(report(result, categories, len(mapping)))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

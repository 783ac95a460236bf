"""Content vs lexical vs semantic-name vs fused search on four libraries made from the same held-out clips.

The libraries (benchmarks/libraries.py) hold the TEST split of the Debian sound-effects corpus (never
trained on, never used to fit the fusion): ``ucs`` (UCS names + bext/iXML), ``plain`` (original package
folders and file names), ``half`` (every other file renamed ``clip_NNNN.wav``) and ``opaque`` (all renamed).
Names come from the clips' ORIGINAL file and folder names, never from our captions. For each library it
runs the hand-written test queries and prints mAP@16, R@10 and the share of queries with nothing relevant
in the top 16 for each ranking, and the p50/p95 latency of a warm fused query.

    python -m benchmarks.bench_hybrid --corpus data/debian_sfx/corpus [--model NAME] [--limit N] [--split test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import libraries  # noqa: E402

RANKINGS = ("content", "lexical", "names", "fused")


def _names_only(s, query: str, k: int) -> list[str]:
    """The semantic-name ranking alone: files by the cosine of the query with their own words."""
    from benchmarks.fit_fusion import file_paths

    _, nvec = s.lib.embed_query(query)
    paths = file_paths(s.lib)
    return [paths[fid] for fid, _ in s.lib.name_index.search(nvec, k) if fid in paths]


def evaluate(libdir: Path, root: Path, relevant: dict[str, set[str]], model: str | None) -> dict:
    import numpy as np

    from engine.indexing import Indexer
    from engine.library import Library
    from engine.search import Searcher
    from training.metrics import average_precision_at_k

    out: dict = {}
    with Library(libdir, model) as lib:
        t0 = time.perf_counter()
        Indexer(lib).run([root])
        out["_index_s"] = time.perf_counter() - t0
        s = Searcher(lib)
        rank = {
            "content": lambda q: [h.path for h in s.search(q, k=16, mode="content")],
            "lexical": lambda q: [h.path for h in s.search(q, k=16, mode="keywords")],
            "names": lambda q: _names_only(s, q, 16),
            "fused": lambda q: [h.path for h in s.search(q, k=16, mode="both")],
        }
        for name in RANKINGS:
            aps, r10, zero = [], [], []
            for q, rel in relevant.items():
                hits = rank[name](q)
                ranked = np.array([h in rel for h in hits] + [False] * (16 - len(hits)))
                aps.append(average_precision_at_k(ranked, len(rel), 16))
                r10.append(ranked[:10].sum() / len(rel))
                zero.append(not ranked.any())
            out[name] = (float(np.mean(aps)), float(np.mean(r10)), float(np.mean(zero)))
        lat = []
        lib._query_cache.clear()  # time the text encoding too: every query is new to the library
        for q in relevant:
            t0 = time.perf_counter()
            s.search(q, k=16, mode="both")
            lat.append(time.perf_counter() - t0)
        lat = sorted(lat[1:])  # warm: the model is loaded by the rankings above
        out["_p50_ms"] = 1000 * lat[len(lat) // 2]
        out["_p95_ms"] = 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        out["_bundle"] = f"{lib.bundle.name} {lib.bundle.version}"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "debian_sfx" / "corpus")
    p.add_argument("--model", default=None)
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--limit", type=int, default=None, help="first N clips only (quick runs)")
    p.add_argument("--variants", default=",".join(libraries.VARIANTS))
    p.add_argument("--work", type=Path, default=None, help="where to build the libraries (default: a temp dir)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="earshot-hybrid-"))
    variants = tuple(args.variants.split(","))
    maps = libraries.build(args.corpus, work, libraries.clips_of(args.split, args.limit), variants)
    results = {}
    for variant in variants:
        relevant = libraries.relevant_sets(args.split, maps[variant])
        results[variant] = evaluate(work / f"lib-{variant}", work / variant, relevant, args.model)
    any_res = next(iter(results.values()))
    print(f"bundle: {any_res['_bundle']}; {len(maps[variants[0]])} {args.split} clips, "
          f"{len(relevant)} queries; cells: mAP@16 / R@10 / share of queries with nothing relevant in the top 16")
    print(f"{'library':<8} " + " ".join(f"{r:>20}" for r in RANKINGS) + f" {'p50 ms':>7} {'p95 ms':>7}")
    for variant, res in results.items():
        cells = " ".join(f"{res[r][0]:6.3f} {res[r][1]:5.3f} {100 * res[r][2]:4.0f}%  " for r in RANKINGS)
        print(f"{variant:<8} {cells} {res['_p50_ms']:7.1f} {res['_p95_ms']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

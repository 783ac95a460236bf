"""Fit the search's fusion by trust (:class:`engine.fusion.TrustFusion`) on VALIDATION queries.

Builds the ``ucs``, ``plain``, ``half`` and ``opaque`` libraries (benchmarks/libraries.py) from the
validation split of the Debian sound-effects corpus, indexes each with the bundle, collects every signal
for the candidates of each validation query (:meth:`engine.search.Searcher.evidence`), labels them with
the hand-written validation queries, fits one logistic model per search mode and prints it; with
``--write`` it stores it in ``engine/data/fusion.json`` under the bundle's ``name@version``. The test
split and every evaluation set stay out of it.

    python -m benchmarks.fit_fusion --corpus data/debian_sfx/corpus [--model NAME] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import libraries  # noqa: E402

BLIND_CLIPS = REPO / "data" / "blind" / "clips"
BOTH = ("content", "name_trusted", "name_trusted_sq", "informative", "lexical", "lexical_trusted", "content_x_name")
CONTENT = ("content",)
KEYWORDS = ("lexical", "informative", "lexical_trusted")


def file_paths(lib) -> dict[int, str]:
    """``{file id: absolute path}`` of every file in a library."""
    from sqlalchemy import select

    from engine.storage import db

    with lib.engine.connect() as conn:
        rows = conn.execute(select(db.File.id, db.Root.path, db.File.rel_path).join(db.Root)).all()
    return {fid: str(Path(root) / rel) for fid, root, rel in rows}


def collect(corpus: Path, work: Path, model: str | None) -> tuple[list[tuple[dict, int, str]], str, str]:
    from engine.fusion import features
    from engine.indexing import Indexer
    from engine.library import Library
    from engine.search import Searcher

    maps = libraries.build(corpus, work, libraries.clips_of("val"))
    rows = []
    for variant, mapping in maps.items():
        relevant = libraries.relevant_sets("val", mapping)
        with Library(work / f"lib-{variant}", model) as lib:
            Indexer(lib).run([work / variant])
            s = Searcher(lib)
            paths = file_paths(lib)
            for q, rel in relevant.items():
                for fid, ev in s.evidence(q).items():
                    rows.append((features(ev), int(paths.get(fid) in rel), f"{variant}\t{q}", ev))
            key = f"{lib.bundle.name}@{lib.bundle.version}"
    what = f"{len(relevant)} validation queries x 4 libraries (ucs, plain, half, opaque)"
    if BLIND_CLIPS.is_dir():
        rows += collect_blind(work, model)
        what += " + the blind set, named and opaque (queries written apart from any caption)"
    return rows, key, what


def collect_blind(work: Path, model: str | None) -> list:
    """Candidate pairs of the blind queries on the blind clips, twice: under their original package folders
    and file names (a named library whose queries were written apart from any caption, as a user's are)
    and renamed opaquely. They hold the sound's weight to what it is worth on sounds and wordings never
    trained on (our validation split overstates it) against what a library's own words are worth."""
    from benchmarks.bench_blind import BLIND, build_opaque_library, read_table
    from engine.fusion import features
    from engine.indexing import Indexer
    from engine.library import Library
    from engine.search import Searcher

    relevant, _ = read_table(BLIND / "queries.csv", None)
    clips = sorted(set().union(*relevant.values()))
    opaque = build_opaque_library(BLIND_CLIPS, clips, work / "blind-audio")
    named = {p: (BLIND_CLIPS / p).resolve() for p in clips}
    rows = []
    for variant, root, mapping in (("blind-opaque", work / "blind-audio", opaque), ("blind-named", BLIND_CLIPS, named)):
        with Library(work / f"lib-{variant}", model) as lib:
            Indexer(lib).run([root])
            s = Searcher(lib)
            paths = file_paths(lib)
            for q, rel in relevant.items():
                want = {str(mapping[p]) for p in rel if p in mapping}
                for fid, ev in s.evidence(q).items():
                    rows.append((features(ev), int(paths.get(fid) in want), f"{variant}\t{q}", ev))
    return rows


def fit(rows) -> dict:
    """One model per mode, on every candidate pair of the validation queries: ``both`` ranks each query's
    candidates (:func:`engine.fusion.fit_ranking`; in 5-fold cross-validation over the queries it beat the
    pointwise fit on the blind named library and val ucs, not on val half: benchmarks/RESULTS.md),
    ``content`` and ``keywords`` are
    pointwise logistic fits; the good-match cut-off is the probability with the best F1 on the same pairs."""
    from engine.fusion import TrustFusion, best_f1_threshold, fit_logistic, fit_ranking

    y = [r[1] for r in rows]
    groups: dict[str, tuple[list, list]] = {}
    for x, label, key, _ in rows:
        g = groups.setdefault(key, ([], []))
        g[0].append(x)
        g[1].append(label)
    both = fit_ranking(list(groups.values()), BOTH)
    c_rows = [(r[0], r[1]) for r in rows if r[3].content is not None]
    content = fit_logistic([a for a, _ in c_rows], [b for _, b in c_rows], CONTENT)
    k_rows = [(r[0], r[1]) for r in rows if r[3].lexical > 0]
    keywords = fit_logistic([a for a, _ in k_rows], [b for _, b in k_rows], KEYWORDS)
    threshold = best_f1_threshold([both.probability(r[3]) for r in rows], y)
    return TrustFusion(both, content, keywords, good_match=round(100 * threshold, 1)).as_dict()


def report(rows, fitted: dict) -> None:
    """Validation mAP@16 over each query's candidates, per library, for each signal alone and fused."""
    import numpy as np

    from engine.fusion import TrustFusion
    from training.metrics import average_precision_at_k

    fusion = TrustFusion.from_dict(fitted)
    rankers = {
        "content": lambda ev: ev.content if ev.content is not None else -9,
        "names": lambda ev: ev.name if ev.name is not None else -9,
        "lexical": lambda ev: ev.lexical,
        "fused": lambda ev: fusion.both.logit(ev),
    }
    per: dict[tuple[str, str], list[float]] = {}
    groups: dict[str, list] = {}
    for _, label, key, ev in rows:
        groups.setdefault(key, []).append((label, ev))
    for key, items in groups.items():
        n_rel = sum(label for label, _ in items)
        if not n_rel:
            continue
        variant = key.split("\t")[0]
        for name, f in rankers.items():
            order = sorted(items, key=lambda it, f=f: -f(it[1]))[:16]
            ranked = np.array([label for label, _ in order] + [0] * (16 - len(order)), dtype=bool)
            per.setdefault((variant, name), []).append(average_precision_at_k(ranked, n_rel, 16))
    for variant in sorted({v for v, _ in per}):
        print(variant, "  ".join(f"{n} {np.mean(per[(variant, n)]):.3f}" for n in rankers))
def main(argv: list[str] | None = None) -> int:
    from engine.fusion import Evidence, features

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=REPO / "data" / "debian_sfx" / "corpus")
    p.add_argument("--model", default=None)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--write", action="store_true", help="store the fit in engine/data/fusion.json")
    p.add_argument("--reuse", action="store_true", help="refit from the candidate pairs saved in --work")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="earshot-fit-"))
    cache = work / "rows.json"
    if args.reuse and cache.exists():
        saved = json.loads(cache.read_text())
        key, what = saved["key"], saved["what"]
        # features recomputed from the saved evidence, so a new feature needs no new collection
        rows = [(features(e), y, v, e) for y, v, e in ((y, v, Evidence(**ev)) for _, y, v, ev in saved["rows"])]
    else:
        rows, key, what = collect(args.corpus, work, args.model)
        cache.write_text(json.dumps(
            {"key": key, "what": what, "rows": [[r[0], r[1], r[2], dataclasses.asdict(r[3])] for r in rows]}))
    fitted = fit(rows)
    report(rows, fitted)
    fitted["fitted_on"] = f"{what}; {len(rows)} candidate pairs"
    print(json.dumps(fitted, indent=2))
    if args.write:
        path = REPO / "engine" / "data" / "fusion.json"
        table = json.loads(path.read_text())
        table["bundles"][key] = fitted
        path.write_text(json.dumps(table, indent=2) + "\n")
        print(f"written to {path} as {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

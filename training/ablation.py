"""The ablation tables of the model card.

    python -m training.ablation RUNS_DIR BUNDLE_DIR [--eval-set test]
    python -m training.ablation --variants LABEL=GLOB [LABEL=GLOB ...] [--eval-set test --eval-set blind]

The first form: stage 1 / + distillation & augmentation / + clusters, each single member (mean ± std over
seeds), and the exported ensemble evaluated through the engine, with chance level; reads
``RUNS_DIR/stage{1,2,3}-s*/eval-<set>.json`` (written by ``earshot-train evaluate``) and the bundle's
``training.metrics``. The second: one row per variant (its runs, by glob: one per seed), with mAP@16, R@10
and miss@16 (share of queries with nothing relevant in the top 16) on each evaluation set side by side.
Both print Markdown.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from training.metrics import retrieval_metrics

KEYS = ("map@16", "map@10", "R@1", "R@5", "R@10", "miss@16")
STAGES = (("stage1", "stage 1: contrastive"), ("stage2", "+ distillation + augmentation"),
          ("stage3", "+ cluster heads"))
DATA = Path(__file__).resolve().parent / "data"


def chance_level(captions: Path, queries: Path, split: str, draws: int = 50, seed: int = 0) -> dict[str, float]:
    """Expected metrics of a random ranking over the split's clips (mean over ``draws`` shuffles)."""
    clips = sorted({r["path"] for r in csv.DictReader(captions.open(encoding="utf-8")) if r["split"] == split})
    index = {p: i for i, p in enumerate(clips)}
    rel: dict[str, set[int]] = {}
    for r in csv.DictReader(queries.open(encoding="utf-8")):
        if r["path"] in index:
            rel.setdefault(r["query"], set()).add(index[r["path"]])
    relevant = list(rel.values())
    rng = np.random.default_rng(seed)
    runs = [retrieval_metrics(rng.random((len(relevant), len(clips))), relevant) for _ in range(draws)]
    return {k: float(np.mean([m[k] for m in runs])) for k in KEYS}


def chance_level_pool(queries: Path, draws: int = 50, seed: int = 0) -> dict[str, float]:
    """Chance when the candidate pool is every clip the queries name (the blind set)."""
    rows = list(csv.DictReader(queries.open(encoding="utf-8")))
    clips = sorted({r["path"] for r in rows})
    index = {p: i for i, p in enumerate(clips)}
    rel: dict[str, set[int]] = {}
    for r in rows:
        rel.setdefault(" ".join(r["query"].split()), set()).add(index[r["path"]])
    relevant = list(rel.values())
    rng = np.random.default_rng(seed)
    runs = [retrieval_metrics(rng.random((len(relevant), len(clips))), relevant) for _ in range(draws)]
    return {k: float(np.mean([m[k] for m in runs])) for k in KEYS}


def chance_for(eval_set: str) -> dict[str, float]:
    """Chance level of an evaluation set of the sfx-small recipe: the blind set's pool is every clip its
    queries name; the development set searches the val split; val and test their own split."""
    if eval_set == "blind":
        return chance_level_pool(DATA / "blind" / "queries.csv")
    if eval_set == "dev":
        return chance_level(DATA / "debian_sfx_captions.csv", DATA / "dev" / "queries.csv", "val")
    return chance_level(DATA / "debian_sfx_captions.csv", DATA / f"debian_sfx_queries_{eval_set}.csv", eval_set)


def _fmt(values: list[float | None]) -> str:
    if not values or any(v is None for v in values):
        return "–"  # measured before the metric existed
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def table(runs: Path, bundle: Path, eval_set: str = "test") -> str:
    lines = [f"| model ({eval_set} split, %) | members | " + " | ".join(KEYS) + " |",
             "|---|---|" + "---|" * len(KEYS)]
    for prefix, label in STAGES:
        found = sorted(runs.glob(f"{prefix}-s*/eval-{eval_set}.json"))
        if not found:
            continue
        metrics = [json.loads(p.read_text()) for p in found]
        lines.append(f"| {label} (single model) | {len(found)} seeds | "
                     + " | ".join(_fmt([m.get(k) for m in metrics]) for k in KEYS) + " |")
    spec = json.loads((bundle / "bundle.json").read_text())
    ens = spec.get("training", {}).get("metrics", {}).get(eval_set)
    if ens:
        lines.append(f"| **ensemble, exported bundle, through the engine** | {len(spec['members'])} | "
                     + " | ".join(_fmt([ens.get(k)]) for k in KEYS) + " |")
    chance = chance_for(eval_set)
    lines.append("| chance (random ranking) | – | " + " | ".join(_fmt([chance[k]]) for k in KEYS) + " |")
    return "\n".join(lines)


VARIANT_KEYS = ("map@16", "R@10", "miss@16")


def variants_table(
    variants: list[tuple[str, list[Path]]], eval_sets: list[str], keys: tuple[str, ...] = VARIANT_KEYS
) -> str:
    """One row per ``(label, run dirs)``: mean ± std over the runs of each key on each evaluation set
    (a run without ``eval-<set>.json`` is left out of that set; ``n`` counts the runs found)."""
    head = " | ".join(f"{s} {k}" for s in eval_sets for k in keys)
    lines = [f"| variant (%) | n | {head} |", "|---|---|" + "---|" * (len(eval_sets) * len(keys))]
    for label, runs in variants:
        cells, n = [], 0
        for s in eval_sets:
            found = [json.loads((r / f"eval-{s}.json").read_text()) for r in runs if (r / f"eval-{s}.json").is_file()]
            n = max(n, len(found))
            cells += [_fmt([m[k] for m in found]) if found and all(k in m for m in found) else "–" for k in keys]
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="?")
    p.add_argument("bundle", type=Path, nargs="?")
    p.add_argument("--eval-set", action="append", default=None)
    p.add_argument("--variants", nargs="+", metavar="LABEL=GLOB", help="one row per variant: its run dirs")
    args = p.parse_args(argv)
    sets = args.eval_set or ["test"]
    if args.variants:
        rows = []
        for spec in args.variants:
            label, _, pattern = spec.rpartition("=")
            rows.append((label or pattern, sorted(Path().glob(pattern))))
        print(variants_table(rows, sets))
        return 0
    if args.runs is None or args.bundle is None:
        p.error("give RUNS_DIR BUNDLE_DIR, or --variants")
    for s in sets:
        print(table(args.runs, args.bundle, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ablation table of the model card: stage 1 / + distillation & augmentation / + clusters, each single
member (mean ± std over seeds), and the exported ensemble evaluated through the engine, with chance level.

    python -m training.ablation RUNS_DIR BUNDLE_DIR [--eval-set test]

Reads ``RUNS_DIR/stage{1,2,3}-s*/eval-<set>.json`` (written by ``earshot-train evaluate``) and the bundle's
``training.metrics``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from training.metrics import retrieval_metrics

KEYS = ("map@16", "map@10", "R@1", "R@5", "R@10")
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


def _fmt(values: list[float]) -> str:
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
                     + " | ".join(_fmt([m[k] for m in metrics]) for k in KEYS) + " |")
    spec = json.loads((bundle / "bundle.json").read_text())
    ens = spec.get("training", {}).get("metrics", {}).get(eval_set)
    if ens:
        lines.append(f"| **ensemble, exported bundle, through the engine** | {len(spec['members'])} | "
                     + " | ".join(_fmt([ens[k]]) for k in KEYS) + " |")
    chance = chance_level(DATA / "debian_sfx_captions.csv", DATA / f"debian_sfx_queries_{eval_set}.csv", eval_set)
    lines.append("| chance (random ranking) | – | " + " | ".join(_fmt([chance[k]]) for k in KEYS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path)
    p.add_argument("bundle", type=Path)
    p.add_argument("--eval-set", default="test")
    args = p.parse_args(argv)
    print(table(args.runs, args.bundle, args.eval_set))
    return 0


if __name__ == "__main__":
    sys.exit(main())

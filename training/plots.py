"""Metrics log (JSONL) and a PNG of the training curves (matplotlib, imported only when plotting)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


def append_metrics(path: str | Path, records: Iterable[dict]) -> None:
    """Append records (one JSON object per line) to the metrics log."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Plot loss terms per step and evaluation metrics per epoch; returns the PNG path, or ``None`` when
    matplotlib is missing (``pip install matplotlib``, in the ``train`` extra) or there is nothing to plot."""
    records = read_metrics(metrics_path)
    steps = [r for r in records if r.get("kind") == "step"]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not steps and not evals:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no training-curve plot (pip install matplotlib)")
        return None
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    terms = sorted(
        {
            k
            for r in steps
            for k in r
            if k in ("total", "contrastive", "distill", "cluster_audio", "cluster_text")
        }
    )
    for term in terms:
        xs = [r["step"] for r in steps if term in r]
        ax_loss.plot(xs, [r[term] for r in steps if term in r], label=term, linewidth=1)
    ax_loss.set_xlabel("optimiser step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training loss")
    if terms:
        ax_loss.legend()
    for key in ("map@16", "map@10", "R@1", "R@10"):
        xs = [r["epoch"] for r in evals if key in r]
        if xs:
            ax_eval.plot(xs, [100 * r[key] for r in evals if key in r], marker="o", label=key)
    ax_eval.set_xlabel("epoch")
    ax_eval.set_ylabel("%")
    ax_eval.set_title("validation")
    if evals:
        ax_eval.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(png_path.stem + ".part.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path

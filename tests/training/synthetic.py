"""A small synthetic audio–caption corpus a tiny model can learn, and tiny recipes to train on it.

Five sound concepts, each easy to tell apart from a log-mel spectrogram and each captioned three ways:
low tones ("low hum"), high tones ("high whistle"), white noise ("hiss"), click trains ("ticking clock")
and upward chirps ("rising sweep"). Clips are 1.0–1.6 s at 16 kHz with random pitch, level and length,
written as WAV with a captions table in the Debian-corpus schema (train/val/test splits) and a
multi-relevance query table for the test split.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000

CAPTIONS: dict[str, tuple[str, ...]] = {
    "hum": ("a low hum", "deep humming drone", "low electrical hum"),
    "whistle": ("a high whistle", "shrill high pitched whistle", "high tone whistling"),
    "hiss": ("steady hiss", "hissing white noise", "air hissing"),
    "clock": ("a ticking clock", "clock ticking steadily", "regular clicking ticks"),
    "sweep": ("a rising sweep", "tone sweeping upward", "rising siren sweep"),
}
QUERIES: dict[str, str] = {
    "hum": "low hum",
    "whistle": "high whistle",
    "hiss": "steady hiss",
    "clock": "ticking clock",
    "sweep": "rising sweep",
}
SPLITS = {"train": 6, "val": 2, "test": 2}


def make_signal(concept: str, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 signal of one concept at :data:`SR` Hz."""
    dur = float(rng.uniform(1.0, 1.6))
    t = np.arange(int(dur * SR)) / SR
    amp = float(rng.uniform(0.3, 0.6))
    if concept == "hum":
        f = rng.uniform(90, 160)
        x = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t)
    elif concept == "whistle":
        x = np.sin(2 * np.pi * rng.uniform(2500, 3500) * t)
    elif concept == "hiss":
        x = rng.standard_normal(len(t))
    elif concept == "clock":
        x = np.zeros(len(t))
        period = int(SR / rng.uniform(3, 5))
        for start in range(int(rng.integers(0, period)), len(t), period):
            n = min(200, len(t) - start)
            x[start : start + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / 30)
    elif concept == "sweep":
        f0, f1 = rng.uniform(200, 400), rng.uniform(3000, 5000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur)))
    else:
        raise ValueError(concept)
    x = x / max(1e-6, np.abs(x).max())
    return (amp * x + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def make_corpus(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write the corpus under ``root``; returns paths: ``audio`` (folder), ``captions`` (CSV in the
    Debian schema), ``queries`` (test queries CSV), ``generic`` (a ``path, caption, split`` JSONL)."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    rows, queries, generic = [], [], []
    for concept, captions in CAPTIONS.items():
        for split, n in SPLITS.items():
            for i in range(n):
                rel = f"{concept}/{split}_{i}.wav"
                path = audio / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                sig = make_signal(concept, rng)
                sf.write(path, sig, SR)
                for cap in captions:
                    rows.append(
                        {
                            "path": rel,
                            "caption": cap,
                            "concept": captions[0],
                            "package": f"synthetic-{concept}",
                            "licence": "CC0-1.0",
                            "split": split,
                            "duration_s": f"{len(sig) / SR:.3f}",
                        }
                    )
                    generic.append({"path": rel, "caption": cap, "split": split})
                if split == "test":
                    queries.append({"query": QUERIES[concept], "path": rel})
    out = {
        "audio": audio,
        "captions": root / "captions.csv",
        "queries": root / "queries.csv",
        "generic": root / "captions.jsonl",
    }
    with open(out["captions"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out["queries"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["query", "path"])
        w.writeheader()
        w.writerows(queries)
    import json

    out["generic"].write_text("".join(json.dumps(g) + "\n" for g in generic), encoding="utf-8")
    return out


def tiny_recipe_text(corpus: dict[str, Path], runs: Path, cache: Path, *, trainable: bool = True) -> str:
    """A ``common.toml`` for the tiny architectures on the synthetic corpus (all paths absolute)."""
    src = f'{{format = "debian_sfx", path = "{corpus["captions"]}", audio_root = "{corpus["audio"]}", split = "%s"}}'
    flag = "true" if trainable else "false"
    return f"""
name = "tiny-smoke"
version = "0.0.1"
description = "tiny architectures on a synthetic corpus"

[model]
sample_rate = {SR}
window_s = 1.0
hop_s = 0.5
embed_dim = 16

[model.audio_backbone]
name = "tiny"
arch = "tiny_test"
config = {{sample_rate = {SR}, out_dim = 32, n_mels = 32, channels = 8, seed = 0}}
trainable = {flag}

[model.text_backbone]
name = "tiny"
arch = "tiny_test"
config = {{out_dim = 32, seed = 0}}
trainable = {flag}

[model.audio_head]
arch = "mlp"
config = {{hidden = 32}}

[model.text_head]
arch = "linear"

[data]
max_audio_s = 2.0
train = [{src % "train"}]

[data.eval.val]
sources = [{src % "val"}]

[data.eval.test]
sources = [{src % "test"}]
queries = {{path = "{corpus["queries"]}", audio_root = "{corpus["audio"]}"}}

[train]
epochs = 16
batch_size = 16
lr = 1e-2
lr_end = 1e-3
warmup_epochs = 0.5
device = "cpu"
cpu_threads = 1
plot = false

[teacher]
members = ["{runs}/stage1-s0", "{runs}/stage1-s1"]
out = "{runs}/teacher"

[augment]
text_p = 0.8
text_variants = 2
backtranslations = 1
mixes = 10

[clustering]
k = 5

[eval]
batch = 32

[ensemble]
members = ["{runs}/stage3-s0", "{runs}/stage2-s0"]
step = 0.25
out = "{runs}/ensemble"

[export]
source = "{runs}/ensemble"
dest = "{runs}/bundle/tiny-smoke"
evaluate = ["test"]
fp16 = false

[cache]
dir = "{cache}"
"""


def write_recipes(directory: Path, common: str) -> dict[str, Path]:
    """``common.toml`` plus stage files like the real recipes'; returns name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "common.toml").write_text(common, encoding="utf-8")
    stages = {
        "stage1": '[train]\nstage = "stage1"\nout = "{runs}/stage1-s0"\n',
        "stage2": '[train]\nstage = "stage2"\nout = "{runs}/stage2-s0"\ninit_from = "{runs}/stage1-s0"\n'
        'teacher = "{runs}/teacher"\naugment = true\nepochs = 5\nlr = 3e-3\n[loss]\ndistill = 1.0\n',
        "stage3": '[train]\nstage = "stage3"\nout = "{runs}/stage3-s0"\ninit_from = "{runs}/stage2-s0"\n'
        'teacher = "{runs}/teacher"\naugment = true\nepochs = 5\nlr = 3e-3\n[loss]\ndistill = 1.0\ncluster_audio = 0.05\ncluster_text = 0.05\n',
    }
    runs = _runs_of(common)
    out = {"common": directory / "common.toml"}
    for name, body in stages.items():
        path = directory / f"{name}.toml"
        path.write_text('extends = "common.toml"\n' + body.format(runs=runs), encoding="utf-8")
        out[name] = path
    return out


def _runs_of(common: str) -> str:
    line = next(ln for ln in common.splitlines() if ln.startswith("out = ") and ln.endswith('/teacher"'))
    return line.split('"')[1].rsplit("/", 1)[0]

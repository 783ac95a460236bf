"""Every stage of the published passt-roberta recipe, for each audio backbone (PaSST, EAT, BEATs), on one device.

Prepared for the first machine with a GPU: builds each (backbone, stage) model exactly as the recipe files
describe it (``stageN.toml`` + ``backbones/<name>.toml``) but with *random* weights (no downloads), feeds
synthetic batches (random 32 kHz audio of ``--audio-s`` seconds, random RoBERTa token ids), and runs that
stage's losses with the recipe's weights (stage 1: contrastive; 2: + distillation against a random
teacher; 3: + cluster heads) with AMP, AdamW, gradient clipping off and the recipe's global batch, for
``--steps`` optimiser steps after ``--warmup``. Prints a table (seconds per step, pairs per second, peak
memory, first/last loss) and writes JSON with ``--out``.

    python benchmarks/bench_recipe_gpu.py                       # GPU: 3 backbones x 3 stages, 50 steps each
    python benchmarks/bench_recipe_gpu.py --steps 200 --backbones passt eat --stages stage3
    python benchmarks/bench_recipe_gpu.py --tiny                # CPU check with tiny architectures (seconds)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_recipe_gpu")
RECIPE = ROOT / "training" / "recipes" / "passt-roberta"
BACKBONES = ("passt", "eat", "beats")
STAGES = ("stage1", "stage2", "stage3")
TINY_AUDIO = {
    "passt": {
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
        "segment_s": 1.0,
        "s_patchout_t": 2,
        "s_patchout_f": 1,
    },
    "eat": {"segment_s": 1.0, "target_length": 112, "embed_dim": 32, "depth": 1, "num_heads": 4},
    "beats": {
        "segment_s": 1.0,
        "embed_dim": 16,
        "encoder_layers": 1,
        "encoder_embed_dim": 32,
        "encoder_ffn_embed_dim": 64,
        "encoder_attention_heads": 4,
        "conv_pos": 8,
        "conv_pos_groups": 4,
        "num_buckets": 32,
        "max_distance": 64,
    },
}


def recipe_for(backbone: str, stage: str, tiny: bool):
    """The recipe of ``stage`` with ``backbone`` (the files a user runs), or its tiny CPU form."""
    from training.config import overlay, read_recipe_document, recipe_from_dict

    doc = read_recipe_document(RECIPE / f"{stage}.toml")
    doc = overlay(doc, read_recipe_document(RECIPE / "backbones" / f"{backbone}.toml"))
    if tiny:
        doc["model"].update(window_s=1.0, hop_s=0.5, embed_dim=16)
        doc["model"]["audio_backbone"]["config"] = {**TINY_AUDIO[backbone], "sample_rate": 32000}
        if backbone == "passt":
            doc["model"]["audio_backbone"]["config"].pop("sample_rate")
        doc["model"]["text_backbone"] = {
            "name": "tiny",
            "arch": "tiny_test",
            "config": {"out_dim": 32},
            "trainable": True,
        }
        doc["clustering"]["k"] = 8
    return recipe_from_dict(doc)


def _tokens(model, batch: int, tiny: bool, gen):
    import torch

    if tiny:
        words = ["dog", "barks", "rain", "falls", "door", "slams", "engine", "hums", "birds", "sing"]
        idx = torch.randint(0, len(words), (batch, 8), generator=gen)
        return model.text_backbone.tokenize([" ".join(words[i] for i in row) for row in idx.tolist()])
    vocab = int(model.text_backbone.model.config.vocab_size)
    ids = torch.randint(3, vocab, (batch, 32), generator=gen)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> … </s>
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def run_one(backbone: str, stage: str, args: argparse.Namespace, device) -> dict:
    import torch

    from training.losses import LossTask, positives_mask, window_similarity
    from training.model import build_trainable_backbones, create_model
    from training.optim import make_optimizer, set_learning_rates

    torch.manual_seed(0)
    recipe = recipe_for(backbone, stage, args.tiny)
    audio_bb, text_bb = build_trainable_backbones(recipe, pretrained=False)
    loss = recipe.loss
    weights = {
        "contrastive": loss.contrastive,
        "distill": loss.distill,
        "cluster_audio": loss.cluster_audio,
        "cluster_text": loss.cluster_text,
    }
    task = LossTask(weights, tau=loss.tau)
    k = recipe.clustering.k if task.needs_clusters else 0
    model = create_model(
        recipe,
        audio_in=audio_bb.out_dim,
        text_in=text_bb.out_dim,
        audio_backbone=audio_bb,
        text_backbone=text_bb,
        n_clusters=k,
    ).to(device)
    opt = make_optimizer(model, recipe)
    amp = device.type == "cuda" and args.amp != "off"
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp and dtype == torch.float16 else None
    batch = args.batch or recipe.train.batch_size
    if args.tiny:
        batch = min(batch, 8)
    micro = batch // args.grad_accum
    samples = int(args.audio_s * recipe.model.sample_rate)
    gen = torch.Generator().manual_seed(0)
    total_steps = args.warmup + args.steps

    def step(i: int) -> float:
        set_learning_rates(opt, i, total=total_steps, warmup=max(1, total_steps // 10), recipe=recipe)
        total = 0.0
        for _ in range(args.grad_accum):
            wave = (torch.rand(micro, samples, generator=gen) * 2 - 1) * 0.3
            b = {
                "wave": wave.to(device),
                "tokens": {kk: v.to(device) for kk, v in _tokens(model, micro, args.tiny, gen).items()},
            }
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=amp):
                out = model(b)
            sim = window_similarity(out["audio"], out["audio_mask"], out["text"])
            clip_ids = torch.arange(micro, device=device)
            teacher = (
                (torch.rand(micro, micro, generator=gen) * 2 - 1).to(device) if task.needs_teacher else None
            )
            labels = torch.randint(0, max(1, k), (micro,), generator=gen).to(device) if k else None
            terms = task(
                sim,
                positives_mask(clip_ids),
                teacher,
                out.get("audio_logits"),
                out.get("text_logits"),
                labels,
            )
            value = terms["total"] / args.grad_accum
            (scaler.scale(value) if scaler else value).backward()
            total += float(value.detach())
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return total

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    first = [step(i) for i in range(args.warmup)]
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    losses = [step(args.warmup + i) for i in range(args.steps)]
    sync()
    per_step = (time.perf_counter() - t0) / max(1, args.steps)
    result = {
        "backbone": backbone,
        "stage": stage,
        "losses": sorted(kk for kk, w in weights.items() if w > 0),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "batch": batch,
        "grad_accum": args.grad_accum,
        "audio_s": args.audio_s,
        "amp": args.amp if amp else "off",
        "steps": args.steps,
        "seconds_per_step": round(per_step, 4),
        "pairs_per_second": round(batch / per_step, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda"
        else None,
        "first_loss": round((first or losses)[0], 4),
        "last_loss": round(losses[-1], 4) if losses else None,
        "finite": all(math.isfinite(x) for x in first + losses),
    }
    return result


def table(rows: list[dict]) -> str:
    head = f"{'backbone':8} {'stage':7} {'params M':>8} {'batch':>5} {'s/step':>8} {'pairs/s':>8} {'peak GiB':>8} {'loss first→last':>18}"
    lines = [head, "-" * len(head)]
    for r in rows:
        mem = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        lines.append(
            f"{r['backbone']:8} {r['stage']:7} {r['parameters_m']:8.1f} {r['batch']:5d} {r['seconds_per_step']:8.3f} "
            f"{r['pairs_per_second']:8.1f} {mem:>8} {r['first_loss']:8.3f}→{r['last_loss']:<8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny architectures on CPU (checks the script)")
    p.add_argument("--device", default="auto")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--batch", type=int, default=0, help="global batch (default: the recipe's, 64)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--audio-s", type=float, default=10.0, help="seconds per training clip (recipe: up to 30)")
    p.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON results here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from engine.models.device import choose_device

    device = choose_device("cpu" if args.tiny else args.device)
    if args.tiny:
        args.steps, args.warmup, args.audio_s = min(args.steps, 2), 1, min(args.audio_s, 2.0)
    rows = []
    for bb in args.backbones:
        for stage in args.stages:
            log.info("%s %s …", bb, stage)
            rows.append(run_one(bb, stage, args, device))
            if device.type == "cuda":
                torch.cuda.empty_cache()
            log.info("%s", rows[-1])
    doc = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "tiny": args.tiny,
        "results": rows,
    }
    sys.stdout.write(table(rows) + "\n")
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["finite"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

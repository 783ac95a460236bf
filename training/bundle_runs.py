"""Run directories from the members of an existing bundle, so a new ensemble can keep them.

    python -m training.bundle_runs BUNDLE_DIR OUT_DIR --config RECIPE.toml [--set key=value ...]

Writes ``OUT_DIR/<member>/`` (``recipe.toml`` = the given recipe, ``model.safetensors`` = the member's
projection heads, ``final.json``) for every member of ``BUNDLE_DIR``. The member must be what the recipe
builds: same head architectures and configs, same frozen backbones (arch and config) and the same audio
windowing, else :class:`EarshotError` — a member is never silently re-interpreted. ``earshot-train
ensemble`` / ``export`` then treat these directories like trained runs (the weights are read back
unchanged; a bundle stored in fp16 is re-exported bit for bit).

earshot-sfx-small 2.0.0 uses this to keep the two members of 1.0.0 (which stays in ``resources/models``)
and add members trained on the widened corpus.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.bundle import load_bundle
from engine.errors import EarshotError
from training.config import Recipe, load_recipe, save_recipe
from training.model import MODEL_FILE, save_safetensors, write_json

log = logging.getLogger(__name__)


def _check(recipe: Recipe, bundle, member) -> None:
    m = recipe.model
    problems = []
    if (m.sample_rate, m.window_s, m.hop_s) != (bundle.sample_rate, bundle.window_s, bundle.hop_s):
        problems.append("audio windowing")
    if dict(m.text_normalisation) != dict(bundle.text_normalisation):
        problems.append("text normalisation")
    for side, bb_cfg, head_cfg, spec, bb_name in (
        ("audio", m.audio_backbone, m.audio_head, member.audio_head, member.audio_backbone),
        ("text", m.text_backbone, m.text_head, member.text_head, member.text_backbone),
    ):
        entry = (bundle.audio_backbones if side == "audio" else bundle.text_backbones)[bb_name]
        recipe_cfg = {k: v for k, v in bb_cfg.config.items() if k != "pretrained"}
        bundle_cfg = {k: v for k, v in entry.get("config", {}).items() if k != "pretrained"}
        if bb_cfg.trainable or entry["arch"] != bb_cfg.arch or bundle_cfg != recipe_cfg:
            problems.append(f"{side} backbone ({entry['arch']} {bundle_cfg} vs {bb_cfg.arch} {recipe_cfg})")
        cfg = dict(spec.get("config", {}))
        cfg.pop("in_dim", None)
        if spec["arch"] != head_cfg.arch or cfg != {**head_cfg.config, "out_dim": m.embed_dim}:
            problems.append(f"{side} head")
    if problems:
        raise EarshotError(
            f"member {member.name} of {bundle.path} is not what the recipe builds: {', '.join(problems)}"
        )


def runs_from_bundle(bundle_dir: str | Path, out_dir: str | Path, recipe: Recipe) -> list[Path]:
    """Write one run directory per member of the bundle; returns them (in member order)."""
    from safetensors.torch import load_file

    bundle = load_bundle(bundle_dir)
    out = []
    for member in bundle.members:
        _check(recipe, bundle, member)
        if not member.weights:
            raise EarshotError(f"member {member.name} of {bundle.path} has no weights file")
        state = load_file(str(bundle.file(member.weights)))
        heads = {}
        for side in ("audio", "text"):
            prefix = f"{member.prefix}{side}."
            heads.update(
                {f"{side}_head.{k[len(prefix):]}": v.float().contiguous() for k, v in state.items() if k.startswith(prefix)}
            )
        run = Path(out_dir) / member.name
        run.mkdir(parents=True, exist_ok=True)
        meta = {
            "n_clusters": "0",
            "audio_in": str(int(member.audio_head["config"]["in_dim"])),
            "text_in": str(int(member.text_head["config"]["in_dim"])),
        }
        save_safetensors(heads, run / MODEL_FILE, meta)
        save_recipe(recipe, run)
        write_json(
            run / "final.json",
            {"stage": f"member {member.name} of {bundle.name} {bundle.version}", "bundle_id": bundle.bundle_id,
             # what generated the member's augmented captions, as its bundle says (kept for the new card)
             "augmentation": str(bundle.spec.get("training", {}).get("augmentation", "none"))},
        )
        out.append(run)
        log.info("%s: member %s of %s %s", run, member.name, bundle.name, bundle.version)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--config", required=True, type=Path, help="the recipe the members must match")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        runs_from_bundle(args.bundle, args.out, load_recipe(args.config, args.set))
    except EarshotError as exc:
        log.error("error: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

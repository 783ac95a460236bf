"""``earshot-train``: the training recipe, stage by stage.

Typical order (each command takes ``--config RECIPE.toml``; ``--with OTHER.toml`` merges more files over
it, e.g. another audio backbone; ``--set section.key=value`` overrides)::

    earshot-train stage1   --config training/recipes/sfx-small/stage1.toml [--set train.seed=1 --set train.out=…]
    earshot-train teacher  --config training/recipes/sfx-small/teacher.toml     # stage-1 ensemble → soft targets
    earshot-train stage2   --config training/recipes/sfx-small/stage2.toml      # distillation + augmentation
    earshot-train stage3   --config training/recipes/sfx-small/stage3.toml      # + cluster heads
    earshot-train evaluate --config training/recipes/sfx-small/stage3.toml [--run DIR] [--eval-set val]
    earshot-train ensemble --config training/recipes/sfx-small/ensemble.toml    # weights on validation
    earshot-train export   --config training/recipes/sfx-small/export.toml      # → model bundle

``augment`` builds the augmented set on its own (``teacher`` and the stages build it when needed).
Multi-GPU: ``torchrun --nproc_per_node=N -m training.cli stage1 --config …``. Exit status: 0 on success,
1 when the recipe, data or models are at fault (the message says what to do), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.errors import EarshotError

log = logging.getLogger("training")

STAGES = ("stage1", "stage2", "stage3")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="earshot-train", description="Train Earshot's models (DCASE 2025 Task 6 recipe)."
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument("--config", required=True, help="recipe TOML file")
        c.add_argument(
            "--with",
            dest="overlays",
            action="append",
            default=[],
            metavar="TOML",
            help="merge another recipe file over --config (e.g. a backbone: passt-roberta/eat.toml)",
        )
        c.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a recipe value (repeatable)",
        )
        c.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: train.device)")
        c.add_argument("--quiet", action="store_true", help="no progress bars")
        c.add_argument(
            "--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
        )
        return c

    for stage in STAGES:
        c = command(stage, f"train {stage} (resumes from its last checkpoint)")
        c.add_argument("--no-resume", action="store_true", help="start over, ignoring an existing checkpoint")
    command("augment", "build the augmented training set (back-translations, mixes)")
    command("teacher", "embed the training set with the stage-1 ensemble (distillation targets)")
    c = command("evaluate", "evaluate a run on the recipe's evaluation sets")
    c.add_argument("--run", default=None, help="run directory (default: train.out)")
    c.add_argument("--eval-set", action="append", default=None, help="evaluation set name (default: all)")
    command("ensemble", "search ensemble weights on the validation set")
    c = command("export", "write a model bundle from a run or an ensemble")
    c.add_argument("--dest", default=None, help="bundle directory (default: export.dest)")
    return p


def _run(args: argparse.Namespace) -> int:
    from training.config import apply_overrides, overlay, read_recipe_document, recipe_from_dict

    doc = read_recipe_document(args.config)
    for path in args.overlays:
        doc = overlay(doc, read_recipe_document(path))
    recipe = recipe_from_dict(apply_overrides(doc, args.overrides))
    device = args.device or recipe.train.device
    if args.device:
        recipe = replace(recipe, train=replace(recipe.train, device=args.device))
    progress = not args.quiet and sys.stderr.isatty()
    from training.distributed import cpu_threads

    with cpu_threads(recipe.train.cpu_threads):
        return _dispatch(args, recipe, device, progress)


def _dispatch(args: argparse.Namespace, recipe: Any, device: str, progress: bool) -> int:
    from training.evaluate import format_metrics

    if args.command in STAGES:
        from training.loop import train_stage

        if recipe.train.stage != args.command:
            log.warning(
                "the recipe says train.stage = %r; running it as %s", recipe.train.stage, args.command
            )
            recipe = replace(recipe, train=replace(recipe.train, stage=args.command))
        result = train_stage(recipe, resume=not args.no_resume, progress=progress)
        if result.metrics:
            log.info("%s: %s", args.command, format_metrics(result.metrics))
        return 0
    if args.command == "augment":
        from training.teacher import training_clips

        clips = training_clips(recipe, augmented=True, data="finetune")
        log.info("%d training clips after augmentation", len(clips))
        return 0
    if args.command == "teacher":
        from training.teacher import build_teacher

        build_teacher(recipe, device=_device(device))
        return 0
    if args.command == "evaluate":
        from training.evaluate import evaluate_run

        run = args.run or recipe.train.out
        names = args.eval_set or sorted(recipe.data.eval)
        if not names:
            raise EarshotError("the recipe defines no evaluation set (data.eval)")
        for name in names:
            metrics = evaluate_run(run, name, recipe, device=str(_device(device)))
            log.info("%s on %s: %s", run, name, format_metrics(metrics))
        return 0
    if args.command == "ensemble":
        from training.ensemble import run_ensemble

        doc = run_ensemble(recipe, device=str(_device(device)))
        log.info("ensemble: %s", ", ".join(f"{m['run']} × {m['weight']:.2f}" for m in doc["members"]))
        return 0
    if args.command == "export":
        from training.export import export_bundle

        bundle = export_bundle(recipe, args.dest)
        log.info("exported %s", bundle.path)
        return 0
    raise AssertionError(args.command)  # pragma: no cover - argparse restricts the commands


def _device(pref: str):
    from engine.models.device import choose_device

    return choose_device(pref)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``earshot-train``; returns the exit status."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("training").setLevel(args.log_level)
    try:
        return _run(args)
    except EarshotError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; rerun the same command to resume from the last checkpoint")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

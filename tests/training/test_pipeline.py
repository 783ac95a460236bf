"""End to end on a synthetic corpus with tiny architectures: every stage through the CLI, then the exported
bundle loaded by the engine (Library + Indexer + Searcher) finds the right files for captions.

Also: the frozen-backbone path (the sfx-small recipe's: cached features, heads only), resume after an
interruption reproducing an uninterrupted run exactly, and the CLI's error reporting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.bundle import load_bundle
from engine.indexing import Indexer
from engine.library import Library
from engine.search import Searcher
from tests.training import synthetic as syn
from training.cli import main
from training.config import load_recipe, load_run_recipe
from training.embedding import Embedder
from training.evaluate import eval_set_for, evaluate_embedder
from training.model import create_model

QUIET = ["--quiet", "--log-level", "WARNING"]


def _cli(*args: str) -> None:
    assert main([*args, *QUIET]) == 0, args


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return syn.make_corpus(tmp_path_factory.mktemp("corpus"))


def _recipes(tmp: Path, corpus: dict[str, Path], *, trainable: bool) -> tuple[dict[str, Path], Path]:
    runs = tmp / "runs"
    return syn.write_recipes(
        tmp / "recipes", syn.tiny_recipe_text(corpus, runs, tmp / "cache", trainable=trainable)
    ), runs


def _search_accuracy(bundle_dir: Path, corpus: dict[str, Path], lib_dir: Path) -> tuple[int, int]:
    """(queries whose top hit is the right sound, queries with a right sound in the top 3)."""
    with Library(lib_dir, bundle_dir) as lib:
        summary = Indexer(lib).run([corpus["audio"]])
        assert summary.failed == 0 and summary.new == 50
        searcher = Searcher(lib)
        top1 = top3 = 0
        for concept, query in syn.QUERIES.items():
            hits = searcher.search_text(query, k=3)
            folders = [Path(h.path).parent.name for h in hits]
            top1 += folders[0] == concept
            top3 += concept in folders
    return top1, top3


def test_all_stages_then_search_with_the_engine(tmp_path: Path, corpus: dict[str, Path]) -> None:
    rec, runs = _recipes(tmp_path, corpus, trainable=True)
    t0 = time.perf_counter()
    _cli("stage1", "--config", str(rec["stage1"]))
    _cli(
        "stage1",
        "--config",
        str(rec["stage1"]),
        "--set",
        "train.seed=1",
        "--set",
        f"train.out={runs}/stage1-s1",
    )
    _cli("teacher", "--config", str(rec["common"]))
    _cli("stage2", "--config", str(rec["stage2"]))
    _cli("stage3", "--config", str(rec["stage3"]))
    _cli("evaluate", "--config", str(rec["stage3"]))
    _cli("ensemble", "--config", str(rec["common"]))
    _cli("export", "--config", str(rec["common"]))
    elapsed = time.perf_counter() - t0
    print(f"\nall stages + export: {elapsed:.1f} s")
    assert elapsed < 90

    # Every stage left its recipe, log, summary and weights; the teacher, clusters and augmented set exist.
    for run in ("stage1-s0", "stage1-s1", "stage2-s0", "stage3-s0"):
        for name in (
            "recipe.toml",
            "metrics.jsonl",
            "final.json",
            "model.safetensors",
            "checkpoints/last.pt",
        ):
            assert (runs / run / name).is_file(), f"{run}/{name}"
    log = [json.loads(line) for line in (runs / "stage3-s0" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["kind"] == "step"]
    assert {"total", "contrastive", "distill", "cluster_audio", "cluster_text", "lr"} <= set(steps[0])
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
    assert load_recipe(runs / "stage3-s0" / "recipe.toml").loss.cluster_text == 0.05
    clusters = json.loads((runs / "stage3-s0" / "clusters.json").read_text())
    assert clusters["k"] == 5 and set(clusters["labels"]) == set(range(5))
    teacher = json.loads((runs / "teacher" / "teacher.json").read_text())
    assert len(teacher["members"]) == 2 and sum(k.startswith("mix:") for k in teacher["clip_keys"]) == 10
    augmented = (runs / "teacher" / "augment" / "augmented.jsonl").read_text().splitlines()
    assert json.loads(augmented[0])["meta"]["generator"] == "rules"
    ensemble = json.loads((runs / "ensemble" / "ensemble.json").read_text())
    assert sum(m["weight"] for m in ensemble["members"]) == pytest.approx(1.0)
    evaluated = json.loads((runs / "stage3-s0" / "eval-test.json").read_text())

    # Training helped: far above an untrained model of the same architecture on the validation set.
    recipe = load_recipe(rec["stage1"])
    untrained = create_model(recipe, audio_in=32, text_in=32, **_tiny_backbones(recipe))
    chance = evaluate_embedder(Embedder(recipe, untrained), eval_set_for(recipe, "val"))["map@16"]
    final = json.loads((runs / "stage3-s0" / "final.json").read_text())
    print(
        f"val map@16: untrained {chance:.3f}, stage3 {final['best_map@16']:.3f}; test {evaluated['map@16']:.3f}"
    )
    assert final["best_map@16"] > chance + 0.15

    # The bundle: what the engine loads, with its model card; search finds the right sounds.
    bundle = load_bundle(runs / "bundle" / "tiny-smoke")
    assert bundle.trained and bundle.sample_rate == 16000 and bundle.window_s == 1.0
    assert bundle.spec["training"]["metrics"]["test"]["map@16"] == pytest.approx(
        evaluated["map@16"], abs=0.02
    )
    card = bundle.model_card
    assert "## Metrics" in card and "CC0-1.0: 30" in card and "Augmented captions generated by: rules" in card
    top1, top3 = _search_accuracy(bundle.path, corpus, tmp_path / "library")
    print(f"engine search: {top1}/5 top-1, {top3}/5 top-3")
    assert top1 >= 4 and top3 == 5


def _tiny_backbones(recipe) -> dict:
    from training.model import build_trainable_backbones

    audio, text = build_trainable_backbones(recipe)
    return {"audio_backbone": audio, "text_backbone": text}


def _shipping_recipes(tmp: Path, corpus: dict[str, Path]) -> tuple[dict[str, Path], Path]:
    """The tiny recipes with frozen backbones whose audio weights the exported bundle ships."""
    rec, runs = _recipes(tmp, corpus, trainable=False)
    common = rec["common"].read_text()
    rec["common"].write_text(
        common.replace("trainable = false\n\n[model.text", "trainable = false\nship_weights = true\n\n[model.text")
    )
    return rec, runs


@pytest.mark.parametrize("pooling", ["max_sim", "mean", "random_window"])
def test_frozen_backbones_train_heads_on_cached_features(
    tmp_path: Path, corpus: dict[str, Path], pooling: str
) -> None:
    rec, runs = _shipping_recipes(tmp_path, corpus)
    plot = "true" if pooling == "max_sim" else "false"
    _cli(
        "stage1",
        "--config",
        str(rec["stage1"]),
        "--set",
        f"model.clip_pooling={pooling}",
        "--set",
        f"train.plot={plot}",
        "--set",
        "train.epochs=16",
    )
    caches = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir())
    assert caches == ["audio", "text"]  # features of both frozen backbones, computed once
    state = load_file(str(runs / "stage1-s0" / "model.safetensors"))
    assert state and all(k.startswith(("audio_head.", "text_head.")) for k in state)  # heads only
    final = json.loads((runs / "stage1-s0" / "final.json").read_text())
    print(f"\n{pooling}: val map@16 {final['best_map@16']:.3f}")
    if pooling != "max_sim":
        return
    png = runs / "stage1-s0" / "curves.png"
    pytest.importorskip("matplotlib")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _cli("export", "--config", str(rec["common"]), "--set", f"export.source={runs}/stage1-s0")
    bundle = load_bundle(runs / "bundle" / "tiny-smoke")
    audio_entry = bundle.audio_backbones["tiny"]
    text_entry = bundle.text_backbones["tiny"]
    assert audio_entry.get("weights") and not text_entry.get("weights")  # shipped vs referred to
    top1, top3 = _search_accuracy(bundle.path, corpus, tmp_path / "library")
    print(f"engine search (frozen backbones): {top1}/5 top-1, {top3}/5 top-3")
    assert top1 >= 3 and top3 >= 4
    # The query-by-example member (training/examples.py) joins the same run: whitened audio features on one
    # side, the training captions on the other, half the score.
    _cli("export", "--config", str(rec["common"]), "--set", f"export.source={runs}/stage1-s0",
         "--set", "export.examples.weight=0.5", "--set", "export.examples.dim=8", "--set", "export.examples.k=3",
         "--set", f"export.dest={runs}/bundle/tiny-examples")
    xb = load_bundle(runs / "bundle" / "tiny-examples")
    assert [(m.name, m.weight) for m in xb.members] == [("m0", 0.5), ("examples", 0.5)]
    assert xb.dim == bundle.dim + 8
    head = xb.members[1].text_head
    assert head["arch"] == "examples" and head["config"]["n"] == len({c for cs in syn.CAPTIONS.values() for c in cs})
    assert "query by example" in xb.model_card
    top1, top3 = _search_accuracy(xb.path, corpus, tmp_path / "library-examples")
    print(f"engine search (+ examples member): {top1}/5 top-1, {top3}/5 top-3")
    assert top1 >= 3 and top3 >= 4


def test_resume_after_an_interruption_matches_an_uninterrupted_run(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    rec, runs = _recipes(tmp_path, corpus, trainable=False)
    common = [
        "--set",
        "train.epochs=3",
        "--set",
        "train.select=last",
        "--set",
        "model.audio_head.config={hidden = 32, dropout = 0.2}",
    ]
    _cli("stage1", "--config", str(rec["stage1"]), *common, "--set", f"train.out={runs}/whole")
    steps_per_epoch = 90 // 16
    _cli(
        "stage1",
        "--config",
        str(rec["stage1"]),
        *common,
        "--set",
        f"train.out={runs}/split",
        "--set",
        f"train.max_steps={steps_per_epoch}",
    )
    interrupted = json.loads((runs / "split" / "final.json").read_text())
    assert interrupted["steps"] == steps_per_epoch and interrupted["epochs"] == 1
    _cli("stage1", "--config", str(rec["stage1"]), *common, "--set", f"train.out={runs}/split")
    whole = load_file(str(runs / "whole" / "model.safetensors"))
    split = load_file(str(runs / "split" / "model.safetensors"))
    assert whole.keys() == split.keys()
    for k in whole:
        torch.testing.assert_close(split[k], whole[k], rtol=0, atol=0)
    steps = [
        json.loads(x)["step"]
        for x in (runs / "split" / "metrics.jsonl").read_text().splitlines()
        if '"step"' in x and '"kind": "step"' in x
    ]
    assert steps == list(range(1, 3 * steps_per_epoch + 1))
    # A finished run is not trained again.
    before = (runs / "split" / "checkpoints" / "last.pt").stat().st_mtime_ns
    _cli("stage1", "--config", str(rec["stage1"]), *common, "--set", f"train.out={runs}/split")
    assert (runs / "split" / "checkpoints" / "last.pt").stat().st_mtime_ns == before


def test_gradient_accumulation_splits_the_batch_into_micro_batches(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    from training.loop import Trainer

    rec, runs = _recipes(tmp_path, corpus, trainable=False)
    recipe = load_recipe(
        rec["stage1"],
        ["train.grad_accum=2", "train.epochs=1", "train.cpu_threads=1", f"train.out={runs}/acc"],
    )
    trainer = Trainer(recipe)
    shapes: list[tuple[int, ...]] = []
    forward = trainer.task.forward

    def record(sim, *args, **kwargs):
        shapes.append(tuple(sim.shape))
        return forward(sim, *args, **kwargs)

    trainer.task.forward = record  # type: ignore[method-assign]
    result = trainer.fit()
    assert result.steps == 90 // 16 and shapes == [(8, 8)] * (2 * result.steps)


def test_cli_reports_problems_without_a_traceback(tmp_path: Path, corpus: dict[str, Path], caplog) -> None:
    rec, runs = _recipes(tmp_path, corpus, trainable=False)
    assert main(["stage1", "--config", str(tmp_path / "missing.toml"), *QUIET]) == 1
    assert main(["stage1", "--config", str(rec["stage1"]), "--set", "train.sede=2", *QUIET]) == 1
    assert "train.sede" in caplog.text
    assert main(["stage2", "--config", str(rec["stage2"]), *QUIET]) == 1
    assert "finish that stage first" in caplog.text or "earshot-train teacher" in caplog.text
    assert main(["export", "--config", str(rec["common"]), "--set", "export.source=", *QUIET]) == 1
    assert "export.source" in caplog.text
    with pytest.raises(SystemExit) as exc:
        main(["stage9"])
    assert exc.value.code == 2
    np.testing.assert_equal(torch.get_num_threads() >= 1, True)


def test_caption_positives_train_and_are_recorded(tmp_path: Path, corpus: dict[str, Path]) -> None:
    # loss.positives = "caption": a caption shared by several clips counts every one of them as a match.
    rec, runs = _shipping_recipes(tmp_path, corpus)
    _cli("stage1", "--config", str(rec["stage1"]), "--set", 'loss.positives="caption"', "--set", "train.epochs=16",
         "--set", "train.plot=false")
    saved = load_run_recipe(runs / "stage1-s0")
    assert saved.loss.positives == "caption"
    _cli("export", "--config", str(rec["common"]), "--set", f"export.source={runs}/stage1-s0")
    top1, top3 = _search_accuracy(runs / "bundle" / "tiny-smoke", corpus, tmp_path / "library")
    assert top1 >= 3 and top3 >= 4
    assert main(["stage1", "--config", str(rec["stage1"]), "--set", 'loss.positives="concept"', *QUIET]) != 0

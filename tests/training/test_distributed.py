"""Data-parallel training with torchrun: 2 CPU processes, gloo, tiny architectures, a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training import synthetic as syn

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed support")
def test_two_processes_train_on_different_pairs_and_keep_identical_weights(tmp_path: Path) -> None:
    corpus = syn.make_corpus(tmp_path / "corpus")
    recipes = syn.write_recipes(
        tmp_path / "recipes", syn.tiny_recipe_text(corpus, tmp_path / "runs", tmp_path / "cache")
    )
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(recipes["stage1"]),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    info = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world"] for i in info] == [2, 2] and [i["steps"] for i in info] == [3, 3]
    # Each process trains on its own share of every global batch of 16 pairs…
    assert not set(info[0]["pairs"]) & set(info[1]["pairs"]) and len(info[0]["pairs"]) == 3 * 8
    # …but the similarity matrix spans both shares (features gathered across processes).
    assert info[0]["sim"] == [[16, 16]] * 3
    # Gradients are averaged: after the steps, both processes hold exactly the same weights, which moved.
    w0, w1, w_init = (
        load_file(str(out / n)) for n in ("rank0.safetensors", "rank1.safetensors", "initial.safetensors")
    )
    assert w0.keys() == w1.keys() == w_init.keys()
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)
    assert any(not torch.equal(w0[k], w_init[k]) for k in w0 if w0[k].is_floating_point())
    assert (tmp_path / "runs").exists() is False  # train.out was overridden
    assert (out / "run" / "model.safetensors").is_file()  # rank 0 wrote the stage's outputs

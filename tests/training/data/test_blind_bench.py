"""Tests for benchmarks/bench_blind.py: the metrics of one ranking, the opaque library and a full run
through the engine with a tiny random bundle (synthetic clips, no network)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import bench_blind as bench
from tests.bundles import TINY_SR, make_tiny_bundle


def _naive_ap(ranked: list[bool], n_relevant: int, k: int) -> float:
    hits, total = 0, 0.0
    for i, rel in enumerate(ranked[:k], 1):
        if rel:
            hits += 1
            total += hits / i
    return total / n_relevant


@pytest.mark.parametrize(
    ("ranked", "relevant"),
    [
        (["a", "x", "b"], {"a", "b"}),
        (["x"] * 3 + ["a"], {"a"}),
        ([], {"a"}),
        ([f"x{i}" for i in range(16)] + ["a"], {"a"}),  # rank 17 does not count
        ([f"r{i}" for i in range(16)], {f"r{i}" for i in range(20)}),  # AP divides by |R| = 20
    ],
)
def test_score_matches_a_naive_reference(ranked, relevant):
    flags = [p in relevant for p in ranked]
    m = bench.score(ranked, relevant)
    assert m["map@16"] == pytest.approx(_naive_ap(flags, len(relevant), 16))
    assert m["map@10"] == pytest.approx(_naive_ap(flags, len(relevant), 10))
    for k in (1, 5, 10):
        assert m[f"R@{k}"] == pytest.approx(sum(flags[:k]) / len(relevant))
    assert m["miss@16"] == (0.0 if any(flags[:16]) else 1.0)


def _clips(root: Path) -> list[str]:
    paths = ["kpat/sounds/Card Down.wav", "scratch/Animal/Dog1.wav", "kolf/sounds/hit.wav"]
    for i, rel in enumerate(paths):
        t = np.arange(int(1.5 * TINY_SR)) / TINY_SR
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, (0.3 * np.sin(2 * np.pi * (300 + 400 * i) * t)).astype(np.float32), TINY_SR)
    return paths


def test_opaque_library_hides_names_and_keeps_audio(tmp_path):
    paths = _clips(tmp_path / "clips")
    mapping = bench.build_opaque_library(tmp_path / "clips", paths, tmp_path / "lib", seed=1)
    assert sorted(mapping) == sorted(paths)
    assert sorted(p.name for p in mapping.values()) == ["clip_0001.wav", "clip_0002.wav", "clip_0003.wav"]
    for rel, dst in mapping.items():
        a, _ = sf.read(tmp_path / "clips" / rel)
        b, sr = sf.read(dst)
        assert sr == TINY_SR and np.allclose(a, b, atol=1e-4)
    with pytest.raises(FileNotFoundError, match="missing"):
        bench.build_opaque_library(tmp_path / "clips", [*paths, "kpat/nope.wav"], tmp_path / "lib2")


@pytest.mark.slow
def test_main_runs_every_query_in_both_modes(tmp_path, capsys):
    clips = tmp_path / "clips"
    paths = _clips(clips)
    queries = tmp_path / "queries.csv"
    with open(queries, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([("query", "path"), ("card", paths[0]), ("dog bark", paths[1]), ("dog bark", paths[2])])
    cats = tmp_path / "cats.csv"
    cats.write_text("query,category\ncard,household\ndog bark,animal\n")
    bundle = make_tiny_bundle(tmp_path / "bundle")
    out = tmp_path / "result.json"
    rc = bench.main(
        ["--clips", str(clips), "--queries", str(queries), "--categories", str(cats), "--model", str(bundle),
         "--work", str(tmp_path / "work"), "--json", str(out)]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "tiny-test 0.0.1" in text and "3 clips (opaque names)" in text
    result = json.loads(out.read_text())
    assert set(result["per_query"]) == {"content", "both"}
    for per in result["per_query"].values():
        assert set(per) == {"card", "dog bark"}
        # three clips, all returned: every relevant clip is in the top 16, whatever the random model says
        assert all(m["miss@16"] == 0.0 and m["R@10"] == 1.0 for m in per.values())
        assert all(0.0 < m["map@16"] <= 1.0 for m in per.values())
    assert sorted(p.name for p in (tmp_path / "work" / "audio").iterdir()) == [
        "clip_0001.wav",
        "clip_0002.wav",
        "clip_0003.wav",
    ]
    lines = [line.split() for line in text.splitlines()]
    assert ["content", "all", "2"] == lines[2][:3] and ["both", "all", "2"] == lines[3][:3]
    assert any(row[:3] == ["content", "animal", "1"] for row in lines)

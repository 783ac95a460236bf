"""Bundles installed side by side keep one copy of a weights file they all carry (the wheel's 2.x defaults
share one aiSFX network): same bundle_id, same vectors, and a damaged or missing shared copy is refused like a
damaged local file. Whatever copies a bundle (`earshot learn`, cluster workers) takes the shared file along."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.bundle import SHARED_DIR, list_bundles, load_bundle, share_identical_weights, weight_files
from engine.encoder import Encoder
from engine.errors import BundleError
from engine.indexing.cluster import bundle_files
from tests.bundles import make_tiny_bundle

RNG = np.random.default_rng(0)
WAVES = [RNG.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(3)]


def vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    enc = Encoder(load_bundle(path), device="cpu")
    return enc.embed_audio(WAVES), enc.embed_text(["low hum", "glass breaking"])


@pytest.fixture
def models(tmp_path) -> Path:
    """Three bundles: a and b share their backbones (same seed, other heads), c has its own."""
    root = tmp_path / "models"
    make_tiny_bundle(root / "a", seed=1, head_seed=1, name="t", version="1.0.0")
    make_tiny_bundle(root / "b", seed=1, head_seed=2, name="t", version="1.1.0")
    make_tiny_bundle(root / "c", seed=2, head_seed=3, name="t", version="1.2.0")
    return root


def test_identical_files_are_kept_once_and_the_bundles_are_unchanged(models, monkeypatch):
    before = {d: (load_bundle(models / d).bundle_id, vectors(models / d)) for d in "abc"}
    audio_file = load_bundle(models / "a").audio_backbones["tiny"]["weights"]
    size = (models / "a" / audio_file).stat().st_size
    digest = hashlib.sha256((models / "a" / audio_file).read_bytes()).hexdigest()

    saved = share_identical_weights(models)

    assert saved == size  # a's and b's audio backbone: one copy left (heads differ; c differs)
    assert sorted(p.name for p in (models / SHARED_DIR).iterdir()) == [f"{digest}.safetensors"]
    assert not (models / "a" / audio_file).exists() and not (models / "b" / audio_file).exists()
    assert (models / "c" / audio_file).exists()
    assert json.loads((models / "a" / "bundle.json").read_text())["shared_weights"] == {audio_file: digest}
    assert "shared_weights" not in json.loads((models / "c" / "bundle.json").read_text())
    for d in "abc":
        b = load_bundle(models / d)  # verified: the bytes hashed are the shared copy's
        assert b.bundle_id == before[d][0]
        audio, text = vectors(models / d)
        np.testing.assert_array_equal(audio, before[d][1][0])
        np.testing.assert_array_equal(text, before[d][1][1])
    assert load_bundle(models / "a").backbone_key("tiny") == load_bundle(models / "b").backbone_key("tiny")
    assert share_identical_weights(models) == 0  # a second pass finds nothing more to share
    monkeypatch.setenv("EARSHOT_MODELS_DIR", str(models))
    listed = {p.name for p, spec in list_bundles(verify=True) if p.parent == models}
    assert listed == {"a", "b", "c"}  # the shared folder is not a bundle, and every bundle verifies


def test_a_damaged_or_missing_shared_copy_is_refused(models):
    share_identical_weights(models)
    (shared,) = (models / SHARED_DIR).iterdir()
    data = bytearray(shared.read_bytes())
    data[-1] ^= 0xFF
    shared.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="integrity check"):
        load_bundle(models / "a")
    shared.unlink()
    with pytest.raises(BundleError, match="missing its weights file"):
        load_bundle(models / "b")
    load_bundle(models / "c")  # its own files: untouched


def test_a_bundle_moved_away_from_the_shared_folder_reports_the_missing_file(models, tmp_path):
    share_identical_weights(models)
    shutil.copytree(models / "a", tmp_path / "alone")
    with pytest.raises(BundleError, match="missing its weights file"):
        load_bundle(tmp_path / "alone")


def test_copies_of_a_sharing_bundle_carry_the_shared_file(models, tmp_path):
    share_identical_weights(models)
    a = load_bundle(models / "a")
    files = bundle_files(a)  # what a cluster worker rebuilds the bundle from
    for name in weight_files(a.spec):
        assert name in files
    rebuilt = tmp_path / "worker-copy"
    for rel, data in files.items():
        (rebuilt / rel).parent.mkdir(parents=True, exist_ok=True)
        (rebuilt / rel).write_bytes(data)
    assert load_bundle(rebuilt).bundle_id == a.bundle_id


def test_a_learned_bundle_of_a_sharing_base_stands_alone(models, tmp_path):
    from training.learn import EnsembleHeads, write_learned_bundle

    share_identical_weights(models)
    base = load_bundle(models / "b")
    student = EnsembleHeads(base, Encoder(base, device="cpu"))
    report = {"name": "t-learned", "version": "1.1.0+lib", "library": str(tmp_path / "lib"), "library_id": "ab" * 8,
              "train_files": 1, "files": 1, "described": 1, "heldout_files": 0, "pairs": 1, "epochs": 1, "batch": 1,
              "lr": 0.0, "tau": 0.05, "distill": 0.0, "interpolate": 0.0, "seed": 0, "train_seconds": 0.0,
              "when": "now", "heldout_before": {"map@16": 0.0, "R@10": 0.0, "queries": 0},
              "heldout_after": {"map@16": 0.0, "R@10": 0.0, "queries": 0}}
    learned = write_learned_bundle(base, student, report, tmp_path / "user-models")
    assert "shared_weights" not in learned.spec
    for name in weight_files(learned.spec):
        assert (learned.path / name).is_file(), name  # its own copy, away from the shared folder
    audio, _ = vectors(learned.path)
    np.testing.assert_allclose(audio, vectors(models / "b")[0], atol=1e-6)  # the base's heads, unchanged

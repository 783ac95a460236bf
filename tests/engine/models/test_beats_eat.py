"""BEATs and EAT backbones (tiny random-weight configs), Kaldi features, resampling, safe checkpoints.

The full-size architectures were checked against the reference implementations (microsoft/unilm
``beats/BEATs.py`` and an EAT Hugging Face port) on shared random weights; these tests pin the adapter
contract, the release key formats and the safety rules without any download.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ModelError
from engine.models import checkpoints
from engine.models.kaldi import fbank, num_frames, resample
from engine.models.registry import AUDIO_BACKBONES, build_audio_backbone

TINY_BEATS = {
    "segment_s": 1.0,
    "embed_dim": 16,
    "encoder_layers": 2,
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 4,
    "conv_pos": 8,
    "conv_pos_groups": 4,
    "num_buckets": 32,
    "max_distance": 64,
}
TINY_EAT = {"segment_s": 1.0, "target_length": 112, "embed_dim": 32, "depth": 2, "num_heads": 4}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _tone(freq: float, rate: int, seconds: float) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()[None]


# ------------------------------------------------------------------------------------ kaldi / resample


def test_fbank_frames_and_tone_position() -> None:
    wave = _tone(1000.0, 16000, 1.0)
    feats = fbank(wave * 2**15)
    assert feats.shape == (1, num_frames(16000), 128) == (1, 98, 128)
    # the 1 kHz tone lands in the mel band whose centre is nearest 1 kHz (Kaldi mel: 1127 ln(1 + f/700))
    mel = lambda f: 1127 * math.log1p(f / 700)  # noqa: E731
    lo, hi = mel(20), mel(8000)
    centres = [lo + (i + 1) * (hi - lo) / 129 for i in range(128)]
    expected = min(range(128), key=lambda i: abs(centres[i] - mel(1000)))
    assert abs(int(feats[0].mean(0).argmax()) - expected) <= 1
    with pytest.raises(ModelError, match="at least 400 samples"):
        fbank(torch.zeros(1, 100))


def test_resample_keeps_band_and_removes_what_is_above_nyquist() -> None:
    low = resample(_tone(1000.0, 32000, 0.5), 32000, 16000)
    assert low.shape == (1, 8000)
    ref = _tone(1000.0, 16000, 0.5)
    assert float((low - ref)[:, 200:-200].abs().max()) < 2e-3
    high = resample(_tone(12000.0, 32000, 0.5), 32000, 16000)  # above the new Nyquist (8 kHz)
    assert float(high[:, 200:-200].abs().max()) < 0.02
    assert resample(ref, 16000, 16000) is ref


# ------------------------------------------------------------------------------------------- backbones


@pytest.mark.parametrize(("arch", "config", "dim"), [("beats", TINY_BEATS, 32), ("eat", TINY_EAT, 32)])
def test_registry_builds_tiny_backbones_with_the_segment_contract(arch: str, config: dict, dim: int) -> None:
    torch.manual_seed(0)
    model = build_audio_backbone(arch, config).eval()
    assert arch in AUDIO_BACKBONES and model.sample_rate == 32000 and model.out_dim == dim
    one = torch.randn(1, 32000) * 0.1
    two = torch.cat([one, torch.zeros(1, 32000)], dim=1)  # a second, silent segment is padding
    other = torch.randn(1, 64000) * 0.1
    with torch.no_grad():
        out = model(torch.cat([two, other]))
        single = model(one)
    assert out.shape == (2, dim) and torch.isfinite(out).all()
    assert torch.allclose(out[0], single[0], atol=1e-5)
    with torch.no_grad():
        halves = model.embed_segments(resample(other, 32000, 16000).reshape(2, 16000))
    assert torch.allclose(out[1], halves.mean(0), atol=1e-5)
    model.train()
    loss = model(other).pow(2).sum()
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_beats_loads_the_release_format_and_refuses_mismatches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = build_audio_backbone("beats", TINY_BEATS).eval()
    state = dict(src.state_dict())
    # the release stores the shared relative-position table under every layer, plus a classifier
    table = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    state["encoder.layers.1.self_attn.relative_attention_bias.weight"] = table.clone()
    state["predictor.weight"] = torch.zeros(527, 32)
    cfg = {"deep_norm": True, "num_buckets": 32, "max_distance": 64, "encoder_layers": 2}
    pt = tmp_path / "BEATs_tiny.pt"
    torch.save({"cfg": cfg, "model": state}, pt)
    dst = build_audio_backbone("beats", {**TINY_BEATS, "pretrained": str(pt)})
    dst.load_pretrained()
    wave = torch.randn(2, 32000) * 0.1
    with torch.no_grad():
        assert torch.allclose(dst.eval()(wave), src(wave), atol=1e-6)
    # the .pt was converted once into the user cache, config kept as metadata
    converted = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(converted) == 1 and checkpoints.read_weights(converted[0])[1]["max_distance"] == 64
    bad = build_audio_backbone("beats", {**TINY_BEATS, "max_distance": 128})
    with pytest.raises(ModelError, match="max_distance"):
        bad.load_backbone_state(state, cfg)
    small = build_audio_backbone("beats", {**TINY_BEATS, "encoder_ffn_embed_dim": 48})
    with pytest.raises(ModelError, match="do not fit"):
        small.load_backbone_state(state)


def test_eat_loads_hugging_face_and_fairseq_names(tmp_path: Path) -> None:
    from engine.models.eat import sincos_positions

    torch.manual_seed(0)
    src = build_audio_backbone("eat", TINY_EAT).eval()
    hf = {"model." + k: v for k, v in src.state_dict().items()}
    hf["model.fc_norm.weight"] = torch.ones(32)
    hf["model.head.weight"] = torch.zeros(527, 32)
    hf["model.fixed_positional_encoder.positions"] = sincos_positions(32, 768, 8)[None]
    path = checkpoints.write_safetensors(hf, {}, tmp_path / "model.safetensors")
    dst = build_audio_backbone("eat", {**TINY_EAT, "pretrained": str(path)})
    dst.load_pretrained()
    wave = torch.randn(1, 32000) * 0.1
    with torch.no_grad():
        assert torch.allclose(dst.eval()(wave), src(wave), atol=1e-6)
    fairseq = {
        k.replace("local_encoder.", "modality_encoders.IMAGE.local_encoder.")
        .replace("pre_norm.", "modality_encoders.IMAGE.context_encoder.norm.")
        .replace("extra_tokens", "modality_encoders.IMAGE.extra_tokens"): v
        for k, v in src.state_dict().items()
    }
    fairseq["modality_encoders.IMAGE.decoder.proj.weight"] = torch.zeros(3, 3)
    fairseq["_ema"] = torch.zeros(1)
    build_audio_backbone("eat", TINY_EAT).load_backbone_state(fairseq)
    wrong = dict(hf)
    wrong["model.fixed_positional_encoder.positions"] = sincos_positions(32, 768, 4)[None]  # other layout
    with pytest.raises(ModelError, match="position table"):
        build_audio_backbone("eat", TINY_EAT).load_backbone_state(wrong)


def test_sincos_table_layout() -> None:
    from engine.models.eat import sincos_positions

    table = sincos_positions(8, 3, 2).numpy()
    assert table.shape == (6, 8)
    # row t·F + f: first half encodes f, second half t; sin(0) = 0, cos(0) = 1
    assert np.allclose(table[0], [0, 0, 1, 1, 0, 0, 1, 1])
    assert np.allclose(table[1, :4], [math.sin(1), math.sin(1e-2), math.cos(1), math.cos(1e-2)], atol=1e-6)
    assert np.allclose(table[2, 4:], [math.sin(1), math.sin(1e-2), math.cos(1), math.cos(1e-2)], atol=1e-6)


class _Evil:
    def __reduce__(self):  # pragma: no cover - must never run
        return (print, ("unpickled!",))


def test_checkpoints_never_unpickle_and_the_converter_cli(tmp_path: Path, capsys) -> None:
    evil = tmp_path / "fairseq_like.pt"
    torch.save({"cfg": _Evil(), "model": {"w": torch.zeros(2)}}, evil)
    with pytest.raises(ModelError, match="never unpickled"):
        checkpoints.read_weights(evil)
    assert "unpickled!" not in capsys.readouterr().out
    good = tmp_path / "ok.pt"
    torch.save({"cfg": {"a": 1}, "model": {"w": torch.arange(3.0)}}, good)
    out = tmp_path / "ok.safetensors"
    assert checkpoints.main([str(good), str(out)]) == 0
    state, cfg = checkpoints.read_weights(out)
    assert torch.equal(state["w"], torch.arange(3.0)) and cfg == {"a": 1}
    assert checkpoints.main([str(evil), str(tmp_path / "x.safetensors")]) == 1
    assert checkpoints.main([str(tmp_path / "missing.pt"), str(out)]) == 1
    with pytest.raises(ModelError, match="unknown"):
        checkpoints.read_weights(_touch(tmp_path / "w.npz"))


def _touch(path: Path) -> Path:
    path.write_bytes(b"x")
    return path

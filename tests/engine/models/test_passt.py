"""Tests of the PaSST audio backbone: front-end formula, segmenting, patchout and weight files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ModelError
from engine.models import _passt_net, passt
from engine.models.passt import PasstBackbone, PasstFrontend, content_lengths
from engine.models.registry import AUDIO_BACKBONES

SR = 32000
# One-second segments keep the tiny model fast: 100 frames -> a grid of 8 x 6 patches.
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2, "segment_s": 1.0, "s_patchout_t": 2, "s_patchout_f": 1}


def tiny(**overrides: object) -> PasstBackbone:
    torch.manual_seed(0)
    return PasstBackbone.from_config({**TINY, **overrides}).eval()


def reference_logmel(wave: np.ndarray, fmin: float = 0.0, fmax: float = 15000.0) -> np.ndarray:
    """hear21passt's eval-mode AugmentMelSTFT, written out in float64 numpy. [S] -> [128, frames]."""
    n_fft, win, hop, n_mels = 1024, 800, 320, 128
    y = wave[1:] - 0.97 * wave[:-1]
    y = np.pad(y, (n_fft // 2, n_fft // 2), mode="reflect")
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = np.hanning(win)  # symmetric Hann
    n_frames = 1 + (len(y) - n_fft) // hop
    frames = np.stack([y[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [T, 513]

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    step = (mel(fmax) - mel(fmin)) / (n_mels + 1)
    bin_mel = mel(np.arange(n_fft // 2) * SR / n_fft)
    banks = np.zeros((n_mels, n_fft // 2 + 1))  # the Nyquist column stays zero
    for m in range(n_mels):
        left, center, right = (mel(fmin) + (m + k) * step for k in range(3))
        rising = (bin_mel > left) & (bin_mel <= center)
        falling = (bin_mel > center) & (bin_mel < right)
        banks[m, : n_fft // 2][rising] = (bin_mel[rising] - left) / (center - left)
        banks[m, : n_fft // 2][falling] = (right - bin_mel[falling]) / (right - center)
    return (np.log(banks @ power.T + 1e-5) + 4.5) / 5.0


def test_frontend_matches_formula() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(SR // 2) / SR
    wave = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(t.size)
    frontend = PasstFrontend().eval()
    got = frontend(torch.from_numpy(wave).float()[None])[0].numpy()
    expected = reference_logmel(wave.astype(np.float32).astype(np.float64))
    assert got.shape == expected.shape == (128, frontend.num_frames(wave.size))
    np.testing.assert_allclose(got, expected, atol=2e-4)
    # A pure 440 Hz tone peaks in band 19: its centre mel is 20 * (mel(15 kHz) / 129) ~ mel(440 Hz).
    tone = frontend(torch.sin(2 * torch.pi * 440.0 * torch.arange(SR // 2) / SR)[None])[0]
    assert tone[:, 5:-5].mean(dim=1).argmax().item() in (18, 19, 20)


def test_frontend_frames_and_fmax_rule() -> None:
    frontend = PasstFrontend()
    assert frontend.fmax == 15000.0  # sr // 2 - fmax_aug_range // 2, hear21passt's rule for fmax=None
    assert frontend.num_frames(10 * SR) == 1000
    assert frontend(torch.zeros(1, 10 * SR)).shape == (1, 128, 1000)


def test_frontend_jitters_bands_only_in_train_mode() -> None:
    wave = torch.randn(1, SR // 4) * 0.1
    frontend = PasstFrontend()
    frontend.eval()
    assert torch.equal(frontend(wave), frontend(wave))
    frontend.train()
    torch.manual_seed(3)
    outs = [frontend(wave) for _ in range(4)]
    assert any(not torch.allclose(outs[0], other) for other in outs[1:])


def test_registered_and_shapes() -> None:
    assert AUDIO_BACKBONES["passt"] is PasstBackbone
    model = tiny()
    assert (model.sample_rate, model.out_dim, model.segment_samples) == (SR, 32, SR)
    assert _passt_net.patch_grid(model.net) == (8, 6)
    with torch.no_grad():
        out = model(torch.randn(3, SR // 2) * 0.1)
    assert out.shape == (3, 32) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_default_config_derives_the_official_grid() -> None:
    config = passt.PasstConfig.from_dict({})
    frontend = PasstFrontend()
    assert (config.embed_dim, config.depth, config.num_heads) == (768, 12, 12)
    assert (config.s_patchout_t, config.s_patchout_f) == (15, 2)
    # 10 s -> 1000 frames -> 62 time patches, the shape of the official time positional embedding.
    assert (frontend.num_frames(config.segment_samples) - 16) // 16 + 1 == 62
    model = tiny(segment_s=10.0, embed_dim=16)
    assert tuple(model.net.time_new_pos_embed.shape) == (1, 16, 1, 62)
    assert tuple(model.net.freq_new_pos_embed.shape) == (1, 16, 8, 1)


def test_tokens_match_hear21passt_forward_features() -> None:
    model = tiny()
    spec = model.frontend(torch.randn(2, SR) * 0.1).unsqueeze(1)
    with torch.no_grad():
        tokens = _passt_net.forward_tokens(model.net, spec)
        cls, dist = model.net.forward_features(spec)
    assert tokens.shape == (2, 2 + 8 * 6, 32)
    torch.testing.assert_close(tokens[:, 0], cls, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tokens[:, 1], dist, atol=1e-5, rtol=1e-4)


def test_patchout_only_in_train_mode() -> None:
    model = tiny()
    spec = model.frontend(torch.randn(2, SR) * 0.1).unsqueeze(1)
    with torch.no_grad():
        assert _passt_net.forward_tokens(model.net, spec).shape[1] == 2 + 8 * 6
        model.train()
        torch.manual_seed(5)
        train_tokens = [_passt_net.forward_tokens(model.net, spec) for _ in range(3)]
    assert all(t.shape[1] == 2 + (8 - 1) * (6 - 2) for t in train_tokens)
    assert any(not torch.allclose(train_tokens[0], t) for t in train_tokens[1:])
    model.eval()
    wave = torch.randn(1, SR) * 0.1
    with torch.no_grad():
        a, b = model(wave), model(wave)
    assert torch.equal(a, b)


def test_train_mode_gives_gradients() -> None:
    model = tiny().train()
    model(torch.randn(2, SR) * 0.1).pow(2).sum().backward()
    grads = [p.grad for p in model.net.blocks[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_multi_segment_average_skips_padding() -> None:
    model = tiny()
    torch.manual_seed(7)
    clip = torch.randn(int(2.5 * SR)) * 0.1
    batch = torch.zeros(2, 4 * SR)  # a batch padded with silence to 4 segments
    batch[0, : clip.numel()] = clip
    batch[1, : SR // 3] = clip[: SR // 3]
    with torch.no_grad():
        out = model(batch)
        segments = torch.zeros(3, SR)
        segments.view(-1)[: clip.numel()] = clip
        per_segment = model.embed_segments(segments)
        short = model.embed_segments(torch.nn.functional.pad(clip[None, : SR // 3], (0, SR - SR // 3)))
        alone = model(clip[None])  # same clip without batch padding
        explicit = model(batch, lengths=torch.tensor([clip.numel(), SR // 3]))
    torch.testing.assert_close(out[0], per_segment.mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[1], short[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone[0], out[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(explicit, out)
    # the padded segment would have changed the average
    assert not torch.allclose(
        out[0], torch.cat([per_segment, model.embed_segments(torch.zeros(1, SR))]).mean(0)
    )


def test_content_lengths() -> None:
    wave = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    assert content_lengths(wave).tolist() == [2, 4, 0]


def test_mean_tokens_embedding_differs_from_cls_dist() -> None:
    wave = torch.randn(2, SR) * 0.1
    with torch.no_grad():
        a = tiny(embed="cls+dist")(wave)
        b = tiny(embed="mean_tokens")(wave)
    assert a.shape == b.shape == (2, 32)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    "bad",
    [{"colour": "red"}, {"embed": "max"}, {"variant": "passt_xl"}, {"s_patchout_t": 6}, {"num_heads": 5}],
)
def test_invalid_config_raises_model_error(bad: dict) -> None:
    with pytest.raises(ModelError):
        PasstBackbone.from_config({**TINY, **bad})


def test_timm_stub_does_not_leak() -> None:
    tiny()
    if _passt_net.importlib.util.find_spec("timm") is None:
        assert "timm" not in sys.modules and "timm.models._hub" not in sys.modules


# ------------------------------------------------------------------------------------------- weights
@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setattr(passt, "weights_cache_dir", lambda: cache)

    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(passt.urllib.request, "urlopen", no_network)
    return cache


def official_like_state(model: PasstBackbone, classes: int = 5) -> dict[str, torch.Tensor]:
    """The tiny model's weights plus AudioSet-style classifier heads, as a release .pt holds them."""
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    state["head.1.weight"] = torch.randn(classes, model.out_dim)
    state["head.1.bias"] = torch.zeros(classes)
    state["head_dist.weight"] = torch.randn(classes, model.out_dim)
    state["head_dist.bias"] = torch.zeros(classes)
    return state


def test_pt_converts_once_to_safetensors_and_round_trips(
    tmp_path: Path, cache_dir: Path, monkeypatch
) -> None:
    source = tiny()
    torch.manual_seed(11)
    for p in source.net.parameters():
        p.data.normal_()
    pt_file = tmp_path / "passt-tiny.pt"
    torch.save(official_like_state(source), pt_file)

    target = tiny(pretrained=str(pt_file))
    assert not torch.equal(target.net.cls_token, source.net.cls_token)
    target.load_pretrained()
    for key, value in source.net.state_dict().items():
        assert torch.equal(target.net.state_dict()[key], value), key
    converted = list(cache_dir.glob("*.safetensors"))
    assert len(converted) == 1 and converted[0].name.startswith("passt-tiny-")
    assert not list(cache_dir.glob("*.part"))

    def no_conversion(*_args: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(passt, "_convert_pt", no_conversion)
    again = tiny(pretrained=str(pt_file))
    again.load_pretrained()  # served from the cache
    # the converted file loads directly as well
    direct = tiny(pretrained=str(converted[0]))
    direct.load_pretrained()
    wave = torch.randn(1, SR) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(direct(wave), source(wave))


def test_relative_weights_path_is_inside_bundle(tmp_path: Path, cache_dir: Path) -> None:
    from safetensors.torch import save_file

    source = tiny()
    save_file(source.net.state_dict(), tmp_path / "audio.safetensors")
    target = tiny(pretrained="audio.safetensors")
    target.load_pretrained(bundle_dir=tmp_path)
    assert torch.equal(target.net.blocks[1].mlp.fc2.weight, source.net.blocks[1].mlp.fc2.weight)
    with pytest.raises(ModelError, match="not found"):
        target.load_pretrained(bundle_dir=tmp_path / "elsewhere")


def test_missing_file_and_unknown_format(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        tiny(pretrained=str(tmp_path / "absent.pt")).load_pretrained()
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match="format"):
        tiny(pretrained=str(odd)).load_pretrained()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError):
        tiny(pretrained=str(broken)).load_pretrained()


class Payload:
    """Not a tensor: weights_only loading must refuse to rebuild it."""

    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_pickled_objects_are_refused(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"cls_token": Payload()}, path)
    with pytest.raises(ModelError, match="plain tensor file"):
        tiny(pretrained=str(path)).load_pretrained()
    assert not list(cache_dir.glob("*.safetensors"))


def test_weights_of_another_architecture_are_rejected(tmp_path: Path, cache_dir: Path) -> None:
    pt_file = tmp_path / "wide.pt"
    torch.save(tiny(embed_dim=64).net.state_dict(), pt_file)
    with pytest.raises(ModelError, match="do not fit"):
        tiny(pretrained=str(pt_file)).load_pretrained()


def test_official_without_network_says_where_to_put_the_file(cache_dir: Path) -> None:
    model = tiny(pretrained="official", allow_network=False)
    with pytest.raises(ModelError) as info:
        model.load_pretrained()
    message = str(info.value)
    assert _passt_net.OFFICIAL_WEIGHTS["passt_s_p16_s16_128_ap468"] in message
    assert str(cache_dir / "passt-s-f128-p16-s16-ap.468.pt") in message


def test_official_file_placed_in_cache_loads_offline(cache_dir: Path) -> None:
    source = tiny()
    cache_dir.mkdir(parents=True)
    torch.save(official_like_state(source), cache_dir / "passt-s-f128-p16-s16-ap.468.pt")
    model = tiny(pretrained="official")
    model.load_pretrained()
    assert (cache_dir / "passt-s-f128-p16-s16-ap.468.safetensors").is_file()
    assert torch.equal(model.net.dist_token, source.net.dist_token)


def test_official_url_is_the_one_hear21passt_uses() -> None:
    cfgs = _passt_net.passt_module().default_cfgs
    for variant, url in _passt_net.OFFICIAL_WEIGHTS.items():
        assert cfgs[variant]["url"] == url

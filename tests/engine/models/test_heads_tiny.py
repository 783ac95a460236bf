from __future__ import annotations

import math

import pytest
import torch

from engine.errors import ModelError
from engine.models.device import choose_device, set_cpu_threads
from engine.models.heads import LinearHead, MLPHead
from engine.models.registry import (
    AUDIO_BACKBONES,
    HEADS,
    TEXT_BACKBONES,
    build_audio_backbone,
    build_head,
    build_text_backbone,
)
from engine.models.tiny import TinyAudio, TinyText, hash_token


def test_registry_names():
    assert HEADS["linear"] is LinearHead and HEADS["mlp"] is MLPHead
    assert AUDIO_BACKBONES["tiny_test"] is TinyAudio and TEXT_BACKBONES["tiny_test"] is TinyText
    assert isinstance(build_head("mlp", {"in_dim": 4, "out_dim": 2}), MLPHead)
    assert isinstance(build_audio_backbone("tiny_test", {"out_dim": 5}), TinyAudio)
    assert build_text_backbone("tiny_test", {"out_dim": 3}).out_dim == 3


def test_linear_head():
    head = LinearHead.from_config({"in_dim": 12, "out_dim": 5})
    assert head(torch.randn(4, 12)).shape == (4, 5)
    with pytest.raises(ModelError, match="in_dim"):
        LinearHead.from_config({"out_dim": 5})
    with pytest.raises(ModelError):
        LinearHead.from_config({"in_dim": 12, "out_dim": 5, "hidden": 3})


def test_mlp_head_config_and_dropout():
    head = MLPHead.from_config({"in_dim": 10, "out_dim": 6})
    assert head.hidden == 20 and head(torch.randn(3, 10)).shape == (3, 6)
    head = MLPHead.from_config(
        {"in_dim": 10, "out_dim": 6, "hidden": 7, "dropout_in": 0.5, "dropout": 0.5, "activation": "relu"}
    )
    assert head.net[1].out_features == 7 and isinstance(head.net[2], torch.nn.ReLU)
    x = torch.randn(64, 10)
    head.train()
    assert not torch.allclose(head(x), head(x))  # dropout is active in training
    head.eval()
    torch.testing.assert_close(head(x), head(x))
    for bad in ({"activation": "tanh"}, {"dropout": 1.0}, {"hidden": 0}):
        with pytest.raises(ModelError):
            MLPHead.from_config({"in_dim": 10, "out_dim": 6, **bad})


def test_tiny_audio_shapes_and_seed():
    wave = torch.randn(3, 16000) * 0.1
    a, b = TinyAudio.from_config({"seed": 1}), TinyAudio.from_config({"seed": 1})
    c = TinyAudio.from_config({"seed": 2, "out_dim": 8})
    torch.testing.assert_close(a(wave), b(wave))
    assert a(wave).shape == (3, 32) and c(wave).shape == (3, 8)
    assert not torch.allclose(a.proj.weight[:8], c.proj.weight[:8])
    assert a.sample_rate == 16000 and a.out_dim == 32
    torch.manual_seed(5)  # building a seeded model leaves the global RNG alone
    x = torch.rand(1)
    torch.manual_seed(5)
    TinyAudio.from_config({"seed": 9})
    assert torch.equal(torch.rand(1), x)


def test_tiny_audio_learns_low_vs_high_tones():
    torch.manual_seed(0)
    sr, n = 16000, 8000
    t = torch.arange(n) / sr
    freqs = torch.cat([torch.empty(16).uniform_(200, 600), torch.empty(16).uniform_(3000, 6000)])
    waves = 0.5 * torch.sin(2 * math.pi * freqs[:, None] * t[None] + torch.rand(32, 1) * 6.28)
    labels = torch.cat([torch.zeros(16), torch.ones(16)]).long()
    model = TinyAudio.from_config({"out_dim": 2, "seed": 0})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(waves), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    assert (model(waves).argmax(1) == labels).float().mean() == 1.0


def test_tiny_text_tokenize_and_hash():
    model = TinyText.from_config({"buckets": 64, "max_tokens": 3})
    toks = model.tokenize(["Dog BARKING!", "", "a b c d e"])
    assert toks["input_ids"].shape == (3, 3)
    assert toks["input_ids"][0].tolist() == [hash_token("dog", 64), hash_token("barking", 64), 0]
    assert toks["attention_mask"].tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    assert 1 <= hash_token("anything", 64) <= 63
    assert hash_token("dog", 64) == hash_token("dog", 64)  # stable (CRC-32, not Python's salted hash)
    out = model.encode(["dog", "dog barking"])
    assert out.shape == (2, 32)
    torch.testing.assert_close(model.encode(["Dog!"]), model.encode(["dog"]))


def test_tiny_text_learns_word_classes():
    torch.manual_seed(0)
    texts = ["dog barking", "a dog growls", "barking puppy", "rain on roof", "heavy rain", "roof drips rain"]
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    model = TinyText.from_config({"out_dim": 2, "seed": 3})
    toks = model.tokenize(texts)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(**toks), labels)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        assert model.bag.weight.grad.abs().sum() > 0
        opt.step()
    assert loss.item() < 0.2 * first
    assert model.encode(["rain"]).argmax().item() == 1 and model.encode(["dog"]).argmax().item() == 0


def test_choose_device(monkeypatch):
    monkeypatch.delenv("EARSHOT_DEVICE", raising=False)
    assert choose_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device().type == expected and choose_device("auto").type == expected
    monkeypatch.setenv("EARSHOT_DEVICE", "cpu")
    assert choose_device("auto") == torch.device("cpu")
    assert choose_device("CPU") == torch.device("cpu")
    for bad in ("tpu", "cuda:x"):
        with pytest.raises(ModelError):
            choose_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            choose_device("cuda:0")
        monkeypatch.setenv("EARSHOT_DEVICE", "cuda")
        with pytest.raises(ModelError):
            choose_device(None)


def test_set_cpu_threads():
    original = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1 == torch.get_num_threads()
        assert set_cpu_threads(None) == 1
        with pytest.raises(ModelError):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(original)

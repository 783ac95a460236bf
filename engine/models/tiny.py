"""Tiny architectures for fast tests and the training smoke test (registered as ``tiny_test``).

Both are randomly initialised from a ``seed`` in their config (deterministic, no files needed) and
trainable end to end. They implement the same interfaces as the real backbones (see
``engine.models.registry``), so every code path that runs with ``aisfx_cnn``/``minilm`` can be
exercised in milliseconds.
"""

from __future__ import annotations

import re
import zlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.errors import ModelError
from engine.models.mel import LogMelSpectrogram
from engine.models.registry import register_audio_backbone, register_text_backbone

_WORD = re.compile(r"\w+")


def _check_keys(config: dict, name: str, allowed: set[str]) -> None:
    unknown = set(config) - allowed
    if unknown:
        raise ModelError(f"{name}: unknown config keys {sorted(unknown)}")


@register_audio_backbone("tiny_test")
class TinyAudio(nn.Module):
    """Log-mel (n_fft 512, hop 256, ``n_mels`` bands) → 2 strided conv layers → mean+max pooling → linear.

    ``forward(wave Tensor[B, S] float32 at sample_rate Hz) -> Tensor[B, out_dim]``.
    Config: ``sample_rate`` (16000), ``out_dim`` (32), ``n_mels`` (32), ``channels`` (8), ``seed`` (0).
    """

    def __init__(
        self, sample_rate: int = 16000, out_dim: int = 32, n_mels: int = 32, channels: int = 8, seed: int = 0
    ) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.out_dim = int(out_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.frontend = LogMelSpectrogram(
                sample_rate=self.sample_rate,
                n_fft=512,
                hop_length=256,
                n_mels=n_mels,
                compression="log10_shift",
                peak_normalize="none",
            )
            self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(channels, 2 * channels, kernel_size=3, stride=2, padding=1)
            self.proj = nn.Linear(4 * channels, self.out_dim)

    @classmethod
    def from_config(cls, config: dict) -> TinyAudio:
        _check_keys(config, "tiny_test audio", {"sample_rate", "out_dim", "n_mels", "channels", "seed"})
        return cls(**config)

    def forward(self, wave: Tensor) -> Tensor:
        x = self.frontend(wave).unsqueeze(1)  # [B, 1, T, n_mels]
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.proj(x)


def hash_token(word: str, buckets: int) -> int:
    """Stable bucket id in ``1 … buckets - 1`` (0 is padding) from CRC-32 of the UTF-8 word."""
    return 1 + zlib.crc32(word.encode("utf-8")) % (buckets - 1)


@register_text_backbone("tiny_test")
class TinyText(nn.Module):
    """Hashed bag of lower-cased words → ``nn.EmbeddingBag`` (mean) → linear.

    ``encode(texts) -> Tensor[B, out_dim]``; ``tokenize`` and ``forward`` follow ``minilm``.
    Config: ``buckets`` (4096), ``dim`` (32), ``out_dim`` (32), ``max_tokens`` (32), ``seed`` (0).
    """

    def __init__(
        self, buckets: int = 4096, dim: int = 32, out_dim: int = 32, max_tokens: int = 32, seed: int = 0
    ) -> None:
        super().__init__()
        if buckets < 2 or max_tokens < 1:
            raise ModelError("tiny_test text: buckets must be >= 2 and max_tokens >= 1")
        self.buckets = int(buckets)
        self.max_tokens = int(max_tokens)
        self.out_dim = int(out_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.bag = nn.EmbeddingBag(self.buckets, dim, mode="mean", padding_idx=0)
            self.proj = nn.Linear(dim, self.out_dim)

    @classmethod
    def from_config(cls, config: dict) -> TinyText:
        _check_keys(config, "tiny_test text", {"buckets", "dim", "out_dim", "max_tokens", "seed"})
        return cls(**config)

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        """Texts → ``{"input_ids", "attention_mask"}``, int64 ``[B, L]`` (``L`` ≥ 1, 0 = padding)."""
        if isinstance(texts, str):
            texts = [texts]
        rows = [
            [hash_token(w, self.buckets) for w in _WORD.findall(t.lower())][: self.max_tokens] for t in texts
        ]
        length = max([1, *(len(r) for r in rows)])
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """``[B, L]`` int64 token ids (0 = padding) → ``Tensor[B, out_dim]`` float32."""
        ids = input_ids * attention_mask.to(input_ids.dtype)
        return self.proj(self.bag(ids))

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """Texts → ``Tensor[B, out_dim]`` float32 on the module's device."""
        device = self.proj.weight.device
        return self(**{k: v.to(device) for k, v in self.tokenize(texts).items()})

"""EAT audio backbone (registered ``"eat"``): a teacher member and ensemble backbone of the full recipe.

The Efficient Audio Transformer (Chen et al., 2024; ``cwx-worst-one/EAT``, a data2vec 2.0 audio ViT), in
plain torch with the parameter names of its Hugging Face release (``worstchan/EAT-base_epoch30_pretrain``
``model.safetensors``, keys under ``model.``; the fairseq names ``modality_encoders.IMAGE.…`` are mapped
too):

1. input at the bundle's ``sample_rate`` → 16 kHz, ``segment_s`` (10 s) segments (see
   :class:`engine.models.segments.SegmentedBackbone`), each minus its mean;
2. Kaldi fbank (128 mel, 25 ms / 10 ms, Hann window), zero-padded or cut to ``target_length`` frames
   (1024 for 10 s), ``(x + 4.268) / (2 · 4.569)``;
3. 16×16 patch embedding (``local_encoder.proj``) over (time, mel) + fixed 2-D sin-cos positions, a
   learned CLS token (``extra_tokens``) in front, LayerNorm (``pre_norm``), ``depth`` post-LN blocks
   (fused ``qkv``, GELU MLP, LayerNorm eps 1e-6);
4. the segment embedding: the CLS token (``embed = "cls"``, EAT's utterance feature) or the mean of the
   patch tokens (``"mean"``).

Only safetensors (or a ``.pt`` holding plain tensors, read with ``weights_only=True``) are read: the
fairseq ``.pt`` checkpoints carry an omegaconf config and are refused — use the Hugging Face
``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.errors import ModelError
from engine.models import checkpoints
from engine.models.kaldi import fbank
from engine.models.registry import register_audio_backbone
from engine.models.segments import SegmentedBackbone, check_state

log = logging.getLogger(__name__)

NORM_MEAN = -4.268
NORM_STD = 4.569

#: Key prefixes of released checkpoints → ours; ``None`` drops the tensor (pre-training heads, EMA,
#: classifier, the stored position table which :func:`sincos_positions` recomputes and checks).
_RENAMES: tuple[tuple[str, str | None], ...] = (
    ("model.", ""),
    ("modality_encoders.IMAGE.context_encoder.norm.", "pre_norm."),
    ("modality_encoders.IMAGE.local_encoder.", "local_encoder."),
    ("modality_encoders.IMAGE.extra_tokens", "extra_tokens"),
    ("modality_encoders.IMAGE.fixed_positional_encoder.positions", "fixed_positional_encoder.positions"),
    ("modality_encoders.IMAGE.", None),
    ("_ema", None),
    ("ema.", None),
    ("decoder.", None),
    ("recon_proj.", None),
    ("fc_norm.", None),
    ("head.", None),
)


@dataclasses.dataclass(frozen=True)
class EatConfig:
    sample_rate: int = 32000
    segment_s: float = 10.0
    target_length: int = 1024
    pretrained: str | None = None
    embed: str = "cls"
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    patch_size: int = 16
    num_mel_bins: int = 128
    dropout: float = 0.0
    attention_dropout: float = 0.0
    drop_path_rate: float = 0.0

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> EatConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ModelError(f"unknown eat config keys {unknown}; known: {sorted(names)}")
        cfg = cls(**config)
        if cfg.embed not in ("cls", "mean"):
            raise ModelError(f"eat: embed must be 'cls' or 'mean', not {cfg.embed!r}")
        if cfg.embed_dim % cfg.num_heads or cfg.embed_dim % 4:
            raise ModelError("eat: embed_dim must divide by num_heads and by 4")
        if cfg.target_length % cfg.patch_size or cfg.num_mel_bins % cfg.patch_size:
            raise ModelError("eat: target_length and num_mel_bins must be multiples of patch_size")
        return cfg


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = np.arange(dim // 2, dtype=np.float32)
    omega /= dim / 2.0
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_positions(dim: int, time_patches: int, freq_patches: int) -> Tensor:
    """EAT's fixed 2-D sin-cos table ``Tensor[time_patches · freq_patches, dim]`` (row ``t · F + f``): the
    first half encodes the frequency patch, the second the time patch."""
    f, t = np.meshgrid(np.arange(freq_patches, dtype=np.float32), np.arange(time_patches, dtype=np.float32))
    table = np.concatenate([_sincos_1d(dim // 2, f), _sincos_1d(dim // 2, t)], axis=1)
    return torch.from_numpy(table).float()


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: EatConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: Tensor) -> Tensor:  # [B, 1, T, F] -> [B, T/p · F/p, D]
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, cfg: EatConfig) -> None:
        super().__init__()
        self.heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.dropout = cfg.attention_dropout

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, cfg: EatConfig) -> None:
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class _Block(nn.Module):
    """data2vec 2.0 ``AltBlock`` with ``layer_norm_first = False`` (post-LN)."""

    def __init__(self, cfg: EatConfig, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = _Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = _Mlp(cfg)
        self.drop_path = drop_path

    def _dp(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_path <= 0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= self.drop_path
        return x * keep / (1 - self.drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x + self._dp(self.attn(x)))
        return self.norm2(x + self._dp(self.mlp(x)))


@register_audio_backbone("eat")
class EatBackbone(SegmentedBackbone):
    """EAT: ``forward(wave [B, S] at sample_rate) -> Tensor[B, embed_dim]``."""

    net_rate = 16000

    def __init__(self, config: EatConfig) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.segment_s = config.segment_s
        self.out_dim = config.embed_dim
        self.local_encoder = _PatchEmbed(config)
        self.extra_tokens = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        nn.init.trunc_normal_(self.extra_tokens, std=0.02)
        self.pre_norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        rates = np.linspace(0.0, config.drop_path_rate, config.depth)
        self.blocks = nn.ModuleList(_Block(config, float(r)) for r in rates)
        p = config.patch_size
        self.register_buffer(
            "positions",
            sincos_positions(config.embed_dim, config.target_length // p, config.num_mel_bins // p),
            persistent=False,
        )
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EatBackbone:
        """Random weights, no I/O."""
        return cls(EatConfig.from_dict(config))

    def features(self, segments: Tensor) -> Tensor:
        """Normalised fbank ``Tensor[M, target_length, mel]`` of 16 kHz segments ``Tensor[M, samples]``."""
        x = segments - segments.mean(dim=1, keepdim=True)
        mel = fbank(x, num_mel_bins=self.config.num_mel_bins, window_type="hanning")
        n = self.config.target_length
        mel = F.pad(mel, (0, 0, 0, max(0, n - mel.shape[1])))[:, :n]
        return (mel - NORM_MEAN) / (NORM_STD * 2)

    def tokens(self, feats: Tensor) -> Tensor:
        """All output tokens ``Tensor[M, 1 + patches, D]`` (CLS first) for ``Tensor[M, frames, mel]``."""
        x = self.local_encoder(feats.unsqueeze(1))
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pre_norm(x)
        for block in self.blocks:
            x = block(x)
        return x

    def embed_segments(self, segments: Tensor) -> Tensor:
        with torch.no_grad():
            feats = self.features(segments)
        tokens = self.tokens(feats)
        return tokens[:, 0] if self.config.embed == "cls" else tokens[:, 1:].mean(dim=1)

    # -- weights --------------------------------------------------------------------------------------

    def load_pretrained(
        self, config: Mapping[str, Any] | None = None, bundle_dir: Path | None = None
    ) -> None:
        """Load ``config["pretrained"]`` (``.safetensors``, or a ``.pt`` of plain tensors; relative paths
        inside ``bundle_dir``). ``None`` keeps the random weights."""
        cfg = self.config if config is None else EatConfig.from_dict(config)
        if cfg.pretrained is None:
            return
        path = Path(cfg.pretrained).expanduser()
        if not path.is_absolute() and bundle_dir is not None:
            path = Path(bundle_dir) / path
        state, _ = checkpoints.read_weights(path, "EAT")
        self.load_backbone_state(state)
        log.info("eat: loaded weights from %s", path)

    def load_backbone_state(self, state: Mapping[str, Tensor]) -> None:
        """Load a released EAT state dict (Hugging Face or fairseq names, see :data:`_RENAMES`). A stored
        position table must equal the recomputed one (it proves the patch layout)."""
        mapped: dict[str, Tensor] = {}
        for key, value in state.items():
            name: str | None = key
            for old, new in _RENAMES:
                if name is not None and name.startswith(old):
                    name = None if new is None else new + name[len(old) :]
            if name is not None:
                mapped[name] = value
        stored = mapped.pop("fixed_positional_encoder.positions", None)
        if stored is not None:
            table = stored.reshape(-1, stored.shape[-1]).float()
            n = min(len(table), len(self.positions))
            if table.shape[-1] != self.positions.shape[-1] or not torch.allclose(
                table[:n], self.positions[:n].cpu(), atol=1e-4
            ):
                raise ModelError("eat: the checkpoint's position table differs from EAT's sin-cos layout")
        check_state(self.state_dict(), mapped, "EAT")
        self.load_state_dict(mapped)


__all__ = ["EatBackbone", "EatConfig", "sincos_positions"]

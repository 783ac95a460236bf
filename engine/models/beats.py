"""BEATs audio backbone (registered ``"beats"``): a teacher member and ensemble backbone of the full recipe.

The architecture of Microsoft's BEATs (Chen et al., 2022; ``microsoft/unilm/beats``), written in plain
torch with the official parameter names, so a released checkpoint (``BEATs_iter3_plus_AS2M.pt``) loads
as it is once converted (``python -m engine.models.checkpoints``, ``weights_only`` reading):

1. input at the bundle's ``sample_rate`` → 16 kHz (:func:`engine.models.kaldi.resample`), cut into
   ``segment_s`` (10 s) segments (:class:`engine.models.segments.SegmentedBackbone`);
2. Kaldi fbank of ``wave · 2¹⁵`` (128 mel, 25 ms / 10 ms, Povey window), ``(x − 15.41663) / (2 · 6.55582)``;
3. 16×16 patch embedding (``embed_dim`` 512, no bias) over (time, mel), LayerNorm, linear to
   ``encoder_embed_dim`` (768);
4. convolutional position embedding (weight-normalised grouped conv, kernel 128, 16 groups, GELU),
   LayerNorm (post-norm encoder), then ``encoder_layers`` post-LN transformer layers with DeepNorm
   residual scaling and a *gated* bucketed relative position bias (computed once, shared by all layers);
5. the segment embedding: the mean of the output tokens.

Config keys mirror ``BEATsConfig`` (``encoder_layers``, ``encoder_embed_dim``, …); defaults are those of
the iter3 / iter3+ AS2M checkpoints. ``pretrained``: a ``.safetensors`` file (or a ``.pt`` checkpoint, read
with ``weights_only=True`` and converted to safetensors in the user cache) — nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.errors import ModelError
from engine.models import checkpoints
from engine.models.kaldi import fbank
from engine.models.registry import register_audio_backbone
from engine.models.segments import SegmentedBackbone, check_state

log = logging.getLogger(__name__)

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582


@dataclasses.dataclass(frozen=True)
class BeatsConfig:
    sample_rate: int = 32000
    segment_s: float = 10.0
    pretrained: str | None = None
    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    deep_norm: bool = True
    layer_norm_first: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    num_mel_bins: int = 128
    dropout: float = 0.0
    attention_dropout: float = 0.0

    #: Fields a checkpoint's own ``cfg`` must agree with (shapes do not reveal them).
    CHECKED = (
        "deep_norm",
        "layer_norm_first",
        "num_buckets",
        "max_distance",
        "gru_rel_pos",
        "relative_position_embedding",
    )

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> BeatsConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ModelError(f"unknown beats config keys {unknown}; known: {sorted(names)}")
        cfg = cls(**config)
        if cfg.encoder_embed_dim % cfg.encoder_attention_heads or cfg.deep_norm and cfg.layer_norm_first:
            raise ModelError(
                "beats: encoder_embed_dim must divide by the heads; deep_norm excludes layer_norm_first"
            )
        if cfg.num_mel_bins < cfg.input_patch_size or cfg.segment_s <= 0:
            raise ModelError("beats: need num_mel_bins >= input_patch_size and segment_s > 0")
        return cfg


class _WeightNormConv1d(nn.Module):
    """``nn.utils.weight_norm(conv, dim=2)`` with its parameter names (``weight_g``, ``weight_v``)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.groups = groups
        v = torch.empty(channels, channels // groups, kernel)
        nn.init.normal_(v, mean=0.0, std=math.sqrt(4.0 / (kernel * channels)))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _SelfAttention(nn.Module):
    def __init__(self, cfg: BeatsConfig, has_bias: bool) -> None:
        super().__init__()
        d, h = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.heads, self.head_dim = h, d // h
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.dropout = cfg.attention_dropout
        if has_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, h)
        self.gru_rel_pos = cfg.gru_rel_pos
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, h, 1, 1))

    def _buckets(self, rel: Tensor) -> Tensor:
        half = self.num_buckets // 2
        out = (rel > 0).to(torch.long) * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (
            torch.log(rel.float().clamp(min=1) / exact) / math.log(self.max_distance / exact) * (half - exact)
        ).to(torch.long)
        large = torch.clamp(large, max=half - 1)
        return out + torch.where(rel < exact, rel, large)

    def position_bias(self, length: int, device: torch.device) -> Tensor:
        """``Tensor[heads, L, L]`` bucketed relative position bias (float32)."""
        pos = torch.arange(length, device=device)
        return self.relative_attention_bias(self._buckets(pos[None, :] - pos[:, None])).permute(2, 0, 1)

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:  # x: [B, T, D]
        b, t, d = x.shape

        def split(z: Tensor) -> Tensor:
            return z.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        mask = None
        if bias is not None:
            mask = bias.unsqueeze(0).to(q.dtype)  # [1, H, T, T]
            if self.gru_rel_pos:
                gates = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)  # [B, H, T, 1] each
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * mask
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class _Layer(nn.Module):
    def __init__(self, cfg: BeatsConfig, has_bias: bool) -> None:
        super().__init__()
        d = cfg.encoder_embed_dim
        self.self_attn = _SelfAttention(cfg, has_bias)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0
        self.pre_norm = cfg.layer_norm_first
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), bias))
            return x + self.dropout(self.fc2(F.gelu(self.fc1(self.final_layer_norm(x)))))
        x = self.self_attn_layer_norm(x * self.alpha + self.dropout(self.self_attn(x, bias)))
        return self.final_layer_norm(x * self.alpha + self.dropout(self.fc2(F.gelu(self.fc1(x)))))


class _Encoder(nn.Module):
    def __init__(self, cfg: BeatsConfig) -> None:
        super().__init__()
        self.pos_conv = nn.ModuleDict(
            {"0": _WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups)}
        )
        self.trim = 1 if cfg.conv_pos % 2 == 0 else 0
        self.layers = nn.ModuleList(
            _Layer(cfg, has_bias=cfg.relative_position_embedding and i == 0)
            for i in range(cfg.encoder_layers)
        )
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.relative = cfg.relative_position_embedding
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:  # [B, T, D]
        y = self.pos_conv["0"](x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        x = x + F.gelu(y).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        bias = self.layers[0].self_attn.position_bias(x.shape[1], x.device) if self.relative else None
        for layer in self.layers:
            x = layer(x, bias)
        return self.layer_norm(x) if self.layer_norm_first else x


@register_audio_backbone("beats")
class BeatsBackbone(SegmentedBackbone):
    """BEATs: ``forward(wave [B, S] at sample_rate) -> Tensor[B, encoder_embed_dim]``."""

    net_rate = 16000

    def __init__(self, config: BeatsConfig) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.segment_s = config.segment_s
        self.out_dim = config.encoder_embed_dim
        p = config.input_patch_size
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, kernel_size=p, stride=p, bias=config.conv_bias)
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        self.encoder = _Encoder(config)
        self._init()

    def _init(self) -> None:
        for m in self.encoder.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BeatsBackbone:
        """Random weights, no I/O."""
        return cls(BeatsConfig.from_dict(config))

    def features(self, segments: Tensor) -> Tensor:
        """Normalised fbank ``Tensor[M, frames, mel]`` of 16 kHz segments ``Tensor[M, samples]``."""
        feats = fbank(segments * 2**15, num_mel_bins=self.config.num_mel_bins, window_type="povey")
        return (feats - FBANK_MEAN) / (2 * FBANK_STD)

    def tokens(self, feats: Tensor) -> Tensor:
        """Encoder output ``Tensor[M, patches, D]`` for features ``Tensor[M, frames, mel]``."""
        x = self.patch_embedding(feats.unsqueeze(1))  # [M, E, T/16, mel/16]
        x = self.layer_norm(x.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)

    def embed_segments(self, segments: Tensor) -> Tensor:
        with torch.no_grad():
            feats = self.features(segments)
        return self.tokens(feats).mean(dim=1)

    # -- weights --------------------------------------------------------------------------------------

    def load_pretrained(
        self, config: Mapping[str, Any] | None = None, bundle_dir: Path | None = None
    ) -> None:
        """Load ``config["pretrained"]`` (a ``.safetensors`` or ``.pt`` file; relative paths inside
        ``bundle_dir``). ``None`` keeps the random weights."""
        cfg = self.config if config is None else BeatsConfig.from_dict(config)
        if cfg.pretrained is None:
            return
        path = Path(cfg.pretrained).expanduser()
        if not path.is_absolute() and bundle_dir is not None:
            path = Path(bundle_dir) / path
        if path.suffix in checkpoints.PT_SUFFIXES and path.is_file():
            path = _converted(path)
        state, ckpt_cfg = checkpoints.read_weights(path, "BEATs")
        self.load_backbone_state(state, ckpt_cfg)
        log.info("beats: loaded weights from %s", path)

    def load_backbone_state(
        self, state: Mapping[str, Tensor], ckpt_cfg: Mapping[str, Any] | None = None
    ) -> None:
        """Load an official BEATs state dict: the fine-tuned classifier (``predictor.*``) is dropped and
        the relative-position table, stored once per layer in the release, is taken from layer 0."""
        for key in BeatsConfig.CHECKED:
            if ckpt_cfg and key in ckpt_cfg and ckpt_cfg[key] != getattr(self.config, key):
                raise ModelError(
                    f"beats: the checkpoint has {key} = {ckpt_cfg[key]!r}, the config {getattr(self.config, key)!r}"
                )
        own = self.state_dict()
        keep = {}
        for k, v in state.items():
            if k.startswith("predictor."):
                continue
            if ".self_attn.relative_attention_bias." in k and not k.startswith("encoder.layers.0."):
                continue
            keep[k] = v
        check_state(own, keep, "BEATs")
        self.load_state_dict(keep)


def _converted(path: Path) -> Path:
    import platformdirs

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = Path(platformdirs.user_cache_dir("earshot")) / "beats" / f"{path.stem}-{key}.safetensors"
    if not target.is_file():
        checkpoints.convert(path, target)
    return target


__all__ = ["BeatsBackbone", "BeatsConfig"]

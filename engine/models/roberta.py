"""RoBERTa text backbone (registered ``"roberta"``): the text tower of the full (DCASE 2025 Task 6) recipe.

``encode(texts) -> Tensor[B, hidden]`` tokenises (truncating to ``max_tokens``, 32 in the recipe), runs a
``transformers`` RoBERTa without its pooler and pools the last hidden states (``"cls"``: the ``<s>`` token,
as the recipe; or ``"mean"``: mean over real tokens). Captions are passed as given: normalisation (the
recipe lower-cases and strips punctuation) is the bundle's business, applied before ``encode``.

Weights and tokenizer (``config["pretrained"]``): a local folder written by ``save_pretrained`` first; a
Hugging Face hub name (``"roberta-large"``) is read from the local Hugging Face cache, and downloaded only
when ``allow_network`` is true. ``transformers`` is imported inside methods, so importing this module is
cheap.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.errors import ModelError
from engine.models.registry import register_text_backbone

logger = logging.getLogger(__name__)

_ROBERTA_COMMON = {
    "vocab_size": 50265,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
#: Architecture of the public checkpoints, so ``from_config`` can build them without reading any file.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "roberta-base": {
        **_ROBERTA_COMMON,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "roberta-large": {
        **_ROBERTA_COMMON,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
}
KNOWN_MODELS["FacebookAI/roberta-base"] = KNOWN_MODELS["roberta-base"]
KNOWN_MODELS["FacebookAI/roberta-large"] = KNOWN_MODELS["roberta-large"]


def _cls_pool(hidden: Tensor, _mask: Tensor) -> Tensor:
    return hidden[:, 0]


def _mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


#: Pooling name -> ``f(last_hidden: Tensor[B, T, H], attention_mask: Tensor[B, T]) -> Tensor[B, H]``.
POOLINGS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"cls": _cls_pool, "mean": _mean_pool}


@dataclasses.dataclass(frozen=True)
class RobertaBackboneConfig:
    """Configuration of the ``roberta`` backbone; ``to_dict()`` is what a bundle stores.

    ``pretrained``: local folder or hub name (weights, tokenizer and architecture). ``tokenizer``: optional
    separate tokenizer folder (relative paths are taken inside the bundle; a bundle's ``tokenizer/`` folder
    is used when present). ``model_config``: optional ``RobertaConfig`` fields, to build the architecture
    without reading ``pretrained``. ``dropout``: optional hidden and attention dropout for fine-tuning
    (the recipe uses 0.2).
    """

    pretrained: str = "roberta-large"
    max_tokens: int = 32
    pooling: str = "cls"
    allow_network: bool = False
    tokenizer: str | None = None
    model_config: dict[str, Any] | None = None
    dropout: float | None = None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RobertaBackboneConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ModelError(f"unknown roberta config keys {unknown}; known: {sorted(names)}")
        cfg = cls(**config)
        if cfg.pooling not in POOLINGS:
            raise ModelError(f"unknown RoBERTa pooling {cfg.pooling!r}; choose one of {sorted(POOLINGS)}")
        if cfg.max_tokens < 3:
            raise ModelError("RoBERTa max_tokens must leave room for <s>, a token and </s> (at least 3)")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def dropout_overrides(self) -> dict[str, float]:
        if self.dropout is None:
            return {}
        return {"hidden_dropout_prob": self.dropout, "attention_probs_dropout_prob": self.dropout}


def _local_dir(name: str, bundle_dir: Path | None) -> Path | None:
    """The folder ``name`` points to, or ``None`` for a hub name. Raises when a path-like name is missing."""
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() or bundle_dir is None else [Path(bundle_dir) / path, path]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if path.is_absolute() or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1:
        raise ModelError(f"RoBERTa folder not found: {candidates[0]}")
    return None


def _offline_message(what: str, name: str) -> str:
    return (
        f"The RoBERTa {what} '{name}' is not on this computer (not in the Hugging Face cache) and "
        "downloading is not allowed. Allow network access once, or download it with "
        f"`huggingface-cli download {name} --local-dir DIR` and set 'pretrained' to DIR."
    )


@register_text_backbone("roberta")
class RobertaBackbone(nn.Module):
    """RoBERTa text backbone: ``encode(list[str]) -> Tensor[B, out_dim]`` float32, ``out_dim`` = hidden size.

    Attributes: ``config`` (a :class:`RobertaBackboneConfig`), ``model`` (a ``transformers``
    ``RobertaModel`` without pooler), ``out_dim``, ``max_tokens``.
    """

    def __init__(self, config: RobertaBackboneConfig, model: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.out_dim = int(model.config.hidden_size)
        self.max_tokens = config.max_tokens
        self._pool = POOLINGS[config.pooling]
        self._tokenizer: Any = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RobertaBackbone:
        """Random weights, no download. The architecture comes from ``model_config``, the table of known
        hub names, or (only reading a small JSON file) ``config.json`` of a local ``pretrained`` folder."""
        from transformers import AutoConfig, AutoModel, RobertaConfig

        cfg = RobertaBackboneConfig.from_dict(config)
        if cfg.model_config is not None:
            arch = RobertaConfig(**cfg.model_config)
        elif cfg.pretrained in KNOWN_MODELS:
            arch = RobertaConfig(**KNOWN_MODELS[cfg.pretrained])
        else:
            folder = _local_dir(cfg.pretrained, None)
            if folder is None:
                raise ModelError(
                    f"Unknown RoBERTa model {cfg.pretrained!r}: give 'model_config' or a local folder; "
                    f"known names: {sorted(KNOWN_MODELS)}"
                )
            try:
                arch = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise ModelError(f"{folder} is not a RoBERTa model folder: {exc}") from exc
        for key, value in cfg.dropout_overrides().items():
            setattr(arch, key, value)
        return cls(cfg, AutoModel.from_config(arch, add_pooling_layer=False))

    # ------------------------------------------------------------------------------------------ weights
    def load_pretrained(
        self, config: Mapping[str, Any] | None = None, bundle_dir: Path | None = None
    ) -> None:
        """Replace the weights and tokenizer with those named by ``config["pretrained"]``.

        A local folder (relative paths are taken inside ``bundle_dir`` first) or a hub name, read from the
        local cache unless ``allow_network``. Raises :class:`ModelError` when they cannot be found or do not
        fit the configured hidden size.
        """
        from transformers import AutoModel

        cfg = self.config if config is None else RobertaBackboneConfig.from_dict(config)
        source, local_only = self._source(cfg.pretrained, cfg.allow_network, bundle_dir)
        try:
            model = AutoModel.from_pretrained(
                source, local_files_only=local_only, add_pooling_layer=False, **cfg.dropout_overrides()
            )
        except OSError as exc:
            if local_only and not Path(source).is_dir():
                raise ModelError(_offline_message("model", cfg.pretrained)) from exc
            raise ModelError(f"Cannot load RoBERTa weights from {source}: {exc}") from exc
        if int(model.config.hidden_size) != self.out_dim:
            raise ModelError(
                f"RoBERTa weights {source} have hidden size {model.config.hidden_size}, "
                f"the configured architecture {self.out_dim}"
            )
        device = next(self.model.parameters()).device
        self.model = model.to(device).train(self.training)
        self._tokenizer = self._load_tokenizer(cfg, bundle_dir)
        logger.info("roberta: loaded %s", source)

    @staticmethod
    def _source(name: str, allow_network: bool, bundle_dir: Path | None) -> tuple[str, bool]:
        folder = _local_dir(name, bundle_dir)
        return (str(folder), True) if folder is not None else (name, not allow_network)

    @staticmethod
    def _load_tokenizer(cfg: RobertaBackboneConfig, bundle_dir: Path | None) -> Any:
        from transformers import AutoTokenizer

        if cfg.tokenizer is not None:
            source, local_only = RobertaBackbone._source(cfg.tokenizer, cfg.allow_network, bundle_dir)
        elif bundle_dir is not None and (Path(bundle_dir) / "tokenizer").is_dir():
            source, local_only = str(Path(bundle_dir) / "tokenizer"), True
        else:
            source, local_only = RobertaBackbone._source(cfg.pretrained, cfg.allow_network, bundle_dir)
        try:
            return AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            if local_only and not Path(source).is_dir():
                raise ModelError(_offline_message("tokenizer", source)) from exc
            raise ModelError(f"Cannot load the RoBERTa tokenizer from {source}: {exc}") from exc

    @property
    def tokenizer(self) -> Any:
        """The ``transformers`` tokenizer, loaded on first use from the configured source (no bundle)."""
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer(self.config, None)
        return self._tokenizer

    # ------------------------------------------------------------------------------------------ compute
    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """``texts`` -> ``{"input_ids", "attention_mask"}``: ``Tensor[B, T]`` int64 with ``T <= max_tokens``
        (``<s> … </s>``, truncated, right-padded to the longest text), on the model's device."""
        if isinstance(texts, str):
            raise ModelError("RoBERTa tokenize expects a list of texts, not one string")
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
            return_token_type_ids=False,
        )
        device = next(self.model.parameters()).device
        return {
            "input_ids": batch["input_ids"].to(device),
            "attention_mask": batch["attention_mask"].to(device),
        }

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``input_ids``, ``attention_mask``: ``Tensor[B, T]`` int64 -> pooled ``Tensor[B, out_dim]`` float32."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self._pool(hidden, attention_mask)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Tokenise and embed: ``list[str]`` of length B -> ``Tensor[B, out_dim]`` (gradients as the caller's
        context decides; wrap in ``torch.inference_mode()`` to search)."""
        if len(texts) == 0:
            return torch.zeros(0, self.out_dim, device=next(self.model.parameters()).device)
        return self(**self.tokenize(texts))


__all__ = ["KNOWN_MODELS", "POOLINGS", "RobertaBackbone", "RobertaBackboneConfig"]

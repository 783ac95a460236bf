"""The dual encoder that training optimises, built from the engine's registry (never re-implemented).

:class:`DualEncoder` = audio side (a trainable backbone, or cached features of a frozen one) → projection
head, and text side likewise, into one L2-normalised space of ``embed_dim``; optional cluster heads
(stage 3). Backbones and heads come from ``engine.models.registry`` so the exported bundle rebuilds
exactly these modules. A run directory stores the trained parts as ``model.safetensors`` (heads, trainable
backbones, cluster heads) beside ``recipe.toml``; frozen backbones are rebuilt from their config.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.errors import ModelError
from training.config import Recipe, load_run_recipe

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"


class ClusterHead(nn.Module):
    """Cluster classifier ``Tensor[B, in_dim] -> logits Tensor[B, n_clusters]``: Linear(in, 3·in) → ReLU →
    Linear(3·in, n_clusters), as in the seed system."""

    def __init__(self, in_dim: int, n_clusters: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, 3 * in_dim), nn.ReLU(), nn.Linear(3 * in_dim, n_clusters))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass(frozen=True)
class HeadSpec:
    """A head's registry architecture and resolved config (``in_dim``/``out_dim`` included)."""

    arch: str
    config: dict


class DualEncoder(nn.Module):
    """``forward(batch) -> {"audio", "audio_mask", "text", "audio_logits"?, "text_logits"?}``.

    Batch keys (audio, one of): ``"wave"`` float32 ``[B, S]`` at the model's rate (trainable audio
    backbone) or ``"audio_feats"`` float32 ``[B, W, F]`` + ``"audio_mask"`` bool ``[B, W]`` (cached
    features, ``W`` windows). Text, one of: ``"tokens"`` (the text backbone's ``tokenize`` output) or
    ``"text_feats"`` float32 ``[B, F]``. Outputs: ``"audio"`` L2-normalised ``[B, W, D]`` (``W`` = 1 for
    waves), ``"text"`` L2-normalised ``[B, D]``, cluster logits ``[B, K]`` when the model has cluster heads
    (audio: from the mean of its window projections).
    """

    def __init__(
        self,
        audio_head: tuple[HeadSpec, nn.Module],
        text_head: tuple[HeadSpec, nn.Module],
        audio_backbone: nn.Module | None = None,
        text_backbone: nn.Module | None = None,
        n_clusters: int = 0,
    ) -> None:
        super().__init__()
        self.audio_head_spec, self.audio_head = audio_head
        self.text_head_spec, self.text_head = text_head
        self.audio_backbone = audio_backbone
        self.text_backbone = text_backbone
        self.embed_dim = int(self.audio_head_spec.config["out_dim"])
        self.n_clusters = int(n_clusters)
        self.cluster_audio = ClusterHead(self.embed_dim, n_clusters) if n_clusters else None
        self.cluster_text = ClusterHead(self.embed_dim, n_clusters) if n_clusters else None

    @property
    def audio_in(self) -> int:
        return int(self.audio_head_spec.config["in_dim"])

    @property
    def text_in(self) -> int:
        return int(self.text_head_spec.config["in_dim"])

    def project_audio(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Unnormalised projections ``[B, W, D]`` and the window mask ``[B, W]``."""
        if "wave" in batch:
            if self.audio_backbone is None:
                raise ModelError("this model has no trainable audio backbone; pass cached 'audio_feats'")
            z = self.audio_head(self.audio_backbone(batch["wave"])).unsqueeze(1)
            return z, torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
        feats = batch["audio_feats"]
        b, w, f = feats.shape
        z = self.audio_head(feats.reshape(b * w, f)).reshape(b, w, -1)
        return z, batch["audio_mask"]

    def project_text(self, batch: dict[str, Any]) -> Tensor:
        if "tokens" in batch:
            if self.text_backbone is None:
                raise ModelError("this model has no trainable text backbone; pass cached 'text_feats'")
            return self.text_head(self.text_backbone(**batch["tokens"]))
        return self.text_head(batch["text_feats"])

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        za, mask = self.project_audio(batch)
        zt = self.project_text(batch)
        out = {
            "audio": F.normalize(za.float(), dim=-1),
            "audio_mask": mask,
            "text": F.normalize(zt.float(), dim=-1),
        }
        if self.cluster_audio is not None and self.cluster_text is not None:
            m = mask.unsqueeze(-1).to(za.dtype)
            clip = (za * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
            out["audio_logits"] = self.cluster_audio(clip)
            out["text_logits"] = self.cluster_text(zt)
        return out


def head_spec(recipe_head: Any, in_dim: int, out_dim: int) -> HeadSpec:
    return HeadSpec(recipe_head.arch, {**recipe_head.config, "in_dim": int(in_dim), "out_dim": int(out_dim)})


def create_model(
    recipe: Recipe,
    *,
    audio_in: int,
    text_in: int,
    audio_backbone: nn.Module | None = None,
    text_backbone: nn.Module | None = None,
    n_clusters: int = 0,
    seed: int | None = None,
) -> DualEncoder:
    """A fresh :class:`DualEncoder` (heads randomly initialised from ``seed``, default ``train.seed``)."""
    from engine.models.registry import build_head

    m = recipe.model
    a_spec = head_spec(m.audio_head, audio_in, m.embed_dim)
    t_spec = head_spec(m.text_head, text_in, m.embed_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train.seed if seed is None else seed)
        a_head = build_head(a_spec.arch, a_spec.config)
        t_head = build_head(t_spec.arch, t_spec.config)
        model = DualEncoder((a_spec, a_head), (t_spec, t_head), audio_backbone, text_backbone, n_clusters)
    return model


def save_safetensors(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``state`` to ``path`` (atomic) as :func:`engine.models.checkpoints.safetensors_bytes` lays it
    out: the metadata keys sorted, so that one state gives one file, byte for byte."""
    from engine.models.checkpoints import safetensors_bytes

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(safetensors_bytes(state, metadata))
    tmp.replace(path)


def save_model(model: DualEncoder, path: str | Path) -> None:
    """Write the model's weights (safetensors) with the dims needed to rebuild it; atomic and byte-reproducible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "n_clusters": str(model.n_clusters),
        "audio_in": str(model.audio_in),
        "text_in": str(model.text_in),
    }
    save_safetensors(state, path, meta)


def read_model_meta(path: str | Path) -> dict[str, int]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    return {k: int(v) for k, v in meta.items()}


def load_state_into(model: nn.Module, path: str | Path, *, strict: bool = True) -> None:
    """Load a ``model.safetensors`` into ``model`` (``strict=False`` tolerates cluster heads coming and going)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("cluster_audio.", "cluster_text."))]
    unexpected = [k for k in unexpected if not k.startswith(("cluster_audio.", "cluster_text."))]
    if strict and (missing or unexpected):
        raise ModelError(
            f"weights {path} do not fit the recipe's model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def build_trainable_backbones(
    recipe: Recipe, *, pretrained: bool = True
) -> tuple[nn.Module | None, nn.Module | None]:
    """The recipe's trainable backbones (``None`` for frozen sides), with pretrained weights when asked."""
    from training.features import build_backbone

    m = recipe.model
    audio = (
        build_backbone("audio", m.audio_backbone, pretrained=pretrained)
        if m.audio_backbone.trainable
        else None
    )
    text = (
        build_backbone("text", m.text_backbone, pretrained=pretrained) if m.text_backbone.trainable else None
    )
    if audio is not None and int(getattr(audio, "sample_rate", m.sample_rate)) != m.sample_rate:
        raise ModelError(
            f"the audio backbone runs at {audio.sample_rate} Hz but model.sample_rate is {m.sample_rate}"
        )
    return audio, text


@dataclass
class Run:
    """A finished training run: its directory, recipe and model (on CPU, eval mode)."""

    path: Path
    recipe: Recipe
    model: DualEncoder


def load_run(run_dir: str | Path) -> Run:
    """Rebuild a run's model from ``recipe.toml`` + ``model.safetensors``."""
    run_dir = Path(run_dir)
    recipe = load_run_recipe(run_dir)
    weights = run_dir / MODEL_FILE
    if not weights.is_file():
        raise ModelError(f"{run_dir} has no {MODEL_FILE}: its training has not finished")
    meta = read_model_meta(weights)
    audio_bb, text_bb = build_trainable_backbones(recipe, pretrained=False)
    model = create_model(
        recipe,
        audio_in=meta["audio_in"],
        text_in=meta["text_in"],
        audio_backbone=audio_bb,
        text_backbone=text_bb,
        n_clusters=meta.get("n_clusters", 0),
    )
    load_state_into(model, weights)
    return Run(run_dir, recipe, model.eval())


def write_json(path: str | Path, doc: Any) -> None:
    """Write JSON atomically (indent 2)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)

"""Write torch modules out as a bundle (the only writer of bundles; training's export step calls it)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save

import engine
from engine.bundle import Bundle, write_bundle


@dataclass
class BackboneSpec:
    """A backbone entry. ``module`` is saved to ``<name>.safetensors`` when given (trained or converted
    weights); with ``module=None`` the architecture loads its own pretrained weights (``config['pretrained']``)."""

    arch: str
    config: dict
    module: torch.nn.Module | None = None


@dataclass
class HeadSpec:
    arch: str
    config: dict
    module: torch.nn.Module


@dataclass
class MemberSpec:
    name: str
    weight: float
    audio_backbone: str
    text_backbone: str
    audio_head: HeadSpec
    text_head: HeadSpec
    dim: int = field(init=False)

    def __post_init__(self) -> None:
        self.dim = int(self.audio_head.config["out_dim"])
        if int(self.text_head.config["out_dim"]) != self.dim:
            raise ValueError(f"member {self.name}: audio and text heads differ in out_dim")


def _state_bytes(state: dict[str, torch.Tensor], fp16: bool, metadata: dict[str, str] | None = None) -> bytes:
    out = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        if fp16 and v.is_floating_point():
            v = v.half()
        out[k] = v
    return save(out, metadata=metadata)


def save_bundle(
    dest: str | Path,
    *,
    name: str,
    version: str,
    description: str,
    trained: bool,
    sample_rate: int,
    window_s: float,
    hop_s: float,
    audio_backbones: dict[str, BackboneSpec],
    text_backbones: dict[str, BackboneSpec],
    members: list[MemberSpec],
    text_normalisation: dict | None = None,
    training: dict | None = None,
    model_card: str | None = None,
    fp16: bool = True,
    overwrite: bool = False,
    extra_files: dict[str, bytes | Path] | None = None,
) -> Bundle:
    """Serialise backbones and heads to safetensors and write an atomic bundle directory.

    Member weights are renormalised to sum to 1. Backbone weights, when saved, go in
    ``<audio|text>_<backbone name>.safetensors``; all heads go in ``heads.safetensors`` under ``<member>.audio.*`` /
    ``<member>.text.*``.
    """
    files: dict[str, bytes | Path] = dict(extra_files or {})

    def backbone_entries(side: str, specs: dict[str, BackboneSpec]) -> dict[str, dict]:
        entries = {}
        for bname, spec in specs.items():
            entry: dict = {"arch": spec.arch, "config": spec.config}
            if spec.module is not None:
                fname = f"{side}_{bname}.safetensors"
                files[fname] = _state_bytes(spec.module.state_dict(), fp16)
                entry["weights"] = fname
            entries[bname] = entry
        return entries

    total_w = sum(m.weight for m in members)
    heads: dict[str, torch.Tensor] = {}
    member_entries = []
    for m in members:
        for side, head in (("audio", m.audio_head), ("text", m.text_head)):
            for k, v in head.module.state_dict().items():
                heads[f"{m.name}.{side}.{k}"] = v
        member_entries.append(
            {
                "name": m.name,
                "weight": m.weight / total_w,
                "dim": m.dim,
                "audio_backbone": m.audio_backbone,
                "text_backbone": m.text_backbone,
                "audio_head": {"arch": m.audio_head.arch, "config": m.audio_head.config},
                "text_head": {"arch": m.text_head.arch, "config": m.text_head.config},
                "weights": "heads.safetensors",
                "prefix": f"{m.name}.",
            }
        )
    files["heads.safetensors"] = _state_bytes(heads, fp16)
    spec = {
        "name": name,
        "version": version,
        "description": description,
        "trained": trained,
        "dim": sum(m.dim for m in members),
        "audio": {
            "sample_rate": int(sample_rate),
            "window_s": float(window_s),
            "hop_s": float(hop_s),
            "backbones": backbone_entries("audio", audio_backbones),
        },
        "text": {
            "normalisation": text_normalisation
            or {"lowercase": True, "collapse_whitespace": True, "max_chars": 512},
            "backbones": backbone_entries("text", text_backbones),
        },
        "members": member_entries,
        "training": training or {},
        "created_with": {
            "engine": engine.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    return write_bundle(dest, spec, files, model_card=model_card, overwrite=overwrite)

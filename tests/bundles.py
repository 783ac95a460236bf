"""Tiny random-weight bundles for engine tests (no files needed, built in milliseconds)."""

from __future__ import annotations

from pathlib import Path

from engine.export import BackboneSpec, HeadSpec, MemberSpec, save_bundle
from engine.models.registry import build_audio_backbone, build_head, build_text_backbone

TINY_SR = 16000


def make_tiny_bundle(
    dest: Path,
    *,
    members: int = 2,
    dim: int = 16,
    window_s: float = 1.0,
    hop_s: float = 0.5,
    weights: list[float] | None = None,
    seed: int = 0,
    name: str = "tiny-test",
    version: str = "0.0.1",
    head_seed: int | None = None,
) -> Path:
    """``seed`` makes the backbones (and, unless ``head_seed`` is given, the heads): two bundles with the same
    ``seed`` and different ``head_seed`` share their backbones (stored features serve both)."""
    audio_cfg = {"sample_rate": TINY_SR, "out_dim": 32, "seed": seed}
    text_cfg = {"out_dim": 32, "seed": seed}
    audio = build_audio_backbone("tiny_test", audio_cfg)
    text = build_text_backbone("tiny_test", text_cfg)
    specs = []
    for i in range(members):
        a_cfg = {"in_dim": 32, "out_dim": dim}
        t_cfg = {"in_dim": 32, "out_dim": dim}
        import torch

        torch.manual_seed((seed if head_seed is None else head_seed) * 100 + i)
        specs.append(
            MemberSpec(
                name=f"m{i}",
                weight=(weights[i] if weights else 1.0),
                audio_backbone="tiny",
                text_backbone="tiny",
                audio_head=HeadSpec("linear", a_cfg, build_head("linear", a_cfg)),
                text_head=HeadSpec("linear", t_cfg, build_head("linear", t_cfg)),
            )
        )
    save_bundle(
        dest,
        name=name,
        version=version,
        description="random tiny test bundle",
        trained=False,
        sample_rate=TINY_SR,
        window_s=window_s,
        hop_s=hop_s,
        audio_backbones={"tiny": BackboneSpec("tiny_test", audio_cfg, audio)},
        text_backbones={"tiny": BackboneSpec("tiny_test", text_cfg, text)},
        members=specs,
        fp16=False,
    )
    return dest

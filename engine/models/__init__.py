"""Neural architectures behind one registry. Importing this package imports torch."""

from __future__ import annotations

from engine.models.registry import (
    AUDIO_BACKBONES,
    HEADS,
    TEXT_BACKBONES,
    build_audio_backbone,
    build_head,
    build_text_backbone,
    load_architectures,
)

__all__ = [
    "AUDIO_BACKBONES",
    "HEADS",
    "TEXT_BACKBONES",
    "build_audio_backbone",
    "build_head",
    "build_text_backbone",
    "load_architectures",
]

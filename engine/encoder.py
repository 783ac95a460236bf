"""Turn audio windows and text queries into fused ensemble vectors (DESIGN §3).

With L2-normalised member vectors ``a_i``, ``t_i`` and weights ``w_i`` (Σw = 1) the fused vectors are
``[√w_1·a_1, …, √w_n·a_n]`` and ``[√w_1·t_1, …, √w_n·t_n]``: their inner product is exactly the ensemble
score ``Σ w_i·cos(a_i, t_i)``, so one HNSW index (space ``ip``) searches the ensemble in one pass.
Each backbone runs once per batch however many members use it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from engine.bundle import Bundle
from engine.errors import ModelError
from engine.models.device import choose_device
from engine.models.registry import build_audio_backbone, build_head, build_text_backbone
from engine.text_encoder import normalise_text, normalised_queries

__all__ = ["PRECISIONS", "Encoder", "choose_precision", "normalise_text"]

log = logging.getLogger(__name__)


def _load_state(bundle: Bundle, filename: str, prefix: str = "") -> dict[str, torch.Tensor]:
    try:
        state = load_file(str(bundle.file(filename)))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"cannot read weights {filename} of bundle {bundle.name}: {exc}") from exc
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def _build_backbone(kind: str, entry: dict, bundle: Bundle) -> torch.nn.Module:
    build = build_audio_backbone if kind == "audio" else build_text_backbone
    module = build(entry["arch"], entry.get("config", {}))
    if entry.get("weights"):
        missing, unexpected = module.load_state_dict(_load_state(bundle, entry["weights"]), strict=False)
        if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
            raise ModelError(
                f"weights {entry['weights']} do not fit {entry['arch']}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
    elif hasattr(module, "load_pretrained"):
        module.load_pretrained(entry.get("config", {}), bundle.path)
    return module


PRECISIONS = ("auto", "fp32", "bf16")


def _cpu_has_native_bf16() -> bool:
    checks = [getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None)]
    return any(bool(c()) for c in checks if c is not None)


def choose_precision(device: torch.device, preference: str | None = None) -> str:
    """Arithmetic of the audio backbones: ``bf16`` autocast on CPUs with native bf16 (AVX512-BF16/AMX) and
    on CUDA, else ``fp32``. ``$EARSHOT_PRECISION`` or ``preference`` overrides ``auto``. Measured on real
    Debian sound effects with aiSFX: centred cosine to fp32 ≥ 0.999 (mean 0.9997), 98.6 % of each clip's
    10 nearest neighbours unchanged, 1.6–2.5× faster on a 2-core AVX512-BF16 CPU."""
    pref = (preference or os.environ.get("EARSHOT_PRECISION") or "auto").lower()
    if pref not in PRECISIONS:
        raise ModelError(f"unknown precision {pref!r}; use one of {', '.join(PRECISIONS)}")
    if pref != "auto":
        return pref
    if device.type == "cuda" or (device.type == "cpu" and _cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


class Encoder:
    """Loads a bundle's networks (lazily: the text side only when text is embedded, the audio side only
    when audio is) and produces fused, normalised float32 vectors of ``bundle.dim`` dimensions."""

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None) -> None:
        self.bundle = bundle
        self.device = choose_device(device)
        self.precision = choose_precision(self.device, precision)
        self._audio: dict[str, torch.nn.Module] | None = None
        self._text: dict[str, torch.nn.Module] | None = None
        self._heads: dict[tuple[str, str], torch.nn.Module] = {}
        self.members = bundle.members
        self._scale = [math.sqrt(m.weight) for m in self.members]

    # -- loading ----------------------------------------------------------------------------------

    def _heads_for(self, side: str) -> None:
        for m in self.members:
            spec = m.audio_head if side == "audio" else m.text_head
            head = build_head(spec["arch"], spec.get("config", {}))
            if m.weights:
                state = _load_state(self.bundle, m.weights, f"{m.prefix}{side}.")
                try:
                    head.load_state_dict(state)
                except RuntimeError as exc:
                    raise ModelError(f"head weights of member {m.name} do not fit: {exc}") from exc
            self._heads[(m.name, side)] = head.eval().to(self.device)

    def heads(self, side: str) -> dict[str, torch.nn.Module]:
        """``{member name: head module}`` of one side (``"audio"`` | ``"text"``), loaded without backbones."""
        if not any(s == side for _, s in self._heads):
            self._heads_for(side)
        return {m.name: self._heads[(m.name, side)] for m in self.members}

    def _load(self, side: str) -> dict[str, torch.nn.Module]:
        entries = self.bundle.audio_backbones if side == "audio" else self.bundle.text_backbones
        needed = {m.audio_backbone if side == "audio" else m.text_backbone for m in self.members}
        modules = {}
        for name, entry in entries.items():
            if name in needed:
                module = _build_backbone(side, entry, self.bundle).eval().to(self.device)
                # An architecture may offer a faster inference form for this precision (channels-last,
                # BatchNorms folded in fp32).
                if hasattr(module, "for_inference"):
                    module = module.for_inference(self.precision)
                modules[name] = module
        self._heads_for(side)
        return modules

    @property
    def audio_backbones(self) -> dict[str, torch.nn.Module]:
        if self._audio is None:
            self._audio = self._load("audio")
        return self._audio

    @property
    def text_backbones(self) -> dict[str, torch.nn.Module]:
        if self._text is None:
            self._text = self._load("text")
        return self._text

    # -- embedding --------------------------------------------------------------------------------

    def _fuse(self, side: str, features: dict[str, torch.Tensor]) -> np.ndarray:
        parts = []
        for m, scale in zip(self.members, self._scale, strict=True):
            bb = m.audio_backbone if side == "audio" else m.text_backbone
            z = self._heads[(m.name, side)](features[bb])
            parts.append(F.normalize(z.float(), dim=-1) * scale)
        return torch.cat(parts, dim=-1).cpu().numpy().astype(np.float32, copy=False)

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """``windows``: float32 (n, samples) mono at ``bundle.sample_rate`` → float32 (n, bundle.dim)."""
        return self.embed_audio_features(windows)[0]

    @torch.inference_mode()
    def embed_audio_features(self, windows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`embed_audio` plus each audio backbone's output ``{name: float32 (n, F)}`` (what the
        library stores so that another bundle over the same backbone re-projects without decoding)."""
        if len(windows) == 0:
            return np.zeros((0, self.bundle.dim), np.float32), {}
        wave = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        with self._autocast():
            feats = {name: bb(wave).float() for name, bb in self.audio_backbones.items()}
        return self._fuse("audio", feats), {k: v.cpu().numpy() for k, v in feats.items()}

    @torch.inference_mode()
    def project_audio(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Stored backbone features ``{backbone name: float32 (n, F)}`` → fused vectors float32 (n, dim),
        without running any backbone (the heads only)."""
        self.heads("audio")
        feats = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(self.device)
                 for k, v in features.items()}
        return self._fuse("audio", feats)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Normalise and embed queries → float32 (n, bundle.dim). Raises :class:`QueryError` for an empty one."""
        return self.embed_text_and_features(texts)[0]

    @torch.inference_mode()
    def embed_text_and_features(self, texts: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`embed_text` plus each text backbone's raw output ``{name: float32 (n, out_dim)}`` (what
        the name encoder reuses when it is the same network: one forward pass for both spaces)."""
        clean = normalised_queries(self.bundle, texts)
        feats: dict[str, Any] = {name: bb.encode(clean).to(self.device) for name, bb in self.text_backbones.items()}
        raw = {k: v.float().cpu().numpy() for k, v in feats.items()}
        return self._fuse("text", feats), raw

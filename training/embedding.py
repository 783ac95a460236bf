"""Embed clips and captions with a trained :class:`~training.model.DualEncoder` (evaluation, teacher).

Audio representations (``mode``):

* ``"windows"`` — every window the engine would index (``iter_windows`` with the recipe's sample rate,
  window and hop), one row each: a clip scores as its best window, as search does;
* ``"clip"`` — one row per clip: the whole clip (up to ``data.max_audio_s``) through a trainable backbone,
  or the mean window features of a frozen one (the DCASE protocol);
* ``"train"`` — what the loss saw: ``"clip"`` for a trainable audio backbone; for a frozen one
  ``"clip"`` under ``clip_pooling = "mean"``, else ``"windows"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engine.audio import frame, iter_windows
from engine.errors import AudioError
from training.config import Recipe
from training.data.readers import Clip
from training.features import AudioStore, FrozenBackbone
from training.model import DualEncoder

log = logging.getLogger(__name__)

MODES = ("windows", "clip", "train")


class Embedder:
    """Normalised float32 embeddings of texts and clips; frozen backbones go through the feature cache."""

    def __init__(
        self,
        recipe: Recipe,
        model: DualEncoder,
        device: torch.device | str = "cpu",
        *,
        frozen_audio: FrozenBackbone | None = None,
        frozen_text: FrozenBackbone | None = None,
        audio_store: AudioStore | None = None,
    ) -> None:
        self.recipe = recipe
        self.model = model
        self.device = torch.device(device)
        self.batch = recipe.eval.batch
        self._frozen_audio = frozen_audio
        self._frozen_text = frozen_text
        self._audio_store = audio_store

    # -- frozen backbones and audio, built on first use -----------------------------------------------

    @property
    def frozen_audio(self) -> FrozenBackbone:
        if self._frozen_audio is None:
            m = self.recipe.model
            self._frozen_audio = FrozenBackbone(
                "audio",
                m.audio_backbone,
                Path(self.recipe.cache.dir),
                sample_rate=m.sample_rate,
                window_s=m.window_s,
                hop_s=m.hop_s,
                device=self.device,
                batch=self.batch,
            )
        return self._frozen_audio

    @property
    def frozen_text(self) -> FrozenBackbone:
        if self._frozen_text is None:
            self._frozen_text = FrozenBackbone(
                "text",
                self.recipe.model.text_backbone,
                Path(self.recipe.cache.dir),
                device=self.device,
                batch=self.batch,
            )
        return self._frozen_text

    @property
    def audio_store(self) -> AudioStore:
        if self._audio_store is None:
            self._audio_store = AudioStore(self.recipe.model.sample_rate, Path(self.recipe.cache.dir))
        return self._audio_store

    # -- text -----------------------------------------------------------------------------------------

    @torch.inference_mode()
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised texts → float32 ``[n, D]`` unit vectors."""
        model = self.model.eval().to(self.device)
        if not texts:
            return np.zeros((0, model.embed_dim), np.float32)
        out = []
        if model.text_backbone is None:
            feats = torch.from_numpy(self.frozen_text.text_features(list(texts)))
            for i in range(0, len(feats), 4 * self.batch):
                z = model.text_head(feats[i : i + 4 * self.batch].to(self.device))
                out.append(F.normalize(z.float(), dim=-1).cpu())
        else:
            for i in range(0, len(texts), self.batch):
                tokens = model.text_backbone.tokenize(list(texts[i : i + self.batch]))
                z = model.project_text({"tokens": {k: v.to(self.device) for k, v in tokens.items()}})
                out.append(F.normalize(z.float(), dim=-1).cpu())
        return torch.cat(out).numpy()

    # -- audio ----------------------------------------------------------------------------------------

    def resolve_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"unknown audio mode {mode!r}; use one of {MODES}")
        if mode != "train":
            return mode
        if self.model.audio_backbone is not None or self.recipe.model.clip_pooling == "mean":
            return "clip"
        return "windows"

    @torch.inference_mode()
    def audio(self, clips: Sequence[Clip], mode: str = "windows") -> tuple[np.ndarray, np.ndarray]:
        """``(rows float32 [R, D] unit vectors, offsets int64 [len(clips) + 1])``: clip ``i`` owns rows
        ``offsets[i]:offsets[i+1]`` (at least one; a clip that cannot be decoded gets one zero row)."""
        mode = self.resolve_mode(mode)
        model = self.model.eval().to(self.device)
        if model.audio_backbone is None:
            return self._frozen_rows(clips, mode)
        rows: list[np.ndarray] = []
        for clip in clips:
            try:
                z = self._live_clip(clip, mode)
            except AudioError as exc:
                log.warning("%s; it scores 0", exc)
                z = np.zeros((1, model.embed_dim), np.float32)
            rows.append(z)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(r) for r in rows])
        return (np.concatenate(rows) if rows else np.zeros((0, model.embed_dim), np.float32)), offsets

    def _frozen_rows(self, clips: Sequence[Clip], mode: str) -> tuple[np.ndarray, np.ndarray]:
        model = self.model
        ok = {c.key for c in self.frozen_audio.prepare_audio(clips)}
        good = [c for c in clips if c.key in ok]
        feats, offs = self.frozen_audio.audio_features(good)
        feats_t = torch.from_numpy(feats)
        per_clip: dict[str, np.ndarray] = {}
        for i, c in enumerate(good):
            f = feats_t[offs[i] : offs[i + 1]]
            if mode == "clip":
                f = f.mean(dim=0, keepdim=True)
            z = model.audio_head(f.to(self.device))
            per_clip[c.key] = F.normalize(z.float(), dim=-1).cpu().numpy()
        zero = np.zeros((1, model.embed_dim), np.float32)
        rows = [per_clip.get(c.key, zero) for c in clips]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(r) for r in rows])
        return (np.concatenate(rows) if rows else zero[:0]), offsets

    def _live_clip(self, clip: Clip, mode: str) -> np.ndarray:
        m = self.recipe.model
        model = self.model
        if mode == "clip":
            sig = self.audio_store.load(clip)[: int(self.recipe.data.max_audio_s * m.sample_rate)]
            if len(sig) == 0:
                sig = np.zeros(1, np.float32)
            wave = torch.from_numpy(np.ascontiguousarray(sig, dtype=np.float32))[None].to(self.device)
            z = model.project_audio({"wave": wave})[0][:, 0]
            return F.normalize(z.float(), dim=-1).cpu().numpy()
        if clip.mix is not None:
            windows = [frame(self.audio_store.load(clip), m.sample_rate, m.window_s, m.hop_s)[1]]
        else:
            windows = [
                w for _, w in iter_windows(clip.path, m.sample_rate, m.window_s, m.hop_s, batch=self.batch)
            ]
        out = []
        for w in windows:
            z = model.project_audio({"wave": torch.from_numpy(w).to(self.device)})[0][:, 0]
            out.append(F.normalize(z.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)


def clip_scores(window_scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Best row per clip: ``[Q, R]`` scores and offsets ``[N + 1]`` → ``[Q, N]`` (``max`` over each clip's rows)."""
    if window_scores.shape[1] == len(offsets) - 1:
        return window_scores
    return np.maximum.reduceat(window_scores, offsets[:-1], axis=1)

"""Teacher soft targets for distillation, computed once from the stage-1 ensemble and stored.

``build_teacher`` embeds every clip of the fine-tuning stages (``data.finetune``, else ``data.train``;
augmented set included) and every caption with each
stage-1 member (``teacher.members``) and writes ``teacher.safetensors`` (per member ``m<i>.audio``
float16 ``[rows, d]``, ``m<i>.offsets`` int64 ``[clips + 1]``, ``m<i>.text`` float16 ``[texts, d]``) and
``teacher.json`` (members, clip keys, texts). In training, :class:`TeacherTargets` turns a batch's
(clip, caption) indices into the teacher similarity matrix: the mean over members of the cosine of clip
``i`` (its best row, as the student scores it) with caption ``j``. The loss divides it by τ and
soft-maxes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.encoder import normalise_text
from engine.errors import EarshotError
from training.augment.augmented import (
    apply_augmented_set,
    augment_dir,
    build_augmented_set,
    needs_augmented_set,
)
from training.config import Recipe, SourceConfig
from training.data.pairs import build_pairs
from training.data.readers import Clip, check_audio_exists, read_sources
from training.embedding import Embedder
from training.losses import window_similarity
from training.model import load_run, write_json

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.safetensors"
TEACHER_INDEX = "teacher.json"


def normaliser(recipe: Recipe):
    return partial(normalise_text, rules=recipe.model.text_normalisation)


def stage_sources(recipe: Recipe, data: str | None = None) -> tuple[SourceConfig, ...]:
    """The training sources of a stage: ``data`` (default ``recipe.train.data``) is ``"train"``,
    ``"finetune"`` or ``"auto"`` (stage 1 → ``data.train``; stages 2, 3 → ``data.finetune``). An empty
    ``data.finetune`` falls back to ``data.train``."""
    data = data or recipe.train.data
    if data == "auto":
        data = "train" if recipe.train.stage == "stage1" else "finetune"
    if data == "finetune" and recipe.data.finetune:
        return recipe.data.finetune
    return recipe.data.train


def training_clips(recipe: Recipe, *, augmented: bool, data: str | None = None) -> list[Clip]:
    """The training clips of ``stage_sources(recipe, data)`` (missing audio dropped), plus the augmented
    set when ``augmented`` and the recipe asks for back-translations or mixes (built and stored on first
    use)."""
    sources = stage_sources(recipe, data)
    clips = check_audio_exists(read_sources(sources), "training clips")
    if not clips:
        raise EarshotError("the stage's training data (data.train / data.finetune) holds no clips")
    if augmented and needs_augmented_set(recipe.augment):
        llm = recipe.augment.llm
        if llm.required and not (llm.base_url and llm.model):
            raise EarshotError(
                "augment.llm.required: back-translations and mixed captions need a language model — set "
                "augment.llm.base_url and augment.llm.model (an OpenAI-compatible endpoint), or accept the "
                "rule-based fallback with --set augment.llm.required=false"
            )
        rows = build_augmented_set(clips, recipe.augment, augment_dir(recipe), normaliser(recipe))
        clips = apply_augmented_set(clips, rows)
    return clips


def build_teacher(recipe: Recipe, device: str | torch.device = "cpu") -> Path:
    """Embed the training set with every stage-1 member and store the result in ``teacher.out``."""
    if not recipe.teacher.members:
        raise EarshotError("teacher.members lists no stage-1 runs")
    if not recipe.teacher.out:
        raise EarshotError("teacher.out names no directory for the teacher's targets")
    out = Path(recipe.teacher.out)
    clips = training_clips(recipe, augmented=True, data="finetune")
    texts = build_pairs(clips, normaliser(recipe)).texts
    tensors: dict[str, torch.Tensor] = {}
    kept: set[str] | None = None
    for i, member in enumerate(recipe.teacher.members):
        run = load_run(member)
        emb = Embedder(run.recipe, run.model, device)
        log.info(
            "teacher member %d/%d (%s): embedding %d clips, %d captions",
            i + 1,
            len(recipe.teacher.members),
            member,
            len(clips),
            len(texts),
        )
        a, offsets = emb.audio(clips, mode="train")
        tensors[f"m{i}.audio"] = torch.from_numpy(a).half()
        tensors[f"m{i}.offsets"] = torch.from_numpy(offsets)
        tensors[f"m{i}.text"] = torch.from_numpy(emb.texts(texts)).half()
        kept = {c.key for c in clips} if kept is None else kept
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (TEACHER_FILE + ".part")
    save_file(tensors, str(tmp))
    tmp.replace(out / TEACHER_FILE)
    write_json(
        out / TEACHER_INDEX,
        {
            "members": [str(m) for m in recipe.teacher.members],
            "clip_keys": [c.key for c in clips],
            "texts": texts,
        },
    )
    log.info("teacher targets for %d clips and %d captions written to %s", len(clips), len(texts), out)
    return out


def gather_rows(rows: Tensor, offsets: np.ndarray, clip_idx: np.ndarray) -> tuple[Tensor, Tensor]:
    """Rows of the selected clips, padded: ``rows [R, d]``, ``offsets [N + 1]``, ``clip_idx int [B]`` →
    ``(Tensor[B, W, d], mask bool [B, W])`` with ``W`` the most rows any selected clip has."""
    starts = offsets[clip_idx]
    lengths = offsets[clip_idx + 1] - starts
    width = int(lengths.max()) if len(lengths) else 1
    index = starts[:, None] + np.arange(width)[None, :]
    mask = np.arange(width)[None, :] < lengths[:, None]
    index = np.where(mask, index, starts[:, None])
    idx = torch.from_numpy(index).to(rows.device)
    return rows[idx], torch.from_numpy(mask).to(rows.device)


class TeacherTargets:
    """The stored teacher, indexed by a training stage's clip list and text list."""

    def __init__(
        self,
        directory: str | Path,
        clip_keys: Sequence[str],
        texts: Sequence[str],
        device: torch.device | str = "cpu",
    ) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        index_path = directory / TEACHER_INDEX
        if not index_path.is_file():
            raise EarshotError(f"no teacher targets in {directory}; run `earshot-train teacher` first")
        index = json.loads(index_path.read_text(encoding="utf-8"))
        tensors = load_file(str(directory / TEACHER_FILE))
        clip_pos = {k: i for i, k in enumerate(index["clip_keys"])}
        text_pos = {t: i for i, t in enumerate(index["texts"])}
        missing_clips = [k for k in clip_keys if k not in clip_pos]
        missing_texts = [t for t in texts if t not in text_pos]
        if missing_clips or missing_texts:
            raise EarshotError(
                f"the teacher in {directory} does not cover {len(missing_clips)} clip(s) and {len(missing_texts)} "
                f"caption(s) of this stage (e.g. {(missing_clips or missing_texts)[0]!r}); rerun `earshot-train teacher`"
            )
        self.members = len(index["members"])
        self.device = torch.device(device)
        self._clip_map = np.array([clip_pos[k] for k in clip_keys], dtype=np.int64)
        text_map = torch.tensor([text_pos[t] for t in texts], dtype=torch.long)
        self._audio = [tensors[f"m{i}.audio"].float().to(self.device) for i in range(self.members)]
        self._offsets = [tensors[f"m{i}.offsets"].numpy() for i in range(self.members)]
        self._text = [tensors[f"m{i}.text"].float()[text_map].to(self.device) for i in range(self.members)]

    def similarity(self, clip_idx: np.ndarray, text_idx: np.ndarray) -> Tensor:
        """Mean member cosine ``[B, B']`` of clips ``clip_idx`` (stage indices) × texts ``text_idx``."""
        stored = self._clip_map[np.asarray(clip_idx)]
        t_idx = torch.as_tensor(np.asarray(text_idx), device=self.device)
        total = None
        for m in range(self.members):
            audio, mask = gather_rows(self._audio[m], self._offsets[m], stored)
            sim = window_similarity(audio, mask, self._text[m][t_idx])
            total = sim if total is None else total + sim
        assert total is not None
        return total / self.members

    def text_embeddings(self) -> np.ndarray:
        """Per text, the members' unit vectors concatenated and scaled by ``1/√members`` (cosine = mean
        member cosine): float32 ``[texts, Σ d]``, for clustering."""
        parts = [t / np.sqrt(self.members) for t in (x.cpu().numpy() for x in self._text)]
        return np.concatenate(parts, axis=1).astype(np.float32)

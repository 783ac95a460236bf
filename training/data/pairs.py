"""The (audio, caption) pair table a training stage iterates over.

Captions are normalised with the bundle's rules (``engine.encoder.normalise_text``, the function search
applies to queries), de-duplicated into ``texts``; each pair points at a clip and a text. Word-level
variants (deletion / synonym replacement) are precomputed per text so cached text features can cover
them; a variant's teacher target and cluster label are those of its source text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from training.augment.text_ops import caption_variants
from training.data.readers import Clip


@dataclass
class PairTable:
    """``clips``; ``texts`` (unique normalised captions); ``pair_clip``/``pair_text``: int64 ``[P]``;
    ``variants[t]``: indices into ``all_texts`` of text ``t``'s variants; ``all_texts`` = ``texts`` then
    every variant string."""

    clips: list[Clip]
    texts: list[str]
    pair_clip: np.ndarray
    pair_text: np.ndarray
    variants: list[list[int]]
    all_texts: list[str]

    def __len__(self) -> int:
        return len(self.pair_clip)


def build_pairs(
    clips: Sequence[Clip],
    normalise: Callable[[str], str],
    *,
    n_variants: int = 0,
    seed: int = 0,
    synonyms: Mapping[str, Sequence[str]] | None = None,
    word_delete_p: float | None = 0.15,
) -> PairTable:
    """One pair per (clip, caption); captions normalised; ``n_variants`` word-level variants per text."""
    index: dict[str, int] = {}
    texts: list[str] = []
    pair_clip: list[int] = []
    pair_text: list[int] = []
    for ci, clip in enumerate(clips):
        seen: set[int] = set()
        for caption in clip.captions:
            t = normalise(caption)
            if not t.strip():
                continue
            ti = index.setdefault(t, len(texts))
            if ti == len(texts):
                texts.append(t)
            if ti not in seen:
                seen.add(ti)
                pair_clip.append(ci)
                pair_text.append(ti)
    all_texts = list(texts)
    variants: list[list[int]] = [[] for _ in texts]
    if n_variants > 0:
        rng = np.random.default_rng(seed)
        extra: dict[str, int] = {}
        for ti, t in enumerate(texts):
            for v in caption_variants(t, n_variants, rng, synonyms, word_delete_p):
                v = normalise(v)
                if not v.strip() or v == t:
                    continue
                vi = extra.setdefault(v, len(all_texts))
                if vi == len(all_texts):
                    all_texts.append(v)
                variants[ti].append(vi)
    return PairTable(
        clips=list(clips),
        texts=texts,
        pair_clip=np.asarray(pair_clip, dtype=np.int64),
        pair_text=np.asarray(pair_text, dtype=np.int64),
        variants=variants,
        all_texts=all_texts,
    )

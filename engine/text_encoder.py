"""Queries → fused ensemble vectors without torch: the text side of :class:`engine.encoder.Encoder` in numpy.

A search embeds one short text, and importing torch costs more than everything else a command-line search
does (issue 11). For bundles whose text backbones and text heads have a numpy implementation (``minilm``;
``linear``, ``mlp`` and ``examples`` heads) :class:`NumpyTextEncoder` computes the same vectors from the same
safetensors (checked against torch to < 1e-4 in the tests); for the others the library falls back to the
torch encoder (:attr:`engine.library.Library.text_encoder`). ``$EARSHOT_TEXT_BACKEND=torch`` forces torch.

Threads: one query is a handful of small matrix products; a multi-threaded BLAS on a busy 2-core machine
spins its threads against each other (measured: p50 184 ms with OpenBLAS's 2 threads vs 17 ms with one,
load 6), so :func:`one_blas_thread` runs query-sized work on one thread.

Also :func:`normalise_text`, the one caption/query normalisation training and search share.
"""

from __future__ import annotations

import contextlib
import math
import re
import string
import threading
import unicodedata
from collections.abc import Callable, Iterator

import numpy as np

from engine.bundle import Bundle
from engine.errors import ModelError, QueryError

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)

EMPTY_QUERY = 'the query is empty: describe a sound, e.g. "heavy wooden door creaking"'


def normalise_text(text: str, rules: dict) -> str:
    """Apply a bundle's text normalisation (the same function training uses, so they never disagree)."""
    text = unicodedata.normalize("NFKC", text)
    if rules.get("lowercase", True):
        text = text.lower()
    punctuation = rules.get("strip_punctuation", False)
    if punctuation == "delete":  # ASCII punctuation removed, as the DCASE 2025 Task 6 baseline does
        text = text.translate(_DELETE_PUNCTUATION)
    elif punctuation:
        text = re.sub(r"[^\w\s'-]", " ", text)
    if rules.get("collapse_whitespace", True):
        text = " ".join(text.split())
    max_chars = int(rules.get("max_chars", 512))
    return text[:max_chars]


def normalised_queries(bundle: Bundle, texts: list[str]) -> list[str]:
    """``texts`` normalised by the bundle's rules; :class:`QueryError` when one is left empty."""
    clean = [normalise_text(t, bundle.text_normalisation) for t in texts]
    if any(not c.strip() for c in clean):
        raise QueryError(EMPTY_QUERY)
    return clean


_controller = None
_controller_lock = threading.Lock()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with numpy's BLAS limited to one thread (``threadpoolctl``; ~0.05 ms per use)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield


# -- heads ----------------------------------------------------------------------------------------------

Head = Callable[[np.ndarray], np.ndarray]


def _linear_head(config: dict, state: dict[str, np.ndarray]) -> Head:
    w, b = state["proj.weight"].T.copy(), state["proj.bias"]
    return lambda x: x @ w + b


def _mlp_head(config: dict, state: dict[str, np.ndarray]) -> Head:
    from engine.models.minilm_numpy import gelu

    act = config.get("activation", "gelu")
    if act not in ("gelu", "relu"):
        raise ModelError(f"mlp head: activation must be gelu or relu, got {act!r}")
    w1, b1 = state["net.1.weight"].T.copy(), state["net.1.bias"]
    w2, b2 = state["net.4.weight"].T.copy(), state["net.4.bias"]

    def run(x: np.ndarray) -> np.ndarray:
        h = x @ w1 + b1
        h = gelu(h) if act == "gelu" else np.maximum(h, 0.0)
        return h @ w2 + b2

    return run


def _examples_head(config: dict, state: dict[str, np.ndarray]) -> Head:
    from engine.models.minilm_numpy import l2_normalise

    keys, values = state["keys"], state["values"]
    k, tau = min(int(config.get("k", 10)), len(keys)), float(config.get("tau", 0.1))

    def run(x: np.ndarray) -> np.ndarray:
        sims = l2_normalise(x) @ keys.T
        idx = np.argpartition(-sims, k - 1, axis=-1)[:, :k]
        top = np.take_along_axis(sims, idx, axis=-1)
        mix = np.exp((top - top.max(axis=-1, keepdims=True)) / tau)
        mix /= mix.sum(axis=-1, keepdims=True)
        return np.einsum("bk,bkd->bd", mix, values[idx])

    return run


#: Head architectures (see :mod:`engine.models.heads`) with a numpy forward: ``build(config, state)``.
NUMPY_HEADS: dict[str, Callable[[dict, dict[str, np.ndarray]], Head]] = {
    "linear": _linear_head, "mlp": _mlp_head, "examples": _examples_head,
}
#: Text backbone architectures with a numpy forward.
NUMPY_TEXT_BACKBONES = ("minilm",)


class NumpyTextEncoder:
    """``embed_text(texts) -> float32 (n, bundle.dim)`` and ``embed_text_and_features`` with the same
    meaning as :class:`engine.encoder.Encoder`'s, computed in numpy. Loads its weights on first use."""

    def __init__(self, bundle: Bundle) -> None:
        if not self.supports(bundle):
            raise ModelError(f"bundle {bundle.name} has a text side numpy cannot run")
        self.bundle = bundle
        self.members = bundle.members
        self._scale = [math.sqrt(m.weight) for m in self.members]
        self._backbones: dict | None = None
        self._heads: dict[str, Head] = {}

    @staticmethod
    def supports(bundle: Bundle) -> bool:
        """Whether every text backbone and text head the members use has a numpy implementation."""
        entries = bundle.text_backbones
        return all(
            entries.get(m.text_backbone, {}).get("arch") in NUMPY_TEXT_BACKBONES and m.text_head["arch"] in NUMPY_HEADS
            for m in bundle.members
        )

    @property
    def text_backbones(self) -> dict:
        """``{name: MiniLMNumpy}`` of the backbones the members use (weights read on first use)."""
        if self._backbones is None:
            from engine.models.minilm_numpy import MiniLMNumpy, read_safetensors

            needed = {m.text_backbone for m in self.members}
            self._backbones = {name: MiniLMNumpy.from_entry(entry, self.bundle.path)
                               for name, entry in self.bundle.text_backbones.items() if name in needed}
            for m in self.members:  # only the text heads' tensors are read (and made float32)
                state = read_safetensors(self.bundle.file(m.weights), f"{m.prefix}text.",
                                         what="head weights") if m.weights else {}
                try:
                    self._heads[m.name] = NUMPY_HEADS[m.text_head["arch"]](m.text_head.get("config", {}), state)
                except KeyError as exc:
                    raise ModelError(f"text head weights of member {m.name} lack {exc.args[0]!r}") from None
        return self._backbones

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Normalise and embed queries → float32 (n, bundle.dim). Raises :class:`QueryError` for an empty one."""
        return self.embed_text_and_features(texts)[0]

    def embed_text_and_features(self, texts: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`embed_text` plus each text backbone's raw output ``{name: float32 (n, out_dim)}``."""
        from engine.models.minilm_numpy import l2_normalise

        clean = normalised_queries(self.bundle, texts)
        backbones = self.text_backbones
        with one_blas_thread():
            raw = {name: bb.encode(clean) for name, bb in backbones.items()}
            parts = [l2_normalise(self._heads[m.name](raw[m.text_backbone])) * np.float32(scale)
                     for m, scale in zip(self.members, self._scale, strict=True)]
        return np.concatenate(parts, axis=-1).astype(np.float32, copy=False), raw

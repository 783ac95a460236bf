"""Projection heads: ``forward(Tensor[B, in_dim] float32) -> Tensor[B, out_dim]`` (not normalised).

The caller L2-normalises the output; heads are trained by ``training/`` and stored in the bundle's
safetensors (random init from :meth:`from_config`, no I/O).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engine.errors import ModelError
from engine.models.registry import register_head

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def _dims(config: dict, name: str) -> tuple[int, int]:
    try:
        in_dim, out_dim = int(config["in_dim"]), int(config["out_dim"])
    except KeyError as exc:
        raise ModelError(f"{name} head: config needs {exc.args[0]!r}") from None
    if in_dim <= 0 or out_dim <= 0:
        raise ModelError(f"{name} head: in_dim and out_dim must be positive, got {in_dim}, {out_dim}")
    return in_dim, out_dim


def _check_keys(config: dict, name: str, allowed: set[str]) -> None:
    unknown = set(config) - allowed
    if unknown:
        raise ModelError(f"{name} head: unknown config keys {sorted(unknown)}")


@register_head("linear")
class LinearHead(nn.Module):
    """One affine map ``Tensor[B, in_dim] -> Tensor[B, out_dim]``. Config: ``in_dim``, ``out_dim``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.proj = nn.Linear(in_dim, out_dim)

    @classmethod
    def from_config(cls, config: dict) -> LinearHead:
        _check_keys(config, "linear", {"in_dim", "out_dim"})
        return cls(*_dims(config, "linear"))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


@register_head("mlp")
class MLPHead(nn.Module):
    """Dropout(dropout_in) → Linear(in, hidden) → activation → Dropout(dropout) → Linear(hidden, out).

    Config: ``in_dim``, ``out_dim``, ``hidden`` (default ``2 * in_dim``), ``dropout_in`` (0.0),
    ``dropout`` (0.0), ``activation`` (``"relu"`` | ``"gelu"``, default ``"gelu"``).
    ``Tensor[B, in_dim] -> Tensor[B, out_dim]``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int | None = None,
        dropout_in: float = 0.0,
        dropout: float = 0.0,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ModelError(f"mlp head: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        hidden = 2 * in_dim if hidden is None else int(hidden)
        if hidden <= 0:
            raise ModelError(f"mlp head: hidden must be positive, got {hidden}")
        for name, p in (("dropout_in", dropout_in), ("dropout", dropout)):
            if not 0.0 <= p < 1.0:
                raise ModelError(f"mlp head: {name} must be in [0, 1), got {p}")
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        self.net = nn.Sequential(
            nn.Dropout(dropout_in),
            nn.Linear(in_dim, hidden),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    @classmethod
    def from_config(cls, config: dict) -> MLPHead:
        _check_keys(config, "mlp", {"in_dim", "out_dim", "hidden", "dropout_in", "dropout", "activation"})
        in_dim, out_dim = _dims(config, "mlp")
        extra = {k: config[k] for k in ("hidden", "dropout_in", "dropout", "activation") if k in config}
        return cls(in_dim, out_dim, **extra)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_head("examples")
class ExamplesHead(nn.Module):
    """Query by example, a text head without trained weights: the query's cosine to ``n`` stored text
    vectors (``keys``: the text backbone's features of the training captions, unit length), its ``k``
    nearest mixed by ``softmax(cosine / tau)``, and the same mixture of their ``values`` (the mean audio
    vector, in the member's audio space, of the training clips each caption describes).

    A member with this text head searches with the sound of what the words usually mean in the training
    corpus: the query "cat meowing" becomes the average of the clips captioned like that, matched to
    the library sound to sound. Config: ``in_dim``, ``out_dim``, ``n`` (stored examples), ``k``
    (default 10), ``tau`` (default 0.1). ``Tensor[B, in_dim] -> Tensor[B, out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, n: int, k: int = 10, tau: float = 0.1) -> None:
        super().__init__()
        if n <= 0 or k <= 0:
            raise ModelError(f"examples head: n and k must be positive, got {n}, {k}")
        if not tau > 0:
            raise ModelError(f"examples head: tau must be positive, got {tau}")
        self.in_dim, self.out_dim, self.n, self.k, self.tau = in_dim, out_dim, n, min(k, n), float(tau)
        self.register_buffer("keys", torch.zeros(n, in_dim))
        self.register_buffer("values", torch.zeros(n, out_dim))

    @classmethod
    def from_config(cls, config: dict) -> ExamplesHead:
        _check_keys(config, "examples", {"in_dim", "out_dim", "n", "k", "tau"})
        in_dim, out_dim = _dims(config, "examples")
        if "n" not in config:
            raise ModelError("examples head: config needs 'n'")
        return cls(in_dim, out_dim, int(config["n"]), int(config.get("k", 10)), float(config.get("tau", 0.1)))

    def forward(self, x: Tensor) -> Tensor:
        sims = F.normalize(x.float(), dim=-1) @ self.keys.float().T
        top, idx = sims.topk(self.k, dim=-1)
        mix = torch.softmax(top / self.tau, dim=-1)
        return torch.einsum("bk,bkd->bd", mix, self.values.float()[idx])

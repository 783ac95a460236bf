"""Projection heads: ``forward(Tensor[B, in_dim] float32) -> Tensor[B, out_dim]`` (not normalised).

The caller L2-normalises the output; heads are trained by ``training/`` and stored in the bundle's
safetensors (random init from :meth:`from_config`, no I/O).
"""

from __future__ import annotations

from torch import Tensor, nn

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

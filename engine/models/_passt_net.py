"""Adapter around the third-party PaSST network (``hear21passt``, Apache-2.0, by Khaled Koutini).

This is the only module that imports ``hear21passt``. It provides:

* :func:`build_net` — the ``hear21passt.models.passt.PaSST`` module, so parameter names are exactly those of
  the official AudioSet checkpoints (``passt-s-f128-p16-s16-ap.468.pt`` and friends);
* :func:`forward_tokens` — our own forward pass over that module's parameters. It reproduces
  ``PaSST.forward_features`` (checked by ``tests/engine/models/test_passt.py``) but returns *every* token,
  uses :func:`torch.nn.functional.scaled_dot_product_attention` (memory-efficient on GPUs), never prints,
  and draws patchout indices on the input's device;
* :data:`OFFICIAL_WEIGHTS` — the public release URL of each supported variant (the URLs hear21passt uses).

Why a shim is needed: ``hear21passt.models.helpers.vit_helpers`` imports
``timm.models._hub.download_cached_file`` at import time, only to download checkpoints (which we never let
it do). ``timm`` pulls torchvision and, through it, a CUDA build of torch, so it is not a dependency of
Earshot. When ``timm`` is not installed, :func:`passt_module` puts a stub ``timm`` package into
``sys.modules`` for the duration of the import and removes it afterwards, so no other code can see it.
The stub's ``download_cached_file`` raises :class:`~engine.errors.ModelError`. Install the network code
with ``pip install --no-deps hear21passt``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import sys
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import ModelError

logger = logging.getLogger(__name__)

#: Variant name -> public URL of its official checkpoint (a pickled ``state_dict`` of tensors).
OFFICIAL_WEIGHTS: dict[str, str] = {
    "passt_s_p16_s16_128_ap468": (
        "https://github.com/kkoutini/PaSST/releases/download/v0.0.2-audioset/passt-s-f128-p16-s16-ap.468.pt"
    ),
}

#: Checkpoint keys of the AudioSet classifier heads; an embedding backbone built without classes drops them.
CLASSIFIER_PREFIXES = ("head.1.", "head_dist.")

_INSTALL_HINT = "Install it with `pip install --no-deps hear21passt` (plain torch is enough)."
_STUB_NAMES = ("timm", "timm.models", "timm.models._hub", "timm.models.hub")


def _no_download(*_args: Any, **_kwargs: Any) -> Any:
    raise ModelError("hear21passt tried to download weights; Earshot loads PaSST weights itself")


@contextlib.contextmanager
def _timm_stub() -> Iterator[None]:
    """Make ``from timm.models._hub import download_cached_file`` work while importing hear21passt.

    Does nothing when a real ``timm`` is installed. Stub modules are removed on exit (only those we added).
    """
    if importlib.util.find_spec("timm") is not None:
        yield
        return
    added: dict[str, types.ModuleType] = {}
    for name in _STUB_NAMES:
        if name not in sys.modules:
            module = types.ModuleType(name, "Earshot stub: hear21passt needs only timm's downloader name.")
            module.__path__ = []  # a package, so submodule imports resolve through sys.modules
            module.download_cached_file = _no_download  # type: ignore[attr-defined]
            added[name] = module
    sys.modules.update(added)
    try:
        yield
    finally:
        for name, module in added.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


@functools.lru_cache(maxsize=1)
def passt_module() -> types.ModuleType:
    """Import and return ``hear21passt.models.passt`` (once), silencing its debug prints.

    Raises:
        ModelError: hear21passt is not installed or cannot be imported.
    """
    try:
        with _timm_stub():
            module = importlib.import_module("hear21passt.models.passt")
    except ImportError as exc:
        raise ModelError(
            f"The PaSST network code (hear21passt) cannot be imported: {exc}. {_INSTALL_HINT}"
        ) from exc
    module.first_RUN = False  # the module prints tensor shapes on its first forward otherwise
    return module


def build_net(
    *,
    n_mels: int,
    input_tdim: int,
    patch_size: int,
    stride: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    num_classes: int = 0,
    s_patchout_t: int = 0,
    s_patchout_f: int = 0,
    u_patchout: int = 0,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """Build a randomly initialised distilled PaSST (cls + dist tokens) for ``[B, 1, n_mels, T]`` input.

    ``num_classes=0`` replaces the classifier heads by identities (the AudioSet heads are not needed to
    embed). Patchout sizes are stored on the module and applied by :func:`forward_tokens` in train mode.
    """
    module = passt_module()
    return module.PaSST(
        u_patchout=u_patchout,
        s_patchout_t=s_patchout_t,
        s_patchout_f=s_patchout_f,
        img_size=(n_mels, input_tdim),
        patch_size=patch_size,
        stride=stride,
        in_chans=1,
        num_classes=num_classes,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        qkv_bias=True,
        distilled=True,
        drop_rate=drop_rate,
        attn_drop_rate=attn_drop_rate,
        drop_path_rate=drop_path_rate,
    )


def patch_grid(net: nn.Module) -> tuple[int, int]:
    """(frequency patches, time patches) of the positional embeddings of ``net``."""
    return int(net.freq_new_pos_embed.shape[2]), int(net.time_new_pos_embed.shape[3])


def _keep_indices(n: int, drop: int, device: torch.device) -> Tensor:
    return torch.randperm(n, device=device)[: n - drop].sort().values


def _attention(attn: nn.Module, x: Tensor) -> Tensor:
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    dropout = attn.attn_drop.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=dropout)
    return attn.proj_drop(attn.proj(out.transpose(1, 2).reshape(b, n, c)))


def forward_tokens(net: nn.Module, spec: Tensor) -> Tensor:
    """Run PaSST on log-mel spectrograms and return the final-norm token sequence.

    Args:
        net: a module from :func:`build_net`.
        spec: ``Tensor[B, 1, n_mels, T]`` float32, the output of the PaSST front-end. ``T`` may be shorter
            than the model's ``input_tdim`` (time positional embeddings are cut), never longer.

    Returns:
        ``Tensor[B, 2 + P, E]``: token 0 is cls, token 1 is dist, then the ``P`` patch tokens left after
        patchout (structured time/frequency, then unstructured — only when ``net.training``).
    """
    x = net.patch_embed.norm(net.patch_embed.proj(spec))  # [B, E, f, t]
    b, _, n_freq, n_time = x.shape
    time_pos = net.time_new_pos_embed
    if n_time > time_pos.shape[-1] or n_freq != net.freq_new_pos_embed.shape[2]:
        raise ModelError(
            f"PaSST input of {n_freq}x{n_time} patches does not fit its positional embeddings "
            f"({net.freq_new_pos_embed.shape[2]}x{time_pos.shape[-1]})"
        )
    x = x + time_pos[..., :n_time] + net.freq_new_pos_embed
    if net.training and net.s_patchout_t:
        x = x[:, :, :, _keep_indices(n_time, net.s_patchout_t, x.device)]
    if net.training and net.s_patchout_f:
        x = x[:, :, _keep_indices(n_freq, net.s_patchout_f, x.device), :]
    x = x.flatten(2).transpose(1, 2)  # [B, P, E]
    if net.training and net.u_patchout:
        x = x[:, _keep_indices(x.shape[1], net.u_patchout, x.device), :]
    cls = net.cls_token.expand(b, -1, -1) + net.new_pos_embed[:, :1, :]
    dist = net.dist_token.expand(b, -1, -1) + net.new_pos_embed[:, 1:, :]
    x = net.pos_drop(torch.cat((cls, dist, x), dim=1))
    for blk in net.blocks:
        x = x + blk.drop_path(_attention(blk.attn, blk.norm1(x)))
        x = x + blk.drop_path(blk.mlp(blk.norm2(x)))
    return net.norm(x)

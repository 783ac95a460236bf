"""Choosing the torch device and CPU thread count for inference and training."""

from __future__ import annotations

import logging
import os

import torch

from engine.errors import ModelError

log = logging.getLogger(__name__)

DEVICE_ENV = "EARSHOT_DEVICE"


def choose_device(preference: str | None = None) -> torch.device:
    """Resolve a device preference to a ``torch.device``.

    ``None`` or ``"auto"``: the ``EARSHOT_DEVICE`` environment variable if set, else CUDA when
    available, else CPU. ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are taken literally; asking for CUDA on a
    machine without it (or for a GPU index it lacks) raises :class:`ModelError`.
    """
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        env = os.environ.get(DEVICE_ENV, "").strip().lower()
        if env and env != "auto":
            return choose_device(env)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        index_text = pref.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise ModelError(f"invalid device {preference!r}: use 'cuda' or 'cuda:N'")
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {preference!r} was requested but CUDA is not available "
                "(no NVIDIA GPU, driver, or CUDA-enabled torch); use 'cpu' or 'auto'"
            )
        if index_text and int(index_text) >= torch.cuda.device_count():
            raise ModelError(
                f"device {preference!r} does not exist: {torch.cuda.device_count()} GPU(s) visible"
            )
        return torch.device(pref)
    raise ModelError(f"unknown device {preference!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def set_cpu_threads(n: int | None) -> int:
    """Set torch's intra-op CPU threads to ``n`` (``None`` leaves torch's default); returns the count."""
    if n is not None:
        if int(n) < 1:
            raise ModelError(f"the number of CPU threads must be at least 1, got {n}")
        torch.set_num_threads(int(n))
        log.debug("torch CPU threads set to %d", n)
    return torch.get_num_threads()

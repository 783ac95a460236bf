"""Checkpoints: everything needed to resume a stage (model, optimiser, scaler, counters) in one file.

A checkpoint is for resuming; the stage's product is ``model.safetensors`` and an exported bundle is what
ships. Files are written atomically and read with ``torch.load(weights_only=True)`` (no arbitrary code).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from engine.errors import EarshotError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LAST


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or ``None`` when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise EarshotError(
            f"cannot resume from the checkpoint {path} ({exc}); delete it to start over"
        ) from exc

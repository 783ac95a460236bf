"""Reading released audio-backbone checkpoints safely, and converting them once to safetensors.

``.pt`` files are read with ``torch.load(weights_only=True)`` only — never plain unpickling: a checkpoint
holding arbitrary Python objects (e.g. a fairseq ``omegaconf`` config) is refused with a message naming
the safetensors release to use instead. A converted file keeps the checkpoint's configuration (when it is
plain data, e.g. BEATs' ``cfg``) as JSON in the safetensors metadata under ``"config"``.

Command line (the conversion script)::

    python -m engine.models.checkpoints BEATs_iter3_plus_AS2M.pt beats_iter3_plus_as2m.safetensors
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine.errors import ModelError

log = logging.getLogger(__name__)

PT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def _plain(value: Any) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def read_pt(path: Path, what: str = "audio backbone") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state dict, config)`` of a ``.pt`` checkpoint read with ``weights_only=True``.

    The state is the file itself, or its ``"model"`` / ``"state_dict"`` entry; the config is its ``"cfg"``
    entry when that is plain data (else ``{}``).
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for disallowed objects, RuntimeError / OSError for bad files
        raise ModelError(
            f"cannot read the {what} checkpoint {path} as plain tensors ({exc.__class__.__name__}); "
            "it may hold Python objects, which are never unpickled — use the model's safetensors release"
        ) from exc
    config: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("cfg"), dict) and _plain(obj["cfg"]):
        config = dict(obj["cfg"])
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelError(f"{path} does not hold a {what} state dict (name -> tensor)")
    return {str(k): v for k, v in obj.items()}, config


def read_safetensors(path: Path, what: str = "audio backbone") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state dict, config)`` of a ``.safetensors`` file (config from the ``"config"`` metadata)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"cannot read the {what} weights {path}: {exc}") from exc
    try:
        config = json.loads(meta["config"]) if "config" in meta else {}
    except ValueError:
        config = {}
    return state, config if isinstance(config, dict) else {}


def read_weights(path: str | Path, what: str = "audio backbone") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A weights file (``.safetensors`` or a ``.pt`` checkpoint) → ``(state dict, config)``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{what} weights file not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path, what)
    if path.suffix in PT_SUFFIXES:
        return read_pt(path, what)
    raise ModelError(f"unknown {what} weights format {path.suffix!r} ({path}); use .safetensors or .pt")


def write_safetensors(state: Mapping[str, Tensor], config: Mapping[str, Any], target: Path) -> Path:
    """Write ``state`` (contiguous copies) and ``config`` (JSON metadata) atomically to ``target``."""
    return save_atomic(state, Path(target), {"config": json.dumps(dict(config), sort_keys=True)})


def safetensors_bytes(state: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """``state`` with string ``metadata`` as safetensors bytes, the metadata keys in sorted order, so that one
    state gives one file, byte for byte. safetensors keeps metadata in a hash map whose order changes from one
    save to the next; the header is compact JSON, so reordering its metadata keeps its length and every data
    offset."""
    from safetensors.torch import save

    data = bytearray(save(dict(state), metadata=dict(metadata)))
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    canonical = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(canonical) > n:  # never expected: the library wrote another JSON layout; keep its bytes
        canonical = bytes(data[8 : 8 + n])
    data[8 : 8 + n] = canonical.ljust(n, b" ")
    return bytes(data)


def save_atomic(state: Mapping[str, Tensor], target: Path, metadata: Mapping[str, str]) -> Path:
    """Write ``state`` (contiguous copies) with string ``metadata`` to ``target`` as safetensors
    (:func:`safetensors_bytes`), through a temporary file in the same folder and a rename: a crash never
    leaves half a weights file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        data = safetensors_bytes({k: v.detach().contiguous().clone() for k, v in state.items()}, metadata)
        Path(tmp).write_bytes(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def convert(source: str | Path, target: str | Path) -> Path:
    """Convert a checkpoint (``.pt`` read with ``weights_only=True``, or ``.safetensors``) to safetensors."""
    state, config = read_weights(source)
    out = write_safetensors(state, config, Path(target))
    log.info("converted %s (%d tensors) to %s", source, len(state), out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m engine.models.checkpoints",
        description="Convert a released audio-backbone checkpoint (BEATs .pt, …) to safetensors, safely.",
    )
    p.add_argument("source", help="checkpoint file (.pt/.pth/.ckpt/.bin or .safetensors)")
    p.add_argument("target", help="the .safetensors file to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert(args.source, args.target)
    except ModelError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Convert the official aiSFX checkpoint to a safetensors file for the ``aisfx_cnn`` architecture.

Usage (from the repository root)::

    python -m scripts.convert_aisfx --wheel-dir /tmp/aisfx --out resources/models/aisfx_cnn.safetensors --fp16

``--wheel-dir`` is the unpacked PyPI wheel ``aisfx`` 0.1.2 (it holds ``aisfx/models/checkpoint.pth``, a
pickled ``(state_dict, ds_dict)``). The checkpoint is read with ``torch.load(weights_only=True)`` (only
the numpy scalar types its ``ds_dict`` uses are allow-listed). Kept: the embedding network (convolutions
+ BatchNorm parameters and buffers, prefix ``embedding_net.`` removed) and the nine per-dataset
classifier heads (``fc.<i>.*`` → ``classifiers.<i>.*``, checked against ``ds_dict`` and
:data:`engine.models.aisfx_cnn.CLASSIFIER_HEADS`; ``--no-classifiers`` drops them, as 1.0 did). A model
configured without ``classifiers`` ignores them, so one file serves both. The output is written
atomically and checked by loading it strictly into :class:`engine.models.aisfx_cnn.AisfxCNN`.

The weights are CC BY 4.0 (A. B. Ma and A. Lerch, ISMIR 2022); the licence and attribution travel in the
safetensors metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path

from engine.errors import EarshotError

log = logging.getLogger("convert_aisfx")

PREFIX = "embedding_net."
FC_PREFIX = "fc."
LICENSE = "CC-BY-4.0"
ATTRIBUTION = (
    "aiSFX by Alison B. Ma and Alexander Lerch, 'Representation Learning for the Automatic Indexing of "
    "Sound Effects Libraries', ISMIR 2022; https://github.com/alisonbma/aiSFX (PyPI: aisfx). "
    "Model X-Sequential-CE, embedding network only, converted to safetensors."
)


def _numpy_safe_globals() -> list:
    """The numpy types pickled inside the checkpoint's ``ds_dict`` (int64 scalars), for weights_only."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: list = [
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        (multiarray.scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    allowed += [type(np.dtype(name)) for name in ("int64", "int32", "float64", "float32")]
    return allowed


def load_checkpoint_full(path: Path) -> tuple[dict, dict]:
    """``(state dict, ds_dict)`` of the official checkpoint (``weights_only=True``, CPU tensors);
    ``ds_dict`` maps dataset name → ``(head index, classes)`` (empty when the file has none)."""
    import torch

    with torch.serialization.safe_globals(_numpy_safe_globals()):
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    state = obj[0] if isinstance(obj, (tuple, list)) else obj
    ds_dict = obj[1] if isinstance(obj, (tuple, list)) and len(obj) > 1 and isinstance(obj[1], dict) else {}
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state, {str(k): (int(v[0]), int(v[1])) for k, v in ds_dict.items()}


def load_checkpoint(path: Path) -> dict:
    """Return the state dict of the official checkpoint (``weights_only=True``, CPU tensors)."""
    return load_checkpoint_full(path)[0]


def classifier_state(state: dict, ds_dict: dict, fp16: bool) -> dict:
    """The classifier heads as ``classifiers.<i>.<layer>.*`` tensors, checked against the architecture.

    Raises ``ValueError`` when the checkpoint's heads are not the nine of the published model (same
    datasets, order and class counts), so a different checkpoint is never silently mislabelled.
    """
    import torch

    from engine.models.aisfx_cnn import CLASSIFIER_HEADS, CLASSIFIER_PREFIX

    expected = {name: (i, n) for i, (name, n) in enumerate(CLASSIFIER_HEADS)}
    if ds_dict != expected:
        raise ValueError(
            f"the checkpoint's classifier heads {ds_dict} are not the published nine {expected} "
            "(use --no-classifiers to keep only the embedding network)"
        )
    out = {}
    for key, value in state.items():
        if not key.startswith(FC_PREFIX):
            continue
        value = value.detach().contiguous()
        if fp16 and value.is_floating_point():
            value = value.to(torch.float16)
        out[CLASSIFIER_PREFIX + key[len(FC_PREFIX) :]] = value
    return out


def embedding_state(state: dict, fp16: bool) -> dict:
    """Keep the ``embedding_net.*`` tensors, prefix removed; floating tensors cast to fp16 if asked."""
    import torch

    out = {}
    for key, value in state.items():
        if not key.startswith(PREFIX):
            continue
        value = value.detach().contiguous()
        if fp16 and value.is_floating_point():
            value = value.to(torch.float16)
        out[key[len(PREFIX) :]] = value
    if not out:
        raise ValueError("the checkpoint has no 'embedding_net.' tensors")
    return out


def _wheel_version(wheel_dir: Path) -> str:
    for meta in sorted(wheel_dir.glob("aisfx-*.dist-info/METADATA")):
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(wheel_dir: Path, out: Path, fp16: bool, classifiers: bool = True) -> Path:
    """Convert and verify; returns ``out``. Raises ``FileNotFoundError`` / ``ValueError`` on bad input."""
    from engine.models.aisfx_cnn import AisfxCNN
    from engine.models.checkpoints import safetensors_bytes

    ckpt = wheel_dir / "aisfx" / "models" / "checkpoint.pth"
    if not ckpt.is_file():
        raise FileNotFoundError(f"no aiSFX checkpoint at {ckpt} (unpack the aisfx wheel into --wheel-dir)")
    full, ds_dict = load_checkpoint_full(ckpt)
    state = embedding_state(full, fp16)
    if classifiers:
        state.update(classifier_state(full, ds_dict, fp16))
    metadata = {
        "format": "pt",
        "arch": "aisfx_cnn",
        "source": f"aisfx {_wheel_version(wheel_dir)} (PyPI wheel), aisfx/models/checkpoint.pth",
        "source_sha256": _sha256(ckpt),
        "license": LICENSE,
        "attribution": ATTRIBUTION,
        "dtype": "float16" if fp16 else "float32",
        "classifiers": ",".join(f"{name}:{n}" for name, (_, n) in sorted(ds_dict.items(), key=lambda x: x[1][0]))
        if classifiers
        else "",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.write_bytes(safetensors_bytes(state, metadata))  # metadata keys sorted: one file per checkpoint
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the weights are public
        AisfxCNN.from_config({}).load_weights_file(tmp)  # strict: every tensor fits
        if classifiers:
            AisfxCNN.from_config({"classifiers": "logits"}).load_weights_file(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "wrote %s (%d tensors, %.1f MB, %s)", out, len(state), out.stat().st_size / 1e6, metadata["dtype"]
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel-dir", type=Path, required=True, help="unpacked aisfx wheel directory")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    parser.add_argument("--fp16", action="store_true", help="store floating tensors as float16")
    parser.add_argument(
        "--no-classifiers", action="store_true", help="drop the nine classifier heads (the 1.0 file)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert(args.wheel_dir, args.out, args.fp16, classifiers=not args.no_classifiers)
    except (OSError, ValueError, pickle.UnpicklingError, EarshotError) as exc:
        log.error("error: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

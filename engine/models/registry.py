"""Architecture registry: names in a bundle map to builders, never to ``if/elif`` chains.

Three kinds of module are registered:

* **audio backbones** — ``nn.Module`` with ``forward(wave: Tensor[B, S] float32 mono at
  ``module.sample_rate`` Hz, range ±1) -> Tensor[B, module.out_dim]``;
* **text backbones** — ``nn.Module`` with ``encode(texts: list[str]) -> Tensor[B, module.out_dim]``
  (tokenisation inside, ``max_tokens`` from the config) and
  ``forward(**tokenizer_output) -> Tensor[B, out_dim]`` for training;
* **heads** — projection heads ``forward(Tensor[B, in_dim]) -> Tensor[B, out_dim]`` (not normalised).

Each builder is a class with ``from_config(config: dict) -> module`` (random weights, no I/O).
Backbones with external pretrained weights also implement
``load_pretrained(config: dict, bundle_dir: Path | None) -> None`` which resolves
``config["pretrained"]`` (a local path, an installed package, or — only when the user allows the
network — a public URL/hub name) and raises :class:`engine.errors.ModelError` with a clear message when
the weights cannot be found.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

AUDIO_BACKBONES: dict[str, Any] = {}
TEXT_BACKBONES: dict[str, Any] = {}
HEADS: dict[str, Any] = {}

# Where each architecture lives. A module is imported only when one of its architectures is built, so
# building a bundle never pays for (or fails on) an optional dependency it does not use.
ARCH_MODULES: dict[str, str] = {
    "linear": "engine.models.heads",
    "mlp": "engine.models.heads",
    "examples": "engine.models.heads",
    "tiny_test": "engine.models.tiny",
    "aisfx_cnn": "engine.models.aisfx_cnn",
    "beats": "engine.models.beats",
    "eat": "engine.models.eat",
    "minilm": "engine.models.minilm",
    "passt": "engine.models.passt",
    "roberta": "engine.models.roberta",
}


def load_architectures() -> list[str]:
    """Import every architecture module that can be imported; return the names that failed."""
    failed = []
    for module in sorted(set(ARCH_MODULES.values())):
        try:
            importlib.import_module(module)
        except ImportError:
            failed.append(module)
    return failed


def _register(table: dict[str, Any], name: str) -> Callable[[Any], Any]:
    def deco(cls: Any) -> Any:
        if name in table and table[name] is not cls:
            raise ValueError(f"architecture {name!r} registered twice")
        table[name] = cls
        cls.arch_name = name
        return cls

    return deco


def register_audio_backbone(name: str) -> Callable[[Any], Any]:
    return _register(AUDIO_BACKBONES, name)


def register_text_backbone(name: str) -> Callable[[Any], Any]:
    return _register(TEXT_BACKBONES, name)


def register_head(name: str) -> Callable[[Any], Any]:
    return _register(HEADS, name)


def _build(table: dict[str, Any], kind: str, arch: str, config: dict) -> Any:
    if arch not in table and arch in ARCH_MODULES:
        importlib.import_module(ARCH_MODULES[arch])
    try:
        cls = table[arch]
    except KeyError:
        from engine.errors import ModelError

        raise ModelError(f"unknown {kind} architecture {arch!r}; known: {sorted(table)}") from None
    return cls.from_config(dict(config))


def build_audio_backbone(arch: str, config: dict) -> Any:
    return _build(AUDIO_BACKBONES, "audio backbone", arch, config)


def build_text_backbone(arch: str, config: dict) -> Any:
    return _build(TEXT_BACKBONES, "text backbone", arch, config)


def build_head(arch: str, config: dict) -> Any:
    return _build(HEADS, "head", arch, config)

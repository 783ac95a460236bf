"""Caches that make training cheap: frozen-backbone features and decoded audio, each computed once.

**Feature cache** (:class:`FeatureStore`, used through :class:`FrozenBackbone`): for a frozen audio
backbone, the features of every window of every clip — windows cut by ``engine.audio.iter_windows`` at
the backbone's sample rate with the recipe's ``window_s``/``hop_s`` (exactly what the engine embeds at
index time); for a frozen text backbone, the features of every caption. A cache directory is keyed by
the backbone name, a sha256 of its architecture, config and weights (and, for audio, the windowing), so a
changed model never reads stale features; items are keyed by path + size + mtime (audio) or the
normalised text. Storage: float16 ``.npy`` shards plus ``index.json`` (rewritten atomically under a file lock, so runs
sharing a cache may write at the same time).

**Decoded audio** (:class:`AudioStore`): mono float32 at the model's rate, decoded once by
``engine.audio.load_mono`` and kept as float16 ``.npy`` (memory-mapped) for trainable audio backbones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from engine.audio import frame, iter_windows, load_mono
from engine.errors import AudioError, ModelError
from training.augment.mix import mix_signals
from training.config import BackboneConfig
from training.data.readers import Clip

log = logging.getLogger(__name__)
#: Texts per batch when text features are computed: one shape for every batch (see
#: ``FrozenBackbone._add_text_features``), whatever ``batch`` the caller asked for.
TEXT_BATCH = 64

INDEX_FILE = "index.json"


def file_token(path: str | Path) -> str:
    """``path|size|mtime_ns``: changes whenever the file does."""
    st = os.stat(path)
    return f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"


def clip_token(clip: Clip) -> str:
    """Cache key of a clip's audio (a mixture's key names both files and the gain)."""
    if clip.mix is not None:
        a, b, gain = clip.mix
        return f"mix|{file_token(a)}|{file_token(b)}|{gain:+.2f}"
    return file_token(clip.path)


def load_clip_audio(clip: Clip, sr: int) -> np.ndarray:
    """Mono float32 ``[S]`` at ``sr`` Hz; a mixture is decoded from both files and mixed."""
    if clip.mix is not None:
        a, b, gain = clip.mix
        return mix_signals(load_mono(a, sr), load_mono(b, sr), gain)
    return load_mono(clip.path, sr)


def fingerprint(spec: Any, module: Any | None = None) -> str:
    """sha256 of a JSON-able ``spec`` and, when given, every tensor of ``module.state_dict()``."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    if module is not None:
        for k, v in sorted(module.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class FeatureStore:
    """Keyed float arrays (``[rows, F]`` per key) in append-only float16 shards."""

    def __init__(self, directory: str | Path, spec: dict | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index_path = self.dir / INDEX_FILE
        self.spec = spec or {}
        self._items: dict[str, tuple[int, int, int]] = {}
        self._shards: list[str] = []
        self.dim: int | None = None
        self._mmaps: dict[int, np.ndarray] = {}
        self._lock = FileLock(str(self.dir / "index.lock"))
        with self._lock:
            if self._index_path.is_file():
                self._read_index()
            else:
                self._write_index()

    def _read_index(self) -> None:
        doc = json.loads(self._index_path.read_text(encoding="utf-8"))
        self._shards = list(doc["shards"])
        self._items = {k: tuple(v) for k, v in doc["items"].items()}  # type: ignore[misc]
        self.dim = doc.get("dim")

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [k for k in dict.fromkeys(keys) if k not in self._items]

    def _write_index(self) -> None:
        doc = {"spec": self.spec, "dim": self.dim, "shards": self._shards, "items": self._items}
        tmp = self._index_path.with_name(f"{INDEX_FILE}.{os.getpid()}.part")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(self._index_path)

    def add(self, items: dict[str, np.ndarray]) -> None:
        """Store ``key → float [rows, F]`` arrays as one new shard."""
        if not items:
            return
        arrays = [np.atleast_2d(np.asarray(v, dtype=np.float32)) for v in items.values()]
        dim = arrays[0].shape[1]
        if self.dim is not None and dim != self.dim or any(a.shape[1] != dim for a in arrays):
            raise ValueError(f"feature dimension {dim} does not match the store's {self.dim}")
        name = f"shard-{uuid.uuid4().hex[:16]}.npy"
        tmp = self.dir / (name + ".part")
        with open(tmp, "wb") as fh:
            np.save(fh, np.concatenate(arrays).astype(np.float16))
        tmp.replace(self.dir / name)
        with self._lock:  # another process may have added shards meanwhile: merge with the index on disk
            if self._index_path.is_file():
                self._read_index()
            if self.dim is not None and dim != self.dim:
                raise ValueError(f"feature dimension {dim} does not match the store's {self.dim}")
            self.dim = dim
            shard = len(self._shards)
            self._shards.append(name)
            start = 0
            for key, a in zip(items, arrays, strict=True):
                self._items[key] = (shard, start, len(a))
                start += len(a)
            self._write_index()

    def _shard(self, i: int) -> np.ndarray:
        if i not in self._mmaps:
            self._mmaps[i] = np.load(self.dir / self._shards[i], mmap_mode="r")
        return self._mmaps[i]

    def get(self, key: str) -> np.ndarray:
        """float32 ``[rows, F]`` of one key (``KeyError`` when absent)."""
        shard, start, rows = self._items[key]
        return np.asarray(self._shard(shard)[start : start + rows], dtype=np.float32)

    def stack(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(features float32 [Σ rows, F], offsets int64 [len(keys) + 1])`` in the order of ``keys``."""
        parts = [self.get(k) for k in keys]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in parts])
        dim = self.dim or 0
        return (np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)), offsets


def build_backbone(side: str, cfg: BackboneConfig, *, pretrained: bool = True) -> Any:
    """A backbone from the engine's registry; with ``pretrained`` its ``config["pretrained"]`` weights."""
    from engine.models.registry import build_audio_backbone, build_text_backbone

    build = build_audio_backbone if side == "audio" else build_text_backbone
    module = build(cfg.arch, dict(cfg.config))
    if pretrained and hasattr(module, "load_pretrained") and cfg.config.get("pretrained"):
        module.load_pretrained(dict(cfg.config), None)
    return module


#: Threads the cached features are computed with, whoever computes them: the CPU's kernels round
#: differently with the thread count (aiSFX on 1 vs 2 threads: 3 of 53 windows differ by an fp16 ulp), and a
#: cache filled by processes with other counts made a rebuild's bundle differ (benchmarks/RESULTS.md, 2.3.0).
FEATURE_THREADS = 1


def feature_threads() -> contextlib.AbstractContextManager[None]:
    """Run the enclosed feature computation on :data:`FEATURE_THREADS` CPU threads (restored after)."""
    from training.distributed import cpu_threads

    return cpu_threads(FEATURE_THREADS)


class FrozenBackbone:
    """A frozen backbone with its feature cache. ``audio_features``/``text_features`` compute what is
    missing (in batches, on ``device``) and return the cached rows."""

    def __init__(
        self,
        side: str,
        cfg: BackboneConfig,
        cache_root: str | Path,
        *,
        sample_rate: int = 0,
        window_s: float = 0.0,
        hop_s: float = 0.0,
        device: Any = "cpu",
        batch: int = 64,
    ) -> None:
        import torch

        self.side = side
        self.cfg = cfg
        self.device = torch.device(device)
        self.batch = batch
        self.module = build_backbone(side, cfg).eval().to(self.device)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.out_dim = int(self.module.out_dim)
        self.sample_rate, self.window_s, self.hop_s = int(sample_rate), float(window_s), float(hop_s)
        # A backbone with ``cache_config``/``from_cached`` (aisfx_cnn) caches the outputs of a wider
        # variant once; every pooling/classifier setting is derived from them (no new extraction).
        self.view = self.module
        config = {k: v for k, v in cfg.config.items() if k != "pretrained"}
        if side == "audio" and hasattr(self.module, "cache_config"):
            pretrained = {"pretrained": cfg.config["pretrained"]} if cfg.config.get("pretrained") else {}
            try:  # with the classifier heads when the weights have them: one cache for every variant
                config = self.module.cache_config(classifiers=True)
                wide_module = build_backbone(side, dataclasses.replace(cfg, config={**config, **pretrained}))
            except ModelError:
                if getattr(self.module, "classifiers", None) is not None:
                    raise
                config = self.module.cache_config(classifiers=False)
                wide_module = build_backbone(side, dataclasses.replace(cfg, config={**config, **pretrained}))
            self.module = wide_module.eval().to(self.device)
            for p in self.module.parameters():
                p.requires_grad_(False)
        # Where the weights were read from is not part of the key (their bytes are, via the module).
        spec = {"side": side, "arch": cfg.arch, "config": config}
        if side == "text":  # features of this batching are not mixed with older caches' (padded batches)
            spec["batches"] = f"equal-length x{TEXT_BATCH}"
        if side == "audio":
            spec.update(sample_rate=self.sample_rate, window_s=self.window_s, hop_s=self.hop_s)
        self.fingerprint = fingerprint(spec, self.module)
        self.store = FeatureStore(Path(cache_root) / f"{side}-{cfg.name}-{self.fingerprint[:16]}", spec)

    # -- text -----------------------------------------------------------------------------------------

    def text_features(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """float32 ``[len(texts), F]``: the backbone's ``encode`` of each (already normalised) text."""
        todo = self.store.missing(texts)
        with feature_threads():
            self._add_text_features(todo, progress)
        feats, _ = self.store.stack(list(texts))
        return feats

    def _add_text_features(self, todo: Sequence[str], progress: Callable[[int, int], None] | None) -> None:
        """Encode ``todo`` in batches of exactly :data:`TEXT_BATCH` texts of one token length (the last batch of a
        length filled up with repeats of its last text, whose extra rows are dropped). A transformer's output
        for a text depends on the texts batched with it — padding, and the batch's shape, change the last
        digits — so batching whatever the cache happens to miss made a build's features depend on what earlier
        builds had left in the cache. With no padding and one shape, each text's features are the same
        whichever texts come with it (checked in the tests), and a cold rebuild sees the warm one's."""
        import torch

        for i in range(0, len(todo), 4096):
            chunk = list(todo[i : i + 4096])
            out = {}
            with torch.inference_mode():
                for part in self._equal_length_batches(chunk):
                    feats = self.module.encode(part).float().cpu().numpy()
                    out.update(zip(part, feats, strict=True))  # a filler repeat writes the same row again
            self.store.add(out)
            if progress:
                progress(min(i + 4096, len(todo)), len(todo))

    def _equal_length_batches(self, texts: list[str]) -> Iterable[list[str]]:
        """``texts`` grouped by token count (in first-seen order), each group cut into batches of exactly
        :data:`TEXT_BATCH` texts; a module without ``tokenize`` gets plain batches."""
        tokenize = getattr(self.module, "tokenize", None)
        if tokenize is None:
            yield from (texts[j : j + TEXT_BATCH] for j in range(0, len(texts), TEXT_BATCH))
            return
        groups: dict[int, list[str]] = {}
        for j in range(0, len(texts), 1024):
            part = texts[j : j + 1024]
            lengths = tokenize(part)["attention_mask"].sum(dim=1).tolist()
            for text, n in zip(part, lengths, strict=True):
                groups.setdefault(int(n), []).append(text)
        for group in groups.values():
            for j in range(0, len(group), TEXT_BATCH):
                part = group[j : j + TEXT_BATCH]
                yield part + [part[-1]] * (TEXT_BATCH - len(part))

    # -- audio ----------------------------------------------------------------------------------------

    def _windows(self, clip: Clip) -> Iterable[np.ndarray]:
        if clip.mix is None:
            for _, w in iter_windows(
                clip.path, self.sample_rate, self.window_s, self.hop_s, batch=self.batch
            ):
                yield w
        else:
            _, frames = frame(
                load_clip_audio(clip, self.sample_rate), self.sample_rate, self.window_s, self.hop_s
            )
            for i in range(0, len(frames), self.batch):
                yield frames[i : i + self.batch]

    def prepare_audio(
        self, clips: Sequence[Clip], progress: Callable[[int, int], None] | None = None
    ) -> list[Clip]:
        """Compute missing window features; returns the clips whose features exist (undecodable ones are
        logged and left out)."""
        import torch

        tokens = {}
        failed = 0
        for c in clips:
            try:
                tokens[c.key] = clip_token(c)
            except OSError as exc:
                failed += 1
                log.warning("cannot read %s: %s", c.path, exc)
        todo = [c for c in clips if c.key in tokens and tokens[c.key] not in self.store]
        pending: dict[str, np.ndarray] = {}
        for n, clip in enumerate(todo, 1):
            try:
                rows = []
                with torch.inference_mode(), feature_threads():
                    for w in self._windows(clip):
                        wave = torch.from_numpy(np.ascontiguousarray(w)).to(self.device)
                        rows.append(self.module(wave).float().cpu().numpy())
                pending[tokens[clip.key]] = np.concatenate(rows)
            except AudioError as exc:
                failed += 1
                tokens.pop(clip.key)
                log.warning("left out of training: %s", exc)
            if len(pending) >= 256 or n == len(todo):
                self.store.add(pending)
                pending = {}
            if progress:
                progress(n, len(todo))
        if failed:
            log.warning("%d clip(s) could not be decoded and are left out", failed)
        return [c for c in clips if c.key in tokens and tokens[c.key] in self.store]

    def audio_features(self, clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
        """``(window features float32 [Σ windows, F], offsets int64 [len(clips) + 1])`` (all cached)."""
        feats, offsets = self.store.stack([clip_token(c) for c in clips])
        if self.view is not self.module:
            import torch

            with torch.inference_mode():
                feats = self.view.from_cached(torch.from_numpy(feats)).float().numpy()
        return feats, offsets


class AudioStore:
    """Decoded mono audio at ``sample_rate``: float16 ``.npy`` files under ``cache_dir`` (when given),
    memory-mapped, with a small in-memory LRU for uncached use."""

    def __init__(self, sample_rate: int, cache_dir: str | Path | None = None, max_items: int = 4096) -> None:
        self.sample_rate = int(sample_rate)
        self.dir = Path(cache_dir) / f"audio-{self.sample_rate}" if cache_dir else None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max = max_items

    def _file(self, token: str) -> Path | None:
        if self.dir is None:
            return None
        return self.dir / (hashlib.sha1(token.encode()).hexdigest() + ".npy")

    def load(self, clip: Clip) -> np.ndarray:
        """float32 ``[S]`` (raises :class:`AudioError` when the file cannot be decoded)."""
        try:
            token = clip_token(clip)
        except OSError as exc:
            raise AudioError(f"cannot read {clip.path}: {exc.strerror or exc}", "unreadable") from exc
        if token in self._lru:
            self._lru.move_to_end(token)
            return self._lru[token]
        path = self._file(token)
        if path is not None and path.is_file():
            sig = np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32)
        else:
            sig = load_clip_audio(clip, self.sample_rate)
            if path is not None:
                half = sig.astype(np.float16)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
                with open(tmp, "wb") as fh:
                    np.save(fh, half)
                tmp.replace(path)
                sig = half.astype(
                    np.float32
                )  # what every later read returns: results never depend on the cache
        self._lru[token] = sig
        if len(self._lru) > self._max:
            self._lru.popitem(last=False)
        return sig

    def prepare(
        self, clips: Sequence[Clip], progress: Callable[[int, int], None] | None = None
    ) -> list[Clip]:
        """Decode every clip once; returns those that decode (the others are logged and left out)."""
        ok = []
        for n, clip in enumerate(clips, 1):
            try:
                self.load(clip)
                ok.append(clip)
            except AudioError as exc:
                log.warning("left out of training: %s", exc)
            if progress:
                progress(n, len(clips))
        return ok

"""PaSST audio backbone (registered ``"passt"``): the audio tower of the full (DCASE 2025 Task 6) recipe.

Pipeline for ``wave: Tensor[B, S]`` float32 mono at 32 kHz:

1. cut into ``segment_s`` (10 s) segments — the last one zero-padded, a short clip padded to one segment;
2. :class:`PasstFrontend` — log-mel spectrogram equal to hear21passt's ``AugmentMelSTFT`` in eval mode;
3. the PaSST transformer (network code from ``hear21passt`` behind :mod:`engine.models._passt_net`);
4. the embedding of each segment (``"cls+dist"``: mean of the cls and distillation tokens, what the recipe
   uses; or ``"mean_tokens"``: mean of the patch tokens), averaged over the segments that contain audio.

Weights (``config["pretrained"]``) come from a local ``.safetensors`` file, a local ``.pt`` release file
(read with ``torch.load(weights_only=True)`` and converted once to safetensors in the user cache), or
``"official"``: the public release, downloaded only when ``allow_network`` is true.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.errors import ModelError
from engine.models import _passt_net
from engine.models.registry import register_audio_backbone

logger = logging.getLogger(__name__)

_PT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


# --------------------------------------------------------------------------------------------- front-end
def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> Tensor:
    """Triangular mel filters as ``torchaudio.compliance.kaldi.get_mel_banks`` builds them (no VTLN warp).

    Mel scale ``1127 * ln(1 + f / 700)``; ``n_mels`` triangles whose edges are equally spaced in mel between
    ``fmin`` and ``fmax`` (Hz; ``fmax <= 0`` means ``nyquist + fmax``), evaluated at FFT bin ``k`` of
    frequency ``k * sample_rate / n_fft`` for ``k < n_fft // 2``; the Nyquist bin gets a zero column, as
    hear21passt pads it.

    Returns:
        ``Tensor[n_mels, n_fft // 2 + 1]`` float32.
    """
    nyquist = 0.5 * sample_rate
    if fmax <= 0.0:
        fmax += nyquist
    if not (0.0 <= fmin < nyquist and 0.0 < fmax <= nyquist and fmin < fmax) or n_mels <= 3 or n_fft % 2:
        raise ModelError(f"invalid mel filter bank: {n_mels} mels, n_fft {n_fft}, {fmin}-{fmax} Hz")

    def mel(freq: Tensor | float) -> Tensor:
        return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)

    mel_low, mel_high = mel(fmin), mel(fmax)
    delta = (mel_high - mel_low) / (n_mels + 1)
    index = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)
    left, center, right = (mel_low + (index + k) * delta for k in (0.0, 1.0, 2.0))
    bins = mel(torch.arange(n_fft // 2, dtype=torch.float64) * (sample_rate / n_fft)).unsqueeze(0)
    up = (bins - left) / (center - left)
    down = (right - bins) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return nn.functional.pad(banks, (0, 1)).to(torch.float32)


class PasstFrontend(nn.Module):
    """PaSST's log-mel front-end (hear21passt ``AugmentMelSTFT`` with ``freqm = timem = 0``).

    ``forward(wave: Tensor[B, S] float32 at sample_rate Hz) -> Tensor[B, n_mels, 1 + (S - 1) // hop]``:
    pre-emphasis ``y[n] = x[n + 1] - 0.97 x[n]``; centred STFT (reflect padding, ``n_fft`` 1024, symmetric
    Hann window of ``win_length`` 800, hop 320); power; Kaldi mel filters between ``fmin`` and ``fmax``
    (default ``sample_rate // 2 - fmax_aug_range // 2`` = 15 kHz); ``(log(x + 1e-5) + 4.5) / 5``.
    In train mode with ``augment``, ``fmin`` / ``fmax`` are jittered per call by up to ``fmin_aug_range`` /
    ``±fmax_aug_range / 2`` Hz, as in the recipe; eval mode is deterministic.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_mels: int = 128,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        fmin: float = 0.0,
        fmax: float | None = None,
        fmin_aug_range: int = 10,
        fmax_aug_range: int = 2000,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.fmin = float(fmin)
        self.fmax = float(sample_rate // 2 - fmax_aug_range // 2 if fmax is None else fmax)
        self.fmin_aug_range = max(1, int(fmin_aug_range))
        self.fmax_aug_range = max(1, int(fmax_aug_range))
        self.augment = augment
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        self.register_buffer(
            "mel_basis", kaldi_mel_banks(n_mels, n_fft, sample_rate, self.fmin, self.fmax), persistent=False
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples."""
        return 1 + (num_samples - 1) // self.hop_length

    def _basis(self) -> Tensor:
        if not (self.training and self.augment):
            return self.mel_basis
        fmin = self.fmin + int(torch.randint(self.fmin_aug_range, (1,)))
        fmax = self.fmax + self.fmax_aug_range // 2 - int(torch.randint(self.fmax_aug_range, (1,)))
        fmax = min(fmax, self.sample_rate / 2)
        return kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, fmin, fmax).to(
            self.mel_basis.device
        )

    def forward(self, wave: Tensor) -> Tensor:
        wave = wave.to(torch.float32)
        x = wave[:, 1:] - 0.97 * wave[:, :-1]
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            normalized=False,
            return_complex=True,
        )
        power = torch.view_as_real(spec).pow(2).sum(-1)  # [B, n_fft // 2 + 1, T]
        with torch.autocast(device_type=power.device.type, enabled=False):
            mel = torch.matmul(self._basis(), power)
        return (torch.log(mel + 1e-5) + 4.5) / 5.0


# ------------------------------------------------------------------------------------------------ config
@dataclasses.dataclass(frozen=True)
class PasstConfig:
    """Configuration of the ``passt`` backbone; ``to_dict()`` is what a bundle stores.

    Architecture fields default to the variant (``passt_s_p16_s16_128_ap468``: 768-dim, 12 layers, 12
    heads, 16x16 patches, stride 16, 128 mels); tests override them with tiny values. ``input_tdim``
    defaults to the frames of one segment. Patchout sizes (structured time/frequency, unstructured) apply
    only in train mode.
    """

    variant: str = "passt_s_p16_s16_128_ap468"
    sample_rate: int = 32000
    segment_s: float = 10.0
    embed: str = "cls+dist"
    pretrained: str | None = None
    allow_network: bool = False
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    patch_size: int = 16
    stride: int = 16
    n_mels: int = 128
    input_tdim: int | None = None
    s_patchout_t: int = 15
    s_patchout_f: int = 2
    u_patchout: int = 0
    drop_path_rate: float = 0.0
    mel_augment: bool = True

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> PasstConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ModelError(f"unknown passt config keys {unknown}; known: {sorted(names)}")
        cfg = cls(**config)
        if cfg.variant not in _passt_net.OFFICIAL_WEIGHTS:
            raise ModelError(
                f"unknown PaSST variant {cfg.variant!r}; known: {sorted(_passt_net.OFFICIAL_WEIGHTS)}"
            )
        if cfg.embed not in EMBEDDINGS:
            raise ModelError(f"unknown PaSST embedding {cfg.embed!r}; choose one of {sorted(EMBEDDINGS)}")
        if cfg.segment_s <= 0 or cfg.embed_dim % cfg.num_heads:
            raise ModelError("PaSST config needs segment_s > 0 and embed_dim divisible by num_heads")
        return cfg

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_s * self.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cls_dist(tokens: Tensor) -> Tensor:
    return (tokens[:, 0] + tokens[:, 1]) / 2


def _mean_tokens(tokens: Tensor) -> Tensor:
    return tokens[:, 2:].mean(dim=1)


#: Embedding name -> ``f(tokens: Tensor[B, 2 + P, E]) -> Tensor[B, E]``.
EMBEDDINGS: dict[str, Callable[[Tensor], Tensor]] = {"cls+dist": _cls_dist, "mean_tokens": _mean_tokens}


def content_lengths(wave: Tensor) -> Tensor:
    """Samples up to and including the last non-zero one, per row: ``Tensor[B, S>0] -> Tensor[B]`` int64.

    Exact zeros at the end of a row are treated as padding.
    """
    positions = torch.arange(1, wave.shape[1] + 1, device=wave.device)
    return torch.where(wave != 0, positions, 0).amax(dim=1)


# ------------------------------------------------------------------------------------------------- model
@register_audio_backbone("passt")
class PasstBackbone(nn.Module):
    """PaSST audio backbone: ``forward(wave: Tensor[B, S] at 32 kHz) -> Tensor[B, out_dim]``.

    Attributes: ``sample_rate`` (Hz), ``out_dim`` (= ``embed_dim``, 768 for the real model),
    ``segment_samples``, ``config`` (a :class:`PasstConfig`), ``frontend``, ``net``.
    """

    def __init__(self, config: PasstConfig) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.segment_samples = config.segment_samples
        self.out_dim = config.embed_dim
        self.frontend = PasstFrontend(
            sample_rate=config.sample_rate, n_mels=config.n_mels, augment=config.mel_augment
        )
        input_tdim = config.input_tdim or self.frontend.num_frames(self.segment_samples)
        grid_f = (config.n_mels - config.patch_size) // config.stride + 1
        grid_t = (input_tdim - config.patch_size) // config.stride + 1
        if grid_f < 1 or grid_t < 1:
            raise ModelError(
                f"PaSST needs at least one {config.patch_size}x{config.patch_size} patch of input"
            )
        if (
            config.s_patchout_f >= grid_f
            or config.s_patchout_t >= grid_t
            or config.u_patchout >= grid_f * grid_t
        ):
            raise ModelError(f"PaSST patchout drops every patch of its {grid_f}x{grid_t} grid")
        self.net = _passt_net.build_net(
            n_mels=config.n_mels,
            input_tdim=input_tdim,
            patch_size=config.patch_size,
            stride=config.stride,
            embed_dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            s_patchout_t=config.s_patchout_t,
            s_patchout_f=config.s_patchout_f,
            u_patchout=config.u_patchout,
            drop_path_rate=config.drop_path_rate,
        )
        self._embed = EMBEDDINGS[config.embed]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PasstBackbone:
        """Random weights, no I/O. Raises :class:`ModelError` for an invalid config."""
        return cls(PasstConfig.from_dict(config))

    # ---------------------------------------------------------------------------------------- forward
    def embed_segments(self, segments: Tensor) -> Tensor:
        """Embed whole segments: ``Tensor[M, segment_samples]`` float32 at 32 kHz -> ``Tensor[M, out_dim]``."""
        with torch.no_grad():
            spec = self.frontend(segments)
        tokens = _passt_net.forward_tokens(self.net, spec.unsqueeze(1))
        return self._embed(tokens)

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Embed clips of any length.

        Args:
            wave: ``Tensor[B, S]`` float32 mono at ``sample_rate`` Hz, range ±1.
            lengths: optional ``Tensor[B]`` of valid samples per row; by default the samples up to the last
                non-zero one (trailing exact zeros are padding).

        Returns:
            ``Tensor[B, out_dim]``: the mean embedding of the ``ceil(length / segment)`` leading segments
            (at least one) — segments holding only padding are neither computed nor averaged.
        """
        if wave.dim() != 2:
            raise ModelError(f"PaSST expects a [batch, samples] waveform, got shape {tuple(wave.shape)}")
        batch, samples = wave.shape
        seg = self.segment_samples
        n_seg = max(1, math.ceil(samples / seg))
        wave = nn.functional.pad(wave.to(torch.float32), (0, n_seg * seg - samples))
        if lengths is None:
            lengths = content_lengths(wave)
        n_valid = torch.clamp((lengths.to(wave.device, torch.long) + seg - 1) // seg, 1, n_seg)
        used = torch.arange(n_seg, device=wave.device).unsqueeze(0) < n_valid.unsqueeze(1)  # [B, n_seg]
        embeddings = self.embed_segments(wave.reshape(batch * n_seg, seg)[used.reshape(-1)])
        per_segment = embeddings.new_zeros(batch, n_seg, self.out_dim)
        per_segment[used] = embeddings
        return per_segment.sum(dim=1) / n_valid.unsqueeze(1).to(embeddings.dtype)

    # ---------------------------------------------------------------------------------------- weights
    def load_pretrained(
        self, config: Mapping[str, Any] | None = None, bundle_dir: Path | None = None
    ) -> None:
        """Load the weights named by ``config["pretrained"]`` (default: this module's config).

        ``None`` keeps the random weights; a path (relative paths are taken inside ``bundle_dir``) to a
        ``.safetensors`` or ``.pt`` file; or ``"official"``. Raises :class:`ModelError` when the file is
        missing, unreadable, not allowed to be downloaded, or does not fit the architecture.
        """
        cfg = self.config if config is None else PasstConfig.from_dict(config)
        if cfg.pretrained is None:
            logger.debug("passt: no pretrained weights configured; keeping random initialisation")
            return
        path = resolve_weights(cfg.pretrained, cfg.variant, cfg.allow_network, bundle_dir)
        self.load_backbone_state(load_safetensors_state(path))
        logger.info("passt: loaded weights from %s", path)

    def load_backbone_state(self, state: Mapping[str, Tensor]) -> None:
        """Load a PaSST ``state_dict`` (official key names) into ``self.net``; classifier heads are dropped."""
        own = self.net.state_dict()
        state = {
            k: v for k, v in state.items() if k in own or not k.startswith(_passt_net.CLASSIFIER_PREFIXES)
        }
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or wrong:
            raise ModelError(
                "These PaSST weights do not fit the configured architecture "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]})"
            )
        self.net.load_state_dict(state)


# ------------------------------------------------------------------------------------ weights on disk
def weights_cache_dir() -> Path:
    """Where converted and downloaded PaSST weights live: ``<user cache>/earshot/passt``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("earshot")) / "passt"


def resolve_weights(pretrained: str, variant: str, allow_network: bool, bundle_dir: Path | None) -> Path:
    """Turn ``config["pretrained"]`` into a local ``.safetensors`` file, converting or downloading once.

    Raises:
        ModelError: the file does not exist, has an unknown format, or must be downloaded while the
            network is not allowed.
    """
    if pretrained == "official":
        url = _passt_net.OFFICIAL_WEIGHTS[variant]
        filename = url.rsplit("/", 1)[-1]
        cache = weights_cache_dir()
        converted = cache / (Path(filename).stem + ".safetensors")
        if converted.is_file():
            return converted
        downloaded = cache / filename
        if not downloaded.is_file():
            if not allow_network:
                raise ModelError(
                    f"The PaSST weights ({variant}) are not on this computer and downloading is not allowed. "
                    f"Download {url} and put it at {downloaded} (or set 'pretrained' to its path), "
                    "or allow network access."
                )
            _download(url, downloaded)
        _convert_pt(downloaded, converted)
        return converted

    path = Path(pretrained).expanduser()
    if not path.is_absolute() and bundle_dir is not None:
        path = Path(bundle_dir) / path
    if not path.is_file():
        raise ModelError(f"PaSST weights file not found: {path}")
    if path.suffix == ".safetensors":
        return path
    if path.suffix not in _PT_SUFFIXES:
        raise ModelError(f"Unknown PaSST weights format {path.suffix!r} ({path}); use .safetensors or .pt")
    return convert_to_cache(path)


def convert_to_cache(path: Path) -> Path:
    """Convert a ``.pt`` state dict to safetensors in :func:`weights_cache_dir`, once per file version.

    The cache name carries a digest of the source's absolute path, size and modification time, so an
    edited or replaced file is converted again.
    """
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = weights_cache_dir() / f"{path.stem}-{key}.safetensors"
    if not target.is_file():
        _convert_pt(path, target)
    return target


def read_pt_state(path: Path) -> dict[str, Tensor]:
    """Read a state dict from a ``.pt`` file with ``torch.load(weights_only=True)`` (never plain unpickling).

    Accepts a flat ``{name: tensor}`` dict or one nested under ``"model"`` / ``"state_dict"``.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for disallowed objects, RuntimeError / OSError for bad files
        raise ModelError(f"Cannot read PaSST weights {path} as a plain tensor file: {exc}") from exc
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelError(f"{path} does not hold a PaSST state dict (name -> tensor)")
    return {str(k): v for k, v in obj.items()}


def _convert_pt(source: Path, target: Path) -> None:
    from engine.models.checkpoints import save_atomic

    save_atomic(read_pt_state(source), target, {"source": str(source)})
    logger.info("passt: converted %s to %s", source, target)


def load_safetensors_state(path: Path) -> dict[str, Tensor]:
    """Read every tensor of a ``.safetensors`` file (CPU)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"Cannot read PaSST weights {path}: {exc}") from exc


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
    logger.info("passt: downloading %s", url)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"Downloading the PaSST weights from {url} failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


__all__ = [
    "EMBEDDINGS",
    "PasstBackbone",
    "PasstConfig",
    "PasstFrontend",
    "content_lengths",
    "convert_to_cache",
    "kaldi_mel_banks",
    "load_safetensors_state",
    "read_pt_state",
    "resolve_weights",
    "weights_cache_dir",
]

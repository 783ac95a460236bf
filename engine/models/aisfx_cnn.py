"""The aiSFX CNN audio backbone, re-implemented in plain torch.

Architecture and weights: A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing
of Sound Effects Libraries", ISMIR 2022 (PyPI ``aisfx`` 0.1.2, weights CC BY 4.0; the conv blocks come
from the DCASE 2018 cross-task baseline). The checkpoint is converted to safetensors by
``scripts/convert_aisfx.py``; this module never unpickles anything.

Signal path (config keys in brackets)::

    wave Tensor[B, S] float32, 44.1 kHz mono
      → front-end (engine.models.mel.aisfx_frontend; [peak_normalize]) → Tensor[B, T, 96]
      → 4 conv blocks (Conv3x3-BN-ReLU ×2, then max-pool 2×2, 2×2, 2×2, 1×1) → Tensor[B, 512, T//8, 12]
      → mean over frequency → features Tensor[B, 512, T//8]      (forward_features)
        [blocks = 2: block 3's output, mean over frequency, appended → Tensor[B, 768, T//8]]
      → time pooling [time_pool]: "max" (original, 512-d), "mean" (512-d), "meanmax" (1024-d)
      ⊕ [classifiers]: the checkpoint's nine classifier heads (MLP 512→256→128→classes, one per
        professional library it was trained on: 378 classes in all) applied to the max-pooled 512-d
        embedding, appended as "logits" or "probs" (softmax per head); "none" (default) appends nothing

Frame ↔ time mapping: mel frame ``k`` is centred on sample ``k * 1024``; feature step ``j`` (after the
three 2× poolings) summarises mel frames ``8j … 8j + 7``, i.e. it starts at ``j * 8 * 1024 / 44100`` ≈
``j * 0.186`` s and spans 8 × 1024 samples (≈ 0.186 s; the 3×3 convolutions see a few frames more).
A 2.32 s window (102400 samples) gives 100 frames and 12 feature steps.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from engine.errors import ModelError
from engine.models.mel import AISFX_FRONTEND, AISFX_SAMPLE_RATE, aisfx_frontend
from engine.models.registry import register_audio_backbone

log = logging.getLogger(__name__)

TIME_POOLS = ("max", "mean", "meanmax")
CLASSIFIER_OUTPUTS = ("none", "logits", "probs")
#: The classifier heads of the published checkpoint (CrossNet ``ds_dict``: dataset → classes), in order.
CLASSIFIER_HEADS: tuple[tuple[str, int], ...] = (
    ("prosfx", 78),
    ("soundlyTrain", 79),
    ("ucsMixed", 69),
    ("soundstormBalanced", 81),
    ("productionelementsBalanced", 10),
    ("cartoonexpressBalanced", 27),
    ("hpxdigitalBalanced", 3),
    ("series6000Balanced", 23),
    ("series9000Balanced", 8),
)
CLASSIFIER_PREFIX = "classifiers."
#: Mel frames per feature step (three 2× poolings in time).
TIME_REDUCTION = 8
#: Frames per aiSFX training block (≈ 2.32 s at 44.1 kHz, hop 1024).
BLOCK_FRAMES = 100


def read_weights(path: Path | str) -> dict[str, Tensor]:
    """Read a safetensors state dict, casting floating tensors to float32 (fp16 storage → fp32 model).

    Integer tensors (BatchNorm's ``num_batches_tracked``) are kept as they are.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model weights not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise ModelError(f"cannot read model weights {path}: {exc}") from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


class ConvBlock(nn.Module):
    """Conv3x3-BN-ReLU ×2 then max-pooling; parameter names match the aiSFX checkpoint."""

    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_uniform_(conv.weight, nonlinearity="leaky_relu")

    def fold_batchnorms(self) -> None:
        """Fold ``bn1``/``bn2`` (eval statistics) into ``conv1``/``conv2``, in place; the BatchNorms become
        identities. For inference only (the folded convolution no longer trains its BatchNorm)."""
        if self.training:
            raise ModelError("aisfx_cnn: BatchNorms are folded only in eval mode")
        if isinstance(self.bn1, nn.BatchNorm2d):
            self.conv1 = fuse_conv_bn_eval(self.conv1, self.bn1)
            self.conv2 = fuse_conv_bn_eval(self.conv2, self.bn2)
            self.bn1, self.bn2 = nn.Identity(), nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)  # in place: the same values, less memory traffic
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        if self.pool != (1, 1):
            x = F.max_pool2d(x, kernel_size=self.pool)
        return x


@register_audio_backbone("aisfx_cnn")
class AisfxCNN(nn.Module):
    """aiSFX audio backbone: ``forward(wave Tensor[B, S] float32 at 44.1 kHz) -> Tensor[B, out_dim]``.

    Config (all optional):
        ``time_pool``: ``"max"`` (default, as trained), ``"mean"`` or ``"meanmax"`` (→ 1024-d).
        ``peak_normalize``: ``"window"`` (default: each input row scaled to peak 1) or ``"none"``.
        ``hl1``: channels of the first block (64 for the published weights; tests use smaller).
        ``classifiers``: ``"none"`` (default), ``"logits"`` or ``"probs"``: append the outputs of the
            checkpoint's nine classifier heads (378 values, see :data:`CLASSIFIER_HEADS`), computed from
            the max-pooled embedding of the same window, whatever ``time_pool`` is.
        ``blocks``: ``1`` (default: the last conv block's 512 channels) or ``2`` (the last two blocks:
            512 + 256 = 768 channels, pooled alike; block 3 runs at block 4's time resolution, so the
            same CNN pass gives both at no extra cost).
        ``classifier_scale``: factor applied to those outputs (default 1.0; logits are ≈ 5× larger
            than the conv features, probabilities ≈ 30× smaller).
        ``pretrained``: safetensors file (absolute, or relative to the bundle directory) for
            :meth:`load_pretrained`.
    """

    sample_rate = AISFX_SAMPLE_RATE
    hop_length = AISFX_FRONTEND["hop_length"]

    def __init__(
        self,
        time_pool: str = "max",
        peak_normalize: str = "window",
        hl1: int = 64,
        classifiers: str = "none",
        classifier_scale: float = 1.0,
        blocks: int = 1,
    ) -> None:
        super().__init__()
        if blocks not in (1, 2):
            raise ModelError(f"aisfx_cnn: blocks must be 1 or 2, got {blocks!r}")
        if time_pool not in TIME_POOLS:
            raise ModelError(f"aisfx_cnn: time_pool must be one of {TIME_POOLS}, got {time_pool!r}")
        if classifiers not in CLASSIFIER_OUTPUTS:
            raise ModelError(
                f"aisfx_cnn: classifiers must be one of {CLASSIFIER_OUTPUTS}, got {classifiers!r}"
            )
        if peak_normalize not in ("window", "none"):
            raise ModelError(f"aisfx_cnn: peak_normalize must be 'window' or 'none', got {peak_normalize!r}")
        self.time_pool = time_pool
        self.frontend = aisfx_frontend(peak_normalize=peak_normalize)
        chans = [1, hl1, hl1 * 2, hl1 * 4, hl1 * 8]
        pools = [(2, 2), (2, 2), (2, 2), (1, 1)]
        self.conv_block1 = ConvBlock(chans[0], chans[1], pools[0])
        self.conv_block2 = ConvBlock(chans[1], chans[2], pools[1])
        self.conv_block3 = ConvBlock(chans[2], chans[3], pools[2])
        self.conv_block4 = ConvBlock(chans[3], chans[4], pools[3])
        self.feature_dim = chans[4]  # the classifier heads' input: the last block's channels
        self.blocks = int(blocks)
        self.channels = chans[4] + (chans[3] if self.blocks == 2 else 0)  # channels of forward_features
        self.classifier_output = classifiers
        self.classifier_scale = float(classifier_scale)
        self.peak_normalize = peak_normalize
        self.hl1 = hl1
        # Built only when used, so a model without them keeps the state dict (and weights file) of 1.0.
        self.classifiers: nn.ModuleList | None = None
        n_classes = 0
        if classifiers != "none":
            d = self.feature_dim
            self.classifiers = nn.ModuleList(
                nn.Sequential(nn.Linear(d, d // 2), nn.ReLU(), nn.Linear(d // 2, d // 4), nn.ReLU(), nn.Linear(d // 4, n))
                for _, n in CLASSIFIER_HEADS
            )
            n_classes = sum(n for _, n in CLASSIFIER_HEADS)
        self.out_dim = self.channels * (2 if time_pool == "meanmax" else 1) + n_classes

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: dict) -> AisfxCNN:
        """Random weights, no I/O. Unknown keys are an error; ``sample_rate``, if given, must be 44100."""
        config = dict(config)
        config.pop("pretrained", None)
        sample_rate = config.pop("sample_rate", cls.sample_rate)
        if int(sample_rate) != cls.sample_rate:
            raise ModelError(f"aisfx_cnn runs at {cls.sample_rate} Hz, not {sample_rate}")
        allowed = {"time_pool", "peak_normalize", "hl1", "classifiers", "classifier_scale", "blocks"}
        unknown = set(config) - allowed
        if unknown:
            raise ModelError(f"aisfx_cnn: unknown config keys {sorted(unknown)}")
        return cls(**config)

    def load_pretrained(self, config: dict, bundle_dir: Path | None) -> None:
        """Load ``config["pretrained"]`` (a safetensors file, fp16 or fp32) into this module.

        A relative path is resolved against ``bundle_dir`` (else the working directory: training recipes). Raises :class:`ModelError` when the file is
        missing, unreadable or does not match the architecture.
        """
        ref = config.get("pretrained")
        if not ref:
            raise ModelError("aisfx_cnn: the config names no pretrained weights ('pretrained')")
        path = Path(ref)
        if not path.is_absolute() and bundle_dir is not None:
            path = Path(bundle_dir) / path
        self.load_weights_file(path)

    def load_weights_file(self, path: Path | str) -> None:
        """Load a safetensors state dict (as written by ``scripts/convert_aisfx.py``) strictly.

        The file's classifier heads (``classifiers.*``) are left out when this model does not use them;
        a model that uses them needs a file that has them.
        """
        state = read_weights(path)
        if self.classifiers is None:
            state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"aisfx_cnn: weights in {path} do not fit this architecture: {exc}") from exc
        log.debug("aisfx_cnn: loaded %d tensors from %s", len(state), path)

    # -- inference ----------------------------------------------------------------------------------

    def for_inference(self, precision: str = "fp32") -> AisfxCNN:
        """Make this (eval-mode) model faster for inference, in place: convolutions in channels-last layout
        (oneDNN's fast path on CPU, ≈ 1.3× with bf16 autocast on 2 cores) and, in ``"fp32"``, every
        BatchNorm folded into the convolution before it (≈ 1.13× more on 2 cores; the same function up to
        fp32 rounding: centred cosine 1.00000 on real sounds). Under ``"bf16"`` autocast the BatchNorms stay:
        folded weights round differently there (centred cosine 0.9976 to the unfolded bf16 path, below
        the 0.999 bar). After folding the module's state dict has no BatchNorm entries: inference only.
        See benchmarks/RESULTS.md, "Audio network inference backends"."""
        if precision == "fp32":
            for block in (self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4):
                block.fold_batchnorms()
        return self.to(memory_format=torch.channels_last)

    def forward_features(self, spec: Tensor) -> Tensor:
        """Log-mel ``Tensor[B, T, 96]`` (from ``self.frontend``) → features ``Tensor[B, 512, T // 8]``
        (``Tensor[B, 768, T // 8]`` with ``blocks = 2``: the last block's channels first, then block 3's).

        Inputs shorter than 8 frames are padded with silence (0) to 8 frames, as aiSFX pads short
        blocks. Feature step ``j`` covers mel frames ``8j … 8j + 7`` (see the module docstring).
        """
        if spec.dim() != 3:
            raise ValueError(f"expected a spectrogram Tensor[B, T, n_mels], got shape {tuple(spec.shape)}")
        if spec.shape[1] < TIME_REDUCTION:
            spec = F.pad(spec, (0, 0, 0, TIME_REDUCTION - spec.shape[1]))
        x = spec.unsqueeze(1)
        x = self.conv_block1(x)
        x = self.conv_block2(x)
        x3 = self.conv_block3(x)
        x = self.conv_block4(x3).mean(dim=3)
        if self.blocks == 2:
            return torch.cat([x, x3.mean(dim=3)], dim=1)
        return x

    def pool_time(self, features: Tensor) -> Tensor:
        """``Tensor[B, channels, T']`` → ``Tensor[B, out_dim]`` with the configured ``time_pool`` (and the
        classifier outputs, from the last block's max-pooled channels, when configured)."""
        peak = features.amax(dim=2)
        if self.time_pool == "max":
            pooled = peak
        elif self.time_pool == "mean":
            pooled = features.mean(dim=2)
        else:
            pooled = torch.cat([features.mean(dim=2), peak], dim=1)
        if self.classifiers is None:
            return pooled
        return torch.cat([pooled, self.classify(peak[:, : self.feature_dim])], dim=1)

    def classify(self, embedding: Tensor) -> Tensor:
        """Max-pooled embedding ``Tensor[B, 512]`` → the nine heads' outputs ``Tensor[B, 378]`` (logits,
        or probabilities with a softmax per head, as configured)."""
        if self.classifiers is None:
            raise ModelError("aisfx_cnn: this model was built without classifier heads")
        # Always in float32: under bf16 autocast the softmax of 9 small heads would lose the tails.
        with torch.autocast(embedding.device.type, enabled=False):
            x = embedding.float()
            return self._classifier_output(torch.cat([head(x) for head in self.classifiers], dim=1))

    def _classifier_output(self, logits: Tensor) -> Tensor:
        """Concatenated logits ``Tensor[B, 378]`` → the configured output (probabilities, scaled)."""
        if self.classifier_output == "probs":
            sizes = [n for _, n in CLASSIFIER_HEADS]
            logits = torch.cat([part.softmax(dim=1) for part in logits.split(sizes, dim=1)], dim=1)
        return logits * self.classifier_scale if self.classifier_scale != 1.0 else logits

    # -- cached features (training) -------------------------------------------------------------------

    def cache_config(self, classifiers: bool = True) -> dict:
        """Config of a model whose outputs contain this model's: mean+max pooling and, with
        ``classifiers`` (needed when this model uses them), the raw logits. Training caches those once
        and derives every variant from them with :meth:`from_cached`, so trying a pooling or classifier
        setting costs no new feature extraction."""
        config = {
            "time_pool": "meanmax",
            "peak_normalize": self.peak_normalize,
            "hl1": self.hl1,
            "classifiers": "logits" if classifiers or self.classifiers is not None else "none",
        }
        if self.blocks != 1:  # absent for one block, so the caches of one-block models keep their key
            config["blocks"] = self.blocks
        return config

    def from_cached(self, cached: Tensor) -> Tensor:
        """Outputs of a :meth:`cache_config` model ``Tensor[B, 2·channels (+378)]`` → this model's
        ``Tensor[B, out_dim]``; equal to :meth:`forward` on the same windows (up to float rounding)."""
        d = self.channels
        n_classes = sum(n for _, n in CLASSIFIER_HEADS)
        widths = (2 * d + n_classes,) if self.classifiers is not None else (2 * d, 2 * d + n_classes)
        if cached.shape[1] not in widths:
            raise ModelError(f"aisfx_cnn: cached features of width {cached.shape[1]} do not fit {self.cache_config()}")
        mean, peak = cached[:, :d], cached[:, d : 2 * d]
        pooled = {"max": peak, "mean": mean, "meanmax": cached[:, : 2 * d]}[self.time_pool]
        if self.classifiers is None:
            return pooled
        return torch.cat([pooled, self._classifier_output(cached[:, 2 * d :].float())], dim=1)

    def forward(self, wave: Tensor) -> Tensor:
        """``Tensor[B, S]`` float32 mono at 44.1 kHz (±1) → ``Tensor[B, out_dim]`` float32.

        A 102400-sample window (≈ 2.32 s) is the block length the weights were trained on.
        """
        return self.pool_time(self.forward_features(self.frontend(wave)))

    @property
    def feature_rate(self) -> float:
        """Feature steps per second of audio (≈ 5.383)."""
        return self.sample_rate / (self.hop_length * TIME_REDUCTION)

    def pool_windows(self, features: Tensor, window_s: float, hop_s: float) -> tuple[Tensor, list[float]]:
        """Pool windows from the features of one pass over a long signal.

        Window ``k`` spans feature steps ``[round(k * hop_s * rate), … + round(window_s * rate))`` with
        ``rate = feature_rate``; windows are emitted while they fit (always at least one, clipped to
        what exists). Step boundaries are 8 × 1024 samples apart, so starts are rounded to ≈ 0.19 s.

        Args:
            features: ``Tensor[B, 512, T']`` from :meth:`forward_features`.
            window_s, hop_s: window length and hop in seconds.

        Returns:
            ``(Tensor[B, N, out_dim], starts_s)`` where ``starts_s[k]`` is window ``k``'s start in seconds.
        """
        if window_s <= 0 or hop_s <= 0:
            raise ValueError("window_s and hop_s must be positive")
        rate = self.feature_rate
        steps = features.shape[2]
        length = max(1, round(window_s * rate))
        n = max(1, math.floor((steps - length) / (hop_s * rate) + 1e-9) + 1) if steps >= length else 1
        starts = [round(k * hop_s * rate) for k in range(n)]
        pooled = [self.pool_time(features[:, :, s : s + length]) for s in starts]
        return torch.stack(pooled, dim=1), [s / rate for s in starts]

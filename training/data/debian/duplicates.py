"""Find copies of one sound across packages (coarse spectral fingerprints) and the clips that would leak
a held-out sound into training."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from training.data.debian.corpus import SPLIT_PRIORITY, progress_iter

log = logging.getLogger(__name__)


DUPLICATE_THRESHOLD = 0.95
#: Looser test for a training clip against a held-out one (a leak costs more than a lost training clip):
#: the same sound remastered or re-trimmed by another package (Red Eclipse vs Cube 2 correlate 0.90-0.93).
NEAR_DUPLICATE_THRESHOLD = 0.88
NEAR_DUPLICATE_DURATION_REL = 0.05
_FP_RATE = 8000  # Hz: fingerprints compare coarse spectral shape only


def fingerprint(path: Path) -> tuple[float, np.ndarray]:
    """Coarse spectral fingerprint of an audio file for duplicate detection.

    The clip is decoded to mono, resampled to 8 kHz, trimmed of leading/trailing near-silence (below 1 %
    of its peak) and turned into log energies of 16 log-spaced bands over 32 ms frames (hop 16 ms).
    Returns ``(trimmed duration in s, array [frames, bands] float64)``. Raises
    :class:`engine.errors.AudioError` when the file cannot be decoded.
    """
    import soundfile as sf
    import soxr

    from engine.errors import AudioError

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"Cannot decode {path.name}: {exc}", reason="decode_error") from exc
    y = data.mean(axis=1)
    if rate != _FP_RATE and len(y):
        y = soxr.resample(y, rate, _FP_RATE)
    a = np.abs(y)
    if len(a) and a.max() > 0:
        loud = np.nonzero(a > 0.01 * a.max())[0]
        y = y[loud[0] : loud[-1] + 1]
    n_fft, hop = 256, 128
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.unique(np.geomspace(2, n_fft // 2 + 1, 17).astype(int))
    bands = np.stack(
        [power[:, lo:hi].sum(axis=1) for lo, hi in zip(edges[:-1], edges[1:], strict=True)], axis=1
    )
    return len(y) / _FP_RATE, np.log(bands + 1e-8)


def find_duplicates(
    fingerprints: dict[str, tuple[float, np.ndarray]],
    threshold: float = DUPLICATE_THRESHOLD,
    duration_rel: float = 0.02,
    pair_filter: Callable[[str, str], bool] | None = None,
) -> list[tuple[str, str, float]]:
    """Pairs of clips whose fingerprints (see :func:`fingerprint`) agree: trimmed durations within
    ``duration_rel`` (+10 ms) and correlation of the band energies over their common length above
    ``threshold``. ``pair_filter(a, b)``, when given, limits the pairs compared.

    Catches copies of one sound shipped by several packages, also when re-encoded or resampled.
    Returns ``(path_a, path_b, correlation)`` with ``path_a < path_b``, sorted.
    """
    items = sorted(fingerprints.items(), key=lambda kv: kv[1][0])
    pairs: list[tuple[str, str, float]] = []
    for i, (a, (dur_a, fa)) in enumerate(items):
        for b, (dur_b, fb) in items[i + 1 :]:
            if dur_b > dur_a * (1 + duration_rel) + 0.01:
                break
            if pair_filter is not None and not pair_filter(a, b):
                continue
            m = min(len(fa), len(fb))
            if m < 3:
                continue
            u, v = fa[:m].ravel(), fb[:m].ravel()
            if u.std() == 0 or v.std() == 0:
                continue
            corr = float(np.corrcoef(u, v)[0, 1])
            if corr > threshold:
                pairs.append((min(a, b), max(a, b), corr))
    return sorted(pairs)


def write_duplicates(path: Path, pairs: Sequence[tuple[str, str, float]]) -> None:
    """Write duplicate pairs as CSV (``a,b,correlation``)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["a", "b", "correlation"])
        writer.writerows((a, b, f"{c:.4f}") for a, b, c in pairs)


def read_duplicates(path: Path) -> list[tuple[str, str, float]]:
    """Read pairs written by :func:`write_duplicates`."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["a"], r["b"], float(r["correlation"])) for r in csv.DictReader(fh)]


def leaking_duplicates(
    pairs: Iterable[tuple[str, str, float]], split_of_path: Callable[[str], str]
) -> set[str]:
    """Clips to leave out so that no sound is in two splits: of each duplicate pair spanning two splits,
    the clip in the lower-priority split (train < val < test) goes. Pairs inside one split are kept."""
    drop: set[str] = set()
    for a, b, _ in pairs:
        sa, sb = split_of_path(a), split_of_path(b)
        if sa == sb:
            continue
        drop.add(a if SPLIT_PRIORITY[sa] < SPLIT_PRIORITY[sb] else b)
    return drop


def _name_key(path: str) -> str:
    """A clip's file name without extension, digits and separators (``explode2.ogg`` → ``explode``)."""
    return re.sub(r"[^a-z]+", "", PurePosixPath(path).stem.lower())


def build_duplicates(
    out: Path,
    rows: Sequence[Mapping[str, str]],
    progress: bool = False,
    split_of_path: Callable[[str], str] | None = None,
) -> list[tuple[str, str, float]]:
    """Fingerprint the usable clips of manifest ``rows`` under ``out`` and write ``out/duplicates.csv``.

    With ``split_of_path`` (corpus path → split), pairs of a training clip and a held-out clip with the
    same file name (digits and separators aside) are also tested with the looser
    :data:`NEAR_DUPLICATE_THRESHOLD` / :data:`NEAR_DUPLICATE_DURATION_REL` (remastered or trimmed
    versions of one sound), so that the training copy can be left out. (The loose test alone would
    pair unrelated explosions: the coarse fingerprint of any decaying broadband sound looks alike.) Pairs of
    two held-out clips only ever use the strict test, which keeps the held-out splits stable.
    """
    from engine.errors import AudioError

    usable = [r for r in rows if r["status"] in ("ok", "duration_mismatch")]
    fps: dict[str, tuple[float, np.ndarray]] = {}
    for r in progress_iter(usable, len(usable), "fingerprints", progress):
        try:
            fps[r["path"]] = fingerprint(out / r["path"])
        except AudioError as exc:
            log.warning("%s", exc)
    pairs = find_duplicates(fps)
    if split_of_path is not None:

        def train_vs_held_out(a: str, b: str) -> bool:
            split_differs = (split_of_path(a) == "train") != (split_of_path(b) == "train")
            return split_differs and _name_key(a) == _name_key(b)

        near = find_duplicates(
            fps, NEAR_DUPLICATE_THRESHOLD, NEAR_DUPLICATE_DURATION_REL, pair_filter=train_vs_held_out
        )
        pairs = sorted(set(pairs) | set(near))
    write_duplicates(out / "duplicates.csv", pairs)
    return pairs

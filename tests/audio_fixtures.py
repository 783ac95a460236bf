"""Generate test audio: simple signals, a small varied library on disk, and broken files.

Signals are ``(frames, channels)`` float32 arrays; :func:`write` saves them in chunks (soundfile 0.14
crashes writing a long Ogg Vorbis stream in one call). :data:`LIBRARY` describes every file
:func:`make_library` writes (so tests know each file's true rate, length and tone frequency), and
:data:`BAD_FILE_REASONS` says what :mod:`engine.audio` must report for each file of
:func:`make_bad_files`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

_WRITE_CHUNK_FRAMES = 1 << 16

_EXT_FORMAT = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".ogg": "OGG",
    ".opus": "OGG",
    ".mp3": "MP3",
    ".aif": "AIFF",
    ".aiff": "AIFF",
    ".caf": "CAF",
    ".w64": "W64",
    ".rf64": "RF64",
}


def _channels(mono: np.ndarray, channels: int) -> np.ndarray:
    """Repeat a mono float signal on ``channels`` channels: ``(frames, channels)`` float32."""
    return np.ascontiguousarray(np.repeat(mono.astype(np.float32)[:, None], channels, axis=1))


def _frames(dur_s: float, sr: int) -> int:
    return max(1, int(round(dur_s * sr)))


def tone(freq_hz: float, dur_s: float, sr: int = 44100, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A sine of ``freq_hz`` Hz, the same on every channel: ``(round(dur_s*sr), channels)`` float32."""
    t = np.arange(_frames(dur_s, sr), dtype=np.float64) / sr
    return _channels(amp * np.sin(2.0 * np.pi * freq_hz * t), channels)


def noise(dur_s: float, sr: int, channels: int = 1, color: str = "white", seed: int = 0) -> np.ndarray:
    """Independent noise per channel, peak-normalised to 0.5: ``(frames, channels)`` float32.

    ``color``: ``'white'`` (flat), ``'pink'`` (1/f power) or ``'brown'`` (1/f^2 power), shaped in
    the frequency domain.
    """
    if color not in ("white", "pink", "brown"):
        raise ValueError(f"unknown noise color {color!r}")
    n = _frames(dur_s, sr)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, channels))
    if color != "white":
        spec = np.fft.rfft(x, axis=0)
        f = np.fft.rfftfreq(n, d=1.0 / sr)
        f[0] = f[1] if n > 1 else 1.0
        spec /= (f ** (0.5 if color == "pink" else 1.0))[:, None]
        x = np.fft.irfft(spec, n=n, axis=0)
    x -= x.mean(axis=0, keepdims=True)
    peak = float(np.max(np.abs(x))) or 1.0
    return np.ascontiguousarray(0.5 * x / peak, dtype=np.float32)


def clicks(dur_s: float, sr: int, rate_hz: float = 4.0) -> np.ndarray:
    """Short decaying clicks ``rate_hz`` times a second: ``(frames, 1)`` float32."""
    n = _frames(dur_s, sr)
    x = np.zeros(n, dtype=np.float64)
    length = max(1, int(0.005 * sr))
    burst = 0.8 * np.exp(-np.arange(length) / (0.2 * length)) * np.cos(np.arange(length) * 0.9)
    for start in np.arange(0.0, n / sr, 1.0 / rate_hz):
        i = int(start * sr)
        seg = burst[: n - i]
        x[i : i + len(seg)] += seg
    return _channels(x, 1)


def chirp(f0: float, f1: float, dur_s: float, sr: int) -> np.ndarray:
    """A linear sweep from ``f0`` to ``f1`` Hz at amplitude 0.5: ``(frames, 1)`` float32."""
    n = _frames(dur_s, sr)
    t = np.arange(n, dtype=np.float64) / sr
    phase = 2.0 * np.pi * (f0 * t + 0.5 * (f1 - f0) / max(dur_s, 1e-9) * t * t)
    return _channels(0.5 * np.sin(phase), 1)


def write(
    path: str | os.PathLike, data: np.ndarray, sr: int, subtype: str | None = None, format: str | None = None
) -> Path:
    """Write ``data`` (``(frames,)`` or ``(frames, channels)`` float) to ``path`` in chunks.

    ``format`` defaults from the extension (``.mp3`` -> ``'MP3'``, ``.opus`` -> Ogg Opus ...);
    ``subtype`` defaults to soundfile's default for the format. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    ext = path.suffix.lower()
    if format is None:
        format = _EXT_FORMAT.get(ext)
    if subtype is None and format == "MP3":
        subtype = "MPEG_LAYER_III"
    if subtype is None and ext == ".opus":
        subtype = "OPUS"
    with sf.SoundFile(path, "w", samplerate=sr, channels=data.shape[1], subtype=subtype, format=format) as f:
        for i in range(0, len(data), _WRITE_CHUNK_FRAMES):
            f.write(data[i : i + _WRITE_CHUNK_FRAMES])
    return path


def can_write(format: str, subtype: str | None = None) -> bool:
    """Whether this soundfile build can write ``format`` (and ``subtype``)."""
    try:
        return sf.check_format(format, subtype)
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True)
class FixtureFile:
    """One file of :func:`make_library`: where it goes and what it truly contains."""

    name: str
    relpath: str
    kind: str  # 'tone', 'noise', 'clicks', 'chirp'
    dur_s: float
    sr: int
    channels: int
    subtype: str | None
    freq_hz: float | None = None  # the tone's frequency (kind == 'tone')

    @property
    def format(self) -> str:
        return _EXT_FORMAT[Path(self.relpath).suffix.lower()]

    @property
    def lossy(self) -> bool:
        return self.format in ("MP3", "OGG")

    def signal(self) -> np.ndarray:
        """The ``(frames, channels)`` float32 samples written to the file."""
        makers: dict[str, Callable[[], np.ndarray]] = {
            "tone": lambda: tone(self.freq_hz or 440.0, self.dur_s, self.sr, self.channels),
            "noise": lambda: noise(self.dur_s, self.sr, self.channels, "pink", seed=len(self.name)),
            "brown": lambda: noise(self.dur_s, self.sr, self.channels, "brown", seed=1),
            "white": lambda: noise(self.dur_s, self.sr, self.channels, "white", seed=2),
            "clicks": lambda: np.repeat(clicks(self.dur_s, self.sr), self.channels, axis=1),
            "chirp": lambda: np.repeat(chirp(200.0, 4000.0, self.dur_s, self.sr), self.channels, axis=1),
        }
        return makers[self.kind]()

    def writable(self) -> bool:
        return can_write(self.format, self.subtype or ("MPEG_LAYER_III" if self.format == "MP3" else None))


#: Every file :func:`make_library` writes (those whose format this soundfile cannot write are skipped).
LIBRARY: tuple[FixtureFile, ...] = (
    FixtureFile("tone_wav16", "tones/wav/a440_pcm16_44k_mono.wav", "tone", 2.0, 44100, 1, "PCM_16", 440.0),
    FixtureFile("tone_wav24", "tones/wav/b1k_pcm24_48k_stereo.wav", "tone", 1.5, 48000, 2, "PCM_24", 1000.0),
    FixtureFile("tone_wav32", "tones/wav/c3k_pcm32_96k_stereo.wav", "tone", 1.0, 96000, 2, "PCM_32", 3000.0),
    FixtureFile(
        "tone_wavfloat", "tones/wav/hi/d5k_float_192k_6ch.wav", "tone", 0.5, 192000, 6, "FLOAT", 5000.0
    ),
    FixtureFile("tone_wavu8", "tones/wav/e700_u8_8k_mono.wav", "tone", 1.0, 8000, 1, "PCM_U8", 700.0),
    FixtureFile("tone_flac16", "tones/flac/f2k_22k_stereo.flac", "tone", 3.0, 22050, 2, "PCM_16", 2000.0),
    FixtureFile("tone_flac24", "tones/flac/g880_96k_mono.flac", "tone", 2.0, 96000, 1, "PCM_24", 880.0),
    FixtureFile("tone_ogg", "tones/ogg/h1200_44k_stereo.ogg", "tone", 2.5, 44100, 2, "VORBIS", 1200.0),
    FixtureFile("tone_ogg_mono", "tones/ogg/i660_48k_mono.ogg", "tone", 2.0, 48000, 1, "VORBIS", 660.0),
    FixtureFile("tone_mp3", "tones/mp3/j1500_44k_stereo.mp3", "tone", 2.0, 44100, 2, None, 1500.0),
    FixtureFile("tone_mp3_22k", "tones/mp3/k500_22k_mono.mp3", "tone", 2.0, 22050, 1, None, 500.0),
    FixtureFile("tone_aiff16", "tones/aiff/l2500_48k_stereo.aiff", "tone", 1.0, 48000, 2, "PCM_16", 2500.0),
    FixtureFile("tone_aif24", "tones/aiff/m350_8k_mono.aif", "tone", 1.0, 8000, 1, "PCM_24", 350.0),
    FixtureFile("tone_opus", "tones/n1000_48k_mono.opus", "tone", 1.0, 48000, 1, "OPUS", 1000.0),
    FixtureFile("ambience_long", "ambience/pink_40s_22k_mono.flac", "noise", 40.0, 22050, 1, "PCM_16"),
    FixtureFile("noise_blip", "ambience/short/white_50ms_48k_stereo.wav", "white", 0.05, 48000, 2, "PCM_16"),
    FixtureFile("rumble_6ch", "ambience/brown_8s_44k_6ch.wav", "brown", 8.0, 44100, 6, "PCM_24"),
    FixtureFile("clicks", "foley/clicks_5s_44k.wav", "clicks", 5.0, 44100, 1, "PCM_16"),
    FixtureFile("sweep_ogg", "foley/sweeps/chirp_10s_48k.ogg", "chirp", 10.0, 48000, 1, "VORBIS"),
    FixtureFile("sweep_mp3", "foley/sweeps/chirp_12s_44k_stereo.mp3", "chirp", 12.0, 44100, 2, None),
    FixtureFile("sweep_192k", "foley/sweeps/chirp_1s_192k_stereo.flac", "chirp", 1.0, 192000, 2, "PCM_24"),
)


def make_library(root: Path) -> dict[str, Path]:
    """Write the files of :data:`LIBRARY` under ``root`` (nested folders); return name -> path.

    Formats this soundfile build cannot write (MP3 before libsndfile 1.1, Opus) are skipped, so check
    membership before using ``'tone_mp3'`` and ``'tone_opus'``. Takes about a second.
    """
    root = Path(root)
    out: dict[str, Path] = {}
    for spec in LIBRARY:
        if not spec.writable():
            continue
        out[spec.name] = write(root / spec.relpath, spec.signal(), spec.sr, subtype=spec.subtype)
    return out


#: What decoding each file of :func:`make_bad_files` must give: ``(probe reason, decode reason)``;
#: ``None`` means no error (the truncated WAV decodes to its readable part). 'unreadable' can only be
#: produced by a process that is not root (check with ``os.access``).
BAD_FILE_REASONS: dict[str, tuple[str | None, str | None]] = {
    "zero_length": ("empty", "empty"),
    "text_as_wav": ("not_audio", "not_audio"),
    "truncated_wav": (None, None),
    "header_only_wav": ("empty", "empty"),
    "garbage_header_wav": ("not_audio", "not_audio"),
    "damaged_header_wav": ("corrupt", "corrupt"),
    "random_mp3": ("not_audio", "not_audio"),
    "truncated_flac": (None, "corrupt"),
    "damaged_flac": (None, "corrupt"),
    "no_permission": ("unreadable", "unreadable"),
    "folder_named_wav": ("not_audio", "not_audio"),
}

#: Frames of the truncated WAV that are still on disk (what decoding it must yield), at 44.1 kHz.
TRUNCATED_WAV_FRAMES = 22050


def make_bad_files(root: Path) -> dict[str, Path]:
    """Write broken files under ``root``; return name -> path (names are :data:`BAD_FILE_REASONS`' keys).

    ``truncated_wav`` is a 2 s 44.1 kHz mono PCM_16 WAV cut after :data:`TRUNCATED_WAV_FRAMES` frames
    (its header still claims 2 s); ``no_permission`` has mode 000, which root can still read.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    out: dict[str, Path] = {}

    out["zero_length"] = root / "zero_length.wav"
    out["zero_length"].write_bytes(b"")

    out["text_as_wav"] = root / "notes.wav"
    out["text_as_wav"].write_text("These are my notes about the session, not audio.\n" * 20, encoding="utf-8")

    good = write(root / "_good.wav", tone(440.0, 2.0, 44100), 44100, subtype="PCM_16")
    raw = good.read_bytes()
    good.unlink()
    header = 44  # soundfile writes a canonical 44-byte header for PCM_16 WAV
    out["truncated_wav"] = root / "truncated.wav"
    out["truncated_wav"].write_bytes(raw[: header + 2 * TRUNCATED_WAV_FRAMES])
    out["header_only_wav"] = root / "header_only.wav"
    out["header_only_wav"].write_bytes(raw[:header])

    junk = bytearray(rng.integers(0, 256, header, dtype=np.uint8).tobytes())
    junk[0] = 0x00  # never looks like an MPEG frame sync or a container magic
    out["garbage_header_wav"] = root / "garbage_header.wav"
    out["garbage_header_wav"].write_bytes(bytes(junk) + raw[header:])

    damaged = bytearray(raw)
    damaged[12:36] = rng.integers(0, 256, 24, dtype=np.uint8).tobytes()  # RIFF/WAVE kept, fmt chunk broken
    out["damaged_header_wav"] = root / "damaged_header.wav"
    out["damaged_header_wav"].write_bytes(bytes(damaged))

    rand = bytearray(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    rand[0] = 0x00
    out["random_mp3"] = root / "random.mp3"
    out["random_mp3"].write_bytes(bytes(rand))

    flac = write(root / "_good.flac", tone(440.0, 5.0, 48000), 48000, subtype="PCM_16")
    fraw = flac.read_bytes()
    flac.unlink()
    out["truncated_flac"] = root / "truncated.flac"
    out["truncated_flac"].write_bytes(fraw[: len(fraw) // 2])
    fdam = bytearray(fraw)
    third = len(fdam) // 3
    fdam[third : third + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    out["damaged_flac"] = root / "damaged.flac"
    out["damaged_flac"].write_bytes(bytes(fdam))

    out["no_permission"] = write(root / "locked.wav", tone(440.0, 0.5, 44100), 44100)
    os.chmod(out["no_permission"], 0)

    out["folder_named_wav"] = root / "folder.wav"
    out["folder_named_wav"].mkdir(exist_ok=True)
    return out

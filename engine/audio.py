"""Decode audio files to mono float32 at a model's sample rate, and cut the signal into windows.

Everything here streams: a file is read in blocks of at most a few megabytes (``soundfile`` /
libsndfile), each block is downmixed to mono (mean of the channels) and resampled with a
``soxr.ResampleStream`` whose state is kept across blocks, so a 3-hour recording never sits in memory
at its source rate, and :func:`iter_windows` holds only about one window plus one block at a time.

Levels and DC are left untouched: the model's front end normalises.

Errors are reported as :class:`engine.errors.AudioError` with ``reason`` one of

- ``"missing"``: the file does not exist (any more);
- ``"unreadable"``: the file exists but may not be read (permissions, locked by another program);
- ``"empty"``: the file has zero bytes, or its header announces zero samples;
- ``"not_audio"``: not a format this build of libsndfile can decode at all (a text file named .wav,
  random bytes, an unsupported codec);
- ``"corrupt"``: the header looks like a known audio format but cannot be parsed, or the audio data
  breaks off in a way the decoder cannot recover from.

A file that is merely cut short (a WAV whose header claims more data than the file holds, an MP3 that
ends mid-stream) decodes to the readable part, as libsndfile does; a warning is logged.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from engine.errors import AudioError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

#: File extensions (lower case, with the dot) of the formats the scanner hands to the decoder.
#: ``.opus`` needs libsndfile >= 1.0.29 built with Opus, which the soundfile wheels ship.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".wave",
        ".bwf",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".w64",
        ".rf64",
        ".caf",
    }
)

#: Most samples (frames x channels) read from a file in one go: 2**21 float32 = 8 MiB.
_MAX_READ_SAMPLES = 1 << 21
#: Extra source audio read before and after a region in :func:`load_mono`, so the resampler's
#: start-up and flush transients fall outside the samples that are returned.
_REGION_MARGIN_S = 0.05
#: Relative tolerance when turning window/hop arithmetic in seconds into counts.
_COUNT_EPS = 1e-9

# Leading bytes of the container formats libsndfile reads; a file that starts like one of them but
# cannot be opened is reported as corrupt rather than as "not audio".
_MAGIC_PREFIXES: tuple[bytes, ...] = (
    b"RIFF",
    b"RIFX",
    b"RF64",
    b"BW64",
    b"FORM",
    b"fLaC",
    b"OggS",
    b"ID3",
    b"caff",
)
_W64_GUID_PREFIX = b"riff\x2e\x91\xcf\x11"


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about it.

    ``format`` and ``subtype`` are soundfile's names (``'WAV'``, ``'FLAC'``, ``'OGG'``, ``'MP3'``,
    ``'AIFF'``; ``'PCM_16'``, ``'PCM_24'``, ``'FLOAT'``, ``'VORBIS'``, ``'MPEG_LAYER_III'`` ...).
    ``sample_rate`` is in Hz, ``frames`` counts samples per channel, ``duration_s`` is in seconds.
    For MP3 and Ogg the frame count comes from the stream's headers and may differ slightly from what
    decoding yields (a truncated MP3 decodes to less).
    """

    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float


def _display(path: PathLike) -> str:
    return os.fspath(path)


def _sniff_known_format(path: str) -> bool:
    """True when the first bytes of ``path`` look like an audio container or an MPEG stream."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head.startswith(_MAGIC_PREFIXES) or head.startswith(_W64_GUID_PREFIX):
        return True
    # A bare MPEG audio frame: 11 sync bits, a layer that is not "reserved".
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0


def _os_error(path: str, exc: OSError) -> AudioError:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return AudioError(f"{path} was not found; it may have been moved or deleted.", "missing")
    if isinstance(exc, PermissionError):
        return AudioError(f"{path} cannot be read: permission denied.", "unreadable")
    return AudioError(f"{path} cannot be read: {exc.strerror or exc}.", "unreadable")


def _preflight(path: str) -> None:
    """Raise AudioError for a path that is missing, a folder, unreadable or zero bytes long."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(f"{path} is a folder, not an audio file.", "not_audio")
        with open(path, "rb"):  # permission (or, on Windows, another program's lock)
            pass
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if st.st_size == 0:
        raise AudioError(f"{path} is empty (0 bytes).", "empty")


def _open(path: PathLike) -> sf.SoundFile:
    """Open ``path`` for reading with libsndfile, mapping every failure to an AudioError."""
    p = _display(path)
    _preflight(p)
    try:
        f = sf.SoundFile(p)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        if not os.path.exists(p):
            raise AudioError(f"{p} was not found; it may have been moved or deleted.", "missing") from exc
        if _sniff_known_format(p):
            raise AudioError(
                f"{p} looks like an audio file but its header is damaged and it cannot be decoded.", "corrupt"
            ) from exc
        raise AudioError(f"{p} is not an audio file in a format Earshot can decode.", "not_audio") from exc
    if f.frames == 0:
        f.close()
        raise AudioError(f"{p} contains no audio (0 samples); it may be empty or cut short.", "empty")
    return f


def _read_error(path: PathLike, frames_done: int, sample_rate: int, exc: BaseException) -> AudioError:
    p = _display(path)
    if not os.path.exists(p):
        return AudioError(f"{p} disappeared while it was being read.", "missing")
    at = frames_done / float(sample_rate)
    logger.debug("decode of %s failed after %.2f s: %s", p, at, exc)
    if frames_done == 0:
        return AudioError(f"{p} is damaged and its audio cannot be decoded.", "corrupt")
    return AudioError(f"{p} is damaged: decoding failed after {at:.1f} s of audio.", "corrupt")


def probe(path: PathLike) -> AudioInfo:
    """Read a file's header without decoding its audio.

    Raises:
        AudioError: with ``reason`` ``'missing'``, ``'unreadable'``, ``'empty'``, ``'not_audio'`` or
            ``'corrupt'`` (see the module docstring). Damage in the middle of the data is only found
            by decoding (:func:`iter_mono_blocks`).
    """
    with _open(path) as f:
        return AudioInfo(
            format=str(f.format),
            subtype=str(f.subtype),
            sample_rate=int(f.samplerate),
            channels=int(f.channels),
            frames=int(f.frames),
            duration_s=float(f.frames) / float(f.samplerate),
        )


def to_mono(x: np.ndarray) -> np.ndarray:
    """Downmix to mono by averaging the channels.

    Args:
        x: ``(frames, channels)`` or ``(frames,)`` samples, any real dtype.

    Returns:
        ``(frames,)`` float32, C-contiguous: always a new array for 2-D input; 1-D float32
        contiguous input is returned as is.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected (frames, channels) samples, got shape {x.shape}")
    # Summing columns one by one is ~20x faster than ``x.mean(axis=1)`` over a short axis.
    out = x[:, 0].astype(np.float32, order="C", copy=True)
    for c in range(1, x.shape[1]):
        out += x[:, c]
    if x.shape[1] > 1:
        out /= np.float32(x.shape[1])
    return out


def _check_rate(target_sr: int) -> int:
    if int(target_sr) != target_sr or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive integer number of Hz, got {target_sr!r}")
    return int(target_sr)


class _Source:
    """Sequential mono float32 reads from an open file at its own rate, tracking the position.

    soundfile's ``SoundFile.read`` seeks back to "current + frames read" after every read. For MP3 that
    seek re-primes the decoder without its bit reservoir and the next few thousand samples come out
    as garbage (libsndfile 1.2.2 / soundfile 0.14), so reads go straight to ``sf_readf_float`` through
    soundfile's cffi handle when it is available. Seeks in MP3 and Ogg land on the right sample but
    the decoder needs a few frames to settle, so :meth:`seek` starts earlier in those formats and
    decodes up to the target.
    """

    #: Frames decoded (and dropped) before a seek target in formats whose decoder must settle.
    SETTLE_FRAMES = 1 << 15

    def __init__(self, f: sf.SoundFile, path: PathLike, block_frames: int) -> None:
        self.f = f
        self.path = path
        self.sr = int(f.samplerate)
        self.position = 0  # frames read so far (or seeked to)
        cap = max(1, _MAX_READ_SAMPLES // max(1, f.channels))
        self._buf = np.empty((max(1, min(block_frames, cap)), f.channels), dtype=np.float32)
        self._raw = _raw_reader(f)

    @property
    def lossy_seek(self) -> bool:
        return str(self.f.format) in ("MP3", "OGG") or str(self.f.subtype).startswith(("MPEG", "VORBIS"))

    def _read_into(self, out: np.ndarray) -> int:
        try:
            if self._raw is not None:
                return self._raw(out)
            # Passing ``out`` reads up to len(out) frames without soundfile clipping the request to
            # the header's frame count, so a stream longer than announced is read to its real end.
            return len(self.f.read(out=out))
        except (sf.SoundFileError, RuntimeError) as exc:
            raise _read_error(self.path, self.position, self.sr, exc) from exc

    def read_mono(self, max_frames: int | None = None) -> np.ndarray:
        """Up to one buffer (and at most ``max_frames``) of mono float32; empty at the end."""
        want = len(self._buf) if max_frames is None else min(len(self._buf), max_frames)
        if want <= 0:
            return np.zeros(0, dtype=np.float32)
        n = self._read_into(self._buf[:want])
        self.position += n
        return to_mono(self._buf[:n])

    def skip(self, frames: int) -> int:
        """Decode and drop up to ``frames`` frames; return how many were dropped."""
        done = 0
        while done < frames:
            n = self._read_into(self._buf[: min(len(self._buf), frames - done)])
            if n == 0:
                break
            done += n
        self.position += done
        return done

    def seek(self, frame: int) -> bool:
        """Move to ``frame``; False when it lies past the end of the stream."""
        if frame <= self.position:
            if frame == self.position:
                return True
            raise ValueError("_Source only seeks forward")
        settle = self.SETTLE_FRAMES if self.lossy_seek else 0
        land = max(self.position, frame - settle)
        if land > self.position:
            if land >= self.f.frames:
                return False
            try:
                self.f.seek(land)
            except (sf.SoundFileError, RuntimeError) as exc:
                raise _read_error(self.path, land, self.sr, exc) from exc
            self.position = land
        return self.skip(frame - self.position) == frame - land


def _raw_reader(f: sf.SoundFile) -> Callable[[np.ndarray], int] | None:
    """A ``read_into(float32[frames, channels]) -> frames`` calling libsndfile directly, or None.

    Uses soundfile's private cffi objects; returns None (and the caller falls back to
    ``SoundFile.read``) if a future soundfile renames them.
    """
    snd, ffi, handle = getattr(sf, "_snd", None), getattr(sf, "_ffi", None), getattr(f, "_file", None)
    if snd is None or ffi is None or handle is None or not hasattr(snd, "sf_readf_float"):
        logger.warning("soundfile internals changed; MP3 decoding may glitch at block boundaries")
        return None

    def read_into(out: np.ndarray) -> int:
        if not (out.flags.c_contiguous and out.dtype == np.float32 and out.ndim == 2):
            raise ValueError("read buffer must be C-contiguous float32 (frames, channels)")
        n = int(snd.sf_readf_float(handle, ffi.cast("float *", ffi.from_buffer(out)), len(out)))
        err = int(snd.sf_error(handle))
        if err:
            raise RuntimeError(ffi.string(snd.sf_error_number(err)).decode("utf-8", "replace"))
        return max(0, n)

    return read_into


def iter_mono_blocks(path: PathLike, target_sr: int, block_s: float = 20.0) -> Iterator[np.ndarray]:
    """Decode a file to mono float32 at ``target_sr`` Hz, block by block.

    Args:
        path: the audio file.
        target_sr: output sample rate in Hz.
        block_s: about how many seconds each read covers (fewer for files with many channels at high
            rates, so a read stays below ~8 MiB).

    Yields:
        1-D C-contiguous float32 arrays at ``target_sr``; their concatenation is the whole file
        downmixed and resampled (soxr 'HQ', the same samples a one-shot ``soxr.resample`` gives).
        Block lengths vary (the resampler holds back a few samples until the final flush); empty
        blocks are never yielded.

    Raises:
        AudioError: on opening (see :func:`probe`), or ``'corrupt'`` when decoding fails mid-way
            (blocks already yielded stay valid). A file cut short but otherwise readable yields its
            readable part.
    """
    target_sr = _check_rate(target_sr)
    if not block_s > 0:
        raise ValueError(f"block_s must be positive, got {block_s!r}")
    with _open(path) as f:
        src = _Source(f, path, int(math.ceil(block_s * f.samplerate)))
        resampler = (
            None if src.sr == target_sr else soxr.ResampleStream(src.sr, target_sr, 1, dtype="float32")
        )
        while True:
            mono = src.read_mono()
            if len(mono) == 0:
                break
            out = mono if resampler is None else resampler.resample_chunk(mono, last=False)
            if len(out):
                yield np.ascontiguousarray(out, dtype=np.float32)
        if src.position == 0:
            raise AudioError(f"{_display(path)} is damaged: no audio could be decoded from it.", "corrupt")
        if src.position < f.frames:
            logger.warning(
                "%s: decoded %d of the %d frames its header announces; the file may be cut short",
                _display(path),
                src.position,
                f.frames,
            )
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if len(tail):
                yield np.ascontiguousarray(tail, dtype=np.float32)


def load_mono(path: PathLike, target_sr: int, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
    """Decode the region ``[start_s, end_s)`` of a file to mono float32 at ``target_sr`` Hz.

    The result equals the matching slice of the whole-file decode (:func:`iter_mono_blocks`), sample
    for sample up to float rounding: output sample ``k`` is at time ``start_s + k / target_sr``
    (``start_s`` rounded to the output grid). Only the region plus a small margin is decoded (plus
    about 0.7 s before it for MP3/Ogg, whose decoders need to settle after a seek).

    Args:
        path: the audio file.
        target_sr: output sample rate in Hz.
        start_s: region start in seconds (>= 0).
        end_s: region end in seconds, or None for the end of the file. A region reaching past the end
            of the file is cut at the end (not padded).

    Returns:
        ``(round(end_s*target_sr) - round(start_s*target_sr),)`` float32 samples, or fewer at the end
        of the file; empty when ``start_s`` is at or past the end.

    Raises:
        ValueError: for a negative start or an end before the start.
        AudioError: see :func:`iter_mono_blocks`.
    """
    target_sr = _check_rate(target_sr)
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s!r}")
    if end_s is not None and end_s < start_s:
        raise ValueError(f"end_s ({end_s!r}) is before start_s ({start_s!r})")
    s0 = int(round(start_s * target_sr))
    e0 = None if end_s is None else int(round(end_s * target_sr))
    if e0 is not None and e0 <= s0:
        return np.zeros(0, dtype=np.float32)

    with _open(path) as f:
        sr = int(f.samplerate)
        src = _Source(f, path, int(math.ceil(20.0 * sr)))
        if sr == target_sr:
            a, first = s0, s0
            limit = None if e0 is None else e0
        else:
            # Start on a frame whose output index is an integer (``first = k*q`` output samples for
            # ``a = k*p`` source frames), at least a margin before s0, so the resampler's start-up
            # transient is discarded and the output grid matches the whole-file decode.
            g = math.gcd(sr, target_sr)
            p, q = sr // g, target_sr // g
            margin_out = int(math.ceil(_REGION_MARGIN_S * target_sr))
            k = max(0, (s0 - margin_out) // q)
            a, first = k * p, k * q
            margin_src = int(math.ceil(_REGION_MARGIN_S * sr))
            limit = None if e0 is None else int(math.ceil(e0 * p / q)) + margin_src
        if not src.seek(a):
            return np.zeros(0, dtype=np.float32)

        resampler = None if sr == target_sr else soxr.ResampleStream(sr, target_sr, 1, dtype="float32")
        need = None if e0 is None else e0 - first  # output samples wanted, counted from ``first``
        parts: list[np.ndarray] = []
        have = 0
        while need is None or have < need:
            mono = src.read_mono(None if limit is None else limit - src.position)
            if len(mono) == 0:
                if resampler is not None:
                    parts.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
                break
            out = mono if resampler is None else resampler.resample_chunk(mono, last=False)
            parts.append(np.asarray(out, dtype=np.float32))
            have += len(out)
    signal = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    lo = s0 - first
    hi = len(signal) if need is None else min(len(signal), need)
    return np.ascontiguousarray(signal[lo:hi], dtype=np.float32)


def window_count(duration_s: float, window_s: float, hop_s: float) -> int:
    """Number of windows :func:`iter_windows` yields for a signal of ``duration_s`` seconds.

    ``max(1, ceil((duration_s - window_s) / hop_s) + 1)``: windows start every ``hop_s`` seconds and
    the last one reaches the end of the signal (zero-padded); a signal shorter than one window gives
    one window. A tiny relative tolerance absorbs float error (10.0 s, 1.0 s windows, 0.5 s hop: 19).
    """
    if not window_s > 0 or not hop_s > 0:
        raise ValueError(f"window_s and hop_s must be positive, got {window_s!r}, {hop_s!r}")
    if duration_s <= window_s:
        return 1
    steps = (duration_s - window_s) / hop_s
    return max(1, int(math.ceil(steps - _COUNT_EPS * max(1.0, steps))) + 1)


def frame(
    signal: np.ndarray, sr: int, window_s: float, hop_s: float, *, first: int = 0, count: int | None = None,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The one framing rule of Earshot: indexing, find-similar and training all cut windows here.

    Window ``i`` starts at sample ``round(i * hop_s * sr)`` (rounded per window, so a hop that is not a
    whole number of samples never drifts), holds ``round(window_s * sr)`` samples and is zero-padded past
    the end of the signal; a signal of ``d`` seconds has :func:`window_count` ``(d, window_s, hop_s)``
    windows.

    Args:
        signal: float32 mono samples at ``sr`` Hz; ``signal[0]`` is absolute sample ``offset`` of the
            whole signal (streaming callers pass a buffer that starts later than sample 0).
        sr: sample rate in Hz.
        window_s: window length in seconds.
        hop_s: distance between window starts in seconds.
        first: index of the first window wanted.
        count: how many windows (default: up to the last window of ``signal``, assumed to be whole).

    Returns:
        ``(starts_s, windows)``: float64 ``[n]`` start times in seconds and float32 ``[n, W]`` windows.
    """
    width = int(round(window_s * sr))
    if count is None:
        count = window_count((offset + len(signal)) / float(sr), window_s, hop_s) - first
    count = max(0, count)
    out = np.zeros((count, width), dtype=np.float32)
    for j in range(count):
        s = int(round((first + j) * hop_s * sr)) - offset
        seg = signal[max(0, s) : max(0, s + width)]
        out[j, : len(seg)] = seg
    return (first + np.arange(count, dtype=np.float64)) * hop_s, out


def iter_windows(
    path: PathLike, target_sr: int, window_s: float, hop_s: float, batch: int = 32
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut a file's mono signal at ``target_sr`` Hz into fixed windows (the rule of :func:`frame`), streaming.

    The number of windows is :func:`window_count` of the decoded duration. Memory stays around one
    window plus one decode block plus one batch, whatever the file's length.

    Args:
        path: the audio file.
        target_sr: sample rate in Hz of the windows.
        window_s: window length in seconds.
        hop_s: distance between window starts in seconds.
        batch: most windows per yielded batch.

    Yields:
        ``(starts_s, windows)``: ``float64[n]`` start times in seconds and ``float32[n, W]`` windows,
        ``1 <= n <= batch`` (``n == batch`` but for the last), in order.

    Raises:
        AudioError: see :func:`iter_mono_blocks`.
    """
    target_sr = _check_rate(target_sr)
    if not window_s > 0 or not hop_s > 0:
        raise ValueError(f"window_s and hop_s must be positive, got {window_s!r}, {hop_s!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch!r}")
    width = int(round(window_s * target_sr))
    if width < 1:
        raise ValueError(f"a {window_s} s window is shorter than one sample at {target_sr} Hz")

    def start_of(i: int) -> int:
        return int(round(i * hop_s * target_sr))

    batcher = _WindowBatcher(batch, width)
    buf = np.zeros(0, dtype=np.float32)
    offset = 0  # absolute index of buf[0]
    i = 0
    # Decode blocks about a few windows long, so the pending buffer stays small.
    block_s = max(1.0, min(20.0, 4.0 * window_s))
    for block in iter_mono_blocks(path, target_sr, block_s=block_s):
        buf = np.concatenate((buf, block)) if len(buf) else block
        k = 0
        while start_of(i + k) + width <= offset + len(buf):
            k += 1
        if k:
            yield from batcher.add(*frame(buf, target_sr, window_s, hop_s, first=i, count=k, offset=offset))
            i += k
        drop = min(max(0, start_of(i) - offset), len(buf))
        if drop:
            buf = buf[drop:]
            offset += drop
    n = window_count((offset + len(buf)) / float(target_sr), window_s, hop_s)
    if n > i:
        yield from batcher.add(*frame(buf, target_sr, window_s, hop_s, first=i, count=n - i, offset=offset))
    rest = batcher.flush()
    if rest is not None:
        yield rest


class _WindowBatcher:
    """Collect windows into ``(starts_s, windows)`` batches of exactly ``batch`` windows (but the last).

    A batch array is allocated (``np.zeros``: pages untouched by short files cost no memory) when its
    first window arrives, so at most the batch being filled and the one the caller holds exist at
    once; a final partial batch is returned as a compact copy.
    """

    def __init__(self, batch: int, width: int) -> None:
        self._batch = batch
        self._width = width
        self._starts: np.ndarray | None = None
        self._windows: np.ndarray | None = None
        self._n = 0

    def add(self, starts: np.ndarray, windows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Add windows; yield every batch they fill."""
        done = 0
        while done < len(starts):
            if self._starts is None or self._windows is None:
                self._starts = np.zeros(self._batch, dtype=np.float64)
                self._windows = np.zeros((self._batch, self._width), dtype=np.float32)
                self._n = 0
            take = min(self._batch - self._n, len(starts) - done)
            self._starts[self._n : self._n + take] = starts[done : done + take]
            self._windows[self._n : self._n + take] = windows[done : done + take]
            self._n += take
            done += take
            if self._n == self._batch:
                out = self.flush()
                if out is not None:
                    yield out

    def flush(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._starts is None or self._windows is None or self._n == 0:
            return None
        if self._n == self._batch:
            out = (self._starts, self._windows)
        else:
            out = (self._starts[: self._n].copy(), self._windows[: self._n].copy())
        self._starts = self._windows = None
        self._n = 0
        return out

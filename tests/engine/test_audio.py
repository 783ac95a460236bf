"""Tests for engine.audio: decoding every supported format, streaming resampling, windows, errors."""

from __future__ import annotations

import math
import os
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from engine import audio
from engine.errors import AudioError
from tests import audio_fixtures as af

SPECS = {spec.name: spec for spec in af.LIBRARY}
TONES = [spec.name for spec in af.LIBRARY if spec.kind == "tone"]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return af.make_library(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return af.make_bad_files(tmp_path_factory.mktemp("bad"))


def _lib(library: dict[str, Path], name: str) -> Path:
    if name not in library:
        pytest.skip(f"this soundfile build cannot write {SPECS[name].format}/{SPECS[name].subtype}")
    return library[name]


def _decode(path: Path, target_sr: int, block_s: float = 20.0) -> np.ndarray:
    return np.concatenate(list(audio.iter_mono_blocks(path, target_sr, block_s=block_s)))


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * sr / len(x)


def test_extensions_cover_the_required_formats() -> None:
    required = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".aifc", ".w64", ".rf64", ".caf"}
    assert required <= audio.AUDIO_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in audio.AUDIO_EXTENSIONS)


@pytest.mark.parametrize("name", [spec.name for spec in af.LIBRARY])
def test_probe_reports_the_written_parameters(library: dict[str, Path], name: str) -> None:
    spec = SPECS[name]
    info = audio.probe(str(_lib(library, name)))
    assert info.format == spec.format
    if spec.subtype is not None:
        assert info.subtype == spec.subtype
    assert info.sample_rate == spec.sr
    assert info.channels == spec.channels
    assert info.duration_s == pytest.approx(spec.dur_s, abs=0.05 if spec.lossy else 1.0 / spec.sr)
    assert info.frames == pytest.approx(info.duration_s * spec.sr)


@pytest.mark.parametrize("target_sr", [16000, 44100])
@pytest.mark.parametrize("name", TONES)
def test_tones_decode_to_right_length_pitch_and_level(
    library: dict[str, Path], name: str, target_sr: int
) -> None:
    spec = SPECS[name]
    x = _decode(_lib(library, name), target_sr)
    assert x.dtype == np.float32 and x.ndim == 1
    expected = round(spec.dur_s * target_sr)
    tolerance = 0.05 * target_sr if spec.lossy else 2
    assert abs(len(x) - expected) <= tolerance
    peak = _peak_hz(x, target_sr)
    assert peak == pytest.approx(spec.freq_hz, abs=max(3 * target_sr / len(x), 0.005 * spec.freq_hz))
    # Channels are averaged, not summed: every channel holds the same 0.5-amplitude sine.
    core = x[len(x) // 10 : -len(x) // 10]
    assert float(np.sqrt(np.mean(core.astype(np.float64) ** 2))) == pytest.approx(
        0.5 / math.sqrt(2), rel=0.06
    )


@pytest.mark.parametrize(
    "name", ["tone_wav24", "tone_flac16", "tone_ogg", "tone_mp3", "rumble_6ch", "sweep_192k", "clicks"]
)
def test_streaming_blocks_equal_one_shot_resampling(library: dict[str, Path], name: str) -> None:
    path = _lib(library, name)
    target_sr = 32000
    blocks = list(audio.iter_mono_blocks(path, target_sr, block_s=0.3))
    assert len(blocks) > 3
    for block in blocks:
        assert block.dtype == np.float32 and block.ndim == 1 and block.flags.c_contiguous and len(block) > 0
    streamed = np.concatenate(blocks)
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    reference = soxr.resample(data.mean(axis=1, dtype=np.float32), sr, target_sr)
    assert len(streamed) == len(reference)
    np.testing.assert_allclose(streamed, reference, atol=1e-5)


def test_no_resampling_at_the_file_rate_gives_the_exact_samples(library: dict[str, Path]) -> None:
    path = _lib(library, "rumble_6ch")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    decoded = _decode(path, sr, block_s=0.7)
    np.testing.assert_allclose(decoded, data.astype(np.float64).mean(axis=1), atol=1e-6)


def test_to_mono_averages_channels() -> None:
    x = np.array([[1.0, 3.0, -1.0], [0.0, 0.0, 0.3]], dtype=np.float64)
    mono = audio.to_mono(x)
    assert mono.dtype == np.float32 and mono.shape == (2,)
    np.testing.assert_allclose(mono, [1.0, 0.1], rtol=1e-6)
    one = audio.to_mono(np.arange(4, dtype=np.int16)[:, None])
    np.testing.assert_array_equal(one, np.arange(4, dtype=np.float32))
    assert audio.to_mono(np.ones(3)).dtype == np.float32
    with pytest.raises(ValueError):
        audio.to_mono(np.zeros((2, 2, 2)))


def _naive_window_count(duration_s: float, window_s: float, hop_s: float) -> int:
    """Exact reference with rationals: windows start at i*hop until one reaches the end."""
    dur, win, hop = (Fraction(str(v)) for v in (duration_s, window_s, hop_s))
    n = 1
    while (n - 1) * hop + win < dur:
        n += 1
    return n


@pytest.mark.parametrize(
    ("duration_s", "window_s", "hop_s"),
    [
        (0.05, 1.0, 0.5),
        (1.0, 1.0, 0.5),
        (1.01, 1.0, 0.5),
        (10.0, 1.0, 0.5),
        (10.2, 1.0, 0.5),
        (0.3, 0.1, 0.1),
        (0.7, 0.1, 0.1),
        (9.96, 0.96, 0.48),
        (10800.0, 10.0, 5.0),
        (3.0, 1.0, 1.0),
        (3.0, 1.0, 2.5),
    ],
)
def test_window_count_matches_exact_reference(duration_s: float, window_s: float, hop_s: float) -> None:
    assert audio.window_count(duration_s, window_s, hop_s) == _naive_window_count(duration_s, window_s, hop_s)


@pytest.fixture(scope="module")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, int]:
    """A 16 kHz FLOAT WAV of 2.3 s whose every sample is distinct (so windows can be located)."""
    sr = 16000
    x = (np.arange(int(2.3 * sr), dtype=np.float64) / (2.3 * sr) - 0.5).astype(np.float32)
    path = af.write(tmp_path_factory.mktemp("ramp") / "ramp.wav", x, sr, subtype="FLOAT")
    return path, x, sr


@pytest.mark.parametrize(
    ("window_s", "hop_s", "batch"),
    [(1.0, 0.5, 32), (0.25, 0.1, 4), (1.0, 1.0 / 3.0, 2), (0.5, 0.75, 1), (4.0, 1.0, 8), (2.3, 0.5, 3)],
)
def test_windows_follow_the_count_start_and_padding_rules(
    ramp: tuple[Path, np.ndarray, int], window_s: float, hop_s: float, batch: int
) -> None:
    path, x, sr = ramp
    batches = list(audio.iter_windows(path, sr, window_s, hop_s, batch=batch))
    assert all(1 <= len(starts) <= batch and len(starts) == len(w) for starts, w in batches)
    assert all(len(starts) == batch for starts, _ in batches[:-1])
    starts = np.concatenate([s for s, _ in batches])
    windows = np.concatenate([w for _, w in batches])
    width = round(window_s * sr)
    n = audio.window_count(len(x) / sr, window_s, hop_s)
    assert starts.dtype == np.float64 and windows.dtype == np.float32
    assert windows.shape == (n, width)
    np.testing.assert_allclose(starts, np.arange(n) * hop_s)
    padded = np.concatenate([x, np.zeros(width + round(n * hop_s * sr), dtype=np.float32)])
    for i in range(n):
        s = round(i * hop_s * sr)
        np.testing.assert_array_equal(windows[i], padded[s : s + width])
    # The last window reaches the end of the signal.
    assert round((n - 1) * hop_s * sr) + width >= len(x)


def test_short_file_gives_one_zero_padded_window(library: dict[str, Path]) -> None:
    path = _lib(library, "noise_blip")
    target_sr = 32000
    batches = list(audio.iter_windows(path, target_sr, window_s=1.0, hop_s=0.5))
    assert len(batches) == 1
    starts, windows = batches[0]
    assert starts.tolist() == [0.0] and windows.shape == (1, target_sr)
    signal = _decode(path, target_sr)
    np.testing.assert_array_equal(windows[0, : len(signal)], signal)
    assert not windows[0, len(signal) :].any()
    assert np.abs(signal).max() > 0.1


def test_windows_of_a_resampled_file_are_slices_of_the_decode(library: dict[str, Path]) -> None:
    path = _lib(library, "ambience_long")
    target_sr, window_s, hop_s = 32000, 1.0, 0.5
    signal = _decode(path, target_sr)
    starts = []
    for batch_starts, windows in audio.iter_windows(path, target_sr, window_s, hop_s, batch=16):
        for start, window in zip(batch_starts, windows, strict=True):
            s = round(start * target_sr)
            expected = signal[s : s + target_sr]
            np.testing.assert_array_equal(window[: len(expected)], expected)
            assert not window[len(expected) :].any()
            starts.append(start)
    assert len(starts) == audio.window_count(len(signal) / target_sr, window_s, hop_s) == 79


@pytest.mark.parametrize(
    "name", ["tone_wav16", "tone_flac24", "tone_ogg_mono", "tone_mp3", "sweep_ogg", "clicks"]
)
@pytest.mark.parametrize("region", [(0.0, 0.5), (0.3, 1.7), (1.234, None), (0.0, None), (0.5, 100.0)])
def test_load_mono_region_equals_the_slice_of_the_full_decode(
    library: dict[str, Path], name: str, region: tuple[float, float | None]
) -> None:
    path = _lib(library, name)
    target_sr = 32000
    full = _decode(path, target_sr)
    start_s, end_s = region
    got = audio.load_mono(path, target_sr, start_s, end_s)
    lo = round(start_s * target_sr)
    hi = len(full) if end_s is None else min(len(full), round(end_s * target_sr))
    assert got.dtype == np.float32 and got.ndim == 1
    assert len(got) == hi - lo
    np.testing.assert_allclose(got, full[lo:hi], atol=1e-4)


@pytest.mark.parametrize("name", ["sweep_ogg", "sweep_mp3", "ambience_long", "rumble_6ch"])
@pytest.mark.parametrize("target_sr", [32000, 48000])
def test_load_mono_after_a_seek_deep_into_the_file(
    library: dict[str, Path], name: str, target_sr: int
) -> None:
    """Seeking in MP3/Ogg needs the decoder to settle; the region must still match the full decode."""
    path = _lib(library, name)
    full = _decode(path, target_sr)
    for start_s in (3.3, 6.5, 7.0 + 1.0 / 7.0):
        got = audio.load_mono(path, target_sr, start_s, start_s + 0.75)
        lo = round(start_s * target_sr)
        assert len(got) == round((start_s + 0.75) * target_sr) - lo
        np.testing.assert_allclose(got, full[lo : lo + len(got)], atol=1e-4)


def test_load_mono_at_the_file_rate_and_edge_cases(library: dict[str, Path]) -> None:
    path = _lib(library, "tone_wav24")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    np.testing.assert_allclose(audio.load_mono(path, sr, 0.25, 0.75), mono[12000:36000], atol=1e-6)
    assert len(audio.load_mono(path, 16000, 5.0, 6.0)) == 0
    assert len(audio.load_mono(path, 16000, 0.5, 0.5)) == 0
    with pytest.raises(ValueError):
        audio.load_mono(path, 16000, -1.0)
    with pytest.raises(ValueError):
        audio.load_mono(path, 16000, 1.0, 0.5)


@pytest.mark.parametrize("name", sorted(af.BAD_FILE_REASONS))
def test_bad_files_report_the_right_reason(bad_files: dict[str, Path], name: str) -> None:
    path = bad_files[name]
    probe_reason, decode_reason = af.BAD_FILE_REASONS[name]
    if name == "no_permission" and os.access(path, os.R_OK):
        pytest.skip("running as root: a mode-000 file is still readable (see test_unreadable_file_as_nobody)")
    if probe_reason is None:
        assert audio.probe(path).frames > 0
    else:
        with pytest.raises(AudioError) as info:
            audio.probe(path)
        assert info.value.reason == probe_reason
        assert str(path) in str(info.value)
    if decode_reason is None:
        assert len(_decode(path, 16000)) > 0
    else:
        with pytest.raises(AudioError) as info:
            _decode(path, 16000)
        assert info.value.reason == decode_reason


def test_truncated_wav_decodes_its_readable_part(bad_files: dict[str, Path]) -> None:
    path = bad_files["truncated_wav"]
    assert audio.probe(path).frames == af.TRUNCATED_WAV_FRAMES
    x = _decode(path, 44100)
    np.testing.assert_allclose(x, af.tone(440.0, 2.0, 44100)[: af.TRUNCATED_WAV_FRAMES, 0], atol=1e-4)


def test_missing_file_and_windows_errors(tmp_path: Path) -> None:
    gone = tmp_path / "gone.wav"
    for call in (
        lambda: audio.probe(gone),
        lambda: list(audio.iter_mono_blocks(gone, 16000)),
        lambda: audio.load_mono(gone, 16000),
        lambda: list(audio.iter_windows(gone, 16000, 1.0, 0.5)),
    ):
        with pytest.raises(AudioError) as info:
            call()
        assert info.value.reason == "missing"


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "setuid"), reason="needs POSIX fork/setuid")
def test_unreadable_file_as_nobody(bad_files: dict[str, Path]) -> None:
    """Run probe in a child process without root rights (or directly when not root)."""
    path = bad_files["no_permission"]
    if os.geteuid() != 0:
        with pytest.raises(AudioError) as info:
            audio.probe(path)
        assert info.value.reason == "unreadable"
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, report the reason through the pipe
        code = b"?"
        try:
            os.setgid(65534)
            os.setuid(65534)
            audio.probe(path)
            code = b"ok"
        except AudioError as exc:
            code = exc.reason.encode()
        except BaseException as exc:
            code = repr(exc).encode()
        finally:
            os.write(write_end, code)
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as fh:
        assert fh.read().decode() == "unreadable"


def test_memory_stays_bounded_for_a_long_file(tmp_path: Path) -> None:
    """A 20-minute 48 kHz stereo file (460 MB as float32) decodes and windows in a few MB."""
    sr, minutes = 48000, 20
    path = tmp_path / "long.wav"
    chunk = np.concatenate([af.tone(440.0, 10.0, sr, channels=1), af.noise(10.0, sr, channels=1)], axis=1)
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        for _ in range(minutes * 6):
            f.write(chunk)
    decoded_bytes = minutes * 60 * sr * 2 * 4

    tracemalloc.start()
    try:
        total = 0
        for block in audio.iter_mono_blocks(path, 16000):
            total += len(block)
        _, peak_blocks = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        windows = 0
        for starts, _w in audio.iter_windows(path, 16000, window_s=1.0, hop_s=0.5, batch=64):
            windows += len(starts)
        _, peak_windows = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == minutes * 60 * 16000
    assert windows == audio.window_count(minutes * 60.0, 1.0, 0.5)
    assert peak_blocks < decoded_bytes / 20, peak_blocks
    assert peak_windows < decoded_bytes / 20, peak_windows


def test_frame_cuts_like_iter_windows(tmp_path: Path) -> None:
    """One framing rule: an in-memory signal (find-similar regions, training mixes) is cut exactly as a
    file is while indexing, including a hop that is not a whole number of samples."""
    sig = np.random.default_rng(0).standard_normal(16000 * 3 + 123).astype(np.float32) * 0.1
    sf.write(tmp_path / "x.wav", sig, 16000, subtype="FLOAT")
    for window_s, hop_s in ((1.0, 0.37), (1.0, 1.0), (0.5, 1.0 / 3.0)):
        batches = list(audio.iter_windows(tmp_path / "x.wav", 16000, window_s, hop_s, batch=5))
        starts, windows = audio.frame(sig, 16000, window_s, hop_s)
        assert np.array_equal(windows, np.concatenate([w for _, w in batches]))
        assert np.array_equal(starts, np.concatenate([s for s, _ in batches]))
    # a slice of the signal framed from a later window, as the streaming reader does
    part_starts, part = audio.frame(sig[8000:], 16000, 1.0, 0.37, first=2, count=3, offset=8000)
    assert np.array_equal(part, audio.frame(sig, 16000, 1.0, 0.37)[1][2:5])
    assert np.allclose(part_starts, [0.74, 1.11, 1.48])

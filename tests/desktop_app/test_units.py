"""Pure parts of the app: formatting, the query history, peaks, region export, reveal commands."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from desktop_app.clips import Clip, ClipCache, compute_peaks, export_region
from desktop_app.formatting import (
    FAILED_LINK,
    eta_seconds,
    fmt_channels,
    fmt_clock,
    fmt_duration,
    fmt_eta,
    fmt_rate,
    fmt_status,
    progress_text,
)
from desktop_app.history import History, Query
from desktop_app.reveal import reveal_command
from desktop_app.views.waveform import fit_peaks
from engine.errors import AudioError
from tests import audio_fixtures as af


def test_formatting() -> None:
    assert fmt_clock(83.25) == "1:23.2"
    assert fmt_clock(5, decimals=0) == "0:05"
    assert fmt_duration(0.05) == "0.05 s" and fmt_duration(12.44) == "12.4 s" and fmt_duration(185) == "3:05"
    assert [fmt_rate(r) for r in (44100, 48000, 22050, None)] == ["44.1 kHz", "48 kHz", "22.05 kHz", ""]
    assert [fmt_channels(n) for n in (1, 2, 6)] == ["mono", "stereo", "6 ch"]
    assert (
        fmt_eta(None) == "estimating…"
        and fmt_eta(75) == "1 min 15 s left"
        and fmt_eta(7300).startswith("2 h")
    )
    assert eta_seconds(0, 100, 10) is None
    assert eta_seconds(25, 100, 10.0) == pytest.approx(30.0)
    assert eta_seconds(100, 100, 10.0) == 0.0
    status = {"files": 1234, "audio_hours": 3.46, "errors": 2, "bundle": {"name": "sfx", "version": "1.0.0"}}
    assert fmt_status(status) == (
        f"1,234 sounds · 3.5 h · <a href='{FAILED_LINK}'>2 failed</a> · model sfx 1.0.0"
    )
    assert "<a" not in fmt_status({**status, "errors": 0}) and "0 failed" in fmt_status({**status, "errors": 0})
    assert progress_text(0, 17, None, 3.0) == "Indexing 0 / 17 files · starting…"
    assert progress_text(5, 17, None, 3.0) == "Indexing 5 / 17 files · estimating…"
    assert progress_text(5, 17, 12.0, 3.0) == "Indexing 5 / 17 files · 12 s left"


def test_history_back_forward_and_refinement() -> None:
    h = History()
    for text in ("r", "rain", "rain on a tin roof"):  # typing: one entry, refined
        h.push(Query.of_text(text))
    assert [q.text for q in h.entries] == ["rain on a tin roof"]
    h.push(Query.of_text("door slam"))
    sim = Query.similar_to("/x/door.wav", 1.0, 2.5)
    h.push(sim)
    assert h.current == sim and sim.label == "similar to door.wav [0:01.0–0:02.5]"
    assert h.back() == Query.of_text("door slam")
    assert h.back() == Query.of_text("rain on a tin roof")
    assert h.back() is None and not h.can_back
    assert h.forward() == Query.of_text("door slam") and h.can_forward
    h.push(Query.of_text("glass"))  # drops the forward entries
    assert not h.can_forward and [q.label for q in h.entries][-1] == "glass"
    assert len(h.entries) == 3
    # Round trip through the settings' text form.
    for q in (*h.entries, sim, Query.similar_to("/a|b/c.wav")):
        assert Query.from_text(q.to_text()) == q
    assert Query.from_text("garbage") is None


def test_history_limit() -> None:
    h = History(limit=5)
    for i in range(12):
        h.push(Query.of_text(f"q{i} x"))  # none refines the previous one ("q1 x" vs "q10 x")
    assert len(h.entries) == 5 and h.current.text == "q11 x"


def test_peaks_and_fit() -> None:
    x = np.sin(np.linspace(0, 20 * np.pi, 10_000)).astype(np.float32)
    x[5000] = 1.5
    p = compute_peaks(x, 100)
    assert p.shape == (100, 2) and p.dtype == np.float32
    assert p[50, 1] == pytest.approx(1.5) and (p[:, 0] <= p[:, 1]).all()
    assert compute_peaks(x[:10], 100).shape == (10, 2)
    assert compute_peaks(np.zeros(0, np.float32)).shape == (0, 2)
    f = fit_peaks(p, 10)
    assert f.shape == (10, 2) and f[:, 1].max() == pytest.approx(1.5)
    assert fit_peaks(p, 400) is p


def test_clip_cache_evicts_oldest() -> None:
    def clip(name: str, n: int) -> Clip:
        return Clip(name, np.zeros(n, np.float32), 1000, 0.0, n / 1000, True)

    cache = ClipCache(max_bytes=4 * 2500)
    cache.put(clip("a", 1000))
    cache.put(clip("b", 1000))
    assert cache.get("a", 1000) is not None  # a is now the most recent
    cache.put(clip("c", 1000))
    assert cache.get("b", 1000) is None and cache.get("a", 1000) is not None
    cache.put(Clip("partial", np.zeros(10, np.float32), 1000, 1.0, 5.0, False))
    assert cache.get("partial", 1000) is None


def test_export_region_keeps_rate_and_channels(tmp_path) -> None:
    src = af.write(tmp_path / "st.flac", af.tone(440, 3.0, 48000, channels=2), 48000, subtype="PCM_24")
    out = export_region(src, 1.0, 1.5, tmp_path)
    data, sr = sf.read(out, always_2d=True)
    info = sf.info(out)
    assert sr == 48000 and data.shape == (24000, 2) and info.subtype == "PCM_24" and out.suffix == ".wav"
    ref, _ = sf.read(src, start=48000, stop=72000, always_2d=True)
    np.testing.assert_allclose(data, ref, atol=1e-6)
    assert export_region(src, 2.5, 9.0, tmp_path).exists()  # cut at the end of the file
    with pytest.raises(AudioError):
        export_region(src, 5.0, 6.0, tmp_path)
    with pytest.raises(AudioError):
        export_region(tmp_path / "missing.wav", 0.0, 1.0, tmp_path)


def test_reveal_commands(tmp_path) -> None:
    f = tmp_path / "a b.wav"
    assert reveal_command(f, "darwin") == ["open", "-R", str(f)]
    assert reveal_command(f, "win32") == ["explorer", f"/select,{f}"]
    cmd = reveal_command(f, "linux")
    assert cmd is None or (cmd[0] == "dbus-send" and any("a%20b.wav" in c for c in cmd))


def test_none_refcount_guard(qapp) -> None:
    import sys

    import PySide6

    from desktop_app.qt_compat import NoneRefcountGuard, void_call_drops_none

    broken = PySide6.__version__ == "6.12.0" and sys.version_info < (3, 12)
    assert void_call_drops_none() == broken
    guard = NoneRefcountGuard()
    assert sys.getrefcount(None) >= 500_000 or sys.version_info >= (3, 12)
    guard.check()
    assert guard.topped_up <= 1
    guard.deleteLater()

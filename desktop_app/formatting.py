"""Pure text formatting for the views: times, rates, channel counts, ETAs, the library status (no Qt)."""

from __future__ import annotations

import time


def fmt_clock(seconds: float | None, *, decimals: int = 1) -> str:
    """``83.25`` → ``'1:23.2'`` (minutes:seconds); ``None`` → ``''``."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    m, s = divmod(seconds, 60.0)
    if decimals <= 0:
        return f"{int(m)}:{int(s):02d}"
    width = 3 + decimals
    return f"{int(m)}:{s:0{width}.{decimals}f}"


def fmt_duration(seconds: float | None) -> str:
    """A file length: ``0.35`` → ``'0.35 s'``, ``12.4`` → ``'12.4 s'``, ``185`` → ``'3:05'``."""
    if seconds is None:
        return ""
    if seconds < 1.0:
        return f"{seconds:.2f} s"
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    return fmt_clock(seconds, decimals=0)


def fmt_rate(hz: int | None) -> str:
    """``44100`` → ``'44.1 kHz'``, ``48000`` → ``'48 kHz'``, ``22050`` → ``'22.05 kHz'``."""
    if not hz:
        return ""
    return f"{hz / 1000.0:g} kHz"


def fmt_channels(n: int | None) -> str:
    if not n:
        return ""
    return {1: "mono", 2: "stereo"}.get(n, f"{n} ch")


def fmt_eta(seconds: float | None) -> str:
    """Remaining time for a progress label: ``None`` → ``'estimating…'``, ``75`` → ``'1 min 15 s left'``."""
    if seconds is None:
        return "estimating…"
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"


def progress_text(done: int, total: int, eta_s: float | None, elapsed_s: float = 0.0) -> str:
    """The indexing label: ``'Indexing 3 / 17 files · 12 s left'``; before the first file is done it
    says it is starting (the model loads, the first batch decodes) instead of "estimating…"."""
    head = f"Indexing {done:,} / {total:,} files"
    if total <= 0:
        return head
    if done <= 0:
        return f"{head} · starting…"
    return f"{head} · {fmt_eta(eta_s)}"


LEARN_STEPS = {
    "learn:pairs": "Reading what your files say about themselves…",
    "learn:evaluate": "Measuring on the files kept aside…",
    "learn:train": "Teaching Earshot your library",
    "learn:write": "Saving the learned model…",
    "learn:reproject": "Switching the library to the learned model",
    "reproject": "Switching the library's model (no audio is decoded)",
}


def step_text(phase: str, done: int, total: int, eta_s: float | None) -> str:
    """The progress label of learning / re-projection: ``'Teaching Earshot your library · 40 / 200 · 1 min left'``."""
    head = LEARN_STEPS.get(phase, phase)
    if head.endswith("…") or total <= 0:
        return head
    return f"{head} · {done:,} / {total:,} · {fmt_eta(eta_s)}"


def eta_seconds(done: float, total: float, elapsed_s: float) -> float | None:
    """Remaining seconds at the average rate so far, or ``None`` while there is too little to go on."""
    if total <= 0 or done <= 0 or elapsed_s < 0.5:
        return None
    if done >= total:
        return 0.0
    return elapsed_s * (total - done) / done


def fmt_when(timestamp: float | None, now: float | None = None) -> str:
    """A past moment: ``'never'``, ``'just now'``, ``'5 min ago'``, or a local date and time."""
    if not timestamp:
        return "never"
    now = time.time() if now is None else now
    age = now - timestamp
    if 0 <= age < 60:
        return "just now"
    if 0 <= age < 3600:
        return f"{int(age // 60)} min ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


FAILED_LINK = "library:failed"


def fmt_status(status: dict) -> str:
    """The status bar's library line from ``engine.status.library_status``, as rich text:
    ``'1,234 sounds · 3.5 h · 2 failed · model earshot-sfx-small 1.0.0'``, where "2 failed" links to
    :data:`FAILED_LINK` (the library view)."""
    from html import escape

    b = status["bundle"]
    errors = int(status.get("errors", 0) or 0)
    failed = f"<a href='{FAILED_LINK}'>{errors:,} failed</a>" if errors else "0 failed"
    return (
        f"{status['files']:,} sounds · {status['audio_hours']:.1f} h · {failed} · "
        f"model {escape(str(b['name']))} {escape(str(b['version']))}"
    )


def learn_summary(report: dict) -> str:
    """What the app says when learning ends: what it learned from and the held-out numbers before → after."""
    if report.get("cancelled"):
        return report.get("message", "Stopped; the library keeps its model.")
    b, a = report["heldout_before"], report["heldout_after"]
    text = (
        f"Earshot learned from {report['train_files']:,} of your files that describe themselves "
        f"({report['described']:,} of {report['files']:,}).\n\n"
        f"Found by their sound alone, searched with their own descriptions, the {report['heldout_files']:,} files "
        f"kept aside score mAP@16 {100 * b['map@16']:.1f} → {100 * a['map@16']:.1f} "
        f"(R@10 {100 * b['R@10']:.1f} → {100 * a['R@10']:.1f})."
    )
    g = report.get("general")
    if g:
        text += (f"\nOn sounds from outside your library ({g['name']}): mAP@16 {100 * g['before']['map@16']:.1f} → "
                 f"{100 * g['after']['map@16']:.1f}.")
    if report.get("switched"):
        text += f"\n\nThe library now uses {report['name']} {report['version']}."
    return text

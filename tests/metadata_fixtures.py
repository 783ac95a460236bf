"""Write sound files carrying metadata, built byte by byte in the test (no binary fixtures committed).

RIFF chunks (``bext``, ``iXML``, ``LIST``/``INFO``, ``id3``) are assembled by hand and spliced into a WAV
written by soundfile, with the RIFF size fixed up; tags on MP3 / Ogg / FLAC are written with mutagen.
Writers can also produce deliberately broken chunks (wrong sizes, truncated payloads, garbage).
"""

from __future__ import annotations

import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

SR = 16000


def _audio(dur_s: float = 0.05) -> np.ndarray:
    t = np.arange(int(SR * dur_s)) / SR
    return (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def chunk(ident: bytes, payload: bytes, *, declared: int | None = None, pad: bool = True) -> bytes:
    """One RIFF chunk: id, little-endian size (``declared`` overrides the true size), payload and the pad
    byte an odd payload needs (``pad=False`` leaves it out, as some buggy writers do)."""
    assert len(ident) == 4
    size = len(payload) if declared is None else declared
    out = ident + struct.pack("<I", size) + payload
    if pad and len(payload) % 2:
        out += b"\0"
    return out


def bext_payload(
    description: str = "",
    originator: str = "",
    originator_reference: str = "",
    date: str = "2024-01-31",
    time: str = "12:00:00",
    coding_history: str = "",
    *,
    encoding: str = "ascii",
) -> bytes:
    """A version-1 ``bext`` payload (EBU Tech 3285: 602 fixed bytes + coding history)."""

    def fixed(text: str, n: int) -> bytes:
        raw = text.encode(encoding)[:n]
        return raw + b"\0" * (n - len(raw))

    return (
        fixed(description, 256)
        + fixed(originator, 32)
        + fixed(originator_reference, 32)
        + fixed(date, 10)
        + fixed(time, 8)
        + struct.pack("<QH", 0, 1)
        + b"\0" * 64  # UMID
        + b"\0" * 10  # loudness fields
        + b"\0" * 180  # reserved
        + coding_history.encode("ascii")
    )


def info_payload(fields: dict[str, str], *, encoding: str = "utf-8") -> bytes:
    """A ``LIST`` payload of type ``INFO`` with NUL-terminated, padded text sub-chunks."""
    body = b"INFO"
    for ident, text in fields.items():
        body += chunk(ident.encode("ascii"), text.encode(encoding) + b"\0")
    return body


def ixml_document(
    user: dict[str, str] | None = None, aswg: dict[str, str] | None = None, core: str = ""
) -> str:
    """An iXML document with Soundminer/BaseHead-style ``<USER>`` and Sony ``<ASWG>`` blocks."""

    def block(name: str, items: dict[str, str] | None) -> str:
        if not items:
            return ""
        return f"<{name}>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in items.items()) + f"</{name}>"

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<BWFXML><IXML_VERSION>2.10</IXML_VERSION>'
        + core
        + block("USER", user)
        + block("ASWG", aswg)
        + "</BWFXML>"
    )


def write_wav(
    path: Path, chunks: list[bytes] = (), *, before_data: bool = False, dur_s: float = 0.05
) -> Path:
    """Write a 16 kHz mono PCM-16 WAV with soundfile, add ``chunks`` (raw bytes from :func:`chunk`) after
    the audio, or between ``fmt`` and ``data`` with ``before_data=True``, and fix the RIFF size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _audio(dur_s), SR, subtype="PCM_16", format="WAV")
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    extra = b"".join(chunks)
    if before_data:
        at = raw.index(b"data", 12)
        raw = raw[:at] + extra + raw[at:]
    else:
        raw = raw + extra
    raw = raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:]
    path.write_bytes(raw)
    return path


def write_rf64(path: Path, chunks: list[bytes] = ()) -> Path:
    """An RF64 file (soundfile: ``ds64`` chunk, ``data`` size 0xFFFFFFFF) with ``chunks`` after the audio;
    its RIFF size stays the RF64 placeholder, as the format requires."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _audio(), SR, subtype="PCM_16", format="RF64")
    raw = path.read_bytes()
    assert raw[:4] == b"RF64" and raw[12:16] == b"ds64"
    path.write_bytes(raw + b"".join(chunks))
    return path


def write_mp3(path: Path, frames: list | None = None, *, garbage_id3: bytes | None = None) -> Path:
    """An MP3 (soundfile/LAME) with ID3v2 ``frames`` (mutagen frame objects), or with ``garbage_id3``
    bytes glued in front of the audio as a broken tag."""
    from mutagen.id3 import ID3

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _audio(0.2), SR, format="MP3")
    if frames:
        tags = ID3()
        for frame in frames:
            tags.add(frame)
        tags.save(path)
    if garbage_id3 is not None:
        path.write_bytes(garbage_id3 + path.read_bytes())
    return path


def write_vorbis(path: Path, comments: dict[str, list[str] | str]) -> Path:
    """An Ogg Vorbis (``.ogg``) or FLAC (``.flac``) file with the given Vorbis comments."""
    import mutagen

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "OGG"
    sf.write(path, _audio(0.2), SR, format=fmt, subtype="PCM_16" if fmt == "FLAC" else "VORBIS")
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    for key, value in comments.items():
        audio.tags[key] = value if isinstance(value, list) else [value]
    audio.save()
    return path

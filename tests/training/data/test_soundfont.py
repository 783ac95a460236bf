"""Tests for the General MIDI sound-font source (training/data/debian/soundfont.py).

Names, grid, captions and the MIDI bytes are checked without any binary; rendering runs ``fluidsynth``
on a General MIDI font of the system (skipped, with the reason, when either is missing)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.debian import build, soundfont
from training.data.debian.corpus import CorpusError, split_of

from .coverage_fixtures import unpacked

SYSTEM_FONTS = [Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")]


def _font() -> Path:
    if soundfont.fluidsynth_binary() is None:
        pytest.skip("fluidsynth is not installed (apt-get install fluidsynth)")
    for font in SYSTEM_FONTS:
        if font.is_file():
            return font
    pytest.skip("no General MIDI sound font in /usr/share/sounds/sf2 (apt-get install timgm6mb-soundfont)")


def test_member_paths_round_trip_and_reject_others():
    for note in soundfont.grid("timgm6mb-soundfont")[::37]:
        assert soundfont.parse_member(soundfont.member_path(note)) == note
    for bad in ("gm/p200-x/n60-v50-l0.4.flac", "sounds/violin.wav", "gm/drums-k00/n38.flac"):
        with pytest.raises(ValueError):
            soundfont.parse_member(bad)


def test_grid_covers_every_program_the_drum_kits_and_the_effects():
    notes = soundfont.grid("fluid-soundfont-gm")
    melodic = [n for n in notes if n.bank == 0]
    assert {n.program for n in melodic} == set(range(128))
    per_program = len(soundfont.PITCHES) * len(soundfont.VELOCITIES) * len(soundfont.LENGTHS_S)
    assert sum(n.program == 40 for n in melodic) == per_program
    assert sum(n.program == 125 for n in melodic) == len(soundfont.VELOCITIES) * len(soundfont.LENGTHS_S)
    drums = [n for n in notes if n.bank == 128]
    assert {n.note for n in drums} == set(range(35, 82))
    assert {n.program for n in drums} == {0, 25}
    assert len(notes) == len({soundfont.member_path(n) for n in notes})  # no two notes share a path
    assert all(n.duration_s == pytest.approx(n.length_s + soundfont.TAIL_S) for n in melodic)


def test_inventory_rows_are_training_clips_in_the_font_container():
    rows = soundfont.inventory_rows("timgm6mb-soundfont", "1.3-5")
    assert {r.container for r in rows} == {"usr/share/sounds/sf2/TimGM6mb.sf2"}
    assert {split_of(r.package) for r in rows} == {"train"}
    with pytest.raises(CorpusError):
        soundfont.inventory_rows("qabcs-data")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("gm/p042-cello/n48-v110-l2.0.flac", "single cello note, bowed, low pitch"),
        ("gm/p024-nylon-string-guitar/n60-v50-l0.4.flac", "nylon string guitar pluck"),
        ("gm/p056-trumpet/n72-v110-l0.4.flac", "trumpet blast"),
        ("gm/p125-helicopter/n60-v110-l2.0.flac", "helicopter flying"),
        ("gm/p126-applause/n60-v50-l0.4.flac", "applause"),
        ("gm/drums-k00/n42-v60.flac", "closed hi-hat"),
        ("gm/drums-k25/n36-v120.flac", "808 kick drum"),
    ],
)
def test_captions_use_the_gm_names_in_plain_words(path, expected):
    caps = soundfont.captions_for(path)
    assert expected in caps
    assert len(caps) == len(set(caps)) >= 2


def test_captions_say_register_dynamic_and_length():
    low_soft_short = soundfont.captions_for("gm/p040-violin/n48-v50-l0.4.flac")
    high_loud_long = soundfont.captions_for("gm/p040-violin/n72-v110-l2.0.flac")
    assert low_soft_short[0] == "violin staccato note, low pitch"
    assert high_loud_long[0] == "violin sustained note, high pitch"
    assert any("soft short" in c for c in low_soft_short)
    assert any("loud long" in c for c in high_loud_long)


def _midi_events(data: bytes) -> list[tuple[int, bytes]]:
    """(absolute tick, event bytes) of a type-0 file written by :func:`soundfont.midi_file`."""
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, soundfont.TICKS_PER_BEAT)
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    track, i, now, events = data[22 : 22 + length], 0, 0, []
    assert len(track) == length
    while i < len(track):
        delta = 0
        while True:
            b = track[i]
            i += 1
            delta = (delta << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        now += delta
        if track[i] == 0xFF:
            n = track[i + 2]
            events.append((now, track[i : i + 3 + n]))
            i += 3 + n
        else:
            size = 2 if track[i] & 0xF0 == 0xC0 else 3
            events.append((now, track[i : i + size]))
            i += size
    return events


def test_midi_file_plays_each_note_in_its_slot_with_program_changes():
    notes = [n for n in soundfont.grid("timgm6mb-soundfont") if n.bank == 0 and n.program in (40, 41)]
    events = _midi_events(soundfont.midi_file(notes, slot_s=4.0))
    ons = [(t, e) for t, e in events if e[0] == 0x90]
    offs = [(t, e) for t, e in events if e[0] == 0x80]
    programs = [e[1] for _, e in events if e[0] == 0xC0]
    assert programs == [40, 41]
    assert len(ons) == len(offs) == len(notes)
    ticks_per_s = soundfont.TICKS_PER_BEAT * 2  # 120 bpm
    for k, ((t, e), note) in enumerate(zip(ons, notes, strict=True)):
        assert t == round((k * 4.0 + 0.01) * ticks_per_s) and e[1:] == bytes([note.note, note.velocity])
    assert events[-1][1] == b"\xff\x2f\x00" and events[-1][0] == round(len(notes) * 4.0 * ticks_per_s)
    drums = [n for n in soundfont.grid("timgm6mb-soundfont") if n.bank == 128][:3]
    assert all(e[0] & 0x0F == 9 for _, e in _midi_events(soundfont.midi_file(drums)) if e[0] in (0x90, 0x80))
    with pytest.raises(ValueError):
        soundfont.midi_file([notes[0], drums[0]])


def test_render_is_exact_length_deterministic_and_audible(tmp_path):
    font = _font()
    notes = [n for n in soundfont.grid("timgm6mb-soundfont") if n.program == 40 and n.bank == 0][:4]
    first = soundfont.render_batch(font, notes, tmp_path)
    again = soundfont.render_batch(font, notes, tmp_path)
    for note, a, b in zip(notes, first, again, strict=True):
        assert len(a) == round(note.duration_s * soundfont.SAMPLE_RATE)
        assert np.array_equal(a, b)
        assert np.abs(a).max() > 0.01 and np.abs(a[-100:]).max() < 1e-3  # sound, then a faded end
    assert max(float(np.abs(a).max()) for a in first) == pytest.approx(0.9, abs=1e-3)
    loud = {
        n.velocity: float(np.sqrt(np.mean(a**2))) for n, a in zip(notes, first, strict=True) if n.note == 48
    }
    assert loud[110] > loud[50]  # velocity layers keep their difference


def test_missing_fluidsynth_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(soundfont, "fluidsynth_binary", lambda: None)
    with pytest.raises(CorpusError, match="fluidsynth"):
        soundfont.render_batch(tmp_path / "x.sf2", soundfont.grid("timgm6mb-soundfont")[:1], tmp_path)


def test_the_corpus_builder_renders_inventory_rows(tmp_path):
    font = _font()
    cache = tmp_path / "cache"
    root = unpacked(cache, "timgm6mb-soundfont")
    container = soundfont.FONTS["timgm6mb-soundfont"]
    (root / container).parent.mkdir(parents=True)
    (root / container).symlink_to(font)
    rows = [r for r in soundfont.inventory_rows("timgm6mb-soundfont", "1.3-5") if "/p073-" in r.member_path][
        :3
    ]
    report = build.build_corpus(rows, cache, tmp_path / "out", skip_rules=False)
    assert [r.status for r in report.rows] == ["ok"] * 3
    info = sf.info(str(tmp_path / "out" / rows[0].corpus_path))
    assert (info.samplerate, info.channels, info.format) == (44100, 1, "FLAC")

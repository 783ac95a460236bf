"""General MIDI sound fonts rendered note by note: real sampled instruments with exact labels.

A sound font package (``fluid-soundfont-gm``, ``timgm6mb-soundfont``, ``musescore-general-soundfont-small``)
ships one ``.sf2``/``.sf3`` file. Its clips are not files but notes, named by member paths that say how
to render them (:func:`parse_member`):

* ``gm/p040-violin/n48-v100-l2.0.flac`` — melodic program 40 (0-based GM number), MIDI note 48,
  velocity 100, held 2.0 s;
* ``gm/drums-k00/n38-v100.flac`` — percussion kit 0 (bank 128), note 38 (acoustic snare).

The inventory (:func:`inventory_rows`) lists a fixed grid per font: every melodic program at
:data:`PITCHES` × :data:`VELOCITIES` × :data:`LENGTHS_S` (the sound-effect programs 120–127 at middle C
only), and the GM percussion notes 35–81 of the standard kit (and of the electronic kit when the font has
one) at two velocities. Rendering (:class:`SoundFontReader`) is deterministic: one MIDI file per program
(:func:`midi_file`, notes in fixed slots) rendered by the ``fluidsynth`` command line (apt ``fluidsynth``)
with reverb and chorus off, cut into slots, mixed to mono, given a 30 ms fade-out and written as 16-bit
FLAC at 44.1 kHz. Every clip lasts exactly its length plus :data:`TAIL_S` (the release).

Captions (:func:`captions_for`) use the GM names in plain words: "single cello note, bowed, low pitch",
"trumpet blast", "nylon string guitar pluck".
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.debian.corpus import CorpusError, InventoryRow

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
#: MIDI notes rendered per melodic program: C3, C4, C5 (low, middle, high register).
PITCHES: tuple[int, ...] = (48, 60, 72)
VELOCITIES: tuple[int, ...] = (50, 110)
LENGTHS_S: tuple[float, ...] = (0.4, 2.0)
#: Release kept after the note-off, seconds; percussion clips last :data:`DRUM_CLIP_S`.
TAIL_S = 1.0
DRUM_CLIP_S = 2.0
DRUM_VELOCITIES: tuple[int, ...] = (60, 120)
_FADE_S = 0.03
PROGRAMS_PER_BATCH = 16
_PEAK = 0.9  # the loudest note of a program peaks here (linear full scale)
_SLOT_S = max(LENGTHS_S) + TAIL_S + 1.0  # silence between slots so that no release leaks into the next

#: Sound-font files of the packages this module renders (path inside the unpacked package).
FONTS: dict[str, str] = {
    "fluid-soundfont-gm": "usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb-soundfont": "usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore-general-soundfont-small": "usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
}
#: Percussion kits rendered (bank 128 program → (prefix of the drum's name, kit words)).
DRUM_KITS: dict[int, tuple[str, str]] = {0: ("", "an acoustic drum kit"), 25: ("808 ", "an 808 drum machine")}
#: Fonts that have each kit (checked by listing their presets with ``fluidsynth``; Standard everywhere).
FONT_KITS: dict[str, tuple[int, ...]] = {
    "fluid-soundfont-gm": (0, 25),
    "timgm6mb-soundfont": (0, 25),
    "musescore-general-soundfont-small": (0, 25),
}


@dataclass(frozen=True)
class Program:
    """How to name one GM program: ``noun`` (what it is), ``alt`` (another name), ``how`` it is played,
    the words for a ``short`` and a ``long`` note, and its ``family``."""

    noun: str
    alt: str
    how: str
    short: str
    long: str
    family: str


def _family(family: str, how: str, short: str, long: str, names: Sequence[tuple[str, str]]) -> list[Program]:
    return [Program(n, a, how, short, long, family) for n, a in names]


#: The 128 GM melodic programs in order (0-based), in sound-designer words.
PROGRAMS: tuple[Program, ...] = tuple(
    _family(
        "piano",
        "struck",
        "stab",
        "held note",
        [
            ("grand piano", "acoustic piano"),
            ("bright piano", "bright acoustic piano"),
            ("electric grand piano", "stage piano"),
            ("honky-tonk piano", "out of tune saloon piano"),
            ("electric piano", "rhodes piano"),
            ("fm electric piano", "dx7 electric piano"),
            ("harpsichord", "baroque harpsichord"),
            ("clavinet", "funky clavinet"),
        ],
    )
    + _family(
        "chromatic percussion",
        "struck",
        "hit",
        "ringing note",
        [
            ("celesta", "celeste"),
            ("glockenspiel", "orchestral bells"),
            ("music box", "wind-up music box"),
            ("vibraphone", "vibes"),
            ("marimba", "wooden marimba"),
            ("xylophone", "wooden xylophone"),
            ("tubular bell", "chime"),
            ("dulcimer", "hammered dulcimer"),
        ],
    )
    + _family(
        "organ",
        "played",
        "stab",
        "held chord tone",
        [
            ("drawbar organ", "hammond organ"),
            ("percussive organ", "clicky organ"),
            ("rock organ", "overdriven organ"),
            ("church organ", "pipe organ"),
            ("reed organ", "harmonium"),
            ("accordion", "french accordion"),
            ("harmonica", "blues harp"),
            ("bandoneon", "tango accordion"),
        ],
    )
    + _family(
        "guitar",
        "plucked",
        "pluck",
        "ringing note",
        [
            ("nylon string guitar", "classical guitar"),
            ("steel string guitar", "acoustic guitar"),
            ("jazz guitar", "clean hollow-body electric guitar"),
            ("clean electric guitar", "clean guitar"),
            ("muted electric guitar", "palm muted guitar"),
            ("overdriven guitar", "crunchy electric guitar"),
            ("distortion guitar", "distorted electric guitar"),
            ("guitar harmonic", "guitar harmonics"),
        ],
    )
    + _family(
        "bass",
        "plucked",
        "pluck",
        "sustained note",
        [
            ("acoustic bass", "upright double bass"),
            ("finger electric bass", "fingered bass guitar"),
            ("picked electric bass", "picked bass guitar"),
            ("fretless bass", "fretless bass guitar"),
            ("slap bass", "slapped bass guitar"),
            ("popped slap bass", "funk slap bass"),
            ("synth bass", "analog synth bass"),
            ("digital synth bass", "synth bass"),
        ],
    )
    + _family(
        "strings",
        "bowed",
        "staccato note",
        "sustained note",
        [
            ("violin", "solo violin"),
            ("viola", "solo viola"),
            ("cello", "solo cello"),
            ("double bass", "contrabass"),
            ("tremolo strings", "string section tremolo"),
            ("pizzicato strings", "plucked string section"),
            ("orchestral harp", "concert harp"),
            ("timpani", "kettle drum"),
        ],
    )
    + _family(
        "ensemble",
        "played",
        "stab",
        "sustained chord tone",
        [
            ("string ensemble", "string section"),
            ("slow string ensemble", "soft string section"),
            ("synth strings", "synthesizer strings"),
            ("warm synth strings", "analog string machine"),
            ("choir aahs", "choir singing aah"),
            ("voice oohs", "voices singing ooh"),
            ("synth voice", "synthetic choir"),
            ("orchestra hit", "orchestral stab"),
        ],
    )
    + _family(
        "brass",
        "blown",
        "blast",
        "sustained note",
        [
            ("trumpet", "brass trumpet"),
            ("trombone", "slide trombone"),
            ("tuba", "brass tuba"),
            ("muted trumpet", "trumpet with mute"),
            ("french horn", "horn"),
            ("brass section", "brass ensemble"),
            ("synth brass", "synthesizer brass"),
            ("warm synth brass", "analog synth brass"),
        ],
    )
    + _family(
        "reed",
        "blown",
        "toot",
        "sustained note",
        [
            ("soprano saxophone", "soprano sax"),
            ("alto saxophone", "alto sax"),
            ("tenor saxophone", "tenor sax"),
            ("baritone saxophone", "bari sax"),
            ("oboe", "orchestral oboe"),
            ("english horn", "cor anglais"),
            ("bassoon", "orchestral bassoon"),
            ("clarinet", "b-flat clarinet"),
        ],
    )
    + _family(
        "pipe",
        "blown",
        "toot",
        "sustained note",
        [
            ("piccolo", "piccolo flute"),
            ("flute", "concert flute"),
            ("recorder", "wooden recorder"),
            ("pan flute", "pan pipes"),
            ("blown bottle", "breath over a bottle"),
            ("shakuhachi", "japanese bamboo flute"),
            ("whistle", "tin whistle"),
            ("ocarina", "clay ocarina"),
        ],
    )
    + _family(
        "synth lead",
        "synthesized",
        "blip",
        "sustained tone",
        [
            ("square wave lead", "square synth lead"),
            ("sawtooth lead", "saw synth lead"),
            ("calliope lead", "steam organ synth lead"),
            ("chiff lead", "breathy synth lead"),
            ("charang lead", "distorted synth lead"),
            ("voice lead", "vocal synth lead"),
            ("fifths lead", "power fifth synth lead"),
            ("bass and lead", "thick synth lead"),
        ],
    )
    + _family(
        "synth pad",
        "synthesized",
        "swell",
        "drone",
        [
            ("new age pad", "fantasia synth pad"),
            ("warm pad", "warm synth pad"),
            ("polysynth pad", "polysynth"),
            ("choir pad", "vocal synth pad"),
            ("bowed glass pad", "glassy synth pad"),
            ("metallic pad", "metal synth pad"),
            ("halo pad", "airy synth pad"),
            ("sweep pad", "filter sweep pad"),
        ],
    )
    + _family(
        "synth effect",
        "synthesized",
        "hit",
        "sustained texture",
        [
            ("rain synth effect", "synth raindrops"),
            ("soundtrack synth effect", "cinematic synth swell"),
            ("crystal synth effect", "crystal chime synth"),
            ("atmosphere synth effect", "atmospheric synth"),
            ("brightness synth effect", "bright shimmering synth"),
            ("goblins synth effect", "eerie goblin synth"),
            ("echoes synth effect", "echoing synth drops"),
            ("sci-fi synth effect", "science fiction synth"),
        ],
    )
    + _family(
        "ethnic",
        "played",
        "pluck",
        "sustained note",
        [
            ("sitar", "indian sitar"),
            ("banjo", "five-string banjo"),
            ("shamisen", "japanese shamisen"),
            ("koto", "japanese koto"),
            ("kalimba", "thumb piano"),
            ("bagpipe", "scottish bagpipes"),
            ("fiddle", "folk fiddle"),
            ("shanai", "indian shehnai"),
        ],
    )
    + _family(
        "percussive",
        "struck",
        "hit",
        "ringing hit",
        [
            ("tinkle bell", "small bell"),
            ("agogo bell", "agogo"),
            ("steel drum", "steel pan"),
            ("woodblock", "wood block"),
            ("taiko drum", "japanese taiko"),
            ("melodic tom", "tuned tom drum"),
            ("synth drum", "electronic tom"),
            ("reverse cymbal", "reversed cymbal swell"),
        ],
    )
)

#: GM sound-effect programs 120–127: captions for a short and a long clip (rendered at middle C only).
EFFECTS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    120: (
        ("guitar fret noise", "finger squeak on guitar strings"),
        ("guitar fret noise, string squeak", "fingers sliding on guitar strings"),
    ),
    121: (("breath noise", "short breath"), ("breath noise, long exhale", "breathing out")),
    122: (
        ("seashore", "wave washing on the beach"),
        ("seashore, waves on the beach", "ocean surf rolling in"),
    ),
    123: (("bird tweet", "bird chirp"), ("birds tweeting", "songbird chirping")),
    124: (("telephone ring", "phone ringing"), ("telephone ringing", "old phone bell ringing")),
    125: (("helicopter", "helicopter rotor"), ("helicopter flying", "helicopter rotor blades chopping")),
    126: (("applause", "short applause"), ("applause, crowd clapping", "audience clapping")),
    127: (("gunshot", "gun shot"), ("gunshots", "gunfire")),
}
EFFECT_PITCH = 60

#: GM percussion notes 35–81: words for each (first = primary caption).
DRUMS: dict[int, tuple[str, ...]] = {
    35: ("bass drum", "kick drum"), 36: ("kick drum", "bass drum hit"), 37: ("side stick", "rim click"),
    38: ("snare drum", "snare hit"), 39: ("hand clap", "clap"), 40: ("electric snare", "tight snare hit"),
    41: ("low floor tom", "floor tom hit"), 42: ("closed hi-hat", "closed hat tick"),
    43: ("high floor tom", "floor tom hit"), 44: ("pedal hi-hat", "hi-hat foot chick"),
    45: ("low tom", "tom drum hit"), 46: ("open hi-hat", "open hat sizzle"), 47: ("low mid tom", "tom hit"),
    48: ("high mid tom", "rack tom hit"), 49: ("crash cymbal", "cymbal crash"), 50: ("high tom", "rack tom hit"),
    51: ("ride cymbal", "ride cymbal ping"), 52: ("chinese cymbal", "china cymbal crash"),
    53: ("ride bell", "cymbal bell ping"), 54: ("tambourine", "tambourine shake"), 55: ("splash cymbal", "short cymbal splash"),
    56: ("cowbell", "cow bell hit"), 57: ("crash cymbal", "second crash cymbal"), 58: ("vibraslap", "rattling vibraslap"),
    59: ("ride cymbal", "ride cymbal ping"), 60: ("high bongo", "bongo hit"), 61: ("low bongo", "bongo hit"),
    62: ("muted high conga", "slapped conga"), 63: ("open high conga", "conga hit"), 64: ("low conga", "conga drum hit"),
    65: ("high timbale", "timbale hit"), 66: ("low timbale", "timbale hit"), 67: ("high agogo", "agogo bell"),
    68: ("low agogo", "agogo bell"), 69: ("cabasa", "cabasa shaker"), 70: ("maracas", "maraca shake"),
    71: ("short whistle", "short referee whistle"), 72: ("long whistle", "long referee whistle"),
    73: ("short guiro", "guiro scrape"), 74: ("long guiro", "long guiro scrape"), 75: ("claves", "wooden claves click"),
    76: ("high wood block", "woodblock tock"), 77: ("low wood block", "woodblock tock"),
    78: ("muted cuica", "cuica squeak"), 79: ("open cuica", "cuica squeal"), 80: ("muted triangle", "triangle tick"),
    81: ("open triangle", "triangle ring"),
}  # fmt: skip

_REGISTER = {48: "low", 60: "middle", 72: "high"}
_MELODIC = re.compile(r"^gm/p(\d{3})-[a-z0-9-]+/n(\d+)-v(\d+)-l(\d+\.\d+)\.flac$")
_DRUM = re.compile(r"^gm/drums-k(\d{2,3})/n(\d+)-v(\d+)\.flac$")


@dataclass(frozen=True)
class Note:
    """One clip to render: ``bank`` (0 melodic, 128 percussion), ``program``, MIDI ``note`` and
    ``velocity``, ``length_s`` held (seconds) and the whole clip's ``duration_s``."""

    bank: int
    program: int
    note: int
    velocity: int
    length_s: float
    duration_s: float

    @property
    def batch(self) -> tuple[int, int]:
        """Notes rendered together (one fluidsynth call, the font loaded once): one percussion kit, or
        :data:`PROGRAMS_PER_BATCH` consecutive melodic programs."""
        return (self.bank, self.program) if self.bank == 128 else (0, self.program // PROGRAMS_PER_BATCH)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def member_path(note: Note) -> str:
    """The member path naming ``note`` (see the module docstring); inverse of :func:`parse_member`."""
    if note.bank == 128:
        return f"gm/drums-k{note.program:02d}/n{note.note}-v{note.velocity}.flac"
    name = PROGRAMS[note.program].noun if note.program < 120 else EFFECTS[note.program][0][0]
    return f"gm/p{note.program:03d}-{_slug(name)}/n{note.note}-v{note.velocity}-l{note.length_s:.1f}.flac"


def parse_member(path: str) -> Note:
    """The :class:`Note` a member path names; raises ``ValueError`` for any other path."""
    m = _MELODIC.match(path)
    if m:
        program, note, vel, length = int(m[1]), int(m[2]), int(m[3]), float(m[4])
        if program > 127:
            raise ValueError(f"no GM program {program}: {path}")
        return Note(0, program, note, vel, length, round(length + TAIL_S, 3))
    m = _DRUM.match(path)
    if m:
        return Note(128, int(m[1]), int(m[2]), int(m[3]), 0.1, DRUM_CLIP_S)
    raise ValueError(f"not a sound-font member path: {path}")


def grid(package: str) -> list[Note]:
    """The notes rendered for a font package (see the module docstring), in member-path order."""
    notes: list[Note] = []
    for program in range(128):
        pitches = (EFFECT_PITCH,) if program >= 120 else PITCHES
        for pitch in pitches:
            for vel in VELOCITIES:
                for length in LENGTHS_S:
                    notes.append(Note(0, program, pitch, vel, length, round(length + TAIL_S, 3)))
    for kit in FONT_KITS.get(package, (0,)):
        for drum in DRUMS:
            for vel in DRUM_VELOCITIES:
                notes.append(Note(128, kit, drum, vel, 0.1, DRUM_CLIP_S))
    return sorted(notes, key=member_path)


def inventory_rows(package: str, version: str = "") -> list[InventoryRow]:
    """Inventory rows of a font package's grid: container = the font file, member = the note's path."""
    if package not in FONTS:
        raise CorpusError(f"{package} is not a known sound-font package ({', '.join(sorted(FONTS))}).")
    rows = []
    for note in grid(package):
        caps = captions_for(member_path(note))
        rows.append(
            InventoryRow(
                package, version, FONTS[package], member_path(note), note.duration_s, caps[0], caps[-1]
            )
        )
    return rows


# ------------------------------------------------------------------------------------------------ captions


def _register(note: int) -> str:
    return _REGISTER.get(note, "low" if note < 54 else "high" if note > 66 else "middle")


def _dynamic(velocity: int) -> str:
    return "soft" if velocity < 80 else "loud"


def captions_for(path: str) -> list[str]:
    """Captions of one rendered note, primary first (the concept); raises ``ValueError`` for a path that
    :func:`parse_member` rejects."""
    note = parse_member(path)
    dyn = _dynamic(note.velocity)
    if note.bank == 128:
        words = DRUMS.get(note.note)
        if words is None:
            raise ValueError(f"no GM percussion name for note {note.note}")
        prefix, kit = DRUM_KITS.get(note.program, ("", "a drum kit"))
        return [f"{prefix}{words[0]}", f"{dyn} {prefix}{words[1]}", f"{words[0]} from {kit}",
                f"single {prefix}{words[0]} one-shot"]  # fmt: skip
    if note.program >= 120:
        short, long = EFFECTS[note.program]
        return list(long if note.length_s >= 1.0 else short)
    p = PROGRAMS[note.program]
    reg = _register(note.note)
    is_long = note.length_s >= 1.0
    articulation = p.long if is_long else p.short
    caps = [
        f"{p.noun} {articulation}, {reg} pitch",
        f"single {p.noun} note, {p.how}, {reg} pitch",
        f"{dyn} {'long' if is_long else 'short'} {p.alt} {articulation}",
        f"{p.noun} {articulation}",
    ]
    if p.family not in p.noun:
        caps.append(f"{reg} {p.family} note, {p.noun}")
    return caps


# ------------------------------------------------------------------------------------------------- render


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


TICKS_PER_BEAT = 480
_TEMPO_US = 500_000  # 120 bpm: 960 ticks per second


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_BEAT * 1_000_000 / _TEMPO_US)


def midi_file(notes: Sequence[Note], slot_s: float = _SLOT_S) -> bytes:
    """A type-0 Standard MIDI File playing ``notes`` (one bank) one per slot of ``slot_s`` seconds: note
    ``k`` starts at ``k * slot_s`` (+10 ms) and is released after its ``length_s``; a program change
    starts the slot of each note whose program differs from the previous one. Percussion (bank 128) plays
    on channel 10; everything else on channel 1. Reverb and chorus sends are off."""
    if not notes:
        raise ValueError("no notes to render")
    bank = notes[0].bank
    if any(n.bank != bank for n in notes):
        raise ValueError("one MIDI file renders one bank")
    ch = 9 if bank == 128 else 0
    events: list[tuple[int, int, bytes]] = [
        (0, 0, b"\xff\x51\x03" + _TEMPO_US.to_bytes(3, "big")),
        (0, 0, bytes([0xB0 | ch, 0, 1 if bank == 128 else 0])),  # bank select MSB
        (0, 0, bytes([0xB0 | ch, 32, 0])),
        (0, 0, bytes([0xB0 | ch, 91, 0])),  # reverb send off
        (0, 0, bytes([0xB0 | ch, 93, 0])),  # chorus send off
    ]
    program = None
    for k, n in enumerate(notes):
        slot = _ticks(k * slot_s)
        if n.program != program:
            events.append((slot, 1, bytes([0xC0 | ch, n.program])))
            program = n.program
        start = _ticks(k * slot_s + 0.01)
        events.append((start, 2, bytes([0x90 | ch, n.note, n.velocity])))
        events.append((start + _ticks(n.length_s), 0, bytes([0x80 | ch, n.note, 0])))
    end = _ticks(len(notes) * slot_s)
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray()
    now = 0
    for t, _, data in events:
        track += _varlen(t - now) + data
        now = t
    track += _varlen(end - now) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def fluidsynth_binary() -> str | None:
    """Path of the ``fluidsynth`` command, or ``None`` when it is not installed."""
    return shutil.which("fluidsynth")


def render_batch(font: Path, notes: Sequence[Note], workdir: Path) -> list[np.ndarray]:
    """Render ``notes`` (one bank) with ``font``: one float32 mono array per note, of exactly
    ``duration_s`` seconds at :data:`SAMPLE_RATE` with a short fade-out. One gain per program brings its
    loudest note to a peak of :data:`_PEAK` (soft and loud notes keep their difference).

    Raises :class:`CorpusError` when ``fluidsynth`` is missing or fails.
    """
    import soundfile as sf

    binary = fluidsynth_binary()
    if binary is None:
        raise CorpusError(
            "fluidsynth is not installed (apt-get install fluidsynth): cannot render sound fonts."
        )
    mid, wav = workdir / "batch.mid", workdir / "batch.wav"
    mid.write_bytes(midi_file(notes))
    cmd = [binary, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(SAMPLE_RATE),
           "-o", "synth.cpu-cores=1", "-T", "wav", "-O", "float", "-F", str(wav), str(font), str(mid)]  # fmt: skip
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise CorpusError(f"fluidsynth could not render {font.name}: {str(detail).strip()[-300:]}") from exc
    finally:
        for p in (mid, wav):
            p.unlink(missing_ok=True)
    if rate != SAMPLE_RATE:
        raise CorpusError(f"fluidsynth rendered at {rate} Hz, not {SAMPLE_RATE}.")
    mono = audio.mean(axis=1)
    clips = []
    for k, n in enumerate(notes):
        start = int(round(k * _SLOT_S * SAMPLE_RATE))
        length = int(round(n.duration_s * SAMPLE_RATE))
        clip = np.zeros(length, dtype=np.float32)
        piece = mono[start : start + length]
        clip[: len(piece)] = piece
        clips.append(clip)
    peaks: dict[int, float] = {}
    for n, clip in zip(notes, clips, strict=True):
        peaks[n.program] = max(peaks.get(n.program, 0.0), float(np.abs(clip).max()))
    fade = np.linspace(1.0, 0.0, int(_FADE_S * SAMPLE_RATE), dtype=np.float32)
    out = []
    for n, clip in zip(notes, clips, strict=True):
        if peaks[n.program] > 0:
            clip = clip * (_PEAK / peaks[n.program])
        clip[-len(fade) :] *= fade
        out.append(np.clip(clip, -1.0, 1.0).astype(np.float32))
    return out


class SoundFontReader:
    """Container reader for a sound font (see :mod:`training.data.debian.build`): ``extract(member,
    dest)`` renders the note a member path names. Notes are rendered by batch (:attr:`Note.batch`: one
    fluidsynth call renders the grid of 16 programs, kept until another batch is asked for)."""

    def __init__(self, font: Path) -> None:
        self.font = font
        self._batch: tuple[int, int] | None = None
        self._audio: dict[str, np.ndarray] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="earshot-sf-")

    def names(self) -> list[str]:
        """Member paths this reader renders (the grid of every known package, any font)."""
        return sorted({member_path(n) for package in FONTS for n in grid(package)})

    def extract(self, member: str, dest: Path) -> None:
        """Render ``member`` into ``dest`` (FLAC, 16-bit, mono, 44.1 kHz). ``KeyError`` for an unknown
        member path."""
        import soundfile as sf

        try:
            note = parse_member(member)
        except ValueError as exc:
            raise KeyError(member) from exc
        if note.batch != self._batch or member not in self._audio:
            batch = [n for n in _batch_notes(note.batch)]
            if note not in batch:
                batch.append(note)
            rendered = render_batch(self.font, batch, Path(self._tmp.name))
            self._audio = {member_path(n): a for n, a in zip(batch, rendered, strict=True)}
            self._batch = note.batch
        sf.write(str(dest), self._audio[member], SAMPLE_RATE, format="FLAC", subtype="PCM_16")

    def close(self) -> None:
        self._audio.clear()
        self._tmp.cleanup()


def _batch_notes(batch: tuple[int, int]) -> list[Note]:
    seen: dict[str, Note] = {}
    for package in FONTS:
        for n in grid(package):
            if n.batch == batch:
                seen[member_path(n)] = n
    return [seen[k] for k in sorted(seen)]

"""LMMS samples (``lmms-common``): all of ``usr/share/lmms/samples`` (drums, basses, instruments, pads,
effects, loops, waveforms), not only the clips of the first inventory.

The scanner (:func:`training.data.debian.scan.scan_package`) finds the clips; :func:`captions_for` names
them from the file name (a small vocabulary of sampler abbreviations) and the folder, which says what
kind of sample it is (:data:`FOLDERS`). Clips already in the first corpus are left out by the coverage
builder, so that no clip is there twice.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

PACKAGE = "lmms-common"
SAMPLES_DIR = "usr/share/lmms/samples"

#: Folder → (words added to the name, a second caption template with ``{name}``).
FOLDERS: dict[str, tuple[str, str]] = {
    "basses": ("", "{name} synth bass one-shot"),
    "bassloops": ("loop", "{name} bass loop"),
    "beats": ("", "{name} drum loop"),
    "drums": ("", "{name} drum one-shot"),
    "effects": ("", "{name} sound effect"),
    "instruments": ("", "{name} sample"),
    "latin": ("loop", "{name} riff"),
    "misc": ("", "{name} sound"),
    "shapes": ("", "{name} synth tone"),
    "stringsnpads": ("", "{name} pad"),
    "waveforms": ("", "{name} waveform tone"),
}

_TERMS: dict[str, str] = {
    "hihat": "hi-hat", "opened": "open", "bassdrum": "bass drum", "e": "electric", "accord": "chord",
    "sqr": "square", "tri": "triangle", "sine": "sine", "fm": "fm", "tb303": "tb-303 acid bass",
    "909beat": "909 drum beat", "briff": "bass riff", "snaph": "finger snap", "clav": "claves",
    "inv": "inverted", "dist": "distorted", "w2": "", "lfo": "lfo", "trancegate": "trance gate",
    "matrix1000": "matrix-1000 synth", "juno": "juno synth", "nord": "nord synth", "korg": "korg",
    "poly6": "polysix", "addsyn": "additive synth", "bunglist": "", "micro": "", "rad": "", "undefined": "",
    "chroma": "chromatic", "sidestick": "side stick", "bassslap": "slap bass", "harmonics": "harmonics",
    "hihats": "hi-hats", "rave": "rave", "vowel": "vowel", "a": "a", "u": "u", "hexagon": "hexagon wave",
}  # fmt: skip


#: Bare drum names and what a designer calls them (the rest of a name goes before: "snare hiphop" ->
#: "hiphop snare drum").
_DRUMS = {"kick": "kick drum", "snare": "snare drum", "tom": "tom drum", "ride": "ride cymbal",
          "crash": "crash cymbal", "clap": "hand clap", "rim": "rim shot", "hi-hat": "hi-hat"}  # fmt: skip


def name_words(stem: str) -> str:
    """A sample's file stem in plain words: ``"hihat_closed01"`` → ``"hi-hat closed"``."""
    stem = stem.lower().replace("+", " and ").replace("!", "")
    words = []
    for w in re.split(r"[^a-z0-9]+", stem):
        if not w:
            continue
        base = w if w in _TERMS else re.sub(r"\d+$", "", w)  # "909beat01" -> "909beat"
        if base in _TERMS:
            words.append(_TERMS[base])
            continue
        for part in re.split(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)", w):  # "10sqr", "closed01"
            if part and not part.isdigit():  # numbers are variants or voice counts
                words.append(_TERMS.get(part, part))
    return re.sub(r"\s+", " ", " ".join(words)).strip()


def captions_for(member_path: str) -> list[str]:
    """Captions of one LMMS sample (primary first), or [] when its name says nothing."""
    path = PurePosixPath(member_path)
    folder = path.parent.name
    name = name_words(path.stem)
    if not name or folder not in FOLDERS:
        return []
    extra, template = FOLDERS[folder]
    if folder == "drums":
        first, _, rest = name.partition(" ")
        name = (
            " ".join(w for w in (rest, _DRUMS.get(first, first)) if w) if rest else _DRUMS.get(first, first)
        )
    primary = f"{name} {extra}".strip()
    return list(dict.fromkeys([primary, template.format(name=name)]))

"""Game packages whose sound files are named plainly (``engine_start.wav``, ``glass_break.ogg``).

Their clips are found by the generic scanner (:func:`training.data.debian.scan.scan_package`: 0.1–30 s,
music and speech folders left out) under the package's sound folders (:data:`PACKAGES`), and captioned
by the name rules of :mod:`training.data.captions` (split, de-noise, expand abbreviations, jargon
terms and synonyms of ``jargon.toml``), the same rules that caption the first corpus's clips without a
hand-written pattern. A package may cap how many clips share one caption (:data:`MAX_PER_CONCEPT`), so
that a sound copied into many folders (FlightGear's aircraft) does not dominate.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from training.data import captions as cap
from training.data.debian.corpus import InventoryRow
from training.data.debian.scan import scan_package

#: Package → folders (prefixes of member paths) holding its sound effects.
PACKAGES: dict[str, tuple[str, ...]] = {
    "powermanga-data": ("usr/share/games/powermanga/sounds/",),
    "flightgear-data-base": ("usr/share/games/flightgear/",),
    # 2.3 (surveyed in Debian's Contents index for audio files with plain English names: animals, people,
    # vehicles, weapons, household and nature sounds; none of them is a blind or reserved package)
    "scorched3d-data": ("usr/share/games/scorched3d/data/",),
    "pekka-kana-2-data": ("usr/share/games/pekka-kana-2/",),
    "torcs-data": ("usr/share/games/torcs/",),
    "flare-game": ("usr/share/games/flare/",),
    "crossfire-client": ("usr/share/games/crossfire-client/",),
    "caveexpress-data": ("usr/share/games/caveexpress/",),
    "plee-the-bear-data": ("usr/share/games/plee-the-bear/",),
    "triplea": ("usr/share/games/triplea/",),
    "unknown-horizons": ("usr/share/unknown-horizons/",),
    "ardentryst": ("usr/share/games/ardentryst/",),
    "sdl-ball-data": ("usr/share/games/sdl-ball/default/",),
    "enigma-data": ("usr/share/games/enigma/soundsets/",),
    "micropolis-data": ("usr/share/games/micropolis/",),
    "freeorion-data": ("usr/share/games/freeorion/",),
    "netpanzer-data": ("usr/share/games/netpanzer/",),
    "freedroid-data": ("usr/share/games/freedroid/",),
    "starfighter-data": ("usr/share/starfighter/sound/",),
    "brainparty-data": ("usr/share/games/brainparty/",),
    "tworld-data": ("usr/share/games/tworld/",),
    "neverball-common": ("usr/share/games/neverball/snd/",),
    "mazeofgalious-data": ("usr/share/games/mazeofgalious/",),
    # 2.5 (the same Contents survey, for the kinds the independent benchmark misses most: animals, people's
    # non-speech sounds, household objects and toys, aircraft and transport): desktop sound themes, office
    # gallery sounds, a transport game, a flight simulator, a football game, a toddler's toy, Csound's source
    # recordings (instruments, seashore), XEmacs's sound set (bark, cat meow, cuckoo, kiss). A few of their
    # clips are speech under a plain name (Csound's `fox.wav` reads a sentence; Bambam's `youcannot.wav`); the
    # phrase helpers skipped those concepts, and the clips train with their names (WEAKNESSES.md).
    "ukui-media": ("usr/share/sounds/",),
    "libreoffice-common": ("usr/lib/libreoffice/share/gallery/sounds/",),
    "simutrans-pak64": ("usr/share/games/simutrans/pak/sound/",),
    "trophy-data": ("usr/share/games/trophy/sounds/",),
    "acm": ("usr/share/games/acm/objects/sounds/",),
    "tuxfootball": ("usr/share/games/tuxfootball/sound/",),
    "bambam": ("usr/share/bambam/data/",),
    "xemacs21-basesupport": ("usr/share/xemacs21/xemacs-packages/etc/sounds/",),
    "csoundqt-examples": ("usr/share/csoundqt/Examples/SourceMaterials/",),
    "freegish-data": ("usr/share/games/freegish/sound/",),
    "madbomber-data": ("usr/share/games/madbomber/sounds/",),
    "jag": ("usr/share/games/jag/data/sounds/",),
    "gnome-audio": ("usr/share/sounds/",),
}
# Surveyed and left out: teeworlds-data (WavPack, which libsndfile cannot read), kobodeluxe-data
# (Audiality scripts), neverball-data and xmoto-data (no sound effects); tecnoballz-data, lbreakout2-data,
# bzflag-data and pinball-data (French abbreviations, spoken words, game jargon for names); 2.5:
# castle-game-engine-doc (example data named by sample format), crrcsim-data (numbered voice call-outs),
# open-invaders-data (spoken menu words), lomiri-sounds (ringtone melodies), planetblupi-common (numbered
# files), emacspeak (auditory icons named by editor action), afterstep-data (only .au files, which the
# scanner does not read).
#: Clips kept per caption and package (the first ones by path).
MAX_PER_CONCEPT = 6


def scan(package: str, extracted: Path, version: str, jargon: cap.Jargon | None = None) -> tuple[
    list[InventoryRow], dict[str, list[str]], Counter[str]
]:  # fmt: skip
    """Rows, captions by member path and reasons for leaving clips out, for one of :data:`PACKAGES`."""
    jargon = jargon or cap.load_jargon()
    roots = PACKAGES[package]
    rows, left_out = scan_package(extracted, package, version)
    kept: list[InventoryRow] = []
    captions: dict[str, list[str]] = {}
    per_concept: Counter[str] = Counter()
    for r in rows:
        if r.container or not r.member_path.startswith(roots):
            left_out["outside the sound folders"] += 1
            continue
        result = cap.caption_clip(package, r.member_path, jargon)
        if not result.captions:
            left_out[f"dropped: {result.dropped}"] += 1
            continue
        if len(result.concept) < 3:
            left_out["dropped: uninformative name"] += 1
            continue
        if per_concept[result.concept] >= MAX_PER_CONCEPT:
            left_out["over the per-caption cap"] += 1
            continue
        per_concept[result.concept] += 1
        kept.append(r)
        captions[r.member_path] = list(result.captions)
    return kept, captions, left_out

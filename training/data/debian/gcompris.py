"""GCompris (``gcompris-qt-data``): animal, instrument and object sounds inside Qt resource bundles.

Each activity of GCompris ships one ``usr/share/gcompris-qt/rcc/ACTIVITY.rcc`` (read with
:mod:`training.data.debian.rcc`). :func:`inventory_rows` lists the audio files of every bundle that
:data:`CAPTIONS` describes (hand-written, by file name after the activity's ``resource/`` folder);
music, spoken words and sounds whose content is unclear from their name are left out. Captions are
sound-designer words, primary first.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from pathlib import Path, PurePosixPath

from training.data.debian.corpus import InventoryRow, check_not_reserved
from training.data.debian.rcc import RccError, RccFile

log = logging.getLogger(__name__)

PACKAGE = "gcompris-qt-data"
RCC_DIR = "usr/share/gcompris-qt/rcc"
AUDIO_SUFFIXES = frozenset({".wav", ".ogg"})

#: ``resource``-relative file name (lower case) → captions. Files not listed are left out.
CAPTIONS: dict[str, tuple[str, ...]] = {
    "slide.wav": ("plastic game piece sliding", "counter slide"),
    "sound/drop.wav": ("object dropped into place", "soft drop thud"),
    "sound/slidein.wav": ("quick slide in whoosh", "short swish"),
    "sound/slideout.wav": ("quick slide out whoosh", "short swish"),
    "door_close.wav": ("canal lock gate closing", "heavy gate grinding shut"),
    "door_open.wav": ("canal lock gate opening", "heavy gate grinding open"),
    "lock.wav": ("lock gate mechanism clunk", "heavy metal latch"),
    "water_fill.wav": ("water filling a canal lock", "water rushing in"),
    "bubble.wav": ("bubble pop", "water bubble"),
    "drip.wav": ("water drip", "single drop"),
    "sounds/audioclick.wav": ("short click", "button click"),
    "sounds/bleep.wav": ("electronic bleep", "short beep"),
    "sounds/bonus.wav": ("bonus chime", "reward jingle"),
    "sounds/brick.wav": ("brick knock", "hard block hit"),
    "sounds/completetask.wav": ("task complete chime", "success jingle"),
    "sounds/crash.wav": ("small crash", "objects crashing"),
    "sounds/darken.wav": ("soft whoosh", "darkening swish"),
    "sounds/flip.wav": ("card flip", "paper flick"),
    "sounds/scroll.wav": ("scroll tick", "short click"),
    "sounds/smudge.wav": ("smudge rub", "finger rubbing paper"),
    "sounds/water.wav": ("water pouring", "running water"),
    "sounds/win.wav": ("win jingle", "victory fanfare"),
    "eraser1.wav": ("eraser rubbing on paper", "rubber eraser scrub"),
    "eraser2.wav": ("eraser rubbing on paper", "rubber eraser scrub"),
    "animals/cat.ogg": ("cat meowing", "cat meow", "domestic cat"),
    "animals/chickens.ogg": ("chickens clucking", "hens in a farmyard", "chicken coop"),
    "animals/cow.ogg": ("cow mooing", "cow moo", "cattle lowing"),
    "animals/dog.ogg": ("dog barking", "dog bark"),
    "animals/duck.ogg": ("duck quacking", "duck quack"),
    "animals/horse.ogg": ("horse neighing", "horse whinny"),
    "animals/owl.ogg": ("owl hooting", "owl hoot at night"),
    "animals/pig.ogg": ("pig grunting", "pig oink", "pigs snorting"),
    "animals/sheep.ogg": ("sheep bleating", "sheep baa"),
    "eat.wav": ("chomp", "eating bite"),
    "helicopter.wav": ("helicopter", "helicopter rotor"),
    "accordion.ogg": ("accordion playing", "accordion melody"),
    "banjo.ogg": ("banjo playing", "banjo picking"),
    "bongo.ogg": ("bongo drums playing", "bongos rhythm"),
    "castanets.ogg": ("castanets clicking", "castanets rhythm"),
    "cello.ogg": ("cello playing", "bowed cello melody"),
    "clarinet.ogg": ("clarinet playing", "clarinet melody"),
    "cymbal.ogg": ("cymbal crashes", "cymbal hits"),
    "drum_kit.ogg": ("drum kit playing", "drum beat"),
    "electric_guitar.ogg": ("electric guitar playing", "electric guitar riff"),
    "flute_traversiere.ogg": ("flute playing", "concert flute melody"),
    "guitar.ogg": ("acoustic guitar playing", "guitar strumming"),
    "harmonica.ogg": ("harmonica playing", "blues harmonica"),
    "harp.ogg": ("harp playing", "harp glissando"),
    "horn.ogg": ("french horn playing", "horn melody"),
    "maracas.ogg": ("maracas shaking", "maraca rhythm"),
    "organ.ogg": ("organ playing", "church organ chords"),
    "piano.ogg": ("piano playing", "piano melody"),
    "saxophone.ogg": ("saxophone playing", "sax melody"),
    "snare_drum.ogg": ("snare drum roll", "snare drum playing"),
    "tambourine.ogg": ("tambourine shaking", "tambourine rhythm"),
    "timpani.ogg": ("timpani rolls", "kettle drums"),
    "triangle.ogg": ("triangle ringing", "triangle strikes"),
    "trombone.ogg": ("trombone playing", "trombone slide"),
    "trumpet.ogg": ("trumpet playing", "trumpet fanfare"),
    "tuba.ogg": ("tuba playing", "low brass tuba"),
    "violin.ogg": ("violin playing", "violin melody"),
    "knock.wav": ("knock on wood", "wooden knock"),
    "xylofon_son1.wav": ("xylophone note", "single xylophone hit"),
    "xylofon_son2.wav": ("xylophone note", "single xylophone hit"),
    "xylofon_son3.wav": ("xylophone note", "single xylophone hit"),
    "xylofon_son4.wav": ("xylophone note", "single xylophone hit"),
    "lrapplauses_1_la_cut.ogg": ("applause", "audience clapping"),
    "lrbark_1_la_cut.ogg": ("dog barking", "dog bark"),
    "lrbark_3_la_cut.ogg": ("dog barking", "dog barks"),
    "lrbuddhist_gong_05_la.ogg": ("buddhist gong", "temple gong ringing"),
    "lrdoor_open_2_la.ogg": ("door opening", "creaky door open"),
    "lrfactory_noise_01_la.ogg": ("factory noise", "industrial machinery"),
    "lrfactory_noise_02_la.ogg": ("factory noise", "industrial machinery"),
    "lrfactory_noise_03_la.ogg": ("factory noise", "industrial machinery"),
    "lrfactory_noise_04_la.ogg": ("factory noise", "industrial machinery"),
    "lrfactory_noise_05_la.ogg": ("factory noise", "industrial machinery"),
    "lrfactory_noise_06_la.ogg": ("factory noise", "industrial machinery"),
    "lrfireballs_01_la.ogg": ("fireball whoosh", "fire burst"),
    "lrfrogsinponduringstormlacut.ogg": ("frogs croaking in a pond during a storm", "frogs and rain"),
    "lrheart_beat_01_la.ogg": ("heartbeat", "heart beating"),
    "lrhits_01_la.ogg": ("hits", "impacts"),
    "lrobject_falling_01_la.ogg": ("object falling", "something falls and clatters"),
    "lrobject_falling_02_la.ogg": ("object falling", "something falls and clatters"),
    "lrrain_in_garden_01_la_cut.ogg": ("rain in a garden", "rainfall"),
    "lrring_01_la.ogg": ("bell ring", "ringing"),
    "lrstartandstopcarengine1lacut.ogg": ("car engine starting and stopping", "car ignition and engine"),
    "lrtrain_slowing_down_01_la_cut.ogg": ("train slowing down", "train braking"),
    "guitar_son1.ogg": ("guitar note", "single guitar pluck"),
    "guitar_son2.ogg": ("guitar note", "single guitar pluck"),
    "guitar_son3.ogg": ("guitar note", "single guitar pluck"),
    "guitar_son4.ogg": ("guitar note", "single guitar pluck"),
    "card_flip.wav": ("card flip", "playing card turned over"),
    "pickaxe.wav": ("pickaxe hitting rock", "mining pick strike"),
    "money1.wav": ("coins", "coins jingling"),
    "money2.wav": ("coins", "coins clinking"),
    "dash.wav": ("morse code dash", "long beep"),
    "dot.wav": ("morse code dot", "short beep"),
    "click.wav": ("click", "short click"),
    "sounds/train.wav": ("train", "train passing"),
    "brush.wav": ("paint brush stroke", "brush on paper"),
    "eraser.wav": ("eraser rubbing", "rubber eraser scrub"),
    "icy_walk.wav": ("footsteps on ice", "walking on ice"),
    "metal_hit.wav": ("metal hit", "metal clang"),
    "arrow.wav": ("arrow hitting a target", "arrow thud"),
    "car.wav": ("car", "car engine"),
    "bubble2.wav": ("bubble pop", "water bubble"),
    "harbor1.wav": ("harbour ambience", "boats in a harbour"),
    "harbor2.wav": ("harbour ambience", "boats in a harbour"),
}


def resource_name(member: str) -> str:
    """The part of a bundle path after the activity's ``resource/`` folder, lower case."""
    tail = member.split("/resource/", 1)[-1]
    return tail.lower()


def captions_for(member: str) -> list[str]:
    """Captions of one bundle member (primary first); empty when :data:`CAPTIONS` does not list it."""
    return list(CAPTIONS.get(resource_name(member), ()))


def inventory_rows(extracted: Path, version: str = "") -> tuple[list[InventoryRow], Counter[str]]:
    """Inventory rows of the captioned audio files in the bundles under ``extracted/RCC_DIR``, and a
    counter of why other audio files were left out."""
    import soundfile as sf

    check_not_reserved([PACKAGE])
    rows: list[InventoryRow] = []
    left_out: Counter[str] = Counter()
    for bundle in sorted((extracted / RCC_DIR).glob("*.rcc")):
        container = bundle.relative_to(extracted).as_posix()
        try:
            rcc = RccFile(bundle)
        except RccError as exc:
            log.warning("%s: %s", container, exc)
            left_out["unreadable bundle"] += 1
            continue
        for member in rcc.names():
            if PurePosixPath(member).suffix.lower() not in AUDIO_SUFFIXES:
                continue
            caps = captions_for(member)
            if not caps:
                left_out["no caption"] += 1
                continue
            try:
                info = sf.info(io.BytesIO(rcc.read(member)))
            except (RuntimeError, sf.LibsndfileError, RccError):
                left_out["undecodable"] += 1
                continue
            duration = info.frames / info.samplerate
            rows.append(
                InventoryRow(PACKAGE, version, container, member, round(duration, 3), caps[0], caps[-1])
            )
    return rows, left_out

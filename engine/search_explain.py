"""Why a hit matched, and which calibrated fusion a bundle uses.

* :func:`fusion_for`: the :class:`engine.fusion.TrustFusion` fitted for a bundle (``engine/data/fusion.json``,
  written by ``benchmarks/fit_fusion.py`` from validation queries), or the default one for bundles that
  were never fitted (a learned or third-party bundle).
* :func:`explain`: the ``matched_by`` list of a hit — ``"sound"`` when its audio alone makes it a
  likely match, and ``"name"`` / ``"description"`` / ``"category"`` when its own words do, told apart by
  where the query's words (or, for a match by meaning, the file's informative words) stand.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

from engine import keyword, ucs
from engine.bundle import Bundle
from engine.fusion import Evidence, TrustFusion
from engine.names import words_of

#: ``matched_by`` thresholds: the sound alone gives at least this probability of relevance (about five
#: times the share of relevant files among a query's candidates on the validation libraries: a sound
#: cosine of ~0.40 with the shipped default, where relevant files have a median of 0.33 and 99 % of the
#: irrelevant ones stay below 0.47), or the trusted name similarity (informativeness × cosine) / share of
#: query words found reach these.
SOUND_MATCH = 0.05
NAME_MATCH = 0.45
LEXICAL_MATCH = 0.5


@functools.cache
def _fusion_table() -> dict[str, Any]:
    return json.loads(resources.files("engine").joinpath("data", "fusion.json").read_text(encoding="utf-8"))


def fusion_for(bundle: Bundle) -> TrustFusion:
    """The fusion fitted for ``bundle`` (by ``name@version``), else the table's default."""
    table = _fusion_table()
    entry = table["bundles"].get(f"{bundle.name}@{bundle.version}") or table["default"]
    return _parse(json.dumps(entry, sort_keys=True))


@functools.cache
def _parse(entry: str) -> TrustFusion:
    return TrustFusion.from_dict(json.loads(entry))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _stems(words) -> set[str]:
    return {_stem(w) for w in words if w not in keyword.STOP_WORDS}


def _text_stems(*texts: str | None) -> set[str]:
    """Stems of the words of several texts (a file's name, folders, ...): each text's own, remembered (folders
    and library names recur from hit to hit)."""
    return set().union(*(_one_text_stems(t) for t in texts if t))


@functools.lru_cache(maxsize=8192)
def _one_text_stems(text: str) -> frozenset[str]:
    return frozenset(_stems(words_of(text)))


@functools.lru_cache(maxsize=64)
def _query_stems(terms: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_stems(w for t in terms for w in words_of(t)))


@functools.lru_cache(maxsize=4096)
def _category_stems(category: str | None, subcategory: str | None, cat_id: str | None) -> frozenset[str]:
    """Stems of a file's category words and, for a UCS CatID, its official synonyms (the same for every file
    of the category: computed once)."""
    row = ucs.lookup(cat_id)
    cat_text = " ".join(x for x in (category, subcategory, cat_id, *((row.category, row.subcategory) if row else ()))
                        if x)
    return frozenset(_stems(words_of(cat_text)) | ({_stem(s.lower()) for s in row.synonyms} if row else set()))


def explain(ev: Evidence, fusion: TrustFusion, rel_path: str, root: str, meta: dict,
            parsed: keyword.ParsedQuery | None) -> list[str]:
    """Which signals matched this hit (see the module docstring), in the order sound, name,
    description, category."""
    out = []
    if ev.content is not None and fusion.content.probability(Evidence(content=ev.content)) >= SOUND_MATCH:
        out.append("sound")
    words_match = ev.lexical >= LEXICAL_MATCH or (
        ev.name is not None and ev.informativeness * ev.name >= NAME_MATCH
    )
    if not words_match:
        return out
    query = _query_stems(tuple(t.text for t in (parsed.terms if parsed else [])))
    rel = PurePosixPath(rel_path)
    name_words = _text_stems(rel.stem, *rel.parts[:-1], PurePosixPath(root).name, meta.get("title"), meta.get("fx_name"))
    desc_words = _text_stems(meta.get("description"), *meta.get("keywords", []))
    cat_words = _category_stems(*(None if meta.get(k) is None else str(meta.get(k))
                                  for k in ("category", "subcategory", "cat_id")))
    found = [label for label, words in (("name", name_words), ("description", desc_words),
                                        ("category", cat_words)) if query & words]
    if not found:  # a match by meaning ("cattle" -> cow.wav): credit where the file's words are
        found = ["name"] if name_words - {""} else (["description"] if desc_words else ["category"])
    out.extend(found)
    return out


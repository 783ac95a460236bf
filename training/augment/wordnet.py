"""WordNet synonyms and hypernyms for caption augmentation, read from Debian's ``wordnet-base`` files.

Caption variants (:mod:`training.augment.text_ops`) replace a word by one of its alternatives. This module
adds, for the words of the training captions, the other words of their **most frequent sense** (the first
synset WordNet lists: ``creak`` → ``screak``, ``skreak``, ``squeak``) and the words of that sense's
**direct hypernym** (``hawk`` → ``bird of prey``, ``raptor``): a query may name a sound more generally or
differently than its caption did. Nouns are looked up before verbs; a plural is reduced by WordNet's
exception list (``geese`` → ``goose``) or by stripping ``s``/``es``.

The database is the WordNet 3.0 text format (``index.noun``, ``data.noun``, …; Princeton's WordNet 3.0
licence; Debian package ``wordnet-base``: ``apt-get install wordnet-base`` before training a recipe that
sets ``augment.wordnet``, which the shipped recipe does not). It is read directly — one line per lemma in the index, one seek per
synset — since NLTK's reader refuses paths outside its own data folders. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from engine.errors import EarshotError

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("/usr/share/wordnet")
POS = ("noun", "verb")
_WORD = re.compile(r"[a-z][a-z'-]+")
#: Function words and words too vague to take alternatives from WordNet.
STOP = frozenset(
    "a an the of and or in on at to for with by from into onto off up down out over under is are was be "
    "it its this that these those some any no not very one two three sound sounds noise effect effects "
    "sfx clip audio short long small large big high low loud soft".split()
)


class WordNet:
    """First sense and its hypernym for a word, from a WordNet 3.0 database folder."""

    def __init__(self, root: str | Path = DEFAULT_DIR) -> None:
        self.root = Path(root)
        self._first: dict[str, dict[str, int]] = {}
        self._exceptions: dict[str, str] = {}
        for pos in POS:
            index, data = self.root / f"index.{pos}", self.root / f"data.{pos}"
            if not index.is_file() or not data.is_file():
                raise EarshotError(
                    f"no WordNet database in {self.root} (index.{pos}/data.{pos} missing): "
                    "install the Debian package wordnet-base (apt-get install wordnet-base)"
                )
            first: dict[str, int] = {}
            with index.open(encoding="utf-8") as f:
                for line in f:
                    if line.startswith(" "):  # the licence header
                        continue
                    parts = line.split()
                    n_synsets = int(parts[2])
                    # lemma pos synset_cnt p_cnt [ptr_symbol × p_cnt] sense_cnt tagsense_cnt offsets…
                    first[parts[0]] = int(parts[-n_synsets])
            self._first[pos] = first
        exc = self.root / "noun.exc"
        if exc.is_file():
            for line in exc.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    self._exceptions[parts[0]] = parts[1]

    def _synset(self, pos: str, offset: int) -> tuple[list[str], list[int]]:
        """Words and hypernym offsets (same part of speech) of the synset at ``offset`` of ``data.<pos>``."""
        with (self.root / f"data.{pos}").open("rb") as f:
            f.seek(offset)
            parts = f.readline().decode("utf-8").split(" | ", 1)[0].split()
        n_words = int(parts[3], 16)
        words = [parts[4 + 2 * i].split("(")[0].replace("_", " ").lower() for i in range(n_words)]
        i = 4 + 2 * n_words
        n_ptrs = int(parts[i])
        hyper = [
            int(parts[i + 1 + 4 * j + 1])
            for j in range(n_ptrs)
            if parts[i + 1 + 4 * j] == "@" and parts[i + 1 + 4 * j + 2] == pos[0]
        ]
        return words, hyper

    def lemma(self, word: str) -> str | None:
        """The form of ``word`` WordNet indexes (plural → singular), or None when it has no noun or verb."""
        candidates = [word, self._exceptions.get(word, "")]
        if word.endswith("es"):
            candidates.append(word[:-2])
        if word.endswith("s"):
            candidates.append(word[:-1])
        for c in candidates:
            if c and any(c in self._first[pos] for pos in POS):
                return c
        return None

    def related(self, word: str, max_hypernym_words: int = 2) -> tuple[str, ...]:
        """Other words of ``word``'s first sense, then up to ``max_hypernym_words`` words of its first
        hypernym; empty when WordNet does not know the word."""
        base = self.lemma(word.lower())
        if base is None:
            return ()
        pos = next(p for p in POS if base in self._first[p])
        words, hyper = self._synset(pos, self._first[pos][base])
        out = [w for w in words if w != base and w != word]
        if hyper:
            out += self._synset(pos, hyper[0])[0][:max_hypernym_words]
        return tuple(dict.fromkeys(w for w in out if w != word))


def wordnet_synonyms(texts: Iterable[str], root: str | Path = DEFAULT_DIR) -> dict[str, tuple[str, ...]]:
    """``word → alternatives`` for every word of ``texts`` (lowercased; stop words and words WordNet does
    not know left out)."""
    wn = WordNet(root)
    vocab = sorted({w for t in texts for w in _WORD.findall(t.lower()) if w not in STOP and len(w) > 2})
    table = {}
    for w in vocab:
        alt = wn.related(w)
        if alt:
            table[w] = alt
    log.info("WordNet: alternatives for %d of %d caption words", len(table), len(vocab))
    return table


def with_wordnet(
    table: Mapping[str, Sequence[str]], texts: Iterable[str], root: str | Path = DEFAULT_DIR
) -> dict[str, tuple[str, ...]]:
    """``table`` with WordNet's alternatives for the words of ``texts`` added: a word already in the table
    keeps its alternatives first; new words come after the table's (the order caption variants draw in)."""
    out = {k: tuple(v) for k, v in table.items()}
    for word, alt in wordnet_synonyms(texts, root).items():
        out[word] = tuple(dict.fromkeys((*out.get(word, ()), *alt)))
    return out

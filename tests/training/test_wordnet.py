"""WordNet alternatives for caption variants (training/augment/wordnet.py) and the token lookup of
synonym replacement (same draws as scanning every key)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EarshotError
from training.augment.text_ops import caption_variants, synonym_replacement
from training.augment.wordnet import WordNet, with_wordnet, wordnet_synonyms

LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University  \n"


def _write_db(root: Path, synsets: dict[str, list[tuple[str, list[str], list[str]]]]) -> None:
    """A WordNet 3.0 database in its text format: ``synsets[pos]`` = [(id, words, hypernym ids)]; the
    index lists each word's synsets in the given order (the first is its most frequent sense)."""
    root.mkdir(parents=True, exist_ok=True)
    for pos, entries in synsets.items():
        offsets: dict[str, int] = {}
        lines: list[str] = []
        pos_at = len(LICENCE.encode())
        # offsets are 8-digit, so every line's length is known before the offsets are filled in
        for sid, words, hyper in entries:
            offsets[sid] = pos_at
            line = _data_line(0, pos, words, [0] * len(hyper))
            pos_at += len(line.encode())
        for sid, words, hyper in entries:
            lines.append(_data_line(offsets[sid], pos, words, [offsets[h] for h in hyper]))
        (root / f"data.{pos}").write_text(LICENCE + "".join(lines), encoding="utf-8")
        index: dict[str, list[int]] = {}
        for sid, words, _ in entries:
            for w in words:
                index.setdefault(w.lower(), []).append(offsets[sid])
        rows = [f"{w} {pos[0]} {len(o)} 1 @ {len(o)} 0 {' '.join(f'{x:08d}' for x in o)}  \n" for w, o in sorted(index.items())]
        (root / f"index.{pos}").write_text(LICENCE + "".join(rows), encoding="utf-8")
    (root / "noun.exc").write_text("geese goose\n", encoding="utf-8")


def _data_line(offset: int, pos: str, words: list[str], hyper: list[int]) -> str:
    ws = " ".join(f"{w} 0" for w in words)
    ptrs = " ".join(f"@ {h:08d} {pos[0]} 0000" for h in hyper)
    return f"{offset:08d} 05 {pos[0]} {len(words):02x} {ws} {len(hyper):03d} {ptrs} | a gloss  \n"


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    root = tmp_path / "wordnet"
    _write_db(root, {
        "noun": [
            ("bird", ["bird"], []),
            ("raptor", ["bird_of_prey", "raptor"], ["bird"]),
            ("hawk", ["hawk"], ["raptor"]),
            ("hawk2", ["hawk", "hawker"], []),  # a rarer sense: never used
            ("goose", ["goose"], ["bird"]),
            ("noise", ["noise"], []),
            ("creak_n", ["creak", "creaking"], ["noise"]),
        ],
        "verb": [
            ("creak_v", ["creak", "screak", "squeak"], []),
            ("neigh", ["whinny", "neigh", "nicker"], []),
        ],
    })
    return root


def test_first_sense_and_its_hypernym(db: Path) -> None:
    wn = WordNet(db)
    assert wn.related("hawk") == ("bird of prey", "raptor")  # first sense only: never "hawker"
    assert wn.related("hawks") == ("bird of prey", "raptor")  # plural stripped
    assert wn.related("geese") == ("bird",)  # the exception list
    assert wn.related("creak") == ("creaking", "noise")  # nouns before verbs
    assert wn.related("whinny") == ("neigh", "nicker")  # a verb when there is no noun
    assert wn.related("violin") == ()


def test_synonym_table_for_caption_words(db: Path) -> None:
    table = wordnet_synonyms(["A hawk screeching", "the creak of a door", "sound of a hawk"], db)
    assert table == {"hawk": ("bird of prey", "raptor"), "creak": ("creaking", "noise")}
    merged = with_wordnet({"creak": ("groan",), "door": ("doorway",)}, ["hawk creak"], db)
    assert merged == {"creak": ("groan", "creaking", "noise"), "door": ("doorway",), "hawk": ("bird of prey", "raptor")}
    rng = np.random.default_rng(0)
    variants = caption_variants("hawk", 4, rng, merged, word_delete_p=0.15)
    assert set(variants) == {"bird of prey", "raptor"}


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EarshotError, match="wordnet-base"):
        WordNet(tmp_path)


def _scan_every_key(caption: str, rng: np.random.Generator, synonyms: dict) -> str:
    """Synonym replacement as it was written first: every key searched for in turn."""
    lowered = caption.lower()
    spans = []
    for key in synonyms:
        for m in re.finditer(rf"(?<![\w'-]){re.escape(key)}(?![\w'-])", lowered):
            spans.append((m.start(), m.end(), key))
    if not spans:
        return caption
    start, end, key = spans[int(rng.integers(len(spans)))]
    alternatives = list(synonyms[key])
    return caption[:start] + alternatives[int(rng.integers(len(alternatives)))] + caption[end:]


def test_token_lookup_draws_what_scanning_every_key_drew() -> None:
    synonyms = {
        "door": ("doorway",), "high-pitched": ("shrill",), "car": ("vehicle",), "far away": ("distant",),
        "gun firing": ("shots",), "creak": ("squeak", "groan"), "Door": ("never matches: upper case",),
        "o'clock": ("hour",),
    }
    captions = [
        "Door creak, the door creaks then the DOOR slams", "a high-pitched car horn far away",
        "car car car", "doors and cars", "gun firing far away at six o'clock", "", "screen-door creak",
        "sidecar door", "far  away",
    ]
    for seed in range(40):
        for c in captions:
            assert synonym_replacement(c, np.random.default_rng(seed), synonyms) == _scan_every_key(
                c, np.random.default_rng(seed), synonyms
            ), (seed, c)


def test_training_draws_caption_variants_from_wordnet(tmp_path: Path, db: Path) -> None:
    """``augment.wordnet`` puts WordNet's alternatives into the training pairs' caption variants; without a
    database training stops with a clear error."""
    from tests.training import synthetic as syn
    from training.config import load_recipe
    from training.loop import Trainer

    corpus = syn.make_corpus(tmp_path / "corpus")
    _write_db(db.parent / "wn2", {"noun": [("timepiece", ["timepiece"], []), ("clock", ["clock"], ["timepiece"])], "verb": []})
    runs = tmp_path / "runs"
    rec = syn.write_recipes(tmp_path / "recipes", syn.tiny_recipe_text(corpus, runs, tmp_path / "cache", trainable=False))
    overrides = ["train.augment=true", "augment.mixes=0", "augment.backtranslations=0", "train.epochs=1",
                 "train.cpu_threads=1", f"train.out={runs}/wn"]  # fmt: skip

    def variants(*extra: str) -> set[str]:
        trainer = Trainer(load_recipe(rec["stage1"], [*overrides, *extra]))
        texts = trainer.pairs.all_texts
        return {texts[v] for vs in trainer.pairs.variants for v in vs}

    plain = variants()
    with_wn = variants("augment.wordnet=true", f"augment.wordnet_dir={db.parent / 'wn2'}")
    assert not any("timepiece" in v for v in plain)
    assert any("timepiece" in v for v in with_wn)
    with pytest.raises(EarshotError, match="wordnet-base"):
        variants("augment.wordnet=true", f"augment.wordnet_dir={tmp_path / 'nowhere'}")

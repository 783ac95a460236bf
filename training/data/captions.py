"""Captions for the Debian sound-effects corpus: name-cleaning rules and the captions table.

Clip names are weak labels (``SmlExpl.ogg``, ``pain25_1.wav``, ``quaddamage.wav``). Two layers turn
them into captions written the way sound designers describe sounds:

* **rules** (pure functions here): split a file name into words (camelCase, ``_``, ``-``, digits), drop
  numbers, variant suffixes and file-system noise, expand abbreviations (:data:`ABBREVIATIONS`), map
  jargon to what the sound is (``[terms]`` in ``jargon.toml``) and add synonym variants
  (``[synonyms]``);
* **a hand-written map** (``jargon.toml``, ``[packages."PKG"]``): ordered shell-style patterns over the
  member path, each with 2–4 captions, or ``"drop: reason"`` for clips whose sound cannot be inferred
  (speech, music, abstract names).

:func:`build_caption_rows` combines both with the corpus manifest into the committed table
``debian_sfx_captions.csv`` (:data:`CAPTION_COLUMNS`, one caption per row, several rows per clip).
Run ``python -m training.data.captions --manifest OUT/manifest.csv`` to rewrite it.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.errors import EarshotError
from training.data.debian.corpus import read_manifest
from training.data.debian.corpus import split_of as default_split_of
from training.data.debian.duplicates import leaking_duplicates, read_duplicates

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_JARGON = DATA_DIR / "jargon.toml"
DEFAULT_CAPTIONS = DATA_DIR / "debian_sfx_captions.csv"

CAPTION_COLUMNS = ("path", "caption", "concept", "package", "licence", "split", "duration_s")

#: Abbreviations seen in game sound names, expanded word by word (after splitting and lower-casing).
ABBREVIATIONS: dict[str, str] = {
    "amb": "ambience",
    "ambi": "ambience",
    "atk": "attack",
    "bg": "background",
    "bldg": "building",
    "btn": "button",
    "butn": "button",
    "dmg": "damage",
    "elec": "electric",
    "expl": "explosion",
    "explo": "explosion",
    "exp": "explosion",
    "fx": "effect",
    "sfx": "sound effect",
    "gren": "grenade",
    "hvy": "heavy",
    "lg": "large",
    "lrg": "large",
    "med": "medium",
    "mg": "machine gun",
    "mgun": "machine gun",
    "msg": "message",
    "pkup": "pickup",
    "rnd": "round",
    "sml": "small",
    "sm": "small",
    "snd": "sound",
    "strt": "start",
    "sw": "switch",
    "wpn": "weapon",
    "watr": "water",
}

#: Words that carry no information about the sound (folders, formats, channel layouts, game prefixes).
NOISE_WORDS: frozenset[str] = frozenset(
    {
        "aiff",
        "default",
        "flac",
        "mono",
        "oga",
        "ogg",
        "sample",
        "snd",
        "sound",
        "sounds",
        "stereo",
        "wav",
        "new",
        "old",
        "final",
        "alt",
        "var",
        "version",
        "take",
        "the",
    }
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^A-Za-z0-9']+")
_NUMBER = re.compile(r"^\d+[a-z]?$|^\d+x$|^v\d+$|^x\d+$")
_DIGITS_EDGE = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


class CaptionError(EarshotError):
    """The jargon map or the captions table is malformed."""


# ------------------------------------------------------------------------------------------------- rules


def split_words(name: str) -> list[str]:
    """Split a file or folder name into lower-case words.

    Splits on camelCase boundaries, digits, and any non-alphanumeric character (``_``, ``-``, ``.``,
    spaces, ``~``). ``"SmlExpl_02.ogg"`` → ``["sml", "expl", "02", "ogg"]``.
    """
    words: list[str] = []
    for chunk in _SPLIT.split(name):
        if not chunk:
            continue
        for part in _CAMEL.split(chunk):
            words.extend(w.lower() for w in _DIGITS_EDGE.split(part) if w)
    return words


def drop_noise(words: Sequence[str]) -> list[str]:
    """Remove numbers, variant markers (single trailing letters such as ``a``/``b``, ``v2``, ``x10``)
    and :data:`NOISE_WORDS`. Keeps word order."""
    kept = [w for w in words if not _NUMBER.match(w) and w not in NOISE_WORDS]
    # A lone trailing letter after a real word is a variant marker ("machgf1b" → "machgf", "b").
    while len(kept) > 1 and len(kept[-1]) == 1:
        kept.pop()
    return kept


def expand_abbreviations(words: Sequence[str], table: Mapping[str, str] = ABBREVIATIONS) -> list[str]:
    """Replace abbreviated words by their expansion (``"expl"`` → ``"explosion"``)."""
    out: list[str] = []
    for w in words:
        out.extend(table.get(w, w).split())
    return out


def collapse_repeats(words: Sequence[str]) -> list[str]:
    """Drop a word that repeats the previous one (``"explosion explosion"`` → ``"explosion"``)."""
    out: list[str] = []
    for w in words:
        if not out or out[-1] != w:
            out.append(w)
    return out


def apply_terms(text: str, terms: Mapping[str, str]) -> str:
    """Replace jargon phrases by descriptions, longest phrase first, on whole words only.

    ``terms`` maps a lower-case phrase (``"quaddamage"``, ``"x hit"``) to what the sound is. A phrase is
    replaced at most once per occurrence and replacements are not themselves rewritten.
    """
    if not terms or not text:
        return text
    keys = sorted(terms, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b")
    return normalise_caption(pattern.sub(lambda m: terms[m.group(1)], text))


def normalise_caption(text: str) -> str:
    """Lower-case, single spaces, no leading/trailing punctuation or spaces."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.strip(" ,;:.-_")


def clean_name(name: str, terms: Mapping[str, str] | None = None) -> str:
    """Caption-ready text from one file stem or folder name: split, de-noise, expand, de-jargon.

    ``clean_name("SmlExpl2")`` → ``"small explosion"``; returns ``""`` when nothing informative is left.
    """
    words = collapse_repeats(expand_abbreviations(drop_noise(split_words(name))))
    return apply_terms(" ".join(words), terms or {})


def dedupe_captions(captions: Iterable[str]) -> list[str]:
    """Normalise captions and drop empty ones and duplicates (ignoring case, spacing, punctuation),
    keeping the first occurrence's order."""
    seen: set[str] = set()
    out: list[str] = []
    for c in captions:
        norm = normalise_caption(c)
        key = re.sub(r"[^a-z0-9]+", " ", norm).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(norm)
    return out


def synonym_variants(caption: str, synonyms: Mapping[str, Sequence[str]], limit: int = 2) -> list[str]:
    """Up to ``limit`` variants of ``caption`` with one key phrase swapped for a synonym.

    The longest key phrase found (whole words) is replaced by each of its synonyms in turn.
    """
    if not synonyms or limit <= 0:
        return []
    for key in sorted(synonyms, key=len, reverse=True):
        if re.search(rf"\b{re.escape(key)}\b", caption):
            out = [re.sub(rf"\b{re.escape(key)}\b", alt, caption, count=1) for alt in synonyms[key]]
            return dedupe_captions(out)[:limit]
    return []


# ------------------------------------------------------------------------------------------- jargon map


@dataclass(frozen=True)
class ClipRule:
    """One hand-written rule: a pattern over the member path and its captions, or a drop reason."""

    pattern: str
    captions: tuple[str, ...] = ()
    drop: str = ""

    def matches(self, member_path: str) -> bool:
        """Shell-style match, case-insensitive, against the whole path or any trailing part of it."""
        path = member_path.lower()
        pat = self.pattern.lower()
        return fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, "*/" + pat)


@dataclass
class Jargon:
    """The parsed ``jargon.toml``: global ``terms`` and ``synonyms``, per-package ordered ``rules``."""

    terms: dict[str, str] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, list[ClipRule]] = field(default_factory=dict)


def parse_jargon(data: Mapping) -> Jargon:
    """Build a :class:`Jargon` from the TOML structure; raises :class:`CaptionError` when malformed."""
    terms = {normalise_caption(k): normalise_caption(v) for k, v in dict(data.get("terms", {})).items()}
    synonyms: dict[str, list[str]] = {}
    for k, v in dict(data.get("synonyms", {})).items():
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise CaptionError(f"jargon: synonyms for {k!r} must be a list of strings.")
        synonyms[normalise_caption(k)] = [normalise_caption(x) for x in v]
    rules: dict[str, list[ClipRule]] = {}
    for package, table in dict(data.get("packages", {})).items():
        clips = table.get("clips", {}) if isinstance(table, Mapping) else {}
        parsed: list[ClipRule] = []
        for pattern, value in clips.items():
            if isinstance(value, str):
                if not value.startswith("drop:"):
                    raise CaptionError(
                        f"jargon: {package} {pattern!r}: a string value must be 'drop: reason'."
                    )
                parsed.append(ClipRule(pattern, drop=value[5:].strip() or "unknown"))
            elif isinstance(value, list) and value and all(isinstance(x, str) for x in value):
                parsed.append(ClipRule(pattern, captions=tuple(value)))
            else:
                raise CaptionError(f"jargon: {package} {pattern!r}: expected captions or 'drop: reason'.")
        rules[package] = parsed
    return Jargon(terms, synonyms, rules)


def load_jargon(path: Path = DEFAULT_JARGON) -> Jargon:
    """Read and parse ``jargon.toml``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise CaptionError(f"Cannot read the jargon map {path}: {exc.strerror or exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CaptionError(f"The jargon map {path} is not valid TOML: {exc}.") from exc
    return parse_jargon(data)


@dataclass(frozen=True)
class ClipCaptions:
    """Captions for one clip (``captions`` empty and ``dropped`` set when it is left out)."""

    captions: tuple[str, ...]
    concept: str = ""
    dropped: str = ""
    source: str = ""  # "map" (hand-written pattern) or "rules"


def caption_clip(package: str, member_path: str, jargon: Jargon, max_captions: int = 4) -> ClipCaptions:
    """Captions for one clip: the first matching hand-written rule of ``package``, else the name rules.

    The concept is the first (primary) caption; synonym variants fill up to ``max_captions``. A clip
    whose name cleans to nothing is dropped (``"uninformative name"``).
    """
    for rule in jargon.rules.get(package, ()):
        if rule.matches(member_path):
            if rule.drop:
                return ClipCaptions((), dropped=rule.drop, source="map")
            caps = dedupe_captions(rule.captions)
            extra = synonym_variants(caps[0], jargon.synonyms, max_captions - len(caps))
            caps = dedupe_captions([*caps, *extra])[:max_captions]
            return ClipCaptions(tuple(caps), concept=caps[0], source="map")
    stem = PurePosixPath(member_path).name.rsplit(".", 1)[0]
    base = clean_name(stem, jargon.terms)
    if not base:
        return ClipCaptions((), dropped="uninformative name", source="rules")
    caps = dedupe_captions([base, *synonym_variants(base, jargon.synonyms, max_captions - 1)])
    return ClipCaptions(tuple(caps[:max_captions]), concept=caps[0], source="rules")


# ------------------------------------------------------------------------------------------------ table


USABLE_STATUSES = frozenset({"ok", "duration_mismatch"})


def build_caption_rows(
    manifest: Iterable[Mapping[str, str]],
    jargon: Jargon,
    split_of: Mapping[str, str] | None = None,
    exclude_paths: Iterable[str] = (),
) -> tuple[list[dict[str, str]], Counter[str]]:
    """Rows of the captions table from manifest rows (see :data:`training.data.debian.corpus.MANIFEST_COLUMNS`).

    Only usable clips (``ok``/``duration_mismatch``) are captioned; ``split_of`` maps a package to
    ``train``/``val``/``test`` (default: :func:`training.data.debian.corpus.split_of`); ``exclude_paths``
    removes clips (e.g. duplicates of held-out audio). Returns the rows, sorted by path then caption
    order, and a counter of why clips were left out.
    """
    excluded = set(exclude_paths)
    left_out: Counter[str] = Counter()
    rows: list[dict[str, str]] = []
    for m in sorted(manifest, key=lambda r: r["path"]):
        if m["status"] not in USABLE_STATUSES:
            left_out[m["status"]] += 1
            continue
        if m["path"] in excluded:
            left_out["duplicate of held-out audio"] += 1
            continue
        result = caption_clip(m["package"], m["member_path"], jargon)
        if not result.captions:
            left_out[f"dropped: {result.dropped}"] += 1
            continue
        split = split_of[m["package"]] if split_of is not None else default_split_of(m["package"])
        duration = m.get("measured_duration_s") or m["duration_s"]
        for caption in result.captions:
            rows.append(
                {
                    "path": m["path"],
                    "caption": caption,
                    "concept": result.concept,
                    "package": m["package"],
                    "licence": m.get("licence", ""),
                    "split": split,
                    "duration_s": f"{float(duration):.3f}",
                }
            )
    return rows, left_out


def write_captions(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write the captions table (:data:`CAPTION_COLUMNS`) atomically."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CAPTION_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_captions(path: Path = DEFAULT_CAPTIONS) -> list[dict[str, str]]:
    """Read the captions table; raises :class:`CaptionError` when it is missing or lacks a column."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(CAPTION_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise CaptionError(f"The captions table {path} lacks {', '.join(sorted(missing))}.")
            return list(reader)
    except OSError as exc:
        raise CaptionError(f"Cannot read the captions table {path}: {exc.strerror or exc}.") from exc


# --------------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the captions table from a corpus manifest; returns 0 on success, 2 on bad input."""
    p = argparse.ArgumentParser(prog="python -m training.data.captions", description=__doc__.split("\n")[0])
    p.add_argument("--manifest", type=Path, required=True, help="OUT/manifest.csv of the corpus builder")
    p.add_argument("--jargon", type=Path, default=DEFAULT_JARGON)
    p.add_argument("--out", type=Path, default=DEFAULT_CAPTIONS)
    p.add_argument(
        "--duplicates",
        type=Path,
        default=None,
        help="duplicates.csv of the corpus builder (default: next to the manifest); a sound found in two "
        "splits is kept only in the held-out one",
    )
    p.add_argument("--exclude", type=Path, default=None, help="text file: corpus paths to leave out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        jargon = load_jargon(args.jargon)
        manifest = read_manifest(args.manifest)
    except (CaptionError, OSError) as exc:
        log.error("%s", exc)
        return 2
    exclude: set[str] = set()
    if args.exclude:
        exclude |= {ln.strip() for ln in args.exclude.read_text(encoding="utf-8").splitlines() if ln.strip()}
    duplicates = args.duplicates or args.manifest.parent / "duplicates.csv"
    if duplicates.is_file():
        leaks = leaking_duplicates(read_duplicates(duplicates), lambda path: default_split_of(path.split("/", 1)[0]))
        log.info("%d clips duplicate audio of a held-out split and are left out", len(leaks))
        exclude |= leaks
    else:
        log.warning("no duplicates file at %s: cross-split duplicates are not removed", duplicates)
    rows, left_out = build_caption_rows(manifest, jargon, exclude_paths=exclude)
    write_captions(args.out, rows)
    clips = {r["path"] for r in rows}
    log.info(
        "%d captions for %d clips written to %s; left out: %s",
        len(rows),
        len(clips),
        args.out,
        dict(left_out),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

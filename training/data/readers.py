"""Readers for captioned audio corpora → :class:`Clip` lists, behind one registry (:data:`READERS`).

Formats (``SourceConfig.format``):

* ``clotho`` — Clotho v2.1 captions CSV (``file_name, caption_1 … caption_5``), audio in ``audio_root``;
  ``options.keep_duplicates``: keep a clip's repeated captions (evaluation: each is a query, as DCASE counts);
* ``audiocaps`` — AudioCaps CSV (``audiocap_id, youtube_id, start_time, caption``); the audio file name
  comes from ``options.filename`` (a ``str.format`` pattern over the row, default
  ``"{youtube_id}_{start_time}.wav"``); rows of one file are grouped;
* ``wavcaps`` — WavCaps JSON (``{"data": [{"id", "caption", "audio", "duration", ...}]}``). The file is
  built from ``id`` through ``options.filename`` (default ``"{stem}.flac"``; ``stem`` is ``id`` without a
  trailing ``.wav``, which every AudioSet_SL id carries). The ``audio`` field of the released JSON is the
  placeholder ``"wav_path"`` and is ignored. ``options.exclude_ids``: a CSV of ids to leave out (first
  column, or ``sound_id``), or the name ``"dcase2025_task6"`` — the DCASE 2025 Task 6 baseline's list of
  Freesound ids of Clotho evaluation audio inside WavCaps (:data:`EXCLUSION_LISTS`), which the FreeSound
  subset must drop or evaluation audio leaks into training. ``options.exclude_youtube_ids_from``: AudioCaps
  CSVs whose ``youtube_id`` s are left out of AudioSet_SL (ids ``Y<youtube_id>.wav``; the baseline's
  ``audioset_no_audiocaps`` subset);
* ``captions`` — a generic table, CSV or JSONL, with ``path`` and ``caption`` (optional ``split``;
  ``options.packages`` keeps the rows of these ``package`` values);
* ``debian_sfx`` — the Debian sound-effects captions table (``path, caption, concept, package, licence,
  split, duration_s``; see :mod:`training.data.captions`).

Any reader whose rows name a ``concept`` takes ``options.concept_captions``: a table (CSV or TSV) of
``concept, query`` rows, or a list of such tables read in order, whose queries join the captions of every
clip of that concept (matched by :func:`concept_key`). It carries wordings written apart from the captions
(how users search) to every recording of a concept; a recipe sets it on training sources only.

Every reader returns clips in a stable order (sorted by path) with de-duplicated captions (unless
``options.keep_duplicates``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EarshotError
from training.config import EvalSetConfig, QueriesConfig, SourceConfig

log = logging.getLogger(__name__)


class DataError(EarshotError):
    """A captions file is missing, unreadable or lacks a required column."""


@dataclass(frozen=True)
class Clip:
    """One audio clip and its captions.

    ``key``: a stable identifier (the absolute path, or ``mix:…`` for a mixture); ``path``: the audio
    file; ``mix``: for a mixture, ``(path_a, path_b, gain_db)`` — ``b`` is added at ``gain_db`` dB.
    """

    key: str
    path: Path
    captions: tuple[str, ...]
    split: str = ""
    source: str = ""
    licence: str = ""
    concept: str = ""
    duration_s: float | None = None
    mix: tuple[str, str, float] | None = field(default=None)
    #: Share of this clip's (audio, caption) pairs that an epoch of training draws (a source's
    #: ``options.sample_weight``, in (0, 1]; 1 draws every pair once).
    sample_weight: float = 1.0


def _root(src: SourceConfig) -> Path:
    return Path(src.audio_root) if src.audio_root else Path(src.path).parent


def _open_csv(path: Path, required: Iterable[str], delimiter: str = ",") -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            missing = set(required) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
            return list(reader)
    except FileNotFoundError:
        raise DataError(f"captions file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _dedupe(captions: Iterable[str], keep_duplicates: bool = False) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for c in captions:
        c = " ".join(str(c).split())
        if c and (keep_duplicates or c.lower() not in seen):
            seen.add(c.lower())
            out.append(c)
    return tuple(out)


def _group(
    rows: Iterable[tuple[Path, str, Mapping[str, str]]], src: SourceConfig, source_name: str
) -> list[Clip]:
    """Group (path, caption, row) triples into clips, sorted by path; applies ``max_clips``."""
    caps: dict[Path, list[str]] = {}
    first: dict[Path, Mapping[str, str]] = {}
    for path, caption, row in rows:
        caps.setdefault(path, []).append(caption)
        first.setdefault(path, row)
    weight = float(src.options.get("sample_weight", 1.0))
    if not 0.0 < weight <= 1.0:
        raise DataError(f"{src.path}: options.sample_weight must be in (0, 1], got {weight}")
    clips = []
    for path in sorted(caps):
        row = first[path]
        duration = row.get("duration_s") or row.get("duration")
        clips.append(
            Clip(
                key=str(path),
                path=path,
                captions=_dedupe(caps[path], bool(src.options.get("keep_duplicates", False))),
                split=row.get("split", src.split) or src.split,
                source=source_name,
                licence=row.get("licence", "") or row.get("license", ""),
                concept=row.get("concept", ""),
                duration_s=float(duration) if duration not in (None, "") else None,
                sample_weight=weight,
            )
        )
    clips = [c for c in clips if c.captions]
    tables = src.options.get("concept_captions")
    for table in [tables] if isinstance(tables, str) else (tables or []):
        clips = _add_concept_captions(clips, Path(str(table)), src)
    return clips[: src.max_clips] if src.max_clips > 0 else clips


#: The coverage corpus's pitch qualifier (``"cello sustained note, low pitch"``): one concept at every pitch.
_PITCH_SUFFIX = re.compile(r",\s*(low|middle|high) pitch$")


def concept_key(concept: str) -> str:
    """The key a concept is joined on: lower case, single spaces, without a trailing pitch qualifier."""
    return _PITCH_SUFFIX.sub("", " ".join(concept.lower().split()))


def read_concept_captions(path: Path) -> dict[str, list[str]]:
    """``concept → queries`` from a ``concept, query`` table (CSV, or TSV when the name ends in .tsv)."""
    out: dict[str, list[str]] = {}
    for row in _open_csv(path, ["concept", "query"], "\t" if path.suffix.lower() == ".tsv" else ","):
        key, query = concept_key(row["concept"] or ""), " ".join((row["query"] or "").split())
        if key and query:
            out.setdefault(key, []).append(query)
    return out


def _add_concept_captions(clips: list[Clip], path: Path, src: SourceConfig) -> list[Clip]:
    if clips and not any(c.concept for c in clips):
        raise DataError(f"{src.path}: options.concept_captions needs a 'concept' column")
    table = read_concept_captions(path)
    out, joined = [], 0
    for clip in clips:
        extra = table.get(concept_key(clip.concept), []) if clip.concept else []
        if extra:
            joined += 1
            clip = dataclasses.replace(clip, captions=_dedupe(clip.captions + tuple(extra)))
        out.append(clip)
    log.info("%s: %d of %d clips took queries from %s", src.path, joined, len(clips), path)
    return out


def read_clotho(src: SourceConfig) -> list[Clip]:
    path = Path(src.path)
    rows = _open_csv(path, ["file_name", "caption_1"])
    root = _root(src)
    triples = []
    for row in rows:
        audio = (root / row["file_name"]).resolve()
        for i in range(1, 6):
            if row.get(f"caption_{i}"):
                triples.append((audio, row[f"caption_{i}"], {"split": src.split}))
    return _group(triples, src, "clotho")


def read_audiocaps(src: SourceConfig) -> list[Clip]:
    path = Path(src.path)
    rows = _open_csv(path, ["youtube_id", "caption"])
    pattern = str(src.options.get("filename", "{youtube_id}_{start_time}.wav"))
    root = _root(src)
    triples = []
    for row in rows:
        try:
            name = pattern.format(**row)
        except KeyError as exc:
            raise DataError(f"{path}: options.filename uses the unknown column {exc.args[0]!r}") from None
        triples.append(((root / name).resolve(), row["caption"], {"split": src.split}))
    return _group(triples, src, "audiocaps")


#: Named id exclusion lists shipped with the training package (``options.exclude_ids`` of ``wavcaps``).
#: ``dcase2025_task6``: the Freesound ids of Clotho v2.1 evaluation audio found in WavCaps, from the
#: DCASE 2025 Task 6 baseline (CPJKU/dcase2025_task6_baseline, resources/, commit 0c1deb1 of 2025-04-01).
EXCLUSION_LISTS: dict[str, Path] = {
    "dcase2025_task6": Path(__file__).with_name("dcase2025_task6_excluded_freesound_ids.csv"),
}

#: The placeholder every released WavCaps JSON entry holds in its ``audio`` field.
WAVCAPS_AUDIO_PLACEHOLDER = "wav_path"


def read_id_list(name_or_path: str) -> set[str]:
    """Ids of an exclusion list: a name of :data:`EXCLUSION_LISTS` or a CSV path (column ``sound_id``
    or ``id`` if present, else the first column; a header row is skipped)."""
    path = EXCLUSION_LISTS.get(name_or_path, Path(name_or_path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and r[0].strip()]
    except FileNotFoundError:
        raise DataError(
            f"exclusion list not found: {name_or_path} (known names: {sorted(EXCLUSION_LISTS)})"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read the exclusion list {path}: {exc.strerror or exc}") from exc
    if not rows:
        return set()
    header = [c.strip().lower() for c in rows[0]]
    col = next((header.index(n) for n in ("sound_id", "id") if n in header), None)
    if col is not None:
        rows = rows[1:]
    return {r[col or 0].strip() for r in rows if len(r) > (col or 0)}


def _wavcaps_stem(item_id: str) -> str:
    return item_id[: -len(".wav")] if item_id.lower().endswith(".wav") else item_id


def read_wavcaps(src: SourceConfig) -> list[Clip]:
    path = Path(src.path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"captions file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the WavCaps file {path}: {exc}") from exc
    items = doc.get("data", doc) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of entries under 'data'")
    pattern = str(src.options.get("filename", "{stem}.flac"))
    excluded: set[str] = set()
    if src.options.get("exclude_ids"):
        excluded |= {_wavcaps_stem(i) for i in read_id_list(str(src.options["exclude_ids"]))}
    youtube = src.options.get("exclude_youtube_ids_from") or []
    for table in [youtube] if isinstance(youtube, str) else youtube:
        excluded |= {"Y" + r["youtube_id"].strip() for r in _open_csv(Path(table), ["youtube_id"])}
    root = _root(src)
    triples = []
    dropped = 0
    for n, item in enumerate(items):
        if not isinstance(item, dict) or "caption" not in item or "id" not in item:
            raise DataError(f"{path}: entry {n} needs an 'id' and a 'caption'")
        item_id = str(item["id"]).strip()
        stem = _wavcaps_stem(item_id)
        if stem in excluded:
            dropped += 1
            continue
        try:
            name = pattern.format(**{**item, "id": item_id, "stem": stem})
        except KeyError as exc:
            raise DataError(f"{path}: options.filename uses the unknown field {exc.args[0]!r}") from None
        row = {
            "duration_s": str(item.get("duration", "")),
            "split": src.split,
            "licence": str(item.get("license", "")),
        }
        triples.append(((root / name).resolve(), str(item["caption"]), row))
    if excluded:
        log.info("%s: %d entries left out by the exclusion lists", path, dropped)
    return _group(triples, src, "wavcaps")


def _read_table(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() == ".jsonl":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DataError(f"captions file not found: {path}") from None
        rows = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{n}: not a JSON object: {exc}") from exc
                rows.append({k: "" if v is None else str(v) for k, v in obj.items()})
        for n, row in enumerate(rows, 1):
            if "path" not in row or "caption" not in row:
                raise DataError(f"{path}: entry {n} lacks 'path' or 'caption'")
        return rows
    return _open_csv(path, ["path", "caption"])


def read_captions_table(src: SourceConfig) -> list[Clip]:
    """``path, caption[, split, package, licence, …]`` rows. ``options.packages``: keep only rows whose
    ``package`` column is one of these (a recipe trains on part of a committed table)."""
    path = Path(src.path)
    root = _root(src)
    rows = _read_table(path)
    packages = src.options.get("packages")
    if packages is not None and rows and "package" not in rows[0]:
        raise DataError(f"{path}: options.packages needs a 'package' column")
    triples = [
        ((root / r["path"]).resolve(), r["caption"], r)
        for r in rows
        if (not src.split or r.get("split", src.split) == src.split)
        and (packages is None or r.get("package") in packages)
    ]
    return _group(triples, src, path.stem)


def read_debian_sfx(src: SourceConfig) -> list[Clip]:
    from training.data.captions import CAPTION_COLUMNS

    path = Path(src.path)
    rows = _open_csv(path, CAPTION_COLUMNS)
    root = Path(src.audio_root) if src.audio_root else Path("data/debian_sfx/corpus")
    triples = [
        ((root / r["path"]).resolve(), r["caption"], r)
        for r in rows
        if not src.split or r["split"] == src.split
    ]
    return _group(triples, src, "debian_sfx")


#: Reader name → ``f(SourceConfig) -> list[Clip]``.
READERS: dict[str, Callable[[SourceConfig], list[Clip]]] = {
    "clotho": read_clotho,
    "audiocaps": read_audiocaps,
    "wavcaps": read_wavcaps,
    "captions": read_captions_table,
    "debian_sfx": read_debian_sfx,
}


def read_source(src: SourceConfig) -> list[Clip]:
    try:
        reader = READERS[src.format]
    except KeyError:
        raise DataError(f"unknown data format {src.format!r}; known: {sorted(READERS)}") from None
    clips = reader(src)
    log.info(
        "%s %s: %d clips, %d captions", src.format, src.path, len(clips), sum(len(c.captions) for c in clips)
    )
    return clips


def read_sources(sources: Iterable[SourceConfig]) -> list[Clip]:
    """Clips of every source; a clip listed by two sources keeps the first one's metadata, all captions."""
    merged: dict[str, Clip] = {}
    for src in sources:
        for clip in read_source(src):
            if clip.key in merged:
                old = merged[clip.key]
                merged[clip.key] = dataclasses.replace(old, captions=_dedupe(old.captions + clip.captions))
            else:
                merged[clip.key] = clip
    return list(merged.values())


def check_audio_exists(clips: list[Clip], what: str) -> list[Clip]:
    """Drop clips whose audio file is missing (logged); raise when none is left."""
    present = [c for c in clips if c.mix is not None or c.path.is_file()]
    missing = len(clips) - len(present)
    if missing:
        example = next(c.path for c in clips if c.mix is None and not c.path.is_file())
        log.warning(
            "%s: %d of %d audio files are missing (e.g. %s); they are left out",
            what,
            missing,
            len(clips),
            example,
        )
    if clips and not present:
        raise DataError(
            f"{what}: none of the {len(clips)} audio files exists (e.g. {clips[0].path}); check audio_root"
        )
    return present


# ------------------------------------------------------------------------------------------ evaluation


@dataclass
class EvalSet:
    """Candidate clips, queries and, per query, the indices of its relevant clips.

    ``single``: when the queries come from a multi-relevance file, the caption queries of the same clips
    (``(queries, relevant)``, see ``EvalSetConfig.caption_queries``) for the single-relevance metrics.
    """

    clips: list[Clip]
    queries: list[str]
    relevant: list[set[int]]
    single: tuple[list[str], list[set[int]]] | None = None


def _literal_list(text: str, where: str) -> list[str]:
    import ast

    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"{where}: audio_filenames is not a Python list literal: {text[:80]!r}") from exc
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: audio_filenames must be a list of file names, not {text[:80]!r}")
    return list(value)


def read_queries(cfg: QueriesConfig) -> dict[str, set[Path]]:
    """Query text → set of relevant audio paths (absolute).

    ``cfg.format``: ``"pairs"`` (``query, path``, a row per relevant file) or ``"dcase2025"`` (the official
    ``metadata_eval.csv``: ``query, audio_filenames`` with a Python list of file names per query). Query
    texts keep their case and punctuation (the model's normalisation is applied when they are embedded);
    rows of one query are merged.
    """
    root = Path(cfg.audio_root) if cfg.audio_root else Path(cfg.path).parent
    out: dict[str, set[Path]] = {}
    if cfg.format == "pairs":
        for r in _open_csv(Path(cfg.path), ["query", "path"]):
            q = " ".join(r["query"].split())
            if q:
                out.setdefault(q, set()).add((root / r["path"]).resolve())
    elif cfg.format == "dcase2025":
        for n, r in enumerate(_open_csv(Path(cfg.path), ["query", "audio_filenames"]), 2):
            q = " ".join(r["query"].split())
            names = _literal_list(r["audio_filenames"], f"{cfg.path}:{n}")
            if q and names:
                out.setdefault(q, set()).update((root / name).resolve() for name in names)
    else:
        raise DataError(f"queries.format must be 'pairs' or 'dcase2025', not {cfg.format!r}")
    return out


def caption_queries(clips: list[Clip], mode: str) -> tuple[list[str], list[set[int]]]:
    """Queries made from the clips' captions: ``"grouped"`` (one per distinct caption, case-insensitive,
    relevant to every clip carrying it) or ``"per_caption"`` (one per caption of each clip, that clip
    relevant — the DCASE protocol)."""
    if mode == "per_caption":
        pairs = [(cap, i) for i, c in enumerate(clips) for cap in c.captions]
        return [p[0] for p in pairs], [{p[1]} for p in pairs]
    if mode != "grouped":
        raise DataError(f"caption_queries must be 'grouped' or 'per_caption', not {mode!r}")
    groups: dict[str, set[int]] = {}
    text: dict[str, str] = {}
    for i, c in enumerate(clips):
        for cap in c.captions:
            groups.setdefault(cap.lower(), set()).add(i)
            text.setdefault(cap.lower(), cap)
    return [text[k] for k in sorted(groups)], [groups[k] for k in sorted(groups)]


def build_eval_set(cfg: EvalSetConfig) -> EvalSet:
    """Clips of ``cfg.sources`` (plus any file a query names), and the queries with their relevant clips.

    Without ``cfg.queries`` the queries are the sources' captions (``cfg.caption_queries``). With it, they
    are the file's queries, and the caption queries are kept in ``single``.
    """
    clips = check_audio_exists(read_sources(cfg.sources), "evaluation clips")
    captions = caption_queries(clips, cfg.caption_queries)
    if cfg.queries is None:
        return EvalSet(clips, captions[0], captions[1])
    by_path = {c.path: i for i, c in enumerate(clips)}
    table = read_queries(cfg.queries)
    lost = 0
    for q, paths in table.items():
        missing = {p for p in paths if not p.is_file()}
        if missing:
            lost += 1
            log.warning("query %r: %d relevant file(s) missing (e.g. %s)", q, len(missing), min(missing))
        table[q] = paths - missing
        for p in sorted(table[q]):
            if p not in by_path:
                by_path[p] = len(clips)
                clips.append(Clip(key=str(p), path=p, captions=(), source="queries"))
    if lost:
        log.warning("%d of %d queries lost relevant files: the metrics are not the official ones", lost, len(table))
    queries = sorted(table)
    relevant = [{by_path[p] for p in table[q]} for q in queries]
    return EvalSet(clips, queries, relevant, single=captions if captions[0] else None)

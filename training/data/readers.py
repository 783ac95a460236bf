"""Readers for captioned audio corpora → :class:`Clip` lists, behind one registry (:data:`READERS`).

Formats (``SourceConfig.format``):

* ``clotho`` — Clotho v2.1 captions CSV (``file_name, caption_1 … caption_5``), audio in ``audio_root``;
* ``audiocaps`` — AudioCaps CSV (``audiocap_id, youtube_id, start_time, caption``); the audio file name
  comes from ``options.filename`` (a ``str.format`` pattern over the row, default
  ``"{youtube_id}_{start_time}.wav"``); rows of one file are grouped;
* ``wavcaps`` — WavCaps JSON (``{"data": [{"id", "caption", ...}]}``); the file is ``audio`` /
  ``file_name`` when present, else ``options.filename`` (default ``"{id}.flac"``);
* ``captions`` — a generic table, CSV or JSONL, with ``path`` and ``caption`` (optional ``split``;
  ``options.packages`` keeps the rows of these ``package`` values);
* ``debian_sfx`` — the Debian sound-effects captions table (``path, caption, concept, package, licence,
  split, duration_s``; see :mod:`training.data.captions`).

Every reader returns clips in a stable order (sorted by path) with de-duplicated captions.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
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


def _root(src: SourceConfig) -> Path:
    return Path(src.audio_root) if src.audio_root else Path(src.path).parent


def _open_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = set(required) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
            return list(reader)
    except FileNotFoundError:
        raise DataError(f"captions file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _dedupe(captions: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for c in captions:
        c = " ".join(str(c).split())
        if c and c.lower() not in seen:
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
    clips = []
    for path in sorted(caps):
        row = first[path]
        duration = row.get("duration_s") or row.get("duration")
        clips.append(
            Clip(
                key=str(path),
                path=path,
                captions=_dedupe(caps[path]),
                split=row.get("split", src.split) or src.split,
                source=source_name,
                licence=row.get("licence", "") or row.get("license", ""),
                concept=row.get("concept", ""),
                duration_s=float(duration) if duration not in (None, "") else None,
            )
        )
    clips = [c for c in clips if c.captions]
    return clips[: src.max_clips] if src.max_clips > 0 else clips


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
    pattern = str(src.options.get("filename", "{id}.flac"))
    root = _root(src)
    triples = []
    for item in items:
        if not isinstance(item, dict) or "caption" not in item:
            raise DataError(f"{path}: every entry needs a 'caption'")
        name = item.get("audio") or item.get("file_name") or pattern.format(**item)
        row = {
            "duration_s": str(item.get("duration", "")),
            "split": src.split,
            "licence": item.get("license", ""),
        }
        triples.append(((root / str(name)).resolve(), str(item["caption"]), row))
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
    """Candidate clips, queries and, per query, the indices of its relevant clips."""

    clips: list[Clip]
    queries: list[str]
    relevant: list[set[int]]


def read_queries(cfg: QueriesConfig) -> dict[str, set[Path]]:
    """Query text → set of relevant audio paths (absolute), from a ``query, path`` CSV."""
    rows = _open_csv(Path(cfg.path), ["query", "path"])
    root = Path(cfg.audio_root) if cfg.audio_root else Path(cfg.path).parent
    out: dict[str, set[Path]] = {}
    for r in rows:
        q = " ".join(r["query"].split())
        if q:
            out.setdefault(q, set()).add((root / r["path"]).resolve())
    return out


def build_eval_set(cfg: EvalSetConfig) -> EvalSet:
    """Clips of ``cfg.sources`` (plus any file a query names), and the queries with their relevant clips.

    Without ``cfg.queries`` every distinct caption (case-insensitive) is a query and its relevant clips
    are all the clips carrying it.
    """
    clips = check_audio_exists(read_sources(cfg.sources), "evaluation clips")
    by_path = {c.path: i for i, c in enumerate(clips)}
    if cfg.queries is not None:
        table = read_queries(cfg.queries)
        for q, paths in table.items():
            missing = {p for p in paths if not p.is_file()}
            if missing:
                log.warning("query %r: %d relevant file(s) missing (e.g. %s)", q, len(missing), min(missing))
            table[q] = paths - missing
            for p in sorted(table[q]):
                if p not in by_path:
                    by_path[p] = len(clips)
                    clips.append(Clip(key=str(p), path=p, captions=(), source="queries"))
        queries = sorted(table)
        relevant = [{by_path[p] for p in table[q]} for q in queries]
    else:
        groups: dict[str, set[int]] = {}
        text: dict[str, str] = {}
        for i, c in enumerate(clips):
            for cap in c.captions:
                groups.setdefault(cap.lower(), set()).add(i)
                text.setdefault(cap.lower(), cap)
        queries = [text[k] for k in sorted(groups)]
        relevant = [groups[k] for k in sorted(groups)]
    return EvalSet(clips, queries, relevant)

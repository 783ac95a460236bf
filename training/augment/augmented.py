"""The augmented training set of stages 2–3, built once and stored (``augmented.jsonl``).

Rows (one JSON object per line, after a ``{"meta": …}`` header):

* ``{"kind": "backtranslation", "clip": KEY, "source": CAPTION, "caption": TEXT, "language": L, "generator": G}``
  — an extra caption for an existing clip;
* ``{"kind": "mix", "a": PATH, "b": PATH, "gain_db": G_DB, "source": [CAP_A, CAP_B], "caption": TEXT,
  "generator": G}`` — a new clip: ``a + 10^(G_DB/20)·b``, captioned by merging one caption of each.

The header records a fingerprint of the inputs and settings; a stored set whose fingerprint differs is
rebuilt (cheaply: LLM answers are cached). Teacher and student read the same file, so the teacher's
soft targets cover every augmented pair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training.augment.llm import LLMClient
from training.augment.rewrite import CaptionRewriter
from training.augment.text_ops import load_synonyms
from training.config import AugmentConfig, Recipe
from training.data.readers import Clip

log = logging.getLogger(__name__)

AUGMENTED_FILE = "augmented.jsonl"


def augment_dir(recipe: Recipe) -> Path:
    """``augment.out``, else ``<teacher.out>/augment``, else ``<train.out>/augment``."""
    if recipe.augment.out:
        return Path(recipe.augment.out)
    if recipe.teacher.out:
        return Path(recipe.teacher.out) / "augment"
    return Path(recipe.train.out) / "augment"


def needs_augmented_set(cfg: AugmentConfig) -> bool:
    return cfg.backtranslations > 0 or cfg.mixes > 0


def _fingerprint(clips: Sequence[Clip], cfg: AugmentConfig) -> str:
    h = hashlib.sha256()
    settings = dataclasses.asdict(cfg)
    settings.pop("out", None)
    settings["llm"] = {k: settings["llm"][k] for k in ("base_url", "model", "temperature", "max_tokens")}
    for k in ("text_p", "text_variants", "word_delete_p"):
        settings.pop(k, None)
    h.update(json.dumps(settings, sort_keys=True).encode())
    for c in clips:
        h.update(json.dumps([c.key, list(c.captions)]).encode())
    return h.hexdigest()


def _pick_mix_pairs(clips: Sequence[Clip], n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` ordered pairs of distinct clips whose concepts (or caption sets) differ."""
    if len(clips) < 2:
        return []
    label = [c.concept or "|".join(sorted(c.captions)) for c in clips]
    pairs = []
    for _ in range(50 * n):
        if len(pairs) >= n:
            break
        i, j = (int(x) for x in rng.choice(len(clips), size=2, replace=False))
        if label[i] != label[j]:
            pairs.append((i, j))
    if len(pairs) < n:
        log.warning("only %d of %d mixes could pair clips of different sounds", len(pairs), n)
    return pairs


def build_augmented_set(
    clips: Sequence[Clip],
    cfg: AugmentConfig,
    out_dir: str | Path,
    normalise: Callable[[str], str] = lambda s: s,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Build (or read, when up to date) the augmented rows for the training ``clips``."""
    out_dir = Path(out_dir)
    path = out_dir / AUGMENTED_FILE
    fp = _fingerprint(clips, cfg)
    if path.is_file():
        meta, rows = read_augmented_set(path)
        if meta.get("fingerprint") == fp:
            log.info("augmented set %s is up to date (%d rows)", path, len(rows))
            return rows
        log.info("augmented set %s is stale: rebuilding", path)
    llm = LLMClient(cfg.llm, Path(cfg.llm.cache) if cfg.llm.cache else out_dir / "llm_cache.jsonl")
    rewriter = CaptionRewriter(llm, load_synonyms())
    rng = np.random.default_rng(cfg.seed)
    rows: list[dict] = []
    total = sum(len(c.captions) for c in clips) * cfg.backtranslations + cfg.mixes
    done = 0
    for clip in clips:
        for caption in clip.captions:
            for _ in range(cfg.backtranslations):
                language = str(cfg.languages[int(rng.integers(len(cfg.languages)))])
                text = normalise(rewriter.back_translate(caption, language, rng))
                if text and text.lower() != caption.lower():
                    rows.append(
                        {
                            "kind": "backtranslation",
                            "clip": clip.key,
                            "source": caption,
                            "caption": text,
                            "language": language,
                            "generator": rewriter.generator,
                        }
                    )
                done += 1
                if on_progress:
                    on_progress(done, total)
    lo, hi = cfg.mix_gain_db
    for i, j in _pick_mix_pairs(clips, cfg.mixes, rng):
        a, b = clips[i], clips[j]
        gain = float(round(rng.uniform(lo, hi), 2))
        ca = a.captions[int(rng.integers(len(a.captions)))]
        cb = b.captions[int(rng.integers(len(b.captions)))]
        rows.append(
            {
                "kind": "mix",
                "a": str(a.path),
                "b": str(b.path),
                "gain_db": gain,
                "source": [ca, cb],
                "caption": normalise(rewriter.merge(ca, cb, gain)),
                "generator": rewriter.generator,
            }
        )
        done += 1
        if on_progress:
            on_progress(done, total)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    meta = {"fingerprint": fp, "generator": rewriter.generator, "rows": len(rows)}
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"meta": meta}) + "\n")
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    log.info(
        "augmented set: %d back-translations, %d mixes (%s) → %s",
        sum(r["kind"] == "backtranslation" for r in rows),
        sum(r["kind"] == "mix" for r in rows),
        rewriter.generator,
        path,
    )
    return rows


def read_augmented_set(path: str | Path) -> tuple[dict, list[dict]]:
    """``(meta, rows)`` of a stored augmented set."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    meta: dict = {}
    rows = []
    for line in lines:
        if not line.strip():
            continue
        obj = json.loads(line)
        if "meta" in obj:
            meta = obj["meta"]
        else:
            rows.append(obj)
    return meta, rows


def mix_key(a: str, b: str, gain_db: float) -> str:
    return f"mix:{a}|{b}|{gain_db:+.2f}"


def apply_augmented_set(clips: Sequence[Clip], rows: Sequence[dict]) -> list[Clip]:
    """The training clips with back-translated captions added, followed by one clip per mix row."""
    extra: dict[str, list[str]] = {}
    mixes: list[Clip] = []
    for row in rows:
        if row["kind"] == "backtranslation":
            extra.setdefault(row["clip"], []).append(row["caption"])
        elif row["kind"] == "mix":
            key = mix_key(row["a"], row["b"], float(row["gain_db"]))
            mixes.append(
                Clip(
                    key=key,
                    path=Path(row["a"]),
                    captions=(row["caption"],),
                    split="train",
                    source="mix",
                    mix=(row["a"], row["b"], float(row["gain_db"])),
                )
            )
    out = []
    for c in clips:
        added = tuple(t for t in extra.get(c.key, []) if t.lower() not in {x.lower() for x in c.captions})
        out.append(dataclasses.replace(c, captions=tuple(dict.fromkeys(c.captions + added))) if added else c)
    return out + mixes

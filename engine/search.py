"""Answer text queries, "find similar" queries and filters (DESIGN §2, searching).

text ─► fused query vector ─► HNSW k-NN over windows (oversampled) ─► group by file (best window)
     ─► filters ─► ranked hits. When filters leave few windows, the search is exact over those windows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import and_, func, literal, or_, select, text

from engine import keyword
from engine.errors import QueryError
from engine.fusion import Evidence, TrustFusion
from engine.library import Library
from engine.names import NAME_DIM, NAME_ENCODER_ID
from engine.search_explain import explain, fusion_for
from engine.storage import db
from engine.text_encoder import one_blas_thread

log = logging.getLogger(__name__)

EXACT_FILES = 1_500  # filtered searches over at most this many files are exact (their windows scored)
OVERFETCH_MAX = 16_384  # else HNSW over-fetch grows ×4 up to this many windows (~50 ms at 1M), then exact
FILTER_CACHE = 16  # file sets of recent filters remembered per library (typing keeps the filters)
MAX_K = 1000
MAX_QUERY_WINDOWS = 16
MODES = ("both", "content", "keywords")
KEYWORD_POOL = 200  # keyword hits fused with the content and name hits
CANDIDATES = 200  # content and name candidates each, before fusion


@dataclass
class Filters:
    """All fields optional; a file must satisfy every field that is set."""

    min_duration: float | None = None  # seconds
    max_duration: float | None = None
    sample_rates: tuple[int, ...] = ()  # any of these (Hz)
    min_sample_rate: int | None = None
    channels: tuple[int, ...] = ()  # any of these
    formats: tuple[str, ...] = ()  # 'wav', 'flac', 'ogg', 'mp3', 'aiff', ... (case-insensitive)
    folder: str | None = None  # absolute folder; files under it (recursively)
    category: str | None = None  # UCS CatID, category or subcategory (from file names and metadata)
    keyword_constraint: tuple[str, tuple] | None = None  # (sql with ? marks, params) on files.id: field filters / excludes

    def is_empty(self) -> bool:
        return self == Filters()

    def clauses(self, roots: list[tuple[int, str]] | None = None) -> list:
        """SQLAlchemy conditions on ``files`` (joined with ``roots``); ``roots``: the library's ``[(id,
        path)]``, which lets a folder filter use the files' index (see :func:`_folder_clause`)."""
        c = []
        F = db.File
        if self.min_duration is not None:
            c.append(F.duration_s >= self.min_duration)
        if self.max_duration is not None:
            c.append(F.duration_s <= self.max_duration)
        if self.sample_rates:
            c.append(F.sample_rate.in_([int(s) for s in self.sample_rates]))
        if self.min_sample_rate is not None:
            c.append(F.sample_rate >= self.min_sample_rate)
        if self.channels:
            c.append(F.channels.in_([int(x) for x in self.channels]))
        if self.formats:
            wanted = {f.upper().lstrip(".") for f in self.formats}
            wanted |= {"AIFF"} if wanted & {"AIF", "AIFC"} else set()
            c.append(func.upper(F.format).in_(sorted(wanted)))
        if self.category:
            cat = " ".join(str(self.category).replace('"', " ").split())
            constraint = None
            if cat:
                parsed = keyword.parse_query(f'category:"{cat}" OR catid:"{cat}"')
                constraint = keyword.constraint_sql(parsed, "files.id")
            if constraint is None:
                raise QueryError(f"the category {self.category!r} has nothing to match (give a UCS CatID or category)")
            c.append(_qmark_clause(*constraint))
        if self.keyword_constraint:
            c.append(_qmark_clause(*self.keyword_constraint))
        if self.folder:
            c.append(_folder_clause(Path(self.folder).expanduser().resolve().as_posix().rstrip("/"), roots))
        return c


def _folder_clause(folder: str, roots: list[tuple[int, str]] | None):
    """Files under ``folder`` (absolute, POSIX, no trailing slash). With the library's ``roots`` (``[(id,
    path)]``) the clause is a range of the files' unique ``(root_id, rel_path)`` index per root — a root that
    is the folder or inside it gives all its files, a root the folder is inside gives the relative paths
    from ``"<rest>/"`` up to ``"<rest>0"`` (``"0"`` follows ``"/"``) — so SQLite seeks instead of comparing
    every path; without them, one ``LIKE`` over the joined full paths."""
    F = db.File
    if roots is None:
        full = db.Root.path + literal("/") + F.rel_path
        esc = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return or_(full.like(esc + "/%", escape="\\"), db.Root.path == folder)
    parts = []
    for rid, path in roots:
        if path == folder or path.startswith(folder + "/"):
            parts.append(F.root_id == rid)
        elif folder.startswith(path + "/"):
            rest = folder[len(path) + 1 :]
            parts.append(and_(F.root_id == rid, F.rel_path >= rest + "/", F.rel_path < rest + "0"))
    return or_(*parts) if parts else literal(False)


def _members(allowed: np.ndarray, ids) -> np.ndarray:
    """Boolean mask: which of ``ids`` are in the sorted int64 array ``allowed``."""
    ids = np.asarray(ids, np.int64)
    if not len(allowed) or not len(ids):
        return np.zeros(len(ids), bool)
    pos = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
    return allowed[pos] == ids


def _qmark_clause(sql: str, params) -> object:
    """A ``?``-placeholder SQL fragment from :mod:`engine.keyword` as a SQLAlchemy clause."""
    names = {}
    parts = sql.split("?")
    out = parts[0]
    for i, (param, rest) in enumerate(zip(params, parts[1:], strict=True)):
        name = f"kw{i}_{abs(hash(param)) % 10**8}"
        names[name] = param
        out += f":{name}" + rest
    return text(out).bindparams(**names)


@dataclass
class Hit:
    """One ranked file (higher ``score`` is better). ``score``: the ensemble cosine of the best window
    (content search, find similar) or the fused probability of relevance (``both``, ``keywords``).
    ``relevance``: 0–100, the calibrated probability that the file is what the query asks for — the same
    meaning in every mode (see :class:`engine.fusion.TrustFusion`); ``None`` for find-similar.
    ``matched_by``: which signals found it, among ``"sound"``, ``"name"``, ``"description"``,
    ``"category"``."""

    path: str
    score: float
    start_s: float
    end_s: float
    duration_s: float
    sample_rate: int | None
    channels: int | None
    format: str | None
    file_id: int
    metadata: dict = field(default_factory=dict)
    relevance: float | None = None
    matched_by: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return str(Path(self.path).parent)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["score"] = round(float(self.score), 6)
        if self.relevance is not None:
            d["relevance"] = round(float(self.relevance), 1)
        return d


#: Relevance from which a hit is a good match: the fusion's cut-off, fitted on validation queries, always
#: shows as 50 (see :meth:`engine.fusion.TrustFusion.relevance`).
GOOD_MATCH = 50.0


def is_good_match(hit: Hit) -> bool:
    """Whether ``hit`` clears the calibrated cut-off (``relevance >= GOOD_MATCH``); find-similar hits, which
    carry no relevance, always do."""
    return hit.relevance is None or hit.relevance >= GOOD_MATCH


def validate_k(k: int) -> int:
    if not isinstance(k, int) or k < 1 or k > MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k!r}")
    return k


class Searcher:
    """Searches one library with its bundle. Thread-safe for concurrent queries."""

    def __init__(self, library: Library, fusion: TrustFusion | None = None) -> None:
        """``fusion``: how signals are weighed (default: the one fitted for the library's bundle)."""
        self.lib = library
        self._fusion = fusion

    # -- public ---------------------------------------------------------------------------------

    def search(self, query: str, k: int = 20, filters: Filters | None = None, mode: str = "both") -> list[Hit]:
        """The main entry: a query in the keyword syntax of :mod:`engine.keyword` (words, "phrases",
        -exclude, OR, prefix*, field:value) answered by what the files *sound* like (``content``), by their
        names and metadata (``keywords``: lexical) or by every signal fused by trust (``both``, the
        default: the sound, the meaning of the files' own words weighted by how informative they are, and
        lexical hits; see :mod:`engine.fusion`). Field filters and excludes restrict every mode. Each hit
        carries ``relevance`` (0–100) and ``matched_by``."""
        with one_blas_thread():  # query-sized products: a second BLAS thread only spins against the next query
            return self._search(query, k, filters, mode)

    def _search(self, query: str, k: int, filters: Filters | None, mode: str) -> list[Hit]:
        validate_k(k)
        if mode not in MODES:
            raise QueryError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if not isinstance(query, str) or not query.strip():
            raise QueryError('the query is empty: describe a sound, e.g. "heavy wooden door creaking"')
        parsed = keyword.parse_query(query)
        if parsed.is_empty:
            raise QueryError(f"the query {query!r} has no words to search for")
        filters = filters or Filters()
        constraint = keyword.constraint_sql(parsed, "files.id")
        if constraint:
            filters = dataclasses.replace(filters, keyword_constraint=(constraint[0], tuple(constraint[1])))
        free = parsed.free_text
        if not free.strip():  # only field filters: the keyword ranking is all there is
            if mode == "content":
                return []
            mode = "keywords"
        model = self.fusion.model(mode)
        if mode == "keywords":
            kw = self._keyword_hits(parsed, filters)
            with self.lib.engine.connect() as conn:
                names = db.file_text_vectors(conn, [fid for fid, _, _ in kw[:k]], NAME_ENCODER_ID, NAME_DIM)
                evidence = {fid: Evidence(informativeness=names.get(fid, (None, 0.0))[1], lexical=share,
                                          name=None if fid not in names else 0.0)
                            for fid, _, share in kw[:k]}
                best = {fid: (sc, 0.0, None) for fid, sc, _ in kw[:k]}
                return self._hits(conn, best, k, evidence, mode, parsed)
        kw = self._keyword_hits(parsed, filters) if mode == "both" else []
        cvec, nvec = self.lib.embed_query(free)
        if mode == "content":
            best = self._content_best(cvec, k, filters, set())
            with self.lib.engine.connect() as conn:
                evidence = {fid: Evidence(content=v[0]) for fid, v in best.items()}
                return self._hits(conn, best, k, evidence, mode, parsed)
        content, evidence = self._evidence(cvec, nvec, kw, filters, max(CANDIDATES, 4 * k))
        best = {}
        for fid, p in zip(evidence, model.probabilities(list(evidence.values())), strict=True):
            s0, e0 = (content[fid][1], content[fid][2]) if fid in content else (0.0, None)
            best[fid] = (p, s0, e0)
        with self.lib.engine.connect() as conn:
            return self._hits(conn, best, k, evidence, mode, parsed)

    def _keyword_hits(self, parsed: keyword.ParsedQuery, filters: Filters) -> list[tuple[int, float, float]]:
        """:func:`engine.keyword.keyword_matches` (the pool of :data:`KEYWORD_POOL`) of the files that pass
        ``filters``."""
        with self.lib.engine.connect() as conn:
            kw = keyword.keyword_matches(conn, parsed, KEYWORD_POOL)
            if kw and not filters.is_empty():
                ok = _members(self._allowed(conn, filters), [fid for fid, _, _ in kw])
                kw = [h for h, keep in zip(kw, ok, strict=True) if keep]
        return kw

    def evidence(self, query: str, filters: Filters | None = None, pool: int = CANDIDATES) -> dict[int, Evidence]:
        """Every signal for the candidate files of a query (the union of the ``pool`` best by sound, by
        the meaning of their words and by keywords): what fusion ranks, and what ``fit_fusion`` learns from."""
        parsed = keyword.parse_query(query)
        filters = filters or Filters()
        with one_blas_thread(), self.lib.engine.connect() as conn:
            kw = keyword.keyword_matches(conn, parsed, KEYWORD_POOL)
            cvec, nvec = self.lib.embed_query(parsed.free_text or query)
            return self._evidence(cvec, nvec, kw, filters, pool)[1]

    def _evidence(self, cvec: np.ndarray, nvec: np.ndarray, kw: list[tuple[int, float, float]],
                  filters: Filters, pool: int) -> tuple[dict[int, tuple[float, float, float]], dict[int, Evidence]]:
        content = self._content_best(cvec, pool, filters, set(), complete=False)
        named = self.lib.name_index.search(nvec, pool)
        with self.lib.engine.connect() as conn:
            if named and not filters.is_empty():
                ok = _members(self._allowed(conn, filters), [fid for fid, _ in named])
                named = [h for h, keep in zip(named, ok, strict=True) if keep]
            lexical = {fid: share for fid, _, share in kw}
            # the pool best by sound (content is in score order, and may hold more files: their scores are
            # known, so a file found by its words keeps its sound's evidence at no cost)
            candidates = list(dict.fromkeys([*list(content)[:pool], *(fid for fid, _ in named), *lexical]))
            missing = [fid for fid in candidates if fid not in content]
            content.update(self._content_scores(conn, cvec, missing))
            texts = db.file_text_vectors(conn, candidates, NAME_ENCODER_ID, NAME_DIM)
        stored = [fid for fid in candidates if fid in texts]
        cos = {}
        if stored:
            vecs = np.stack([texts[f][0] for f in stored])
            has_words = vecs.any(axis=1)  # a file without words has a zero vector: no name evidence
            cos = {f: c for f, c, ok in zip(stored, (vecs @ nvec).tolist(), has_words.tolist(), strict=True) if ok}
        evidence = {}
        for fid in candidates:
            evidence[fid] = Evidence(
                content=content[fid][0] if fid in content else None, name=cos.get(fid),
                informativeness=texts[fid][1] if fid in texts else 0.0, lexical=lexical.get(fid, 0.0),
            )
        return content, evidence

    @property
    def fusion(self) -> TrustFusion:
        if self._fusion is None:
            self._fusion = fusion_for(self.lib.bundle)
        return self._fusion

    def search_text(self, query: str, k: int = 20, filters: Filters | None = None) -> list[Hit]:
        """Content-only search: rank files by how well their best window matches the text."""
        validate_k(k)
        if not isinstance(query, str) or not query.strip():
            raise QueryError('the query is empty: describe a sound, e.g. "heavy wooden door creaking"')
        if not re.search(r"\w", query):
            raise QueryError(f"the query {query!r} has no words to search for")
        return self.search(query, k, filters, mode="content")

    def similar(self, path: str | Path, k: int = 20, filters: Filters | None = None,
                start_s: float | None = None, end_s: float | None = None) -> list[Hit]:
        """Files that sound like ``path`` (or its region ``[start_s, end_s)``), excluding itself."""
        validate_k(k)
        path = Path(path).expanduser().resolve()
        for name, v in (("start", start_s), ("end", end_s)):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise QueryError(f"the region {name} must be a number of seconds >= 0, got {v}")
        if start_s is not None and end_s is not None and end_s <= start_s:
            raise QueryError(f"the region end ({end_s}s) must be after its start ({start_s}s)")
        fid, qvecs = self._stored_vectors(path, start_s, end_s)
        if qvecs is None:
            if start_s is not None:
                from engine.audio import probe

                duration = probe(path).duration_s
                if start_s >= duration:
                    raise QueryError(f"the region starts at {start_s}s but {path.name} lasts {duration:.2f}s")
            qvecs = self._embed_file(path, start_s, end_s)
        if not np.isfinite(qvecs).all():
            raise QueryError(f"{path} contains NaN or infinite samples; it cannot be compared")
        if len(qvecs) > MAX_QUERY_WINDOWS:
            qvecs = qvecs[np.linspace(0, len(qvecs) - 1, MAX_QUERY_WINDOWS).round().astype(int)]
        return self.search_vectors(qvecs, k, filters, exclude={fid} if fid is not None else set())

    def search_vectors(self, qvecs: np.ndarray, k: int, filters: Filters | None = None,
                       exclude: set[int] | None = None) -> list[Hit]:
        """Rank files by max over (query vector, window) inner products. ``qvecs``: float32 (m, dim)."""
        with one_blas_thread():
            best = self._content_best(qvecs, k, filters or Filters(), exclude or set())
            with self.lib.engine.connect() as conn:
                return self._hits(conn, best, k)

    def _content_best(self, qvecs: np.ndarray, k: int, filters: Filters, exclude: set[int], *,
                      complete: bool = True) -> dict[int, tuple[float, float, float]]:
        """``{file_id: (cosine, start_s, end_s)}`` of (at least) the ``k`` best files by their best window,
        best first. Filters: the files they allow (:meth:`_allowed`, cached); few → exact over their
        windows, else HNSW over-fetch keeping allowed files, growing until ``k`` are found or
        :data:`OVERFETCH_MAX` windows were fetched, then exact — or, without ``complete`` (a candidate
        pool, where fewer will do), what the over-fetch found."""
        qvecs = np.atleast_2d(np.asarray(qvecs, np.float32))
        index = self.lib.sync_index()
        n = index.count
        if n == 0:
            return {}
        with self.lib.engine.connect() as conn:
            allowed = None
            if not filters.is_empty():
                allowed = self._allowed(conn, filters)
                if len(allowed) == 0:
                    return {}
                if len(allowed) <= EXACT_FILES:
                    return self._exact(conn, qvecs, k, allowed, exclude)
            # windows to fetch: k files need ~k..(windows per file)·k windows; a big k (the hybrid's pool of 200)
            # starts lower and grows if too few files come back (the result is the same either way: every
            # file not seen scores below every file seen)
            kk = min(n, max(64, 8 * k if k <= 20 else 3 * k))
            if allowed is not None:  # a filter keeping a share f of the files: ~1/f as many windows at once
                kk = min(n, OVERFETCH_MAX, max(kk, int(kk * self._file_count(conn) / len(allowed))))
            while True:
                ids, scores = index.search(qvecs, kk)
                best = self._best_per_file(conn, ids.ravel(), scores.ravel(), allowed, exclude)
                if len(best) >= k:
                    return best
                if kk >= n:
                    if complete:
                        # files with windows (a file that failed to decode has none, never a content hit)
                        every = self._ok_files(conn)
                        if allowed is not None:
                            every = np.intersect1d(every, allowed, assume_unique=True)
                        if len(best) < min(k, len(every) - len(exclude)):
                            # asked for every window, the graph can still leave some out (a small or
                            # degenerate one): the files it did not return are scored exactly, not dropped
                            return self._exact(conn, qvecs, k, every, exclude)
                    return best
                if allowed is not None and kk >= OVERFETCH_MAX:
                    return self._exact(conn, qvecs, k, allowed, exclude) if complete else best
                kk = min(n, kk * 4, max(kk, OVERFETCH_MAX) if allowed is not None else n)

    def _allowed(self, conn, filters: Filters) -> np.ndarray:
        """Sorted int64 ids of the files that pass ``filters``: one query over ``files`` (not windows),
        remembered per library and database state (the app asks again at every keystroke): the
        generation (files indexed, changed, removed) and the names generation (a move re-embeds the file's
        text, folders included)."""
        key = (repr(filters), db.generation(conn), db.names_generation(conn))
        cache = self.lib.filter_cache
        got = cache.get(key)
        if got is None:
            roots = [tuple(r) for r in conn.execute(select(db.Root.id, db.Root.path))]
            got = np.fromiter(conn.execute(
                select(db.File.id).join(db.Root, db.Root.id == db.File.root_id).where(*filters.clauses(roots))
                .order_by(db.File.id)
            ).scalars(), dtype=np.int64)
            cache[key] = got
            while len(cache) > FILTER_CACHE:
                cache.pop(next(iter(cache)), None)
        return got

    def _file_count(self, conn) -> int:
        """Files in the library (remembered beside the filters' file sets, per generation)."""
        key = ("<files>", db.generation(conn), db.names_generation(conn))
        got = self.lib.filter_cache.get(key)
        if got is None:
            got = np.array([conn.execute(select(func.count()).select_from(db.File)).scalar_one()], np.int64)
            self.lib.filter_cache[key] = got
        return max(1, int(got[0]))

    def _ok_files(self, conn) -> np.ndarray:
        """Sorted ids of the files that were indexed (status ``ok``: they have windows), remembered like
        :meth:`_file_count`."""
        key = ("<ok files>", db.generation(conn), db.names_generation(conn))
        got = self.lib.filter_cache.get(key)
        if got is None:
            got = np.fromiter(conn.execute(
                select(db.File.id).where(db.File.status == "ok").order_by(db.File.id)).scalars(), np.int64)
            self.lib.filter_cache[key] = got
        return got

    def _window_scores(self, conn, qvecs: np.ndarray, file_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The windows of ``file_ids`` as arrays ``(file_id, start_s, end_s)`` and each one's best inner
        product with ``qvecs`` (stored vectors, decoded in one go)."""
        fids, starts, ends, vecs = db.file_window_vectors(conn, self.lib.bundle.bundle_id, self.lib.bundle.dim, file_ids)
        scores = (vecs @ qvecs.T).max(axis=1) if len(vecs) else np.zeros(0, np.float32)
        ok = np.isfinite(scores)  # a non-finite vector (an older version stored some) is never an answer,
        if not ok.all():          # as the search index leaves it out
            fids, starts, ends, scores = fids[ok], starts[ok], ends[ok], scores[ok]
        return fids, starts, ends, scores

    def _content_scores(self, conn, qvecs: np.ndarray, file_ids: list[int]) -> dict[int, tuple[float, float, float]]:
        """Best-window cosine of given files (found by their words, not their sound)."""
        fids, starts, ends, scores = self._window_scores(conn, np.atleast_2d(np.asarray(qvecs, np.float32)), file_ids)
        order = np.argsort(-scores, kind="stable")  # each file's best window, the first of equals
        firsts = order[np.unique(fids[order], return_index=True)[1]]
        return {f: (sc, s0, e0) for f, sc, s0, e0 in zip(fids[firsts].tolist(), scores[firsts].tolist(),
                                                          starts[firsts].tolist(), ends[firsts].tolist(), strict=True)}

    # -- internals ------------------------------------------------------------------------------

    def _best_per_file(self, conn, ids: np.ndarray, scores: np.ndarray, allowed: np.ndarray | None,
                       exclude: set[int]) -> dict[int, tuple[float, float, float]]:
        """window hits → {file_id: (score, start_s, end_s)} keeping each file's best window, best first."""
        order = np.argsort(-scores, kind="stable")
        ids, scores = ids[order], scores[order]
        info = db.window_spans(conn, ids[ids >= 0].tolist())
        ok: set[int] | None = None
        if allowed is not None:
            fids = sorted({v[0] for v in info.values()})
            ok = {f for f, keep in zip(fids, _members(allowed, fids), strict=True) if keep}
        best: dict[int, tuple[float, float, float]] = {}
        for wid, sc in zip(ids.tolist(), scores.tolist(), strict=True):
            got = info.get(wid)
            if got is None:
                continue
            fid, s, e = got
            if not math.isfinite(sc):
                continue
            if fid in best or fid in exclude or (ok is not None and fid not in ok):
                continue
            best[fid] = (sc, s, e)
        return best

    def _exact(self, conn, qvecs: np.ndarray, k: int, allowed: np.ndarray,
               exclude: set[int]) -> dict[int, tuple[float, float, float]]:
        """The ``k`` best of the ``allowed`` files by their best window, scored exactly, best first."""
        fids, starts, ends, scores = self._window_scores(conn, qvecs, [f for f in allowed.tolist() if f not in exclude])
        best: dict[int, tuple[float, float, float]] = {}
        for i in np.argsort(-scores, kind="stable").tolist():
            fid = int(fids[i])
            if fid not in best:
                best[fid] = (float(scores[i]), float(starts[i]), float(ends[i]))
                if len(best) >= k:
                    break
        return best

    def _hits(self, conn, best: dict[int, tuple[float, float, float]], k: int,
              evidence: dict[int, Evidence] | None = None, mode: str | None = None,
              parsed: keyword.ParsedQuery | None = None) -> list[Hit]:
        top = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
        if not top:
            return []
        rows = {
            r.id: r
            for r in conn.execute(
                select(db.File.id, db.File.rel_path, db.File.duration_s, db.File.sample_rate, db.File.channels,
                       db.File.format, db.File.metadata_json, db.Root.path.label("root"))
                .join(db.Root, db.Root.id == db.File.root_id)
                .where(db.File.id.in_(db.id_list(fid for fid, _ in top)))
            )
        }
        hits = []
        for fid, (score, s, e) in top:
            r = rows.get(fid)
            if r is None:  # deleted between the index lookup and now
                continue
            if e is None:  # a keyword-only hit: its first window
                e = min(self.lib.bundle.window_s, float(r.duration_s or self.lib.bundle.window_s))
            meta = json.loads(r.metadata_json) if r.metadata_json else {}
            hit = Hit(
                path=str(Path(r.root) / r.rel_path), score=score, start_s=float(s), end_s=float(e),
                duration_s=float(r.duration_s or 0.0), sample_rate=r.sample_rate, channels=r.channels,
                format=r.format, file_id=fid, metadata=meta,
            )
            if evidence is not None and mode is not None:
                ev = evidence.get(fid, Evidence())
                hit.relevance = self.fusion.relevance(mode, ev)
                hit.matched_by = explain(ev, self.fusion, r.rel_path, r.root, meta, parsed)
            hits.append(hit)
        return hits

    def find_file(self, conn, path: Path) -> int | None:
        """The file id of an absolute path, if the library holds it."""
        for rid, root in conn.execute(select(db.Root.id, db.Root.path)):
            rp = Path(root)
            if path == rp or rp in path.parents:
                rel = path.relative_to(rp).as_posix()
                fid = conn.execute(
                    select(db.File.id).where(db.File.root_id == rid, db.File.rel_path == rel)
                ).scalar()
                if fid is not None:
                    return int(fid)
        return None

    def _stored_vectors(self, path: Path, start_s: float | None, end_s: float | None
                        ) -> tuple[int | None, np.ndarray | None]:
        with self.lib.engine.connect() as conn:
            fid = self.find_file(conn, path)
            if fid is None:
                return None, None
            q = select(db.Window.id).where(db.Window.file_id == fid)
            if start_s is not None:
                q = q.where(db.Window.end_s > start_s)
            if end_s is not None:
                q = q.where(db.Window.start_s < end_s)
            wids = conn.execute(q.order_by(db.Window.start_s)).scalars().all()
            if not wids:
                return fid, None
            vecs = db.vectors_for_windows(conn, self.lib.bundle.bundle_id, self.lib.bundle.dim, wids)
            return fid, (vecs if len(vecs) else None)

    def _embed_file(self, path: Path, start_s: float | None, end_s: float | None) -> np.ndarray:
        from engine.audio import frame, iter_windows, load_mono

        b = self.lib.bundle
        if start_s is None and end_s is None:
            windows = [w for _, w in iter_windows(path, b.sample_rate, b.window_s, b.hop_s)]
        else:
            sig = load_mono(path, b.sample_rate, start_s or 0.0, end_s)
            windows = [frame(sig, b.sample_rate, b.window_s, b.hop_s)[1]]
        return self.lib.encoder.embed_audio(np.concatenate(windows))


def hits_to_json(hits: Iterable[Hit]) -> list[dict]:
    return [h.as_dict() for h in hits]

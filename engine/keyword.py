"""Keyword search over file names, folders and metadata with SQLite FTS5 (BM25 ranking).

Query syntax (what :func:`parse_query` understands; anything else is searched as plain words):

- ``door slam``: all words must match (in any indexed column);
- ``"door slam"``: the words in this order; ``"door slam"*``: the last word as a prefix;
- ``expl*``: words starting with ``expl``;
- ``-metal`` (or ``NOT metal``): exclude files matching ``metal``; also ``-"metal door"``, ``-library:boom``;
- ``creak OR squeak``: either word (``OR`` in capitals; lower-case ``or`` is a word);
- ``field:value`` / ``field:"two words"`` / ``field:pre*``: only in that field. Fields: ``name``
  (``file``), ``folder`` (``path``), ``description`` (``desc``), ``keywords`` (``keyword``, ``tag``),
  ``category`` (``cat``, ``subcategory``), ``catid``, ``library`` (``lib``), ``designer`` (``creator``).

Every user word goes into the FTS5 expression as a quoted string, so FTS5 operators typed by a user
(``NEAR(``, ``^``, ``:``, ``*`` inside words, stray quotes) can never change the query's structure.

The table lives in the storage layer (:mod:`engine.storage.fts`: ``FTS_DDL``, :func:`document_for`,
:func:`put_document`, :func:`delete_document`; re-exported here); this module parses queries and reads it. Stemming (Porter) lets ``explosions`` find ``explosion``, and each
query word also matches files whose UCS CatID lists it as a synonym (``barn`` finds ``DOORWood`` files),
with a low weight.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import ucs
from engine.errors import LibraryError, QueryError
from engine.storage.fts import (  # noqa: F401  (the table lives in storage; re-exported for callers)
    _TOKENIZE,
    FTS_COLUMNS,
    FTS_DDL,
    FTS_TABLE,
    TRIGRAM_COLUMNS,
    TRIGRAM_TABLE,
    _execute,
    _sqlite_error,
    delete_document,
    delete_documents,
    document_for,
    put_document,
    put_documents,
    split_words,
)

log = logging.getLogger(__name__)

#: Function words a person types but a file name never needs ("footsteps *on* gravel", "*a* door
#: opening"): dropped from free-text keyword matching unless the whole query is made of them.
#: Words that change a sound's meaning (up, down, off, out, over, under, through) are kept.
STOP_WORDS: frozenset[str] = frozenset(
    "a an the of on in at to for with and or by from into onto is are was be being been this that these "
    "those its it as some any very sound sounds".split()
)

FIELD_ALIASES: dict[str, str] = {
    "name": "name",
    "file": "name",
    "filename": "name",
    "folder": "folder",
    "path": "folder",
    "description": "description",
    "desc": "description",
    "keywords": "keywords",
    "keyword": "keywords",
    "tag": "keywords",
    "tags": "keywords",
    "category": "category",
    "cat": "category",
    "subcategory": "category",
    "catid": "catid",
    "library": "library",
    "lib": "library",
    "designer": "designer",
    "creator": "designer",
}

_FIELD_RE = re.compile(r"([A-Za-z]+):")
_WORD_CHAR = re.compile(r"[^\W_]")  # a letter or digit: what FTS5's unicode61 tokenizer keeps
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_TERMS = 64
_MAX_QUERY_CHARS = 2000


# ------------------------------------------------------------------------------------------- documents


# ---------------------------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Term:
    """One search term: ``text`` as typed (without quotes, ``*`` or field prefix); ``phrase`` if it was
    quoted; ``prefix`` if it ended in ``*``; ``field`` the FTS column it is restricted to, or ``None``."""

    text: str
    phrase: bool = False
    prefix: bool = False
    field: str | None = None

    def fts5(self) -> str:
        """This term as a safe FTS5 expression: a quoted string, optionally ``*`` and a column filter."""
        expr = '"' + self.text.replace('"', '""') + '"'
        if self.prefix:
            expr += " *"
        if self.field:
            expr = "{" + self.field + "} : " + expr
        return expr


@dataclass(frozen=True)
class ParsedQuery:
    """A parsed keyword query: ``clauses`` are ANDed, the terms inside one clause ORed; a file matching
    any of ``excludes`` is left out."""

    clauses: tuple[tuple[Term, ...], ...] = ()
    excludes: tuple[Term, ...] = ()

    @property
    def terms(self) -> list[Term]:
        """Every positive term, in order."""
        return [t for clause in self.clauses for t in clause]

    @property
    def phrases(self) -> list[Term]:
        return [t for t in self.terms if t.phrase]

    @property
    def prefixes(self) -> list[Term]:
        return [t for t in self.terms if t.prefix]

    @property
    def filters(self) -> list[Term]:
        """Positive terms restricted to a field (``category:doors``)."""
        return [t for t in self.terms if t.field]

    @property
    def free_text(self) -> str:
        """The positive, field-less words and phrases joined by spaces: what a text encoder should embed
        for the same query (``category:doors creaky -metal "old hinge"`` -> ``creaky old hinge``)."""
        return " ".join(t.text for t in self.terms if not t.field)

    @property
    def is_empty(self) -> bool:
        return not self.clauses and not self.excludes


@dataclass
class _Token:
    text: str = ""
    op: str | None = None  # "OR", "AND", "NOT" for bare operators
    negated: bool = False
    field: str | None = None
    quoted: bool = False
    prefix: bool = False


def _lex(q: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(q)
    while i < n:
        if q[i].isspace() or q[i] in "()":
            i += 1
            continue
        tok = _Token()
        while i < n and q[i] in "-+":
            tok.negated = tok.negated or q[i] == "-"
            i += 1
        m = _FIELD_RE.match(q, i)
        if m and m.group(1).lower() in FIELD_ALIASES:
            tok.field = FIELD_ALIASES[m.group(1).lower()]
            i = m.end()
        if i < n and q[i] == '"':
            end = q.find('"', i + 1)
            end = n if end < 0 else end
            tok.text, tok.quoted = q[i + 1 : end], True
            i = end + 1
            if i < n and q[i] == "*":
                tok.prefix = True
                while i < n and q[i] == "*":
                    i += 1
        else:
            start = i
            while i < n and not q[i].isspace() and q[i] not in '"()':
                i += 1
            word = q[start:i]
            if word in ("OR", "AND", "NOT") and not tok.negated and tok.field is None:
                tok.op = word
            tok.prefix = word.endswith("*")
            tok.text = word.strip("*")
        tokens.append(tok)
    return tokens


def parse_query(q: str) -> ParsedQuery:
    """Parse a keyword query (syntax in the module docstring). Never raises: unbalanced quotes close at
    the end, lone ``-``/``*``/``OR`` and terms without a letter or digit are dropped, unknown
    ``word:word`` pairs are ordinary words. At most 64 terms are kept."""
    tokens = _lex(_CONTROL.sub(" ", q or "")[:_MAX_QUERY_CHARS])
    clauses: list[list[Term]] = []
    excludes: list[Term] = []
    join_or = negate_next = False
    last_positive = False
    for tok in tokens:
        if tok.op == "OR":
            join_or = last_positive
            continue
        if tok.op == "AND":
            join_or = False
            continue
        if tok.op == "NOT":
            negate_next = True
            continue
        text = " ".join(tok.text.split())
        if not _WORD_CHAR.search(text):
            continue
        term = Term(text=text, phrase=tok.quoted, prefix=tok.prefix, field=tok.field)
        if tok.negated or negate_next:
            excludes.append(term)
            last_positive = join_or = negate_next = False
        elif join_or and clauses:
            clauses[-1].append(term)
            last_positive, join_or = True, False
        else:
            clauses.append([term])
            last_positive = True
        if sum(len(c) for c in clauses) + len(excludes) >= _MAX_TERMS:
            break
    return ParsedQuery(clauses=tuple(tuple(c) for c in clauses), excludes=tuple(excludes))


_UCS_LOCK = threading.Lock()
_MAX_EXPANSION = 100


@functools.cache
def _ucs_vocabulary() -> sqlite3.Connection:
    """An in-memory FTS5 table of every UCS CatID's synonyms, tokenized like the index."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute(f"CREATE VIRTUAL TABLE ucs USING fts5(cat_id UNINDEXED, text, tokenize = {_TOKENIZE})")
    db.executemany(
        "INSERT INTO ucs (cat_id, text) VALUES (?, ?)",
        [(r.cat_id, " ".join(r.synonyms)) for r in ucs.ucs_table().values()],
    )
    return db


def ucs_expansion(term: Term) -> list[str]:
    """The UCS CatIDs whose official synonyms match ``term`` (same tokenizer and stemming as the index;
    ``barn`` gives ``DOORWood`` among others), at most 100, those with the fewest synonyms first; none
    for field-restricted terms. (The explanations are left out: their filler words expand too widely.)"""
    if term.field:
        return []
    with _UCS_LOCK:
        rows = _ucs_vocabulary().execute(
            "SELECT cat_id FROM ucs WHERE ucs MATCH ? ORDER BY rank LIMIT ?", (term.fts5(), _MAX_EXPANSION)
        )
        return [r[0] for r in rows]


def _term(term: Term, expand: bool) -> str:
    cat_ids = ucs_expansion(term) if expand else []
    if not cat_ids:
        return term.fts5()
    return "(" + term.fts5() + " OR {ucs} : (" + " OR ".join(f'"{c}"' for c in cat_ids) + "))"


def _clause(terms: Sequence[Term], expand: bool = False) -> str:
    if len(terms) == 1:
        return _term(terms[0], expand)
    return "(" + " OR ".join(_term(t, expand) for t in terms) + ")"


def to_fts5(parsed: ParsedQuery, *, expand_ucs: bool = True) -> str | None:
    """A safe FTS5 MATCH expression for ``parsed``, or ``None`` when it has no positive term (FTS5 cannot
    express "everything except": see :func:`constraint_sql` for exclude-only queries).

    With ``expand_ucs``, each positive field-less term also matches files whose UCS CatID lists it as a
    synonym (:func:`ucs_expansion`), through the low-weight ``ucs`` column, so
    ``barn`` finds a ``DOORWood`` file that never says "barn". Excludes are never expanded.
    """
    if not parsed.clauses:
        return None
    positive = " AND ".join(_clause(c, expand_ucs) for c in parsed.clauses)
    if not parsed.excludes:
        return positive
    return f"({positive}) NOT ({' OR '.join(t.fts5() for t in parsed.excludes)})"


def constraint_sql(parsed: ParsedQuery, id_column: str = "files.id") -> tuple[str, list[str]] | None:
    """A SQL condition restricting ``id_column`` to files that pass the query's field filters (clauses
    made only of ``field:`` terms) and match none of its excludes; ``(sql, params)`` with ``?``
    placeholders, or ``None`` when the query sets no such constraint. Meant for semantic results, whose
    ranking comes from the free text (:attr:`ParsedQuery.free_text`)."""
    parts: list[str] = []
    params: list[str] = []
    filters = [c for c in parsed.clauses if all(t.field for t in c)]
    select = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?"
    if filters:
        parts.append(f"{id_column} IN ({select})")
        params.append(" AND ".join(_clause(c) for c in filters))
    if parsed.excludes:
        parts.append(f"{id_column} NOT IN ({select})")
        params.append(" OR ".join(t.fts5() for t in parsed.excludes))
    if not parts:
        return None
    return " AND ".join(parts), params


# ---------------------------------------------------------------------------------------------- SQL


def keyword_search(
    conn: Any, q: str | ParsedQuery, limit: int = 200, *, expand_ucs: bool = True
) -> list[tuple[int, float]]:
    """Files matching keyword query ``q``, best first: ``[(file id, score)]`` where score is ``-bm25``
    with the column weights of :data:`FTS_COLUMNS` (higher is better, > 0 for any match; scores compare
    only within one query). ``[]`` when the query has nothing to match.

    ``conn``: a sqlite3 connection or a SQLAlchemy Connection to the library database; ``expand_ucs``:
    see :func:`to_fts5`. Raises :class:`LibraryError` when the keyword index is missing.
    """
    parsed = q if isinstance(q, ParsedQuery) else parse_query(q)
    expr = to_fts5(parsed, expand_ucs=expand_ucs)
    if expr is None or limit <= 0:
        return []
    weights = ", ".join(repr(w) for _, w in FTS_COLUMNS)
    sql = (
        f"SELECT rowid, bm25({FTS_TABLE}, {weights}) AS rank FROM {FTS_TABLE} "
        f"WHERE {FTS_TABLE} MATCH ? ORDER BY rank LIMIT ?"
    )
    try:
        rows = _execute(conn, sql, (expr, int(limit)), rows=True)
    except Exception as exc:
        err = _sqlite_error(exc)
        if err is None:
            raise
        if "no such table" in str(err):
            raise LibraryError("This library has no keyword index yet; index it again to build one.") from exc
        log.warning("FTS5 rejected %r: %s", expr, err)
        raise QueryError(f"Could not run this keyword search ({err}).") from exc
    return [(int(rowid), -float(rank)) for rowid, rank in rows]


def drop_stop_words(parsed: ParsedQuery) -> ParsedQuery:
    """``parsed`` without single-word, field-less terms that are :data:`STOP_WORDS` (phrases, prefixes and
    field terms are kept); unchanged when nothing else would be left."""
    def keep(t: Term) -> bool:
        return t.phrase or t.prefix or t.field is not None or t.text.casefold() not in STOP_WORDS

    clauses = tuple(c2 for c2 in (tuple(t for t in c if keep(t)) for c in parsed.clauses) if c2)
    if not any(all(t.field is None for t in c) for c in clauses) and any(
        all(t.field is None for t in c) for c in parsed.clauses
    ):
        return parsed
    return ParsedQuery(clauses=clauses, excludes=parsed.excludes)


#: A clause of the forgiving match matching at most this many files counts every one of them, read without
#: ranking (no BM25 to compute); a clause matching more (as common as a stop word) counts only its ``pool``
#: best by BM25, as every clause did before — ranking all of a common word's matches was most of a keyword
#: query's time at 300k files.
CLAUSE_ALL = 100_000


def _ids(conn: Any, select_ids: str, params: Sequence[Any]) -> np.ndarray:
    """The ids ``select_ids`` (``SELECT … AS id …``) gives, int64, read as one comma-separated text: 25k ids in
    ~1 ms, where 25k Python rows take ~10."""
    text = _execute(conn, f"SELECT group_concat(id) FROM ({select_ids})", params, rows=True)[0][0]
    return np.fromstring(text, dtype=np.int64, sep=",") if text else np.zeros(0, np.int64)


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    """``np.unique`` of an int64 array, without its masked-array check (which imports ``numpy.ma``: ~7 ms of
    a cold ``earshot search``)."""
    ids = np.sort(ids)
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids


def _clause_files(conn: Any, clause: Sequence[Term], expand_ucs: bool, pool: int) -> np.ndarray:
    """Sorted unique ids of the files matching one OR-clause: through the word index (stems, UCS synonyms)
    or, for terms of three letters or more, anywhere inside a name or folder (trigram index). Each index
    gives every match up to :data:`CLAUSE_ALL`; beyond, the word index its ``pool`` best by BM25, the trigram
    index its first :data:`CLAUSE_ALL`."""
    expr = _clause(clause, expand_ucs)
    where = f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?"
    words = _ids(conn, f"SELECT rowid AS id {where} LIMIT ?", (expr, CLAUSE_ALL + 1))
    if len(words) > CLAUSE_ALL:
        words = _ids(conn, f"SELECT rowid AS id {where} ORDER BY rank LIMIT ?", (expr, pool))
    inside = [t for t in clause if t.field is None and len(t.text) >= 3]
    if not inside:
        return _sorted_unique(words)
    expr = " OR ".join('"' + t.text.replace('"', '""') + '"' for t in inside)
    tri = _ids(conn, f"SELECT rowid AS id FROM {TRIGRAM_TABLE} WHERE {TRIGRAM_TABLE} MATCH ? LIMIT ?", (expr, CLAUSE_ALL))
    return _sorted_unique(np.concatenate((words, tri)))


def keyword_matches(
    conn: Any, q: str | ParsedQuery, limit: int = 200, *, expand_ucs: bool = True, min_share: float = 0.5
) -> list[tuple[int, float, float]]:
    """Keyword search that forgives phrasing: ``[(file id, score, share)]`` best first, where ``share`` is
    the fraction of the query's clauses a file matches (1.0: all of them).

    Stop words are ignored ("footsteps on gravel" = "footsteps gravel"); files matching every clause
    come first, ranked by BM25 (:func:`keyword_search`); then files that match every clause only inside
    their names (``explosion`` in ``bombexplosion``), then files matching at least ``min_share`` of the
    clauses, most clauses first. Field filters and excludes always hold. Scores are comparable within
    one call only (higher is better)."""
    parsed = drop_stop_words(q if isinstance(q, ParsedQuery) else parse_query(q))
    strict = keyword_search(conn, parsed, limit, expand_ucs=expand_ucs)
    out = [(fid, score, 1.0) for fid, score in strict]
    free = [c for c in parsed.clauses if not all(t.field for t in c)]
    if len(out) >= limit or not free:
        return out
    pool = max(limit * 5, 1000)
    per_clause = []
    for clause in free:
        try:
            per_clause.append(_clause_files(conn, clause, expand_ucs, pool))
        except Exception as exc:
            if _sqlite_error(exc) is None:
                raise
            log.warning("relaxed keyword match failed for %r: %s", clause, exc)
    if not per_clause:
        return out
    ids, counts = np.unique(np.concatenate(per_clause), return_counts=True)
    share = counts / len(free)
    keep = (share >= min_share) & ~np.isin(ids, [fid for fid, _, _ in out])
    order = np.lexsort((ids[keep], -share[keep]))  # most clauses first, then by id
    ids, share = ids[keep][order], share[keep][order]
    want = limit - len(out)
    constraint = constraint_sql(parsed, "rowid")
    if constraint is None:
        candidates = list(zip(ids[:want].tolist(), share[:want].tolist(), strict=True))
    else:
        candidates = []
        for start in range(0, len(ids), 500):  # in order, until enough pass
            chunk = ids[start : start + 500].tolist()
            sql = (f"SELECT rowid FROM {FTS_TABLE} WHERE rowid IN ({','.join('?' * len(chunk))}) "
                   f"AND {constraint[0]}")
            ok = {int(r[0]) for r in _execute(conn, sql, (*chunk, *constraint[1]), rows=True)}
            candidates.extend((fid, sh) for fid, sh in zip(chunk, share[start : start + 500].tolist(), strict=True)
                              if fid in ok)
            if len(candidates) >= want:
                break
        candidates = candidates[:want]
    floor = min((score for _, score, _ in out), default=1.0)
    for rank, (fid, share) in enumerate(candidates):
        out.append((fid, min(floor, 1.0) * share - 1e-6 * (rank + 1), share))
    return out

"""Fault-injection scenarios shared by ``tests/faults`` (a few quick runs in CI) and
``benchmarks/bench_faults.py`` (the long soak).

Each scenario builds a library with the ``earshot`` CLI in subprocesses (a tiny random bundle, generated
audio), injects one fault, follows what the tool tells the user to do (rerun, ``repair``, free space),
and then checks the library against the truth:

* **lost**: audio files that should be indexed (and are on disk) but are not, with all their windows;
* **duplicated**: files stored twice, or with more windows/vectors than their audio gives;
* **wrong**: ``similar`` hits whose file or score differ from an exact search over the database
  (float16 tolerance), or a score that is not finite;
* **tracebacks**: any command that printed a Python traceback (every failure must be one clear line);
* **survived**: the scenario ended with a usable, complete library and no silent misbehaviour.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests import audio_fixtures as af

# EARSHOT_FAULTS_ENGINE: run the probes against another checkout (e.g. main, to see the defects).
REPO = Path(os.environ.get("EARSHOT_FAULTS_ENGINE") or Path(__file__).resolve().parents[2])
SR = 16000
WINDOW_S, HOP_S = 1.0, 0.5  # the tiny bundle's framing


@dataclass
class Outcome:
    name: str
    runs: int = 1
    survived: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    tracebacks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.survived == self.runs and not (self.lost or self.duplicated or self.wrong or self.tracebacks)

    def add(self, other: Outcome) -> None:
        self.runs += other.runs
        self.survived += other.survived
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.wrong += other.wrong
        self.tracebacks += other.tracebacks
        self.notes.extend(other.notes)


class Env:
    """One scenario's world: a library folder, sound folders, the model, the commands run so far."""

    def __init__(self, tmp: Path, model: Path) -> None:
        self.tmp = Path(tmp)
        self.lib = self.tmp / "lib"
        self.model = Path(model)
        self.tracebacks = 0
        self.log: list[tuple[list[str], int, str]] = []

    def cli(self, *args, timeout: float = 300, lib: Path | None = None, wrap: list[str] | None = None,
            env: dict | None = None, model: bool = True) -> tuple[int, str, str]:
        cmd = [sys.executable, "-m", "engine.cli", "--library", str(lib or self.lib),
               *(["--model", str(self.model)] if model else []), *map(str, args)]
        proc = subprocess.run((wrap or []) + cmd, capture_output=True, timeout=timeout, cwd=REPO,
                              env=child_env(env))
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if "Traceback" in err or "Traceback" in out:
            self.tracebacks += 1
        self.log.append(([*map(str, args)], proc.returncode, err.strip()[-300:]))
        return proc.returncode, out, err

    def popen(self, *args) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "engine.cli", "--library", str(self.lib), "--model", str(self.model),
               *map(str, args)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=child_env())

    @property
    def db(self) -> Path:
        return self.lib / "earshot.db"


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def make_sounds(root: Path, n: int, *, seed: int = 0, dur_s: float = 3.0, prefix: str = "s") -> list[Path]:
    """``n`` distinct noise/tone files of ``dur_s`` seconds at 16 kHz."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 2:
            data = af.tone(float(rng.uniform(100, 6000)), dur_s, SR)
        else:
            data = af.noise(dur_s, SR, seed=int(rng.integers(1 << 30)), color=("white", "pink", "brown")[i % 3])
        out.append(af.write(root / f"{prefix}{seed:03d}_{i:03d}.wav", data, SR))
    return out


def windows_for(duration_s: float) -> int:
    from engine.audio import window_count

    return window_count(duration_s, WINDOW_S, HOP_S)


def _connect(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    return con


def check(env: Env, expected: list[Path], *, k: int = 10) -> Outcome:
    """Compare the library with the truth: every file in ``expected`` indexed once with all its windows,
    and ``similar`` answering exactly what an exact search over the stored vectors answers."""
    o = Outcome("check", runs=1)
    want = {str(p.resolve()) for p in expected}
    try:
        con = _connect(env.db)
        rows = con.execute(
            "SELECT f.id, r.path || '/' || f.rel_path, f.duration_s, f.status, "
            "(SELECT count(*) FROM windows w WHERE w.file_id = f.id), "
            "(SELECT count(*) FROM windows w JOIN vectors v ON v.window_id = w.id WHERE w.file_id = f.id) "
            "FROM files f JOIN roots r ON r.id = f.root_id"
        ).fetchall()
        bundle_dim = con.execute("SELECT dim FROM bundles").fetchone()
        vec_rows = con.execute(
            "SELECT w.file_id, v.data FROM vectors v JOIN windows w ON w.id = v.window_id ORDER BY w.id"
        ).fetchall()
        con.close()
    except sqlite3.Error as exc:
        o.lost = len(want)
        o.notes.append(f"database unreadable: {exc}")
        return o
    seen: dict[str, int] = {}
    ok_files: dict[int, str] = {}
    for fid, path, dur, status, nw, nv in rows:
        seen[path] = seen.get(path, 0) + 1
        if path in want and status == "ok" and dur is not None and nw == nv == windows_for(dur):
            ok_files[fid] = path
        elif status == "ok" and dur is not None and (nw > windows_for(dur) or nv > nw):
            o.duplicated += 1
    o.duplicated += sum(n - 1 for n in seen.values() if n > 1)
    o.lost = len(want - set(ok_files.values()))
    if o.lost:
        o.notes.append(f"lost {sorted(want - set(ok_files.values()))[:3]}")
    # Wrong results: `similar` of one file against an exact search over the stored vectors.
    if ok_files and bundle_dim:
        dim = int(bundle_dim[0])
        by_file: dict[int, list[np.ndarray]] = {}
        for fid, blob in vec_rows:
            by_file.setdefault(fid, []).append(np.frombuffer(blob, np.float16).astype(np.float32))
        qfid = sorted(ok_files)[0]
        q = np.stack(by_file[qfid])
        if len(q) > 16:
            q = q[np.linspace(0, len(q) - 1, 16).round().astype(int)]
        exact = {}
        for fid, vecs in by_file.items():
            if fid == qfid or fid not in ok_files:
                continue
            exact[ok_files[fid]] = float((np.stack(vecs).reshape(-1, dim) @ q.T).max())
        rc, out, err = env.cli("similar", ok_files[qfid], "-k", k, "--json")
        if rc != 0:
            o.wrong += 1
            o.notes.append(f"similar failed: {err.strip()[-200:]}")
        else:
            hits = json.loads(out)
            top = sorted(exact.values(), reverse=True)[: len(hits)]
            if len(hits) != min(k, len(exact)):
                o.wrong += 1
                o.notes.append(f"similar gave {len(hits)} hits, expected {min(k, len(exact))}")
            for h, t in zip(hits, top, strict=False):
                s = h["score"]
                if s is None or not np.isfinite(s) or abs(s - t) > 3e-3 or abs(exact.get(h["path"], 9) - s) > 3e-3:
                    o.wrong += 1
                    o.notes.append(f"hit {h['path']} score {s} vs exact {exact.get(h['path'])} / rank {t}")
    o.tracebacks = env.tracebacks
    o.survived = int(not (o.lost or o.duplicated or o.wrong or o.tracebacks))
    return o


def one_line_error(rc: int, err: str) -> bool:
    """A failure reported the way the rules say: non-zero exit, a line starting ``earshot: error:``."""
    return rc != 0 and "Traceback" not in err and any(x.startswith("earshot: error:") for x in err.splitlines())


# -- scenarios ---------------------------------------------------------------------------------------


def kill9(tmp: Path, model: Path, *, points: int, seed: int = 0, files: int = 24) -> Outcome:
    """``kill -9`` of ``earshot index`` at ``points`` random moments (each rerun resumes), then compare."""
    rng = random.Random(seed)
    env = Env(tmp, model)
    root = tmp / "sounds"
    expected = make_sounds(root, files, seed=seed, dur_s=4.0)
    total = Outcome("kill -9 while indexing", runs=0)
    for _ in range(points):
        proc = env.popen("index", root, "--batch", "2", "--json")
        time.sleep(rng.uniform(0.3, 3.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Sometimes add/remove a file between runs, so resumes meet changes too.
        if rng.random() < 0.3:
            extra = make_sounds(root, 1, seed=rng.randrange(1000, 9999), dur_s=2.0, prefix="x")
            expected.extend(extra)
        rc, out, err = env.cli("status", "--json")
        if rc != 0:
            total.notes.append(f"status after kill: {err.strip()[-200:]}")
        o = Outcome("kill -9", runs=1, survived=int(rc == 0))
        total.add(o)
    rc, out, err = env.cli("index", root, "--json")
    if rc != 0:
        total.notes.append(f"final index rc={rc}: {err.strip()[-200:]}")
    final = check(env, expected)
    total.lost, total.duplicated, total.wrong = final.lost, final.duplicated, final.wrong
    total.tracebacks = env.tracebacks
    if not final.survived:
        total.survived = max(0, total.survived - 1)
    total.notes += final.notes
    return total


def unmounted_root(tmp: Path, model: Path, *, mode: str = "empty") -> Outcome:
    """A root that turns into an empty folder (unmounted drive), loses most files, or becomes unreadable:
    nothing is deleted until the user confirms with ``--allow-mass-delete``."""
    env = Env(tmp, model)
    root = tmp / "drive"
    expected = make_sounds(root, 24, seed=3, dur_s=1.5)
    env.cli("index", root)
    stash = tmp / "stash"
    if mode == "empty":
        root.rename(stash)
        root.mkdir()
    elif mode == "most":
        stash.mkdir()
        for p in expected[:20]:
            p.rename(stash / p.name)
    wrap = None
    if mode == "unreadable":
        root.chmod(0)
        if os.geteuid() == 0:  # root reads anything: run the command as nobody instead
            if not shutil.which("setpriv"):
                root.chmod(0o755)
                return Outcome("root unreadable", runs=0, notes=["skipped: running as root without setpriv"])
            wrap = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            _open_to_nobody(tmp, env.lib, env.model)
    rc, out, err = env.cli("index", "--json", wrap=wrap)
    kept_ok = rc == 3 and json.loads(out)["deleted"] == 0 and "unavailable" in err
    if mode == "unreadable":
        root.chmod(0o755)
    elif mode == "empty":
        root.rmdir()
        stash.rename(root)
    else:
        for p in expected[:20]:
            (stash / p.name).rename(p)
    o = check(env, expected)
    o.name = f"root {mode}"
    if not kept_ok:
        o.survived = 0
        o.notes.append(f"unavailable root not kept: rc={rc} {err.strip()[-200:]}")
    # The user confirms an intended mass deletion: then it happens.
    if mode == "most":
        for p in expected[:20]:
            p.unlink()
        rc, out, _ = env.cli("index", "--json")
        rc2, out2, _ = env.cli("index", "--allow-mass-delete", "--json")
        if rc != 3 or rc2 != 0 or json.loads(out2)["deleted"] != 20:
            o.survived = 0
            o.notes.append("confirmed mass delete did not happen")
        else:
            o2 = check(env, expected[20:])
            o.add(o2)
            o.runs -= 1
            o.survived = min(o.survived, o2.survived)
    o.tracebacks = env.tracebacks
    return o


def _open_to_nobody(tmp: Path, lib: Path, model: Path) -> None:
    """Let an unprivileged user reach ``tmp`` (and write ``lib``, read ``model``)."""
    for d in (tmp, *tmp.parents, model, *model.parents):
        mode = d.stat().st_mode
        if not mode & 0o001:
            d.chmod(mode | 0o005)
    for dirpath, dirnames, filenames in os.walk(lib):
        for name in dirnames + filenames:
            Path(dirpath, name).chmod(0o777 if name in dirnames else 0o666)
    lib.chmod(0o777)


def nonfinite_audio(tmp: Path, model: Path, *, value: float = float("nan")) -> Outcome:
    """A float WAV with one NaN/Inf sample is recorded as failed; the library stays searchable."""
    env = Env(tmp, model)
    root = tmp / "sounds"
    expected = make_sounds(root, 6, seed=5, dur_s=1.5)
    x = af.tone(440, 2.0, SR).copy()
    x[len(x) // 2] = value
    bad = af.write(root / "bad_sample.wav", x, SR, subtype="FLOAT")
    rc, out, err = env.cli("index", root, "--json")
    o = check(env, expected)
    o.name = f"{value} sample"
    summary = json.loads(out) if rc == 0 else {}
    reasons = {Path(p).name: r for p, r, _ in summary.get("errors", [])}
    rc2, out2, _ = env.cli("status", "--failed", "--json")
    failed = json.loads(out2)["failed"] if rc2 == 0 else []
    rc3, _, err3 = env.cli("similar", bad)
    if reasons.get(bad.name) != "non_finite" or not any(f["path"].endswith(bad.name) for f in failed):
        o.survived = 0
        o.notes.append(f"bad file not recorded as failed: {reasons}")
    if not one_line_error(rc3, err3):
        o.survived = 0
        o.wrong += 1
        o.notes.append(f"similar on the bad file: rc={rc3} {err3[-200:]}")
    rc4, _, _ = env.cli("index", root)  # still fine afterwards
    if rc4 != 0:
        o.survived = 0
    o.tracebacks = env.tracebacks
    return o


def damaged_hnsw(tmp: Path, model: Path, *, mode: str, seed: int = 0) -> Outcome:
    """Damage the ANN cache (random bytes, vectors or labels rewritten with a matching sidecar, a cache from
    a database that was then reset): searches must still equal the exact answer, and so must the cache
    that the next ``index`` saves."""
    env = Env(tmp, model)
    root = tmp / "sounds"
    expected = make_sounds(root, 16, seed=7, dur_s=2.5)
    env.cli("index", root)
    hnsw = next((env.lib / "index").glob("*.hnsw"))
    side = hnsw.with_name(hnsw.name + ".json")
    rng = np.random.default_rng(seed)
    if mode == "db-reset":
        # The prober's case: delete the database, index again with a kill -9 partway; the old cache stays.
        for suffix in ("", "-wal", "-shm"):
            Path(str(env.db) + suffix).unlink(missing_ok=True)
        other = tmp / "other"
        make_sounds(other, 16, seed=8, dur_s=2.5)
        proc = env.popen("index", other, "--batch", "2")
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        env.cli("index", other)
        expected = sorted(other.glob("*.wav"))
    else:
        data = bytearray(hnsw.read_bytes())
        meta = json.loads(side.read_text())
        from engine.storage.vector_index import _HEADER

        h = _HEADER.unpack_from(data)
        n, per, label_off, data_off = h[2], h[3], h[4], h[5]
        i = int(rng.integers(n))
        off = _HEADER.size + i * per
        if mode == "bytes":
            for _ in range(8):
                j = int(rng.integers(len(data)))
                data[j] ^= 0xFF
        elif mode == "vectors":  # a plausible unit vector, so only the comparison with the database catches it
            dim = (label_off - data_off) // 4
            v = rng.standard_normal(dim).astype(np.float32)
            data[off + data_off : off + label_off] = (v / np.linalg.norm(v)).tobytes()
        elif mode == "labels":  # swap two labels
            j = (i + 1) % n
            a = bytes(data[off + label_off : off + label_off + 8])
            offj = _HEADER.size + j * per
            data[off + label_off : off + label_off + 8] = data[offj + label_off : offj + label_off + 8]
            data[offj + label_off : offj + label_off + 8] = a
        hnsw.write_bytes(bytes(data))
        if mode in ("vectors", "labels"):  # a consistent-looking sidecar: checksum updated too
            import zlib

            meta["crc32"] = zlib.crc32(bytes(data))
            side.write_text(json.dumps(meta))
    o = check(env, expected)  # a reader process
    rc, _, _ = env.cli("index", root if mode != "db-reset" else tmp / "other")
    o2 = check(env, expected)  # and after the writer saved its cache
    o.add(o2)
    o.runs, o.survived = 1, int(o.survived and o2.survived)
    o.name = f".hnsw {mode}"
    o.tracebacks = env.tracebacks
    return o


def _page_of(db: Path, table: str) -> int | None:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        con.close()


def damaged_db(tmp: Path, model: Path, *, mode: str, seed: int = 0) -> Outcome:
    """A 0-byte database, a garbled page, a damaged write-ahead log: every command fails with one clear
    line (never an empty library with exit 0), ``repair`` keeps what can be kept, ``index`` redoes the rest."""
    env = Env(tmp, model)
    root = tmp / "sounds"
    expected = make_sounds(root, 30, seed=9, dur_s=2.0)
    rc, _, _ = env.cli("index", root)
    o = Outcome(f"database {mode}", runs=1)
    if mode == "zero":
        env.db.write_bytes(b"")
    elif mode == "page":
        con = sqlite3.connect(env.db)
        pages = [r[0] for r in con.execute("SELECT rootpage FROM sqlite_master WHERE type='table' AND rootpage > 0")]
        con.close()
        with open(env.db, "r+b") as fh:
            target = random.Random(seed).choice([p for p in pages if p > 1] or [2])
            fh.seek((target - 1) * 4096 + 8)
            fh.write(os.urandom(512))
    elif mode == "wal":
        # A writer killed with committed batches still in its log, then the log damaged.
        make_wal_state(env, root, expected)
        wal = Path(str(env.db) + "-wal")
        size = wal.stat().st_size
        with open(wal, "r+b") as fh:
            fh.seek(32 + 24 + 100)
            fh.write(os.urandom(64))
        o.notes.append(f"wal {size} bytes")
    rc, out, err = env.cli("status", "--json")
    if mode != "page" and not one_line_error(rc, err):
        o.notes.append(f"damage not reported: rc={rc} {out[:100]} {err[-200:]}")
        o.wrong += 1
    if mode == "page":  # whatever reads the damaged page fails in one line; the rest works
        for args in (("status", "--json"), ("similar", expected[0], "--json"), ("index", root, "--json")):
            rc, out, err = env.cli(*args)
            if rc != 0 and not one_line_error(rc, err):
                o.wrong += 1
                o.notes.append(f"{args[0]}: rc={rc} {err[-200:]}")
    rc, out, err = env.cli("repair")
    if mode == "zero":
        # Cannot be rebuilt: the user is told so; they move the database away and index again.
        if rc == 0 or "cannot" not in out:
            o.notes.append(f"repair of a 0-byte database: rc={rc} {out[-200:]}")
            o.wrong += 1
        env.db.rename(env.db.with_name("earshot.db.empty"))
    elif rc != 0:
        o.notes.append(f"repair failed: {err[-200:]}")
    env.cli("index", root)
    c = check(env, expected)
    o.lost, o.duplicated = c.lost, c.duplicated
    o.wrong += c.wrong
    o.notes += c.notes
    o.tracebacks = env.tracebacks
    o.survived = int(not (o.lost or o.duplicated or o.wrong or o.tracebacks))
    return o


def make_wal_state(env: Env, root: Path, expected: list[Path]) -> None:
    """Leave the library as a writer killed mid-run leaves it: committed batches still in ``-wal``."""
    for p in expected[: len(expected) // 2]:
        os.utime(p, ns=(time.time_ns(), time.time_ns()))
    code = (
        "import sys, os, signal\n"
        "from engine.library import Library\n"
        "from engine.indexing import Indexer\n"
        "lib = Library(sys.argv[1], sys.argv[2])\n"
        "with lib.engine.connect() as c:\n"
        "    c.exec_driver_sql('PRAGMA wal_autocheckpoint=0')\n"
        "import sqlalchemy\n"
        "from sqlalchemy import event\n"
        "@event.listens_for(lib.engine, 'connect')\n"
        "def _no_ckpt(dbapi, rec):\n"
        "    dbapi.execute('PRAGMA wal_autocheckpoint=0')\n"
        "lib.engine.dispose()\n"
        "Indexer(lib, batch_windows=2, commit_windows=4, commit_seconds=0).run([sys.argv[3]])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(env.lib), str(env.model), str(root)], cwd=REPO,
                   env=child_env(), capture_output=True, timeout=300)


def concurrent_create(tmp: Path, model: Path, *, tries: int) -> Outcome:
    """Two processes creating the same new library at once."""
    o = Outcome("concurrent creation", runs=tries)
    code = (
        "import sys\n"
        "from engine.library import Library\n"
        "from engine.status import library_status\n"
        "with Library(sys.argv[1], sys.argv[2]) as lib:\n"
        "    print(library_status(lib)['files'])\n"
    )
    for t in range(tries):
        lib = tmp / f"lib{t}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(lib), str(model)], cwd=REPO, env=child_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        results = [p.communicate(timeout=120) for p in procs]
        ok = all(p.returncode == 0 for p in procs)
        tb = sum(b"Traceback" in err for _, err in results)
        o.tracebacks += tb
        o.survived += int(ok and not tb)
        if not ok:
            o.notes.append(results[0][1].decode()[-200:] + results[1][1].decode()[-200:])
    return o


HOSTILE_QUERIES = [
    "🔥💥", "\x00", "   ", '"', '"unterminated', "-", "-only -minus", "OR", "AND OR NOT", "*", "a*" * 50,
    "category:", 'category:"DOORS" OR "x', "x" * 100_000, "NEAR(a b)", "col:umn:value", "\\", "'; DROP TABLE files;--",
    "\udcff", "a\u0301\u0301\u0301", "\u202e reversed", "(((", ")))", "^", "{}", "[a-z]", "NOT", "\t\n",
]


def hostile_queries(tmp: Path, model: Path) -> Outcome:
    env = Env(tmp, model)
    root = tmp / "sounds"
    expected = make_sounds(root, 6, seed=11, dur_s=1.5)
    env.cli("index", root)
    o = Outcome("hostile queries", runs=0)
    qfile = tmp / "queries.txt"
    lines = [q for q in HOSTILE_QUERIES if "\n" not in q and "\udcff" not in q]
    qfile.write_bytes(("\n".join(lines) + "\nlow hum\n").encode("utf-8") + b"\xff\xfe bad bytes\nnoise\n")
    rc, out, err = env.cli("search", "--queries", qfile, "--json", "-k", "3")
    parsed = [json.loads(x) for x in out.splitlines()]
    answered = [x["query"] for x in parsed]
    o.runs += 1
    o.survived += int("low hum" in answered and "noise" in answered and rc in (0, 2))
    for q in HOSTILE_QUERIES[:12] + HOSTILE_QUERIES[-6:]:
        for mode in ("both", "keywords"):
            o.runs += 1
            try:
                rc, out, err = env.cli("search", q.replace("\x00", "") or " ", "--mode", mode, "--json", "-k", "5")
            except ValueError:  # an argument the OS cannot pass
                o.survived += 1
                continue
            o.survived += int(rc == 0 and isinstance(json.loads(out), list) or one_line_error(rc, err))
    for args in (["--category", 'DOORS" OR "x'], ["--category", '"'], ["-k", "0"], ["-k", "100000"],
                 ["--min-duration", "nan"], ["--folder", "/nonexistent"], ["--format", "'; x"]):
        o.runs += 1
        rc, out, err = env.cli("search", "door", *args, "--json")
        o.survived += int(rc == 0 or one_line_error(rc, err) or (rc == 2 and "usage" in err))
    sample = expected[0]
    for args in (["--start", "-5"], ["--start", "100", "--end", "101"], ["--start", "1", "--end", "0.5"],
                 ["--start", "nan"], ["--end", "inf"]):
        for target in (sample, tmp / "outside.wav"):
            if not target.exists():
                af.write(target, af.tone(300, 1.5, SR), SR)
            o.runs += 1
            rc, out, err = env.cli("similar", target, *args, "--json")
            o.survived += int(one_line_error(rc, err))
            if rc == 0:
                o.wrong += 1
                o.notes.append(f"similar {args} answered instead of refusing")
    o.tracebacks = env.tracebacks
    return o


def hostile_bundles(tmp: Path, model: Path) -> Outcome:
    """Tampered, malformed and escaping bundles are refused with one line, and never listed as usable."""
    env = Env(tmp, model)
    o = Outcome("hostile bundles", runs=0)
    cases = {}

    def copy(name: str) -> Path:
        d = tmp / "models" / name
        shutil.copytree(model, d)
        return d

    d = copy("tampered")
    w = next(d.glob("*.safetensors"))
    b = bytearray(w.read_bytes())
    b[-1] ^= 1
    w.write_bytes(bytes(b))
    cases["tampered"] = d
    d = copy("escape")
    spec = json.loads((d / "bundle.json").read_text())
    spec["members"][0]["weights"] = "../../../../etc/passwd"
    (d / "bundle.json").write_text(json.dumps(spec))
    cases["escape"] = d
    d = copy("garbage")
    (d / "bundle.json").write_text("{not json")
    cases["garbage"] = d
    d = copy("wrong-type")
    spec = json.loads((d / "bundle.json").read_text())
    spec["members"] = "all of them"
    (d / "bundle.json").write_text(json.dumps(spec))
    cases["wrong-type"] = d
    menv = {"EARSHOT_MODELS_DIR": str(tmp / "models")}
    rc, out, err = env.cli("models", "--json", env=menv, model=False)
    listed = {Path(r["path"]).name: r for r in json.loads(out)} if rc == 0 else {}
    for name, d in cases.items():
        o.runs += 1
        rc2, _, err2 = env.cli("--model", d, "status", lib=tmp / f"lib-{name}")
        refused = one_line_error(rc2, err2)
        row = listed.get(name, {})
        o.survived += int(refused and "error" in row)
        if rc2 == 0 or (row and "error" not in row):
            o.wrong += 1
            o.notes.append(f"bundle {name} accepted or listed as usable")
    o.tracebacks = env.tracebacks
    return o


def disk_full(tmp: Path, model: Path, *, free_kb: int, seed: int = 0) -> Outcome:
    """Index onto a small tmpfs that fills up (``free_kb`` left for the run): the run fails with one line,
    the library is as it was; after space is freed, a rerun completes it. Needs ``unshare`` (or root) to
    mount a tmpfs; returns ``None`` notes with the reason otherwise."""
    mnt = tmp / "mnt"
    mnt.mkdir()
    env = Env(tmp, model)
    root = tmp / "sounds"
    first = make_sounds(root / "a", 8, seed=seed, dur_s=2.0)
    more = make_sounds(root / "b", 40, seed=seed + 1, dur_s=3.0)
    lib = mnt / "lib"
    env.lib = lib
    script = (
        'set -e; mount -t tmpfs -o size=3m tmpfs "$1"; shift; '
        '"$@" index "$SOUNDS/a" >/dev/null; '
        'avail=$(df --output=avail -k "$MNT" | tail -1); '
        'fill=$((avail - $FREE_KB)); [ $fill -gt 0 ] && dd if=/dev/zero of="$MNT/filler" bs=1k count=$fill 2>/dev/null; '
        'set +e; "$@" index "$SOUNDS/a" "$SOUNDS/b" --json > "$OUT/full.out" 2> "$OUT/full.err"; echo $? > "$OUT/full.rc"; '
        '"$@" status --json > "$OUT/status.out" 2> "$OUT/status.err"; echo $? > "$OUT/status.rc"; '
        'rm -f "$MNT/filler"; '
        '"$@" index "$SOUNDS/a" "$SOUNDS/b" --json > "$OUT/after.out" 2> "$OUT/after.err"; echo $? > "$OUT/after.rc"; '
        'cp -a "$MNT/lib" "$OUT/lib"'
    )
    out_dir = tmp / "out"
    out_dir.mkdir()
    wrap = ["unshare", "-rm"] if os.geteuid() != 0 else ["unshare", "-m"]
    cmd = [*wrap, "sh", "-c", script, "sh", str(mnt), sys.executable, "-m", "engine.cli", "--library", str(lib),
           "--model", str(model)]
    proc = subprocess.run(cmd, capture_output=True, cwd=REPO, timeout=600, env=child_env(
        {"SOUNDS": str(root), "MNT": str(mnt), "FREE_KB": str(free_kb), "OUT": str(out_dir)}))
    o = Outcome(f"disk full ({free_kb} KB free)", runs=1)
    if not (out_dir / "full.rc").exists():
        o.notes.append(f"skipped: cannot mount a tmpfs here ({proc.stderr.decode()[-200:].strip()})")
        o.runs = 0
        return o
    rc_full = int((out_dir / "full.rc").read_text())
    err_full = (out_dir / "full.err").read_text(errors="replace")
    rc_st = int((out_dir / "status.rc").read_text())
    err_st = (out_dir / "status.err").read_text(errors="replace")
    rc_after = int((out_dir / "after.rc").read_text())
    for text in (err_full, err_st, (out_dir / "after.err").read_text(errors="replace")):
        o.tracebacks += int("Traceback" in text)
    if rc_full != 0 and not one_line_error(rc_full, err_full):
        o.notes.append(f"full disk not reported in one line: {err_full[-300:]}")
        o.wrong += 1
    if rc_full == 0:
        o.notes.append("the run fit in the space left")
    if rc_st != 0 and not one_line_error(rc_st, err_st):
        o.wrong += 1
    if rc_after != 0:
        o.notes.append(f"rerun after freeing space failed: {(out_dir / 'after.err').read_text()[-300:]}")
    env.lib = out_dir / "lib"
    c = check(env, first + more)
    o.lost, o.duplicated = c.lost, c.duplicated
    o.wrong += c.wrong
    o.tracebacks += c.tracebacks
    o.notes += c.notes
    o.survived = int(not (o.lost or o.duplicated or o.wrong or o.tracebacks))
    return o

"""``earshot`` command line: index, search, similar, status, remove, repair, models, learn.

Outputs with ``--json`` are a stable contract read by other tools and by our benchmarks:

* ``search``/``similar``: one JSON array of hits, best first: ``path`` (absolute), ``score``, ``start_s``,
  ``end_s``, ``duration_s`` (+ ``sample_rate``, ``channels``, ``format``, ``metadata``);
* ``search --queries FILE``: one JSON line per query: ``{"query": ..., "hits": [...]}``;
* ``status``: an object with ``files``, ``windows``, ``errors``, ``bundle`` and more;
* ``index``: the summary object.

Every command either finishes or fails with one line on stderr (``earshot: error: ...``) and a non-zero
exit: 2 for a bad query or argument, 3 when ``index`` kept a folder as it was because it looks unmounted or
emptied, 130 when interrupted, 1 otherwise. A traceback is shown only with ``-vv``.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from engine.errors import EarshotError

log = logging.getLogger("earshot")


def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    p.add_argument("--library", metavar="DIR", default=d,
                   help="library folder (default: $EARSHOT_LIBRARY or a per-user data folder)")
    p.add_argument("--model", metavar="NAME_OR_DIR", default=d,
                   help="model bundle (default: the one this library uses, else the shipped default)")
    p.add_argument("--device", default=d, help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="machine-readable output")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0)


def _filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("-k", type=int, default=20, help="number of files to return (default 20)")
    g.add_argument("--min-duration", type=float, metavar="S")
    g.add_argument("--max-duration", type=float, metavar="S")
    g.add_argument("--sample-rate", type=int, action="append", default=[], metavar="HZ",
                   help="only these sample rates (repeatable)")
    g.add_argument("--min-sample-rate", type=int, metavar="HZ")
    g.add_argument("--channels", type=int, action="append", default=[], metavar="N", help="repeatable")
    g.add_argument("--format", action="append", default=[], metavar="FMT", help="wav, flac, ogg, mp3, aiff (repeatable)")
    g.add_argument("--folder", metavar="DIR", help="only files under this folder")
    g.add_argument("--category", metavar="CAT", help="UCS CatID, category or subcategory (e.g. DOORWood, DOORS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot", description="Find sounds in your library by describing them.")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="add folders / bring the library up to date")
    _common(p, suppress=True)
    p.add_argument("folders", nargs="*", help="folders to index (default: every folder already in the library)")
    p.add_argument("--retry-failed", action="store_true", help="try files that failed before again")
    p.add_argument("--batch", type=int, default=64, metavar="N",
                   help="windows per inference batch (default 64; results are committed every 16 batches)")
    p.add_argument("--allow-mass-delete", action="store_true",
                   help="a folder that now looks empty (or lost most of its files) really was emptied: remove its "
                        "records (without this, such a folder is reported as unavailable and kept)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="decode and embed on a Ray cluster (needs earshot[cluster]): its address as `ray start` "
                        "prints it (head:6379, ray://head:10001, auto), or 'local' for one on this machine; "
                        "scanning and every database write stay here")
    p.add_argument("--files-per-task", type=int, default=16, metavar="N",
                   help="with --cluster: files per cluster task (default 16)")

    p = sub.add_parser("search", help="find sounds by a text description")
    _common(p, suppress=True)
    p.add_argument("query", nargs="?", help='e.g. "glass shattering on a hard floor"')
    p.add_argument("--queries", metavar="FILE", help="one query per line; prints one JSON line per query")
    p.add_argument("--mode", choices=("both", "content", "keywords"), default="both",
                   help="rank by what files sound like (content), by names and metadata (keywords), or both "
                        "(default). Keyword syntax: \"phrase\", -exclude, OR, prefix*, category:/library:/designer:")
    p.add_argument("--all", action="store_true",
                   help="also list the weaker matches below the relevance cut-off (text output; --json lists "
                        "all k hits with their relevance)")
    _filters(p)

    p = sub.add_parser("similar", help="find sounds that sound like a file (or a region of it)")
    _common(p, suppress=True)
    p.add_argument("path")
    p.add_argument("--start", type=float, metavar="S", help="region start (seconds)")
    p.add_argument("--end", type=float, metavar="S", help="region end (seconds)")
    _filters(p)

    p = sub.add_parser("status", help="what the library holds")
    _common(p, suppress=True)
    p.add_argument("--failed", action="store_true", help="list every file that failed, with its reason")

    p = sub.add_parser("remove", help="remove a folder (and its files' vectors) from the library")
    _common(p, suppress=True)
    p.add_argument("folder")

    p = sub.add_parser("repair", help="rebuild what can be rebuilt in a damaged library (search index, keyword "
                                      "table, readable database rows) and say what cannot")
    _common(p, suppress=True)

    p = sub.add_parser("learn", help="teach the model your library's own words (descriptions, UCS names), from "
                                     "the features stored at indexing: no audio is decoded")
    _common(p, suppress=True)
    p.add_argument("--undo", action="store_true", help="go back to the model the learned one came from (seconds)")
    p.add_argument("--min-files", type=int, default=None, metavar="N",
                   help="described files needed to learn at all (default 200)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="training epochs (default 40)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the hold-out split and training")

    p = sub.add_parser("models", help="list installed model bundles (with --model: check that one)")
    _common(p, suppress=True)
    return parser


def _open_library(args):
    from engine.library import Library

    lib = Library(args.library, args.model, device=args.device)
    if args.model:  # a model switch: vectors from the stored backbone features, no audio decoded
        try:
            _switch_model(lib, args)
        except BaseException:
            lib.close()
            raise
    return lib


def _switch_model(lib, args) -> None:
    from engine.reproject import switch_if_needed

    done = switch_if_needed(lib)
    if done is not None and done.windows and not args.json:
        print(f"earshot: {lib.bundle.name} {lib.bundle.version}: re-projected {done.windows} windows from stored "
              f"features in {done.seconds:.1f} s (no audio decoded)", file=sys.stderr)
    if done is not None and done.without_features:
        print(f"earshot: {done.files_without_features} files were indexed before features were kept; run "
              f"`earshot index --model {args.model}` to decode them for this model", file=sys.stderr)


def _make_filters(args):
    from engine.search import Filters

    return Filters(
        min_duration=args.min_duration, max_duration=args.max_duration, sample_rates=tuple(args.sample_rate),
        min_sample_rate=args.min_sample_rate, channels=tuple(args.channels), formats=tuple(args.format),
        folder=args.folder, category=args.category,
    )


def _clean(obj):
    """Strings made printable as UTF-8: bytes of file names that are not UTF-8 become ``\\xNN``."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(obj, dict):
        return {_clean(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def _dumps(obj) -> str:
    return json.dumps(_clean(obj), ensure_ascii=False)


def _fmt_time(s: float) -> str:
    m, sec = divmod(max(0.0, s), 60)
    return f"{int(m)}:{sec:05.2f}"


def _print_hits(hits, as_json: bool, show_all: bool = True) -> None:
    """Hits as JSON (all of them), or as lines: relevance (0–100) or score, the best-matching time, the
    length, the path and what matched; without ``show_all``, only the good matches, then a count."""
    from engine.search import hits_to_json, is_good_match

    if as_json:
        print(_dumps(hits_to_json(hits)))
        return
    shown = hits if show_all else [h for h in hits if is_good_match(h)]
    if not hits:
        print("no results")
        return
    if not shown:
        print(f"no good matches ({len(hits)} weaker ones: add --all to see them)")
        return
    weak_from = next((i for i, h in enumerate(shown) if not is_good_match(h)), None)
    for i, h in enumerate(shown, 1):
        if i - 1 == weak_from:
            print("  -- weaker matches --" if i > 1 else "  -- no good matches; the closest --")
        rel = f"{h.relevance:5.0f}%" if h.relevance is not None else f"{h.score:6.3f}"
        why = f"  [{', '.join(h.matched_by)}]" if h.matched_by else ""
        print(f"{i:3d}  {rel}  {_fmt_time(h.start_s)}–{_fmt_time(h.end_s)}  {h.duration_s:7.2f}s  {_clean(h.path)}{why}")
    if len(shown) < len(hits):
        print(f"({len(hits) - len(shown)} weaker matches not shown: add --all)")


def _stop_on_first_ctrl_c(message: str, stop) -> callable:
    """A SIGINT handler: the first Ctrl-C prints ``message`` and calls ``stop()`` (finish cleanly), a second
    one aborts with :class:`KeyboardInterrupt`."""
    pressed = {"n": 0}

    def on_sigint(signum, frame):
        pressed["n"] += 1
        if pressed["n"] > 1:
            raise KeyboardInterrupt
        print(f"\n{message}", file=sys.stderr)
        stop()

    return on_sigint


# -- commands -------------------------------------------------------------------------------------


def cmd_index(args) -> int:
    from tqdm import tqdm

    from engine.indexing import CancelToken, Indexer

    lib = _open_library(args)
    cancel = CancelToken()
    old = signal.signal(signal.SIGINT, _stop_on_first_ctrl_c(
        "stopping after the current batch (Ctrl-C again to abort)…", cancel.cancel))
    bar = None
    show = sys.stderr.isatty() and not args.json

    def on_progress(p) -> None:
        nonlocal bar
        if not show:
            return
        if p.phase == "scan":
            print(f"\rscanning… {p.files_done} files", end="", file=sys.stderr)
        elif p.phase == "embed":
            if bar is None:
                bar = tqdm(total=p.bytes_total, unit="B", unit_scale=True, desc="indexing", file=sys.stderr,
                           dynamic_ncols=True)
            bar.set_postfix_str(f"{p.files_done}/{p.files_total} files")
            bar.update(p.bytes_done - bar.n)
        elif p.phase == "names":
            print(f"\rreading names and descriptions… {p.files_done}/{p.files_total} files", end="",
                  file=sys.stderr)
        elif p.phase == "done" and bar is not None:
            bar.close()

    try:
        lib.acquire_writer()
        if args.batch < 1:
            raise EarshotError("--batch must be at least 1")
        executor = None
        if args.cluster:
            from engine.indexing.cluster import RayExecutor

            executor = RayExecutor(lib.bundle, args.cluster, files_per_task=args.files_per_task,
                                   batch_windows=args.batch)
        summary = Indexer(lib, batch_windows=args.batch, commit_windows=16 * args.batch, executor=executor).run(
            args.folders or None, on_progress=on_progress, cancel=cancel, retry_failed=args.retry_failed,
            allow_mass_delete=args.allow_mass_delete)
    finally:
        signal.signal(signal.SIGINT, old)
        if bar is not None:
            bar.close()
        lib.close()
    if args.json:
        print(_dumps(summary.as_dict()))
    else:
        rt = summary.audio_s / summary.seconds if summary.seconds else 0.0
        print(f"new {summary.new} · changed {summary.changed} · moved {summary.moved} · deleted {summary.deleted}"
              f" · failed {summary.failed} · unchanged {summary.unchanged}  "
              f"({summary.windows} windows, {summary.audio_s / 60:.1f} min of audio in {summary.seconds:.1f} s,"
              f" {rt:.0f}× realtime)")
        for path, reason, msg in summary.errors[:20]:
            print(_clean(f"  failed: {path}: {reason}: {msg}"), file=sys.stderr)
        if len(summary.errors) > 20:
            print(f"  … and {len(summary.errors) - 20} more (earshot status --failed)", file=sys.stderr)
        for r in summary.missing_roots:
            print(f"  folder missing (unmounted drive?), left as it was: {r}", file=sys.stderr)
        if summary.cancelled:
            print("stopped; run the same command again to resume", file=sys.stderr)
    for u in summary.unavailable_roots:
        print(_clean(f"earshot: folder unavailable, kept as it was: {u['path']} ({u['reason']}); if it really was "
                     "emptied, run `earshot index --allow-mass-delete` (or `earshot remove`)"), file=sys.stderr)
    if summary.cancelled:
        return 130
    return 3 if summary.unavailable_roots or summary.missing_roots else 0


def _notice_newer_default(lib) -> None:
    """One line on stderr when the shipped default model is newer than the library's (stdout stays clean)."""
    notice = lib.reindex_notice()
    if notice:
        print(f"earshot: {notice}", file=sys.stderr)


class _CollectorPaused:
    """Python's cyclic garbage collector off while a quick command starts, then back as it was.

    Importing numpy and SQLAlchemy and opening a library make a few hundred thousand objects that live as long
    as the process; each collection pass walks them again and frees nothing (~40 ms of a cold ``earshot
    search``, issue 11). :meth:`resume` (after a first answer: ``--queries`` goes on) turns the collector back
    on; leaving restores the state found (tests call :func:`main` in-process)."""

    def __enter__(self) -> _CollectorPaused:
        self._was = gc.isenabled()
        gc.disable()
        return self

    def resume(self) -> None:
        if self._was:
            gc.enable()

    def __exit__(self, *exc) -> None:
        self.resume()


def _numpy_with_one_blas_thread() -> None:
    """Import numpy with OpenBLAS on one thread, unless numpy is loaded already or the user chose
    (``OPENBLAS_NUM_THREADS``). A search computes on one BLAS thread anyway
    (:func:`engine.text_encoder.one_blas_thread`), and the worker thread OpenBLAS starts when it is loaded
    spins for ~60 ms of CPU, which a shared 2-core machine takes from the search (issue 11)."""
    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # read once, when the library is loaded
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


def cmd_search(args) -> int:
    with _CollectorPaused() as collector:
        _numpy_with_one_blas_thread()
        return _search(args, collector)


def _search(args, collector: _CollectorPaused) -> int:
    from engine.errors import QueryError
    from engine.search import Searcher

    if (args.query is None) == (args.queries is None):
        raise QueryError("give either a query or --queries FILE")
    lib = _open_library(args)
    try:
        _notice_newer_default(lib)
        searcher = Searcher(lib)
        filters = _make_filters(args)
        if args.queries:
            try:  # a byte that is not UTF-8 becomes U+FFFD; it does not stop the other queries
                lines = Path(args.queries).read_bytes().decode("utf-8", "replace").splitlines()
            except OSError as exc:
                raise QueryError(f"cannot read {args.queries}: {exc.strerror or exc}") from exc
            failed = 0
            for q in (line.strip() for line in lines):
                if not q:
                    continue
                try:
                    hits = searcher.search(q, args.k, filters, args.mode)
                except QueryError as exc:  # one bad query is reported; the others still run
                    failed += 1
                    print(f"earshot: error: {exc}", file=sys.stderr)
                    if args.json:
                        print(_dumps({"query": q, "hits": [], "error": str(exc)}), flush=True)
                    continue
                if args.json:
                    print(_dumps({"query": q, "hits": [h.as_dict() for h in hits]}), flush=True)
                else:
                    print(f"# {_clean(q)}")
                    _print_hits(hits, False, args.all)
                collector.resume()
            return 2 if failed else 0
        _print_hits(searcher.search(args.query, args.k, filters, args.mode), args.json, args.all)
        return 0
    finally:
        lib.close()


def cmd_similar(args) -> int:
    with _CollectorPaused():
        from engine.search import Searcher

        lib = _open_library(args)
        try:
            hits = Searcher(lib).similar(args.path, args.k, _make_filters(args), start_s=args.start, end_s=args.end)
            _print_hits(hits, args.json)
            return 0
        finally:
            lib.close()


def cmd_status(args) -> int:
    from engine.status import library_status

    lib = _open_library(args)
    try:
        st = library_status(lib, failed_limit=None if args.failed else 20)
        _notice_newer_default(lib)
    finally:
        lib.close()
    if args.json:
        print(_dumps(st))
        return 0
    b = st["bundle"]
    print(f"library   {st['library']}")
    print(f"model     {b['name']} {b['version']}{'' if b['trained'] else '  (UNTRAINED placeholder)'}  [{b['bundle_id'][:12]}]")
    print(f"files     {st['files']} indexed, {st['errors']} failed, {st['audio_hours']:.2f} h of audio, {st['windows']} windows")
    for r in st["roots"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last_indexed_at"])) if r["last_indexed_at"] else "never"
        print(f"folder    {r['path']}  ({r['files']} files, last indexed {when})")
    if args.failed:
        for f in st["failed"]:
            print(_clean(f"failed    {f['path']}: {f['reason']}: {f['message']}"))
    elif st["errors"]:
        print("          (earshot status --failed lists the failed files)")
    return 0


def cmd_remove(args) -> int:
    from engine.status import remove_root

    lib = _open_library(args)
    try:
        lib.acquire_writer()
        n = remove_root(lib, Path(args.folder))
    finally:
        lib.close()
    print(json.dumps({"removed_files": n}) if args.json else f"removed {n} files")
    return 0


def cmd_repair(args) -> int:
    from engine.repair import repair_library

    report = repair_library(args.library, args.model)
    if args.json:
        print(_dumps(report.as_dict()))
    else:
        for line in report.done:
            print(_clean(f"repaired  {line}"))
        for line in report.cannot:
            print(_clean(f"cannot    {line}"))
        print("the library is usable" if report.ok else "the library is NOT usable yet (see above)")
    return 0 if report.ok else 1


def cmd_learn(args) -> int:
    from engine.reproject import undo_learned

    lib = _open_library(args)
    try:
        if args.undo:
            done = undo_learned(lib)
            print(_dumps(done) if args.json else f"the library uses {done['model']} again (was {done['from']}; "
                  f"{done['seconds']:.1f} s)")
            return 0
        from engine import plugins

        learn = plugins.load("learn")
        cancel = {"n": 0}
        on_sigint = _stop_on_first_ctrl_c(
            "stopping… (Ctrl-C again to abort; the library keeps its model either way)",
            lambda: cancel.__setitem__("n", 1))

        show = sys.stderr.isatty() and not args.json
        last = {"phase": ""}

        def on_progress(phase: str, done: int, total: int) -> None:
            if show and (phase != last["phase"] or done == total or done % 20 == 0):
                last["phase"] = phase
                print(f"\r{phase}… {done}/{total}   ", end="", file=sys.stderr)

        old = signal.signal(signal.SIGINT, on_sigint)
        try:
            report = learn(lib, {"min_files": args.min_files, "epochs": args.epochs, "seed": args.seed},
                           on_progress=on_progress, cancel=lambda: cancel["n"] > 0)
        finally:
            signal.signal(signal.SIGINT, old)
            if show:
                print(file=sys.stderr)
    finally:
        lib.close()
    if args.json:
        print(_dumps(report))
    elif report.get("cancelled"):
        print(f"earshot: {report['message']}", file=sys.stderr)
    else:
        b, a = report["heldout_before"], report["heldout_after"]
        print(f"learned from {report['described']} of {report['files']} files that describe themselves "
              f"({report['train_files']} trained, {report['heldout_files']} held out) in {report['train_seconds']:.0f} s")
        print(f"held-out files, by sound only (queries = their own descriptions): mAP@16 {100 * b['map@16']:.1f} → "
              f"{100 * a['map@16']:.1f}, R@10 {100 * b['R@10']:.1f} → {100 * a['R@10']:.1f}")
        g = report.get("general")
        if g:
            print(f"{g['name']} (not from this library): mAP@16 {100 * g['before']['map@16']:.1f} → "
                  f"{100 * g['after']['map@16']:.1f}")
        print(f"the library now uses {report['name']} {report['version']} ({report['bundle']}); "
              "`earshot learn --undo` goes back")
    return 130 if report.get("cancelled") else 0


def cmd_models(args) -> int:
    from engine.bundle import BundleError, default_bundle_name, list_bundles, load_bundle, resolve_bundle

    default = default_bundle_name()
    rows = []
    if args.model:  # just this bundle, fully checked
        path = resolve_bundle(args.model)
        try:
            found = [(path, load_bundle(path).spec)]
        except BundleError as exc:
            found = [(path, exc)]
    else:
        found = list_bundles(verify=True)
    for path, spec in found:
        if isinstance(spec, Exception):
            rows.append({"path": str(path), "error": str(spec)})
            continue
        rows.append({
            "name": spec["name"], "version": spec["version"], "bundle_id": spec["bundle_id"],
            "trained": bool(spec.get("trained", True)), "dim": spec["dim"], "members": len(spec["members"]),
            "description": spec.get("description", ""), "path": str(path), "default": path.name == default,
        })
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no model bundles installed")
    for r in rows:
        if "error" in r:
            print(f"  BROKEN  {r['path']}: {r['error']}")
            continue
        flag = "*" if r["default"] else " "
        state = "trained" if r["trained"] else "UNTRAINED — placeholder with random projection heads; results are not meaningful"
        print(f"{flag} {r['name']} {r['version']}  [{r['bundle_id'][:12]}]  dim {r['dim']}, {r['members']} members, {state}")
        print(f"    {r['path']}")
        if r["description"]:
            print(f"    {r['description']}")
    return 0


COMMANDS = {"index": cmd_index, "search": cmd_search, "similar": cmd_similar, "status": cmd_status,
            "remove": cmd_remove, "repair": cmd_repair, "models": cmd_models, "learn": cmd_learn}


#: Commands after which the ``earshot`` process leaves without tearing the interpreter down (:func:`run`).
QUICK_EXIT = frozenset({"search", "similar"})


def main(argv: list[str] | None = None) -> int:
    """Run one ``earshot`` command; return its exit status (in-process callers, tests)."""
    return _main(argv)[0]


def run() -> None:
    """The ``earshot`` console command and ``python -m engine.cli``: :func:`main`, then exit. After a quick
    command (:data:`QUICK_EXIT`) the process leaves at once, its output flushed, without the interpreter's
    teardown: freeing the few hundred thousand objects numpy, SQLAlchemy and the loaded indexes made is
    ~100 ms of a cold ``earshot search`` (issue 11), and nothing depends on it (the command closed the
    library; searching writes nothing else). Other commands (indexing, a Ray cluster's shutdown) exit as
    usual."""
    code, command = _main(None)
    if command not in QUICK_EXIT:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), a closed stream
            pass
    os._exit(code)


def _main(argv: list[str] | None) -> tuple[int, str]:
    """``(exit status, command)``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (("library", None), ("model", None), ("device", None), ("json", False), ("verbose", 0)):
        if not hasattr(args, name):
            setattr(args, name, default)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return _dispatch(args), args.command


def _dispatch(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except EarshotError as exc:
        return _fail(str(exc), 2 if type(exc).__name__ == "QueryError" else 1)
    except KeyboardInterrupt:
        print("earshot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # one clear line, never a traceback (unless -vv)
        from engine.storage import db

        if db.is_database_error(exc):
            return _fail(str(db.translate_error(exc, _db_path(args))), 1, exc, args)
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                return _fail(f"the disk is full ({exc.filename or ''}); free some space and run the command "
                             "again — what was committed before is kept", 1, exc, args)
            return _fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", 1, exc, args)
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with -vv for details)", 1, exc, args)


def _db_path(args) -> Path | None:
    from engine.library import DB_NAME, default_library_dir

    try:
        return (Path(args.library).expanduser() if args.library else default_library_dir()) / DB_NAME
    except Exception:
        return None


def _fail(message: str, code: int, exc: BaseException | None = None, args=None) -> int:
    if exc is not None and args is not None and args.verbose >= 2:
        log.error("details", exc_info=exc)
    print(_clean(f"earshot: error: {message}"), file=sys.stderr)
    return code


if __name__ == "__main__":
    run()

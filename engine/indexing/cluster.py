"""The Ray executor: decode + embed on a Ray cluster, commit here (``earshot index --cluster ADDRESS``).

Scanning, the plan and every database write stay on this machine: the cluster only turns batches of files
into :class:`~engine.indexing.batcher.FileResult`\\ s, through the same stages as a local run
(:func:`~engine.indexing.decode.decode` and the :class:`~engine.indexing.batcher.Batcher`), and the
indexer's :class:`~engine.indexing.committer.Committer` stores them exactly as it stores local results —
same resume, same bad-file records, same moves and deletions.

* Workers read the audio at the paths this machine scanned: every node must see the library's folders at
  the same paths (a NAS mounted alike everywhere) and have Earshot installed (``pip install
  earshot[cluster]``). The model bundle travels with the job (through Ray's object store), so workers need
  no copy of it.
* One task per batch of files (``files_per_task``), at most ``2 ×`` the cluster's CPUs in flight; results
  are taken in submission order, so file rows get the ids a local run gives them.
* A worker that dies mid-task (killed, out of memory, its node lost) costs only a retry: Ray runs the task
  again elsewhere (``max_retries``); nothing of it was committed. If a task still fails, the run stops with
  an error and what was committed stays — the next run does the rest.

Ray is an optional dependency (``earshot[cluster]``); this module imports it only when a run starts.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from engine.bundle import Bundle, load_bundle, weight_files
from engine.errors import LibraryError
from engine.indexing.batcher import Batcher, FileResult, embed_files
from engine.indexing.decode import decode
from engine.indexing.plan import Job
from engine.indexing.progress import CancelToken

log = logging.getLogger(__name__)


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise LibraryError("indexing on a cluster needs Ray: pip install 'earshot[cluster]'") from exc
    return ray


def bundle_files(bundle: Bundle) -> dict[str, bytes]:
    """A bundle folder as ``{relative POSIX path: bytes}`` (hidden files left out): what workers rebuild."""
    out = {}
    for p in sorted(bundle.path.rglob("*")):
        rel = p.relative_to(bundle.path)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = p.read_bytes()
    for name in weight_files(bundle.spec):  # one read from the shared copy beside it (an installed wheel)
        if name not in out:
            out[name] = bundle.file(name).read_bytes()
    return out


_worker_lock = threading.Lock()
_worker_models: dict[str, tuple[Bundle, object]] = {}  # bundle_id -> (bundle, encoder), per worker process


def _worker_model(bundle_id: str, files: dict[str, bytes]):
    """The bundle and its encoder in this worker process, written out and loaded once per bundle."""
    with _worker_lock:
        if bundle_id not in _worker_models:
            from engine.encoder import Encoder

            base = Path(tempfile.gettempdir()) / f"earshot-bundle-{bundle_id[:16]}-{os.getpid()}"
            for rel, data in files.items():
                dest = base / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            bundle = load_bundle(base)  # verifies the weights against bundle_id
            if bundle.bundle_id != bundle_id:
                raise LibraryError(f"the bundle sent to this worker is {bundle.bundle_id}, not {bundle_id}")
            _worker_models[bundle_id] = (bundle, Encoder(bundle))
        return _worker_models[bundle_id]


def embed_task(bundle_id: str, files: dict[str, bytes], jobs: list[Job], batch_windows: int) -> list[FileResult]:
    """Runs on a worker: decode and embed ``jobs`` through the same stages as a local run."""
    bundle, encoder = _worker_model(bundle_id, files)
    batcher = Batcher(encoder.embed_audio_features, batch_windows, bundle.dim)  # type: ignore[attr-defined]
    return list(embed_files(jobs, lambda job: decode(job, bundle, batch_windows), batcher))


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the address in the message, when a ``host:port`` cannot be reached (Ray itself
    keeps retrying for minutes)."""
    import socket

    if address in ("local", "auto") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise LibraryError(f"cannot reach the Ray cluster at {address!r} ({exc}); is `ray start --head` running "
                           "there?") from exc


class RayExecutor:
    """Decode + embed on a Ray cluster.

    ``address``: what ``ray.init`` takes (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``), ``"local"``
    to start a cluster on this machine, or ``None`` to use the Ray this process is already connected to.
    ``task``: the remote function (tests wrap :func:`embed_task` to kill a worker mid-task)."""

    def __init__(self, bundle: Bundle, address: str | None = "auto", *, files_per_task: int = 16,
                 batch_windows: int = 64, max_in_flight: int | None = None, max_retries: int = 3,
                 task: Callable[..., list[FileResult]] | None = None) -> None:
        self.bundle = bundle
        self.address = address
        self.files_per_task = max(1, files_per_task)
        self.batch_windows = batch_windows
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.task = task or embed_task

    def _connect(self):
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address is None:
                raise LibraryError("no Ray cluster: pass its address (or 'local')")
            _check_reachable(self.address)
            try:
                ray.init(address=None if self.address == "local" else self.address, include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError… depending on the address
                raise LibraryError(f"cannot reach the Ray cluster at {self.address!r}: {exc}") from exc
        return ray

    def results(self, jobs: Sequence[Job], cancel: CancelToken) -> Iterator[FileResult]:
        if not jobs:
            return
        ray = self._connect()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        limit = self.max_in_flight or max(2, 2 * cpus)
        remote = ray.remote(self.task).options(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        files_ref = ray.put(bundle_files(self.bundle))
        batches = [list(jobs[i : i + self.files_per_task]) for i in range(0, len(jobs), self.files_per_task)]
        log.info("indexing %d files in %d tasks on a Ray cluster of %d CPUs", len(jobs), len(batches), cpus)
        in_flight: deque = deque()
        nxt = 0
        try:
            while (nxt < len(batches) or in_flight) and not cancel.cancelled:
                while nxt < len(batches) and len(in_flight) < limit:
                    in_flight.append((batches[nxt], remote.remote(self.bundle.bundle_id, files_ref, batches[nxt],
                                                                  self.batch_windows)))
                    nxt += 1
                sent, ref = in_flight.popleft()
                try:
                    done = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise LibraryError(f"a cluster task failed after {self.max_retries} retries ({len(sent)} files "
                                       f"from {sent[0].path}); what was indexed is kept, run again: {exc}") from exc
                yield from done  # their jobs are the workers' copies, fingerprints filled in
        finally:
            for _, ref in in_flight:
                ray.cancel(ref, force=False)

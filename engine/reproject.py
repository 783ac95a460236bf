"""Re-projection: a bundle's vectors computed from the backbone features the library stored at index time.

Indexing keeps each window's frozen audio-backbone output (``features``, float16, keyed by
:func:`engine.bundle.backbone_key`). Any bundle whose members use backbones with the same keys (another
head, another ensemble, a bundle learned from the library) gets its vectors by running its heads over
those features — no audio is opened. Windows indexed before features were kept (schema < 4) cannot be
re-projected; :func:`reproject` counts them and the next ``earshot index`` decodes their files again.

Writer only. Vectors of other bundles are kept, so switching back is another (empty) re-projection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from engine.bundle import Bundle
from engine.errors import LibraryLockedError
from engine.storage import db

log = logging.getLogger(__name__)

BATCH = 8192


@dataclass
class ReprojectSummary:
    windows: int = 0  # vectors computed from stored features
    seconds: float = 0.0
    without_features: int = 0  # windows still lacking a vector (no stored features): their files need decoding
    files_without_features: int = 0
    cancelled: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def feature_keys(bundle: Bundle) -> dict[str, str]:
    """``{audio backbone name: backbone key}`` of the backbones a bundle's members use."""
    used = {m.audio_backbone for m in bundle.members}
    return {name: bundle.backbone_key(name) for name in sorted(used)}


def needs_reprojection(lib) -> bool:
    """Whether the library has stored features its bundle has no vectors for (cheap: one probe)."""
    keys = list(feature_keys(lib.bundle).values())
    dims = [lib.store.feature_dim(k) for k in keys]
    if any(d is None for d in dims):
        return False
    return lib.store.windows_to_project(lib.bundle.bundle_id, keys, dims, batch=1) is not None


def reproject(lib, *, cancel: Callable[[], bool] | None = None,
              on_progress: Callable[[int, int], None] | None = None, batch: int = BATCH) -> ReprojectSummary:
    """Give every window that has stored features but no vector of ``lib.bundle`` its vector (the bundle's
    heads over the features), in transactions of ``batch`` windows, bring the search index up to date and,
    unless cancelled, make the bundle the library's model (a kill or a cancel before that leaves the library
    on its previous model; the next call goes on where this one stopped).

    ``on_progress(done, total)`` in windows; ``cancel()`` stops after the current batch (what was stored is
    kept: the next call goes on). Takes the library's writer lock if it does not hold it yet.
    """
    t0 = time.perf_counter()
    cancel = cancel or (lambda: False)
    on_progress = on_progress or (lambda done, total: None)
    summary = ReprojectSummary()
    if not lib.is_writer:
        lib.acquire_writer(record_bundle=False)
    b = lib.bundle
    names_keys = feature_keys(b)
    names, keys = list(names_keys), list(names_keys.values())
    store = lib.store
    dims = [store.feature_dim(k) for k in keys]
    total, _ = store.windows_without_vectors(b.bundle_id)
    if total and all(d is not None for d in dims):
        encoder = lib.encoder
        after = 0
        on_progress(0, total)
        while not cancel():
            got = store.windows_to_project(b.bundle_id, keys, dims, after=after, batch=batch)  # type: ignore[arg-type]
            if got is None:
                break
            ids, feats, after = got
            if not len(ids):
                continue
            vecs = encoder.project_audio(dict(zip(names, feats, strict=True)))
            ok = np.isfinite(vecs).all(axis=1)
            ids, vecs = ids[ok], vecs[ok]
            gen = store.add_vectors(ids, vecs, b.bundle_id)
            lib.apply_commit(gen, ids, vecs.astype(db.VECTOR_DTYPE).astype(np.float32), [])
            summary.windows += len(ids)
            on_progress(summary.windows, total)
        summary.cancelled = cancel()
    summary.without_features, summary.files_without_features = store.windows_without_vectors(b.bundle_id)
    lib.sync_index()
    lib.save_index()
    if not summary.cancelled:  # complete: from now on the library opens with this bundle
        lib.record_bundle()
    summary.seconds = time.perf_counter() - t0
    if summary.without_features:
        log.info("%d windows of %d files have no stored features (indexed by an older Earshot); the next "
                 "`earshot index` decodes them again", summary.without_features, summary.files_without_features)
    return summary


def switch_if_needed(lib, *, on_progress: Callable[[int, int], None] | None = None) -> ReprojectSummary | None:
    """Make ``lib.bundle`` the library's model: when stored features can give it vectors it lacks,
    re-project (holding the writer lock for the time it takes). Returns the summary, or ``None`` when
    nothing was re-projected (nothing needed, or another process is writing: the switch waits for it)."""
    held = lib.is_writer
    try:
        if not needs_reprojection(lib):
            recorded = lib.store.meta("bundle_path")
            if recorded != str(lib.bundle.path.resolve()):
                lib.acquire_writer()  # records the bundle as the library's model
            return None
        return reproject(lib, on_progress=on_progress)
    except LibraryLockedError:
        log.warning("another process is writing to %s; the model switch waits for it", lib.path)
        return None
    finally:
        if not held:
            lib.release_writer()


def switch_to(lib, bundle: Bundle, *, cancel: Callable[[], bool] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> ReprojectSummary:
    """Writer: make ``bundle`` the library's model, its vectors re-projected from the stored features (the
    library stays on its previous model if this is cancelled or killed before the end)."""
    previous = lib.bundle
    lib.use_bundle(bundle)
    try:
        summary = reproject(lib, cancel=cancel, on_progress=on_progress)
    except BaseException:
        lib.use_bundle(previous)
        raise
    if summary.cancelled:
        lib.use_bundle(previous)
    return summary


def undo_learned(lib, *, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Switch a library from a learned model back to the model it was derived from. Its vectors are still in
    the database (only windows indexed since are re-projected), so this takes seconds. Raises
    :class:`~engine.errors.LearnError` when the library does not use a learned model."""
    from engine.bundle import base_of
    from engine.errors import LearnError

    current = lib.bundle
    if not current.spec.get("derived_from"):
        raise LearnError(f"the library uses {current.name} {current.version}, which was not learned from a "
                         "library: there is nothing to undo")
    base = base_of(current)
    t0 = time.perf_counter()
    held = lib.is_writer
    if not held:
        lib.acquire_writer(record_bundle=False)
    try:
        done = switch_to(lib, base, on_progress=on_progress)
    finally:
        if not held:
            lib.release_writer()
    return {"model": f"{base.name} {base.version}", "bundle": str(base.path),
            "from": f"{current.name} {current.version}", "reprojected_windows": done.windows,
            "seconds": time.perf_counter() - t0}

"""Embedding extraction with a verified, lock-protected, resumable cache, once per (encoder, corpus).

Extraction dominates a benchmark's cost, so it happens once: utterances are ordered by
length (so batches need little padding), cut into fixed chunks, and each finished chunk is
written atomically (jaxser.io: temp file + rename, mode 0666 minus the umask). The cache key
is the encoder fingerprint (config + weights + pooling) and the corpus fingerprint (file list,
sizes, mtimes). Layout of one entry (the folder to delete to drop it):

    <cache>/embeddings/v1/<encoder fingerprint>/<corpus>-<corpus fingerprint>/
        embeddings.npz              ids (dataset order), x [N, layers, dim], skipped ids + why
        embeddings.npz.sha256.json  its checksum, written after it
        info.json                   what the entry holds (for people; never trusted)
        .lock                       held by the process extracting into the entry
        chunk-<size>-<index>.npz    (+ .sha256.json) only while extracting

Guarantees:
- Verified: a file is used only if its sha256 sidecar matches (a file without one, from an
  older version or a kill between the two writes, must load cleanly with its zip CRCs and is
  then adopted), it loads, its shapes fit the encoder, its embeddings are finite, and a final
  file holds every utterance of the corpus (minus the listed skipped ones).
- Healing: a damaged file (truncated, overwritten, one flipped bit, unloadable) is named in a
  warning and recomputed; a non-finite cached embedding is named and only that utterance is
  recomputed; an incomplete final file keeps what it has and the rest is computed.
- Resumable whatever the chunk size: chunk files are named by chunk size, and a run whose
  chunk size differs from the interrupted one's reuses the earlier files' embeddings by
  utterance id, so only what was lost is recomputed (bit-identical to an uninterrupted run for
  an encoder whose output does not depend on batch mates; batched XLA kernels may differ in
  the last bits, as between two runs with different batch settings).
- One extraction per entry: a process takes an exclusive `flock` on the entry's `.lock`; a
  second one waits (saying so) and then reuses the finished file. The lock is not taken in
  multi-host mode, whose hosts cooperate through chunk files instead.
- Stops (never heals) on what needs the user: unreadable audio or a non-finite embedding of
  an utterance (`jaxser.audio.AudioError` naming the file; `skip_errors` skips and lists
  them), a cache folder that cannot be written (`jaxser.errors.CacheError`), and a system
  error on a cache file, e.g. a full disk (`jaxser.errors.StorageError` naming the file; the
  chunks already written are kept for the re-run).

Multi-host (jax.process_count() > 1, cache folder shared by every host): host p extracts
chunks p, p + P, p + 2P, ... (strided over the length-sorted chunks, so every host gets a
similar mix of lengths, and chunk files do not depend on the host count, so a resumed run may
use a different one); process 0 waits until every chunk's checksum file exists (a file-based
barrier), assembles the final file (recomputing a chunk it finds damaged), and the other
hosts wait for that file. See docs/scaling.md and docs/failure-and-recovery.md.

CLI: `python -m jaxser.embed --encoder NAME --corpus NAME=ROOT [--corpus ...]`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from jaxser import audio
from jaxser import io as jio
from jaxser.corpora.schema import fingerprint as corpus_fingerprint, segments
from jaxser.errors import CacheError, report

log = logging.getLogger(__name__)

CACHE_VERSION = 1
FINAL = "embeddings.npz"
LOCK = ".lock"
SIDECAR = ".sha256.json"

# Test hooks: called with the entry folder when its lock is found busy (before waiting) and
# once the lock is held, so tests can order two processes on events instead of sleeps.
_on_lock_busy: Callable[[Path], None] | None = None
_on_lock_held: Callable[[Path], None] | None = None


@dataclass
class Embeddings:
    """Embeddings of one corpus: `x[i]` ([layers, dim]) belongs to utterance `ids[i]`.

    `skipped` lists utterances whose audio was refused (with skip_errors) and why.
    """

    ids: list[str]
    x: np.ndarray
    skipped: dict[str, str]
    path: Path | None = None

    def take(self, ids) -> np.ndarray:
        if getattr(self, "_index", None) is None:
            self._index = {u: i for i, u in enumerate(self.ids)}
        index = self._index
        missing = [u for u in ids if u not in index]
        if missing:
            raise KeyError(f"{len(missing)} utterances have no embedding (first: {missing[0]}); "
                           f"skipped: {[self.skipped.get(u, 'not extracted') for u in missing[:3]]}")
        return self.x[[index[u] for u in ids]]


# An entry maps an utterance id to its embedding [layers, dim], or to why it was skipped.
Entries = dict[str, "np.ndarray | str"]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def _write_file(path: Path, ids: list[str], x: np.ndarray, skipped: dict[str, str]) -> None:
    """Data file, then its checksum sidecar: the sidecar is removed first, so one that exists
    always describes the data file beside it."""
    digest: dict = {}

    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, ids=np.array(ids, dtype=str), x=np.asarray(x, np.float32),
                     skipped_ids=np.array(list(skipped), dtype=str),
                     skipped_why=np.array(list(skipped.values()), dtype=str))
        digest.update(sha256=jio.sha256_file(tmp), size=os.path.getsize(tmp))

    _sidecar(path).unlink(missing_ok=True)
    jio.atomic_write(path, w)
    jio.atomic_write_json(_sidecar(path), {"file": path.name, **digest})


def _write_entries(path: Path, order: list[str], entries: Entries, layers: int, dim: int) -> None:
    keep = [u for u in order if not isinstance(entries[u], str)]
    x = np.stack([entries[u] for u in keep]) if keep else np.zeros((0, layers, dim), np.float32)
    _write_file(path, keep, x, {u: entries[u] for u in order if isinstance(entries[u], str)})


def _read_file(path: Path, layers: int, dim: int, *, quiet: bool = False, adopt: bool | None = None):
    """(ids, x, skipped) of a verified cache file, or None when it is missing or damaged (a
    damaged one is named in a warning unless `quiet`). A file without a checksum that loads
    cleanly gets one when `adopt` (default: not quiet; only where nobody else writes it)."""
    if not path.exists():
        return None
    side = _sidecar(path)
    try:
        meta = None
        if side.exists():
            try:
                meta = json.loads(side.read_text())
                want_sha, want_size = str(meta["sha256"]), int(meta["size"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"its checksum file {side.name} is unreadable") from None
            if path.stat().st_size != want_size:
                raise ValueError(f"{path.stat().st_size} bytes where {want_size} were written (truncated or "
                                 "overwritten)")
            if jio.sha256_file(path) != want_sha:
                raise ValueError("sha256 differs from the one recorded when it was written (overwritten or bit rot)")
        with np.load(path, allow_pickle=False) as z:  # reads every member whole: zip CRCs are checked
            ids = [str(u) for u in z["ids"]]
            x = np.asarray(z["x"])
            skipped = dict(zip((str(u) for u in z["skipped_ids"]), (str(w) for w in z["skipped_why"])))
            if len(z["skipped_ids"]) != len(z["skipped_why"]):
                raise ValueError("skipped ids and reasons differ in length")
        if x.dtype != np.float32 or x.shape != (len(ids), layers, dim):
            raise ValueError(f"x is {x.dtype} {x.shape}, expected float32 ({len(ids)}, {layers}, {dim})")
        if len(set(ids)) != len(ids) or set(ids) & set(skipped):
            raise ValueError("an utterance id occurs twice")
    except Exception as e:  # noqa: BLE001 - any failure to read means: not trusted, recompute
        jio.raise_system_fault(e, path)  # ... but a permission or open-file limit is not damage
        if not quiet:
            log.warning("%s: damaged embedding cache file (%s: %s); it is recomputed", path, type(e).__name__, e)
        return None
    if meta is None and (not quiet if adopt is None else adopt):  # older version, or killed before its sidecar
        jio.atomic_write_json(side, {"file": path.name, "sha256": jio.sha256_file(path),
                                     "size": path.stat().st_size})
    return ids, x, skipped


def _entries(path: Path, content, wanted: set[str], skip_errors: bool, *, quiet: bool = False) -> Entries:
    """The usable entries of a read file: finite embeddings of wanted utterances, and skips
    only when skipping is allowed (else those files are decoded again and fail loudly)."""
    ids, x, skipped = content
    finite = np.isfinite(x.reshape(len(ids), -1)).all(axis=1) if len(ids) else np.ones(0, bool)
    bad = [u for u, ok in zip(ids, finite) if not ok]
    if bad and not quiet:
        log.warning("%s: non-finite cached embedding for %d utterance(s) (first: %s); they are recomputed",
                    path, len(bad), ", ".join(bad[:3]))
    out: Entries = {u: x[i] for i, u in enumerate(ids) if finite[i] and u in wanted}
    if skip_errors:
        out.update((u, w) for u, w in skipped.items() if u in wanted)
    return out


def _trusted_final(final: Path, ids: list[str], layers: int, dim: int, skip_errors: bool,
                   *, quiet: bool, adopt: bool | None = None) -> tuple[Embeddings | None, Entries, dict[str, str]]:
    """(the final file's Embeddings if it is verified and complete, else None; its usable
    entries; the skips it lists)."""
    content = _read_file(final, layers, dim, quiet=quiet, adopt=adopt)
    if content is None:
        return None, {}, {}
    f_ids, x, skipped = content
    entries = _entries(final, content, set(ids), skip_errors, quiet=quiet)
    if len(entries) == len(ids) and len(f_ids) + len(skipped) == len(ids):
        expected = [u for u in ids if u not in skipped]
        if f_ids != expected:  # complete but in another order: put it in dataset order
            x = np.stack([entries[u] for u in expected]) if expected else x
        return Embeddings(expected, x, skipped, final), entries, skipped
    lost = len(set(ids) - set(f_ids) - set(skipped))
    if lost and not quiet:
        log.warning("%s: incomplete (%d of the corpus's %d utterances missing); the missing ones are computed",
                    final, lost, len(ids))
    return None, entries, skipped


def _batches(order: list[int], lengths: dict[int, int], max_batch_samples: int, max_batch: int) -> list[list[int]]:
    """Consecutive (length-sorted) utterances grouped so padded batch size stays in budget."""
    out, cur = [], []
    for i in order:
        longest = max([lengths[j] for j in cur] + [lengths[i]])
        if cur and (longest * (len(cur) + 1) > max_batch_samples or len(cur) >= max_batch):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def cache_dir_for(encoder, ds, cache: str | os.PathLike | None = None) -> Path:
    corpus = ds[0]["corpus"] if len(ds) else "empty"
    return Path(cache or jio.cache_root()) / "embeddings" / f"v{CACHE_VERSION}" / f"{encoder.fingerprint}" / \
        f"{corpus}-{corpus_fingerprint(ds)}"


BARRIER_TIMEOUT = float(os.environ.get("JAXSER_BARRIER_TIMEOUT", 24 * 3600))  # seconds


def _process_info() -> tuple[int, int]:
    """(index, count) from jax when it is loaded; a process that never imported jax cannot
    have joined a jax.distributed job, so it is (0, 1) without paying jax's import."""
    jax = sys.modules.get("jax")
    return (jax.process_index(), jax.process_count()) if jax is not None else (0, 1)


def _wait_for(ready: Callable[[], bool], what: Callable[[], str], timeout: float, poll: float = 1.0) -> None:
    t0 = time.monotonic()
    while not ready():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"waited {timeout:.0f}s for {what()}; is the cache folder shared by every host "
                               "and did every host run the same command? (JAXSER_BARRIER_TIMEOUT sets the limit)")
        time.sleep(poll)


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as e:
        raise CacheError(f"{path}: cannot write the embedding cache there ({e.strerror or e}); set "
                         "JAXSER_CACHE or --cache to a writable folder") from None


@contextmanager
def _entry_lock(out_dir: Path) -> Iterator[None]:
    """Exclusive lock on the entry (`jaxser.io.exclusive_lock`), so one process extracts while
    another waits for it and then reuses its result (instead of both computing everything)."""
    _make_dir(out_dir)

    def busy(holder: str) -> None:
        log.warning("%s: %s is extracting these embeddings; waiting for it to finish, then its result is "
                    "reused", out_dir, holder)
        if _on_lock_busy is not None:
            _on_lock_busy(out_dir)

    with jio.exclusive_lock(out_dir / LOCK, on_busy=busy):
        if _on_lock_held is not None:
            _on_lock_held(out_dir)
        yield


def embed(encoder, ds, *, cache: str | os.PathLike | None = None, chunk_size: int = 256,
          max_batch_seconds: float = 60.0, max_batch: int = 32, skip_errors: bool = False,
          progress: bool = True, stop_after_chunks: int | None = None, process_index: int | None = None,
          process_count: int | None = None, barrier_timeout: float | None = None) -> Embeddings:
    """Embeddings `[N, layers, dim]` of every utterance of `ds` (a unified-schema Dataset).

    Bad audio, or audio whose embedding is not finite, raises `jaxser.audio.AudioError`
    naming the file, or with `skip_errors` is skipped and listed. `stop_after_chunks` exists
    for tests that simulate a crash. process_index / process_count default to jax's
    (multi-host split, see the module doc); barrier_timeout (seconds) bounds the wait for the
    other hosts.
    """
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    out_dir = cache_dir_for(encoder, ds, cache)
    final = out_dir / FINAL
    ids = list(ds["id"])
    layers, dim = encoder.num_layers, encoder.dim
    # fast path, without the lock; a file without a checksum is adopted under it, unless the
    # entry is read-only (a shared cache), where its zip CRCs are all there is to check
    if _sidecar(final).exists() or (final.exists() and not os.access(out_dir, os.W_OK)):
        got, _, _ = _trusted_final(final, ids, layers, dim, skip_errors, quiet=True, adopt=False)
        if got is not None:
            return got
    pi, pc = _process_info()
    pi = pi if process_index is None else int(process_index)
    pc = pc if process_count is None else int(process_count)
    if not 0 <= pi < pc:
        raise ValueError(f"process_index {pi} is outside 0..{pc - 1}")
    job = _Extraction(encoder, ds, out_dir, chunk_size=int(chunk_size), max_batch_seconds=max_batch_seconds,
                      max_batch=max_batch, skip_errors=skip_errors, progress=progress,
                      stop_after_chunks=stop_after_chunks, pi=pi, pc=pc,
                      timeout=BARRIER_TIMEOUT if barrier_timeout is None else float(barrier_timeout))
    if pc > 1:  # hosts cooperate through chunk files; a lock would serialise them
        _make_dir(out_dir)
        return job.run()
    with _entry_lock(out_dir):
        got, _, _ = _trusted_final(final, ids, layers, dim, skip_errors, quiet=True, adopt=True)
        if got is not None:  # finished by the process we waited for
            return got
        for tmp in out_dir.glob(".*.tmp"):  # left by a killed process (we hold the lock: nobody writes)
            tmp.unlink(missing_ok=True)
        return job.run()


class _Extraction:
    """One (encoder, corpus) extraction into an entry folder: plan, chunks, assembly."""

    def __init__(self, encoder, ds, out_dir: Path, *, chunk_size, max_batch_seconds, max_batch, skip_errors,
                 progress, stop_after_chunks, pi, pc, timeout):
        self.encoder, self.out_dir, self.final = encoder, out_dir, out_dir / FINAL
        self.ids, self.paths = list(ds["id"]), list(ds["audio"])
        self.spans = segments(ds)  # (start, end) of rows that are segments of a longer file
        self.corpus = ds[0]["corpus"] if self.ids else ""
        self.layers, self.dim = encoder.num_layers, encoder.dim
        self.chunk_size, self.skip_errors, self.progress = chunk_size, skip_errors, progress
        self.stop_after_chunks, self.pi, self.pc, self.timeout = stop_after_chunks, pi, pc, timeout
        self.sr = encoder.sample_rate
        self.max_batch_samples, self.max_batch = int(max_batch_seconds * self.sr), max_batch
        # a NaN duration (header unreadable) sorts first; decoding then names the file
        durations = np.asarray(ds["duration"], dtype=np.float64)
        samples = np.nan_to_num(durations, nan=0.0, posinf=0.0, neginf=0.0) * self.sr
        order = sorted(range(len(self.ids)), key=lambda i: (samples[i], self.ids[i]))  # deterministic
        self.chunks = [order[i:i + chunk_size] for i in range(0, len(order), chunk_size)]

    def _load(self, i: int) -> np.ndarray:
        start, end = self.spans[i]
        return audio.load(self.paths[i], sample_rate=self.sr, start=start, end=end)

    def chunk_file(self, ci: int) -> Path:
        return self.out_dir / f"chunk-{self.chunk_size}-{ci:05d}.npz"

    def _salvage(self) -> Entries:
        """Usable entries of files this plan does not name: an untrusted final file and chunks
        of another chunk size (an interrupted run with other settings)."""
        wanted = set(self.ids)
        _, out, refused = _trusted_final(self.final, self.ids, self.layers, self.dim, self.skip_errors, quiet=False)
        if not self.skip_errors:  # files an earlier run skipped: fail now, before rewriting any chunk
            where = {u: i for i, u in enumerate(self.ids)}
            for u in refused:
                if u in where:
                    self._load(where[u])  # raises its AudioError
        sizes = set()
        for f in sorted(self.out_dir.glob("chunk-*.npz")):
            if f.name.startswith(f"chunk-{self.chunk_size}-"):
                continue
            content = _read_file(f, self.layers, self.dim)
            if content is not None:
                out.update(_entries(f, content, wanted, self.skip_errors))
                sizes.add(f.name.split("-")[1])
        if out:
            log.warning("%s: reusing %d embeddings from an earlier run's files%s; computing the rest",
                        self.out_dir, len(out), f" (chunk size {', '.join(sorted(sizes))})" if sizes else "")
        return out

    def _compute(self, todo: list[int], pool: ThreadPoolExecutor, bar) -> Entries:
        """Decode and embed utterances `todo` (indices); refused ones become skip reasons."""
        enc, ids = self.encoder, self.ids
        out: Entries = {}

        def decode(i):
            try:
                return self._load(i), None
            except audio.AudioError as e:
                if not self.skip_errors:
                    raise
                return None, str(e)

        results = list(pool.map(decode, todo))  # decoding overlaps within the chunk
        waves = {i: w for i, (w, _) in zip(todo, results) if w is not None}
        for i, (_, err) in zip(todo, results):
            if err is not None:
                out[ids[i]] = err
        good = [i for i in todo if i in waves]
        for batch in _batches(good, {i: len(waves[i]) for i in good}, self.max_batch_samples, self.max_batch):
            emb = enc.embed([waves[i] for i in batch])
            for i, e in zip(batch, emb):
                if np.all(np.isfinite(e)):
                    out[ids[i]] = e
                    continue
                why = f"the {enc.name} embedding is not finite (NaN or Inf; extreme sample values?)"
                if not self.skip_errors:
                    raise audio.AudioError(self.paths[i], f"{why}; --skip-errors (skip_errors=True) skips and "
                                                          "lists such files")
                out[ids[i]] = str(audio.AudioError(self.paths[i], why))
            bar.update(len(batch))
        bar.update(len(todo) - len(good))
        return out

    def _chunk(self, ci: int, pool, bar, salvage: Entries, *, count: bool) -> Entries:
        """Chunk `ci`'s entries: its verified file, else what can be reused plus what is computed."""
        want = [self.ids[i] for i in self.chunks[ci]]
        f = self.chunk_file(ci)
        content = _read_file(f, self.layers, self.dim)
        have = _entries(f, content, set(want), self.skip_errors) if content is not None else {}
        if len(have) == len(want):
            bar.update(len(want))
            return have
        have.update((u, salvage[u]) for u in want if u not in have and u in salvage)
        todo = [i for i in self.chunks[ci] if self.ids[i] not in have]
        bar.update(len(want) - len(todo))
        if todo and count:
            if self.stop_after_chunks is not None and self.done >= self.stop_after_chunks:
                raise KeyboardInterrupt(f"simulated interruption after {self.done} chunks")
            self.done += 1
        have.update(self._compute(todo, pool, bar))
        _write_entries(f, want, have, self.layers, self.dim)
        return have

    def run(self) -> Embeddings:
        from tqdm.auto import tqdm

        jio.atomic_write_json(self.out_dir / "info.json", {
            "encoder": self.encoder.name, "encoder_fingerprint": self.encoder.fingerprint, "corpus": self.corpus,
            "n": len(self.ids), "chunk_size": self.chunk_size, "layers": self.layers, "dim": self.dim,
            "version": CACHE_VERSION})
        salvage = self._salvage()
        self.done = 0
        parts: dict[int, Entries] = {}
        bar = tqdm(total=len(self.ids), desc=f"embed {self.encoder.name} / {self.corpus}", unit="utt",
                   disable=not self.progress, leave=False)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for ci in range(self.pi, len(self.chunks), self.pc):  # this host's chunks
                    parts[ci] = self._chunk(ci, pool, bar, salvage, count=True)
                if self.pc > 1 and self.pi != 0:
                    return self._wait_for_final()
                if self.pc > 1:
                    self._barrier()
                for ci in range(len(self.chunks)):  # other hosts' chunks (process 0 heals a damaged one)
                    if ci not in parts:
                        parts[ci] = self._chunk(ci, pool, bar, salvage, count=False)
        finally:
            bar.close()
        entries: Entries = {}
        for p in parts.values():
            entries.update(p)
        _write_entries(self.final, self.ids, entries, self.layers, self.dim)
        for f in self.out_dir.glob("chunk-*"):  # folded into the final file (written first)
            f.unlink(missing_ok=True)
        keep = [u for u in self.ids if not isinstance(entries[u], str)]
        x = np.stack([entries[u] for u in keep]) if keep else np.zeros((0, self.layers, self.dim), np.float32)
        return Embeddings(keep, x.astype(np.float32, copy=False),
                          {u: entries[u] for u in self.ids if isinstance(entries[u], str)}, self.final)

    def _barrier(self) -> None:
        def missing():
            return [ci for ci in range(len(self.chunks)) if not _sidecar(self.chunk_file(ci)).exists()]

        _wait_for(lambda: not missing(),
                  lambda: f"chunks {missing()[:5]} of {self.out_dir} (written by processes "
                          f"{sorted({ci % self.pc for ci in missing()})})", self.timeout)

    def _wait_for_final(self) -> Embeddings:
        """Process 0 assembles; wait for its verified file so every host returns the same result."""
        seen, got = [None], [None]

        def ready():
            try:
                key = (_sidecar(self.final).stat().st_mtime_ns, self.final.stat().st_mtime_ns)
            except FileNotFoundError:
                return False
            if key != seen[0]:  # hash only a new file, not the same one every poll
                seen[0] = key
                got[0], _, _ = _trusted_final(self.final, self.ids, self.layers, self.dim, self.skip_errors,
                                              quiet=True)
            return got[0] is not None

        _wait_for(ready, lambda: f"process 0 to write {self.final}", self.timeout)
        return got[0]


def _parse_corpus(spec: str) -> tuple[str, str | None]:
    name, _, root = spec.partition("=")
    return name, (root or None)


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _main(argv=None) -> int:
    from jaxser import encoders
    from jaxser.errors import add_debug_option
    from jaxser.encoders.base import DTYPES
    from jaxser.study.config import DEVICE_MESHES
    from jaxser.study.run import encoder_options, load_corpus

    p = argparse.ArgumentParser(allow_abbrev=False, prog="jaxser embed", description="Extract and cache embeddings.")
    p.add_argument("--encoder", action="append", required=True, help="registry name, Hub id, handle or folder")
    p.add_argument("--corpus", action="append", required=True, help="NAME=ROOT (synthetic corpora: NAME)")
    p.add_argument("--cache", default=None, help=f"cache folder (default {jio.cache_root()})")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip and list unreadable audio (and audio whose embedding is not finite) instead of failing")
    p.add_argument("--chunk-size", type=_positive_int, default=256,
                   help="utterances per checkpoint file (default 256): an interrupted run loses at most one chunk; "
                        "a resumed run may use another size and still reuses what was extracted")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="compute dtype of the JAX encoders (wav2vec2 family, Whisper, w2v-BERT, emotion2vec; the "
                        "others compute in float32); part of the cache key (default %(default)s)")
    p.add_argument("--mesh", choices=DEVICE_MESHES, default="none",
                   help="'auto': split each batch over this host's devices; 'none': one device (default)")
    add_debug_option(p)
    a = p.parse_args(argv)
    for enc_name in a.encoder:
        enc = encoders.load(enc_name, **encoder_options(enc_name, a.dtype, a.mesh))
        for spec in a.corpus:
            name, root = _parse_corpus(spec)
            ds = load_corpus(name, root, {}, a.skip_errors)  # registry, synthetic or manifest: as `jaxser run`
            t0 = time.perf_counter()
            e = embed(enc, ds, cache=a.cache, skip_errors=a.skip_errors, chunk_size=a.chunk_size)
            print(f"{enc_name} x {name}: {e.x.shape} in {time.perf_counter() - t0:.1f}s -> {e.path}"
                  + (f" ({len(e.skipped)} skipped)" if e.skipped else ""))
            for u, why in list(e.skipped.items())[:20]:
                print(f"  skipped {u}: {why}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    """The CLI: a user error prints one line and exits 2 (jaxser.errors.report)."""
    return report(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Embedding extraction with a crash-safe cache, once per (encoder, corpus).

Extraction dominates a benchmark's cost, so it happens once: utterances are ordered by
length (so batches need little padding), cut into fixed chunks, and each finished chunk is
written atomically (temp file + rename). A run killed at any moment resumes from the last
finished chunk and never reads a half-written file. The cache key is the encoder fingerprint
(config + weights + pooling) and the corpus fingerprint (file list, sizes, mtimes).

Multi-host (jax.process_count() > 1, cache folder shared by every host): host p extracts
chunks p, p + P, p + 2P, ... (strided over the length-sorted chunks, so every host gets a
similar mix of lengths, and chunk files do not depend on the host count, so a resumed run may
use a different one); process 0 waits until every chunk file exists (a file-based barrier),
assembles the final file, and the other hosts wait for that file. See docs/scaling.md.

CLI: `python -m jaxser.embed --encoder NAME --corpus NAME=ROOT [--corpus ...]`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from jaxser import audio
from jaxser.corpora.schema import fingerprint as corpus_fingerprint

CACHE_VERSION = 1


def cache_root() -> Path:
    """$JAXSER_CACHE, else ~/.cache/jaxser."""
    return Path(os.environ.get("JAXSER_CACHE", Path.home() / ".cache" / "jaxser")).expanduser()


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


def _atomic_save(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    _atomic_save(Path(path), w)


def _save_npz(path: Path, **arrays) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    _atomic_save(path, w)


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
    return Path(cache or cache_root()) / "embeddings" / f"v{CACHE_VERSION}" / f"{encoder.fingerprint}" / \
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


def embed(encoder, ds, *, cache: str | os.PathLike | None = None, chunk_size: int = 256,
          max_batch_seconds: float = 60.0, max_batch: int = 32, skip_errors: bool = False,
          progress: bool = True, stop_after_chunks: int | None = None, process_index: int | None = None,
          process_count: int | None = None, barrier_timeout: float | None = None) -> Embeddings:
    """Embeddings `[N, layers, dim]` of every utterance of `ds` (a unified-schema Dataset).

    Bad audio raises `jaxser.audio.AudioError` naming the file, or with `skip_errors` is
    skipped and listed. `stop_after_chunks` exists for tests that simulate a crash.
    process_index / process_count default to jax's (multi-host split, see the module doc);
    barrier_timeout (seconds) bounds the wait for the other hosts.
    """
    from tqdm.auto import tqdm

    out_dir = cache_dir_for(encoder, ds, cache)
    final = out_dir / "embeddings.npz"
    if final.exists():
        return _load_final(final)
    pi, pc = _process_info()
    pi = pi if process_index is None else int(process_index)
    pc = pc if process_count is None else int(process_count)
    if not 0 <= pi < pc:
        raise ValueError(f"process_index {pi} is outside 0..{pc - 1}")
    timeout = BARRIER_TIMEOUT if barrier_timeout is None else float(barrier_timeout)
    ids = list(ds["id"])
    paths = list(ds["audio"])
    durations = np.asarray(ds["duration"], dtype=np.float64)
    sr = encoder.sample_rate
    samples = np.nan_to_num(durations, nan=0.0) * sr
    order = sorted(range(len(ids)), key=lambda i: (samples[i], ids[i]))  # deterministic, length-sorted
    chunks = [order[i:i + chunk_size] for i in range(0, len(order), chunk_size)]
    atomic_write_text(out_dir / "info.json", json.dumps({
        "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint, "corpus": ds[0]["corpus"] if ids else "",
        "n": len(ids), "chunk_size": chunk_size, "layers": encoder.num_layers, "dim": encoder.dim,
        "version": CACHE_VERSION}, indent=1))
    done = 0
    bar = tqdm(total=len(ids), desc=f"embed {encoder.name} / {ds[0]['corpus'] if ids else ''}", unit="utt",
               disable=not progress, leave=False)
    max_batch_samples = int(max_batch_seconds * sr)

    def decode(i):
        try:
            return audio.load(paths[i], sample_rate=sr), None
        except audio.AudioError as e:
            if not skip_errors:
                raise
            return None, str(e)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for ci, chunk in enumerate(chunks):
            f = out_dir / f"chunk-{ci:05d}.npz"
            if ci % pc != pi:  # another host's chunk
                continue
            if f.exists():
                bar.update(len(chunk))
                continue
            if stop_after_chunks is not None and done >= stop_after_chunks:
                bar.close()
                raise KeyboardInterrupt(f"simulated interruption after {done} chunks")
            results = list(pool.map(decode, chunk))  # decoding overlaps within the chunk
            good = [i for i, (w, _) in zip(chunk, results) if w is not None]
            waves = {i: w for i, (w, _) in zip(chunk, results) if w is not None}
            skipped = {ids[i]: err for i, (_, err) in zip(chunk, results) if err is not None}
            xs: dict[int, np.ndarray] = {}
            for batch in _batches(good, {i: len(waves[i]) for i in good}, max_batch_samples, max_batch):
                emb = encoder.embed([waves[i] for i in batch])
                for i, e in zip(batch, emb):
                    xs[i] = e
                bar.update(len(batch))
            bar.update(len(chunk) - len(good))
            x = np.stack([xs[i] for i in good]) if good else np.zeros((0, encoder.num_layers, encoder.dim), np.float32)
            if not np.all(np.isfinite(x)):
                bad = [ids[i] for i, e in zip(good, x) if not np.all(np.isfinite(e))]
                raise FloatingPointError(f"{encoder.name}: non-finite embeddings for {bad[:3]} (of {len(bad)})")
            _save_npz(f, ids=np.array([ids[i] for i in good], dtype=object).astype(str), x=x.astype(np.float32),
                      skipped_ids=np.array(list(skipped), dtype=str), skipped_why=np.array(list(skipped.values()),
                                                                                         dtype=str))
            done += 1
    bar.close()
    if pc > 1:
        if pi != 0:  # process 0 assembles; wait for its file so every host returns the same result
            _wait_for(final.exists, lambda: f"process 0 to write {final}", timeout)
            return _load_final(final)

        def missing():
            return [ci for ci in range(len(chunks)) if not (out_dir / f"chunk-{ci:05d}.npz").exists()]

        _wait_for(lambda: not missing(),
                  lambda: f"chunks {missing()[:5]} of {out_dir} (written by processes "
                          f"{sorted({ci % pc for ci in missing()})})", timeout)
    # assemble in dataset order, then remove chunks (the final file is written first)
    parts = [np.load(out_dir / f"chunk-{ci:05d}.npz") for ci in range(len(chunks))]
    got_ids = [str(u) for p in parts for u in p["ids"]]
    xs_all = np.concatenate([p["x"] for p in parts]) if parts else np.zeros((0, encoder.num_layers, encoder.dim))
    skipped = {str(u): str(w) for p in parts for u, w in zip(p["skipped_ids"], p["skipped_why"])}
    pos = {u: i for i, u in enumerate(got_ids)}
    keep = [u for u in ids if u in pos]
    x = xs_all[[pos[u] for u in keep]] if keep else xs_all
    _save_npz(final, ids=np.array(keep, dtype=str), x=x.astype(np.float32),
              skipped_ids=np.array(list(skipped), dtype=str), skipped_why=np.array(list(skipped.values()), dtype=str))
    for ci in range(len(chunks)):
        (out_dir / f"chunk-{ci:05d}.npz").unlink(missing_ok=True)
    return _load_final(final)


def _load_final(path: Path) -> Embeddings:
    with np.load(path) as z:
        return Embeddings([str(u) for u in z["ids"]], z["x"],
                          {str(u): str(w) for u, w in zip(z["skipped_ids"], z["skipped_why"])}, path)


def _parse_corpus(spec: str) -> tuple[str, str | None]:
    name, _, root = spec.partition("=")
    return name, (root or None)


def main(argv=None) -> int:
    from jaxser import corpora, encoders

    p = argparse.ArgumentParser(prog="jaxser embed", description="Extract and cache embeddings.")
    p.add_argument("--encoder", action="append", required=True, help="registry name, Hub id, handle or folder")
    p.add_argument("--corpus", action="append", required=True, help="NAME=ROOT (synthetic corpora: NAME)")
    p.add_argument("--cache", default=None, help=f"cache folder (default {cache_root()})")
    p.add_argument("--skip-errors", action="store_true", help="skip and list unreadable audio instead of failing")
    p.add_argument("--chunk-size", type=int, default=256)
    a = p.parse_args(argv)
    for enc_name in a.encoder:
        enc = encoders.load(enc_name)
        for spec in a.corpus:
            name, root = _parse_corpus(spec)
            ds = corpora.load(name, root)
            t0 = time.perf_counter()
            e = embed(enc, ds, cache=a.cache, skip_errors=a.skip_errors, chunk_size=a.chunk_size)
            print(f"{enc_name} x {name}: {e.x.shape} in {time.perf_counter() - t0:.1f}s -> {e.path}"
                  + (f" ({len(e.skipped)} skipped)" if e.skipped else ""))
            for u, why in list(e.skipped.items())[:20]:
                print(f"  skipped {u}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

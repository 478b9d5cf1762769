"""The one interface every encoder (Flax, TF-Hub, handcrafted) implements.

`embed(waveforms) -> [batch, layers, dim]`: every hidden state mean-pooled over the
utterance's valid frames, so a layer choice never needs re-extraction. Embeddings must be
batch-invariant: an utterance's output never depends on what else is in its batch.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxser.errors import UserError


class EncoderError(UserError, ValueError):
    """A missing, mismatched or unusable model (checkpoint, config, SavedModel signature)."""


class Encoder:
    """Base class. Subclasses set the attributes and implement `_embed`.

    Attributes:
      name: registry name or path the encoder was loaded from.
      sample_rate: input rate (16 kHz for every model jaxser ships).
      dim: embedding width D.
      num_layers: size of the layers axis L of `embed`'s output (hidden layers + 1 for
        transformer encoders, whose output 0 is the input to the first layer; 1 for
        single-vector models such as TRILLsson or eGeMAPS).
      fingerprint: digest of config + weights + pooling; the embedding cache key.
      provenance: where the weights came from, as a run's manifest records it (Hub repo and
        commit or local folder, sha256 of each weight file; TF-Hub handle and model digest);
        None for weights made in-process (random controls, handcrafted features).
    """

    name: str = "encoder"
    sample_rate: int = 16_000
    dim: int
    num_layers: int
    fingerprint: str
    provenance: dict | None = None

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """[B] list of 1-D float32 16 kHz waveforms -> float32 [B, num_layers, dim]."""
        if len(waveforms) == 0:
            return np.zeros((0, self.num_layers, self.dim), np.float32)
        out = np.asarray(self._embed(check_waveforms(self.name, waveforms)), dtype=np.float32)
        expected = (len(waveforms), self.num_layers, self.dim)
        if out.shape != expected:
            raise AssertionError(f"{self.name}: embed returned {out.shape}, expected {expected}")
        return out

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layers={self.num_layers}, dim={self.dim})"


class BucketStats:
    """What the jitted, length-bucketed encoders share: the padded-batch loop (`_run`), pooled
    and frame-level embedding, one entry in `traces` per compiled shape, and `stats` counting
    valid vs computed (padded) units since construction.

    A subclass provides `_prepare(waveforms) -> items` (per-utterance arrays whose first axis is
    what is padded: samples or feature frames), `_batches(items)` yielding (indices, padded
    length), `_pool_fn`, `_frames_fn(layer)` (the jitted frame-level forward of one layer) and
    `_valid_frames(n)` (output frames of an item of n units)."""

    traces: list
    stats: dict
    mesh: Any = None

    def _run(self, items, fn):
        import jax.numpy as jnp

        valid_key, padded_key = self.stats
        for idx, blen in self._batches(items):
            batch = np.zeros((len(idx), blen) + items[idx[0]].shape[1:], np.float32)
            n = np.zeros((len(idx),), np.int32)
            for r, i in enumerate(idx):
                batch[r, : items[i].shape[0]] = items[i]
                n[r] = items[i].shape[0]
            self.stats[valid_key] += int(n.sum())
            self.stats[padded_key] += len(idx) * blen
            if self.mesh is None:
                yield idx, n, np.asarray(fn(self.params, jnp.asarray(batch), jnp.asarray(n)))
            else:  # pad rows to a multiple of the device count, drop them after
                from jaxser import sharding

                (b, nd), real = sharding.shard_batch(self.mesh, batch, n)
                yield idx, n, np.asarray(sharding.unpad(fn(self.params, b, nd), real))

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        items = self._prepare(waveforms)
        out = np.zeros((len(items), self.num_layers, self.dim), np.float32)
        for idx, _, res in self._run(items, self._pool_fn):
            out[idx] = res
        return out

    def embed_frames(self, waveforms: Sequence[np.ndarray], layer: int = -1) -> list[np.ndarray]:
        """Frame-level hidden states of one layer (index into the hidden states, negative
        allowed): a list of float32 [T_i, dim]."""
        if not -self.num_layers <= layer < self.num_layers:
            raise ValueError(f"{self.name}: layer {layer} out of range for {self.num_layers} hidden states")
        layer %= self.num_layers
        if layer not in self._frame_fns:
            self._frame_fns[layer] = self._frames_fn(layer)
        items = self._prepare(waveforms)
        out: list[np.ndarray | None] = [None] * len(items)
        for idx, n, res in self._run(items, self._frame_fns[layer]):
            for r, i in enumerate(idx):
                out[i] = res[r, : self._valid_frames(int(n[r]))].copy()
        return out  # type: ignore[return-value]

    @property
    def compilations(self) -> int:
        return len(self.traces)

    @property
    def padding_waste(self) -> float:
        """Fraction of computed samples (or frames) that were padding (length buckets)."""
        valid, padded = self.stats.values()
        return 0.0 if padded == 0 else 1.0 - valid / padded


def check_waveforms(name: str, waveforms, min_samples: int = 1, why: str = "") -> list[np.ndarray]:
    """float32 copies of 1-D, finite, long-enough waveforms; a clear ValueError naming the
    encoder and the waveform's index otherwise (never NaN embeddings downstream)."""
    out = []
    for i, w in enumerate(waveforms):
        w = np.asarray(w, np.float32)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"{name}: waveform {i} must be a non-empty 1-D array, got shape {w.shape}")
        if w.size < min_samples:
            raise EncoderError(f"{name}: waveform {i} has {w.size} samples; needs at least {min_samples}{why}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{name}: waveform {i} contains NaN or Inf")
        out.append(w)
    return out


def min_samples_why(enc) -> str:
    """The reason a conv front end needs `enc.arch.min_samples`: its receptive field, in ms."""
    return f" ({enc.arch.min_samples / enc.sample_rate * 1000:.0f} ms) to produce one frame"


def digest(config: Any, arrays: dict[str, np.ndarray] | None = None, extra: str = "") -> str:
    """Stable fingerprint of a JSON-able config plus named weight arrays."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for k in sorted(arrays or {}):
        a = np.ascontiguousarray(np.asarray(arrays[k]))
        h.update(k.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def bucket_length(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n; beyond the largest, multiples of the largest bucket (so the number
    of compiled shapes stays bounded for any input)."""
    for b in buckets:
        if n <= b:
            return int(b)
    top = int(buckets[-1])
    return -(-n // top) * top


def bucket_batches(lengths: Sequence[int], buckets: Sequence[int], *, units_per_batch: float, max_batch: int):
    """(indices, bucket length) groups: items of one bucket together, batch sizes powers of two
    (bounded shapes, no dummy rows), about `units_per_batch` padded units (samples or frames) each."""
    by_bucket: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_bucket.setdefault(bucket_length(int(n), buckets), []).append(i)
    for blen, idx in sorted(by_bucket.items()):
        cap = max(1, min(max_batch, int(units_per_batch // blen)))
        cap = 1 << (cap.bit_length() - 1)
        while idx:
            size = min(cap, 1 << (len(idx).bit_length() - 1))
            yield idx[:size], blen
            idx = idx[size:]


def geometric_buckets(sample_rate: int = 16_000, min_seconds: float = 0.5, max_seconds: float = 30.0,
                      ratio: float = 2 ** 0.125) -> tuple[int, ...]:
    """Length buckets min_seconds * ratio^i, multiples of the 20 ms (320 sample) frame hop, up to the
    first one of at least max_seconds: an utterance is padded to its bucket by less than a factor
    `ratio` (plus the rounding to the hop), by about half of that on average."""
    out, s = [], float(min_seconds)
    while s < max_seconds * ratio:
        out.append(max(1, int(round(s * sample_rate / 320))) * 320)
        s *= ratio
    return tuple(sorted(set(out)))


def default_buckets(sample_rate: int = 16_000, max_seconds: float = 30.0) -> tuple[int, ...]:
    """Geometric length buckets (ratio 2^(1/4)) from 1 s: padding waste <= ~19% worst case, ~9%
    on average, with about four compiled shapes per doubling of length."""
    out, s = [], 1.0
    while s < max_seconds * 1.0001:
        out.append(int(round(s * sample_rate / 320)) * 320)  # multiple of the 20 ms frame hop
        s *= 2 ** 0.25
    return tuple(sorted(set(out)))


def plan_batches(lengths: Sequence[int], buckets: Sequence[int], *, batch_samples: int, max_batch: int,
                 stretch: float = 1.2) -> list[tuple[list[int], int]]:
    """(indices, padded length) batches for utterances of `lengths` samples, few distinct shapes.

    Every compiled (rows, length) shape costs a compilation, so the plan keeps both axes coarse:
    rows are powers of two (no dummy rows), at most `max_batch` and about `batch_samples` of padded
    audio; the longest remaining utterances go first, padded to their bucket L, and a batch also
    takes shorter ones whose own bucket is at least L / `stretch` -- the tail of one bucket fills
    the next one's batch instead of becoming a small batch shape of its own. Padding per
    utterance stays below its own bucket's ratio times `stretch`. The plan depends only on the
    lengths and their order (ties keep input order), never on the values.
    """
    own = [bucket_length(int(n), buckets) for n in lengths]
    todo = sorted(range(len(own)), key=lambda i: (-int(lengths[i]), i))
    out = []
    while todo:
        blen = own[todo[0]]
        cap = max(1, min(int(max_batch), int(batch_samples) // blen))
        cap = 1 << (cap.bit_length() - 1)
        fits = 0
        while fits < min(cap, len(todo)) and own[todo[fits]] * stretch >= blen:
            fits += 1
        size = 1 << (fits.bit_length() - 1)  # fits >= 1: the first one always fits
        out.append((todo[:size], blen))
        todo = todo[size:]
    return out


@functools.lru_cache(maxsize=1)
def cpu_bf16_matrix_units() -> bool:
    """True when jax computes on a CPU whose flags list bf16 matrix instructions (AMX-BF16 or
    AVX-512 BF16). Only there do bfloat16 dots beat float32 convolutions on XLA:CPU; elsewhere
    (AVX2 CPUs, GPUs) the bf16 encoders keep their convolutions as convolutions."""
    import jax

    if jax.default_backend() != "cpu":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "amx_bf16" in flags or "avx512_bf16" in flags

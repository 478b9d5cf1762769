"""The one interface every encoder (JAX, TF-Hub, handcrafted) implements.

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


DTYPES = ("float32", "bfloat16")
#: the bucket ladder and batch reach every batched encoder uses by default (ratio 2^(1/6) from
#: 0.5 s; a batch also takes the next-shorter bucket): chosen by the padding waste and compiled
#: shapes `benchmarks/bucket_plans.py` measures (docs/speed.md)
BUCKET_RATIO, BATCH_STRETCH = 2 ** (1 / 6), 1.2


class BatchedEncoder(Encoder):
    """A jitted encoder that pads utterances into length-bucketed batches: the one home of the
    settings checks, the batched forward loop, valid-frame pooling and the padding/compilation
    counters of every JAX family.

    A family module supplies only its model: `_prepare(waveforms) -> items` (per-utterance
    arrays whose first axis is what is padded: samples, or feature frames when `unit` says so)
    and its `forward(arch, params, x, n, dtype=, collect=None, upto=None) -> [L + 1, B, ...]`
    (stacked `collect(state, frame_mask)` of every hidden state) through `_use_forward`; `arch`
    gives `frames(n)`, an item's output frames (override `_valid_frames` where items are frames).

    Counters since construction: `traces` (one entry per compiled shape), `valid_units` and
    `padded_units` (what the model computed on, in `unit`s), hence `padding_waste`."""

    unit: str = "samples"  # what `_prepare`'s items count along their first axis
    units_per_second: float = 16_000.0
    mesh: Any = None

    def _setup(self, *, dtype: str, buckets: Sequence[int] | None, ladder: Sequence[int],
               batch_seconds: float = 32.0, max_batch: int = 16, batch_stretch: float = BATCH_STRETCH,
               mesh=None) -> None:
        """Check and store the settings every batched encoder shares (before any weight is placed)."""
        import jax.numpy as jnp

        from jaxser import sharding

        self.mesh = sharding.resolve_mesh(mesh)  # data parallel: batches split over the mesh's devices
        if dtype not in DTYPES:
            raise EncoderError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        self.dtype = dtype
        self._jdt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
        self.buckets = tuple(int(b) for b in (buckets or ladder))
        if not self.buckets or list(self.buckets) != sorted(set(self.buckets)) or self.buckets[0] <= 0:
            raise EncoderError(f"buckets must be increasing positive {self.unit} counts, got {self.buckets}")
        if int(max_batch) < 1:
            raise EncoderError(f"max_batch must be >= 1, got {max_batch}")
        if not batch_stretch >= 1.0:
            raise EncoderError(f"batch_stretch must be at least 1.0 (1.0: one bucket per batch), got {batch_stretch}")
        self.batch_seconds, self.max_batch = float(batch_seconds), int(max_batch)
        self.batch_stretch = float(batch_stretch)
        self.traces: list[tuple] = []  # one entry per compilation (shape), see `compilations`
        self._frame_fns: dict[int, Any] = {}
        self.valid_units = self.padded_units = 0

    def _use_forward(self, forward) -> None:
        """Pool (and slice frames of) `forward` jitted, in the compute dtype; one trace per shape."""
        self._states = functools.partial(forward, self.arch, dtype=self._jdt)
        self._pool_fn = pooled_fn(self._states, self.traces)

    def _frames_fn(self, layer: int):
        return frames_fn(self._states, self.traces, layer)

    def _valid_frames(self, n: int) -> int:
        return int(self.arch.frames(n))

    def frames(self, n_samples: int) -> int:
        """Number of frames (hidden-state positions) the model produces for an utterance of n samples."""
        return int(self.arch.frames(int(n_samples)))

    def _batches(self, items) -> list[tuple[list[int], int]]:
        """(indices, padded length) batches of `plan_batches`: about `batch_seconds` of padded input each."""
        return plan_batches([x.shape[0] for x in items], self.buckets, max_batch=self.max_batch,
                            batch_samples=int(self.batch_seconds * self.units_per_second),
                            stretch=self.batch_stretch)

    def _fn_params(self):
        """What the jitted forwards take as their first argument (the device-placed weights)."""
        return self.params

    def _run(self, items, fn):
        """Yield (indices, valid lengths, output rows) for every planned batch of `items` through `fn`."""
        import jax.numpy as jnp

        params = self._fn_params()
        for idx, blen in self._batches(items):
            batch = np.zeros((len(idx), blen) + items[idx[0]].shape[1:], np.float32)
            n = np.zeros((len(idx),), np.int32)
            for r, i in enumerate(idx):
                batch[r, : items[i].shape[0]] = items[i]
                n[r] = items[i].shape[0]
            self.valid_units += int(n.sum())
            self.padded_units += len(idx) * blen
            if self.mesh is None:
                yield idx, n, np.asarray(fn(params, jnp.asarray(batch), jnp.asarray(n)))
            else:  # pad rows to a multiple of the device count, drop them after
                from jaxser import sharding

                (b, nd), real = sharding.shard_batch(self.mesh, batch, n)
                yield idx, n, np.asarray(sharding.unpad(fn(params, b, nd), real))

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        items = self._prepare(waveforms)
        out = np.zeros((len(items), self.num_layers, self.dim), np.float32)
        for idx, _, res in self._run(items, self._pool_fn):
            out[idx] = res
        return out

    def _layer_index(self, layer: int) -> int:
        if not -self.num_layers <= layer < self.num_layers:
            raise ValueError(f"{self.name}: layer {layer} out of range for {self.num_layers} hidden states")
        return layer % self.num_layers

    def embed_frames(self, waveforms: Sequence[np.ndarray], layer: int = -1) -> list[np.ndarray]:
        """Frame-level hidden states of one layer (index into the hidden states, negative
        allowed): a list of float32 [T_i, dim]."""
        layer = self._layer_index(layer)
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
        return 0.0 if self.padded_units == 0 else 1.0 - self.valid_units / self.padded_units


def mean_valid(h, mask):
    """[B, T, D] -> [B, D]: mean over each row's valid frames, float32 accumulation."""
    import jax.numpy as jnp

    s = jnp.einsum("btd,bt->bd", h, mask.astype(h.dtype), preferred_element_type=jnp.float32)
    return s / jnp.sum(mask, 1, dtype=jnp.float32)[:, None]


def _pooled(states, counter, params, x, n):
    import jax.numpy as jnp

    counter.append(("pooled",) + x.shape)  # runs only while tracing = once per compiled shape
    return jnp.transpose(states(params, x, n, collect=mean_valid), (1, 0, 2))


def _frames(states, counter, layer, params, x, n):
    import jax.numpy as jnp

    counter.append(("frames", layer) + x.shape)
    return states(params, x, n, upto=layer)[layer].astype(jnp.float32)


def pooled_fn(states, counter: list):
    """jit of `states` mean-pooled over valid frames: (params, x [B, T, ...], n [B]) -> [B, L + 1, D]."""
    import jax

    return jax.jit(functools.partial(_pooled, states, counter))


def frames_fn(states, counter: list, layer: int):
    """jit of hidden state `layer` of `states`: (params, x, n) -> float32 [B, T, D] (padded frames are garbage)."""
    import jax

    return jax.jit(functools.partial(_frames, states, counter, layer))


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


def geometric_buckets(sample_rate: int = 16_000, min_seconds: float = 0.5, max_seconds: float = 30.0,
                      ratio: float = BUCKET_RATIO) -> tuple[int, ...]:
    """Length buckets min_seconds * ratio^i, multiples of the 20 ms (320 sample) frame hop, up to the
    first one of at least max_seconds: an utterance is padded to its bucket by less than a factor
    `ratio` (plus the rounding to the hop), by about half of that on average."""
    out, s = [], float(min_seconds)
    while s < max_seconds * ratio:
        out.append(max(1, int(round(s * sample_rate / 320))) * 320)
        s *= ratio
    return tuple(sorted(set(out)))


def plan_batches(lengths: Sequence[int], buckets: Sequence[int], *, batch_samples: int, max_batch: int,
                 stretch: float = BATCH_STRETCH) -> list[tuple[list[int], int]]:
    """(indices, padded length) batches for utterances of `lengths` samples (or frames: `buckets`
    and `batch_samples` count the same unit), few distinct shapes.

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

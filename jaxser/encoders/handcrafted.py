"""Handcrafted baselines: eGeMAPS (openSMILE) and MFCC / log-mel statistics (JAX).

Both need no download and output one vector per utterance ([B, 1, D]), the same interface as
the pre-trained encoders, so the heads, protocol and cache treat them alike.

* `egemaps`: the Geneva Minimalistic Acoustic Parameter Set v02 (Eyben et al. 2016), 88
  functionals per utterance, computed by openSMILE exactly as `opensmile.Smile(eGeMAPSv02,
  Functionals).process_signal` does. One utterance per call: nothing is padded or batched;
  a batch's utterances go to a few threads (openSMILE runs in C with the GIL released), each
  with its own `Smile`, so the result is the same as one by one.
* `mfcc`: per-frame MFCCs (+ deltas) and log-mel energies, summarised by their mean and standard
  deviation over the utterance's frames. Computed in JAX, jitted per length bucket; only frames
  lying entirely inside the utterance count and deltas replicate the last valid frame, so the
  zero padding of a bucket never changes the statistics (batch invariance).
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import platform
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from jaxser.encoders.base import Encoder, EncoderError, bucket_length, digest, geometric_buckets

SAMPLE_RATE = 16_000
KINDS = ("egemaps", "mfcc")


# ----------------------------------------------------------------------------- eGeMAPS
_SMILE_PRELOADED = False


def preload_opensmile() -> None:
    """Load openSMILE's C library with its symbols bound to itself, before anything else.

    Measured here (opensmile 2.6, TensorFlow 2.21, Linux): when TensorFlow is loaded before
    opensmile, libSMILEapi resolves some of its symbols to TensorFlow's global ones and the first
    `process_signal` aborts the process (`malloc(): invalid size`). Loading the library once with
    RTLD_DEEPBIND keeps it self-contained; opensmile's own plain `cdll.LoadLibrary` of the same
    file then reuses that handle. Called before jaxser imports TensorFlow and before it imports
    opensmile; a no-op when opensmile is already imported or the platform has no RTLD_DEEPBIND.
    """
    global _SMILE_PRELOADED
    if _SMILE_PRELOADED or "opensmile" in sys.modules or not hasattr(os, "RTLD_DEEPBIND"):
        return
    _SMILE_PRELOADED = True
    spec = importlib.util.find_spec("opensmile")
    if spec is None or not spec.submodule_search_locations:
        return
    libs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("core/bin/*/libSMILEapi.so"))
    libs = [p for p in libs if platform.machine() in p.parent.name] or libs
    if libs:
        ctypes.CDLL(str(libs[0].resolve()), mode=os.RTLD_DEEPBIND | os.RTLD_LOCAL)


def _import_opensmile():
    preload_opensmile()
    try:
        import opensmile
    except ImportError:
        raise EncoderError("the egemaps encoder needs openSMILE: pip install opensmile") from None
    return opensmile


class EGeMAPSEncoder(Encoder):
    """openSMILE eGeMAPSv02 functionals: [B, 1, 88]. ``threads``: utterances processed at
    once (default: one per core, at most 4); each thread has its own ``Smile``, and the
    features do not depend on the count."""

    num_layers = 1

    def __init__(self, threads: int | None = None):
        opensmile = _import_opensmile()
        self._smile = self._new_smile()
        self.name = "egemaps"
        self.feature_names = list(self._smile.feature_names)
        self.dim = len(self.feature_names)
        if self.dim != 88:
            raise EncoderError(f"openSMILE {opensmile.__version__} gives {self.dim} eGeMAPSv02 functionals, "
                               "expected 88")
        with open(self._smile.config_path, "rb") as f:  # the exact extraction recipe
            config_sha = hashlib.sha256(f.read()).hexdigest()
        self.fingerprint = digest({"family": "handcrafted", "kind": "egemaps", "feature_set": "eGeMAPSv02",
                                   "feature_level": "Functionals", "opensmile": opensmile.__version__,
                                   "config_sha256": config_sha, "features": self.feature_names})
        from jaxser.threads import cpu_threads

        self.threads = max(1, int(threads or cpu_threads()))
        self._local = threading.local()
        self._local.smile = self._smile   # the constructing thread uses this one
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def _new_smile():
        opensmile = _import_opensmile()
        return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                               feature_level=opensmile.FeatureLevel.Functionals)

    def _features(self, w: np.ndarray) -> np.ndarray:
        """One utterance's functionals, with this thread's own ``Smile`` (one instance is not
        meant to process two signals at once)."""
        smile = getattr(self._local, "smile", None)
        if smile is None:
            smile = self._local.smile = self._new_smile()
        return smile.process_signal(w, SAMPLE_RATE).to_numpy(dtype=np.float32)

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if self.threads > 1 and len(waveforms) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="jaxser-egemaps")
            rows = list(self._pool.map(self._features, waveforms))
        else:
            rows = [self._features(w) for w in waveforms]
        out = np.zeros((len(waveforms), 1, self.dim), np.float32)
        for i, (w, feats) in enumerate(zip(waveforms, rows)):
            if feats.shape != (1, self.dim) or not np.all(np.isfinite(feats)):
                raise EncoderError(f"egemaps: openSMILE returned {feats.shape} features "
                                   f"({'non-finite values' if feats.size else 'none'}) for waveform {i} "
                                   f"of {w.size} samples")
            out[i, 0] = feats[0]
        return out


# ----------------------------------------------------------------------------- MFCC
@dataclass(frozen=True)
class MFCCConfig:
    """librosa-style MFCCs (Slaney mel filters, dB log-mel, orthonormal DCT-II), uncentred frames."""

    n_mfcc: int = 20
    n_mels: int = 40
    win_length: int = 400    # 25 ms
    hop_length: int = 160    # 10 ms
    n_fft: int = 512
    fmin: float = 0.0
    fmax: float = 8000.0
    deltas: int = 1          # 0: none, 1: delta, 2: delta + delta-delta
    delta_width: int = 2     # N of the regression formula (a 5-frame window)
    logmel: bool = True      # also summarise the n_mels log-mel energies
    amin: float = 1e-10      # power floor before the log (librosa's power_to_db amin)

    def __post_init__(self):
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"n_mfcc must be in [1, n_mels={self.n_mels}], got {self.n_mfcc}")
        if self.deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {self.deltas}")
        if self.win_length > self.n_fft or self.hop_length <= 0:
            raise ValueError("need win_length <= n_fft and hop_length > 0")
        if not 0 <= self.fmin < self.fmax <= SAMPLE_RATE / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= {SAMPLE_RATE // 2}, got {self.fmin}, {self.fmax}")

    @property
    def frame_dim(self) -> int:
        return self.n_mfcc * (1 + self.deltas) + (self.n_mels if self.logmel else 0)

    def feature_names(self) -> list[str]:
        per_frame = [f"mfcc{i}" for i in range(self.n_mfcc)]
        for d in range(1, self.deltas + 1):
            per_frame += [f"{'d' * d}mfcc{i}" for i in range(self.n_mfcc)]
        if self.logmel:
            per_frame += [f"logmel{i}" for i in range(self.n_mels)]
        return [f"{n}_mean" for n in per_frame] + [f"{n}_std" for n in per_frame]


def hz_to_mel(f):
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / (np.log(6.4) / 27.0), lin)


def mel_to_hz(m):
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filterbank(n_mels: int, n_fft: int, sr: int = SAMPLE_RATE, fmin: float = 0.0, fmax: float = 8000.0):
    """[n_fft // 2 + 1, n_mels] triangular filters, area-normalised (Slaney)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None]
    upper = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])[None]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    return fb * (2.0 / (edges[2:] - edges[:-2]))[None]


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_in, n_out] orthonormal DCT-II (scipy.fft.dct(norm='ortho'), first n_out coefficients)."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[:, 0] /= np.sqrt(2.0)
    return m


def valid_frames(n: int, cfg: MFCCConfig) -> int:
    """Frames lying entirely inside n samples (at least one: a clip under 25 ms is zero-extended)."""
    return max(1, 1 + (n - cfg.win_length) // cfg.hop_length) if n >= cfg.win_length else 1


def _mfcc_stats(x, nvalid, *, cfg: MFCCConfig, window, fb, dct):
    """x [B, L] (zero-padded), nvalid [B] -> [B, 2 * frame_dim] mean and std over valid frames."""
    import jax.numpy as jnp

    n_frames = 1 + (x.shape[1] - cfg.win_length) // cfg.hop_length
    idx = np.arange(n_frames)[:, None] * cfg.hop_length + np.arange(cfg.win_length)[None]
    frames = x[:, idx] * window                                            # [B, T, win]
    power = jnp.abs(jnp.fft.rfft(frames, n=cfg.n_fft, axis=-1)) ** 2       # [B, T, n_fft/2+1]
    logmel = 10.0 * jnp.log10(jnp.maximum(power @ fb, cfg.amin))           # [B, T, n_mels] dB
    mfcc = logmel @ dct                                                    # [B, T, n_mfcc]
    t = jnp.arange(n_frames)
    last = (nvalid - 1)[:, None]

    def delta(c):  # regression over +-N frames; indices clamped to the valid frames
        den = 2.0 * sum(k * k for k in range(1, cfg.delta_width + 1))
        out = 0.0
        for k in range(1, cfg.delta_width + 1):
            fwd = jnp.take_along_axis(c, jnp.clip(t[None] + k, 0, last)[..., None], axis=1)
            bwd = jnp.take_along_axis(c, jnp.clip(t[None] - k, 0, last)[..., None], axis=1)
            out = out + k * (fwd - bwd)
        return out / den

    feats = [mfcc]
    for _ in range(cfg.deltas):
        feats.append(delta(feats[-1]))
    if cfg.logmel:
        feats.append(logmel)
    f = jnp.concatenate(feats, axis=-1)                                    # [B, T, frame_dim]
    mask = (t[None] < nvalid[:, None]).astype(f.dtype)[..., None]
    count = nvalid.astype(f.dtype)[:, None]
    mean = (f * mask).sum(1) / count
    std = jnp.sqrt((((f - mean[:, None]) ** 2) * mask).sum(1) / count)
    return jnp.concatenate([mean, std], axis=-1)


#: MFCC's coarser ladder (ratio 2^(1/4), 1 s to 2^(19/4) = 26.9 s): a front end this cheap gains more
#: from fewer compiled shapes than from less padding, and these lengths keep its cached features
MFCC_BUCKETS = geometric_buckets(SAMPLE_RATE, min_seconds=1.0, max_seconds=26.9, ratio=2 ** 0.25)


class MFCCEncoder(Encoder):
    """Mean + std of MFCCs (+ deltas) and log-mel energies over an utterance: [B, 1, 2 * frame_dim]."""

    num_layers = 1

    def __init__(self, config: MFCCConfig | None = None, *, batch_seconds: float = 120.0,
                 buckets: tuple[int, ...] | None = None):
        import jax

        self.config = cfg = config or MFCCConfig()
        if batch_seconds <= 0:
            raise ValueError(f"batch_seconds must be > 0, got {batch_seconds}")
        self.name = "mfcc"
        self.batch_seconds = float(batch_seconds)
        # every bucket holds at least one full frame
        self.buckets = tuple(sorted(max(int(b), cfg.win_length) for b in (buckets or MFCC_BUCKETS)))
        self.feature_names = cfg.feature_names()
        self.dim = len(self.feature_names)
        window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length))  # periodic Hann
        self._fn = jax.jit(partial(
            _mfcc_stats, cfg=cfg, window=window.astype(np.float32),
            fb=mel_filterbank(cfg.n_mels, cfg.n_fft, SAMPLE_RATE, cfg.fmin, cfg.fmax).astype(np.float32),
            dct=dct_matrix(cfg.n_mels, cfg.n_mfcc).astype(np.float32)))
        self.fingerprint = digest({"family": "handcrafted", "kind": "mfcc", **asdict(cfg), "window": "periodic hann",
                                   "mel": "slaney", "log": "10*log10", "frames": "uncentred, valid only",
                                   "stats": "mean, population std", "jax": jax.__version__, "impl": 1})

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        cfg = self.config
        out = np.zeros((len(waveforms), 1, self.dim), np.float32)
        groups: dict[int, list[int]] = {}
        for i, w in enumerate(waveforms):
            groups.setdefault(bucket_length(w.size, self.buckets), []).append(i)
        for length, idx in sorted(groups.items()):
            rows = max(1, int(self.batch_seconds * SAMPLE_RATE // length))  # fixed per bucket: one shape
            for s in range(0, len(idx), rows):
                chunk = idx[s:s + rows]
                x = np.zeros((rows, length), np.float32)
                nvalid = np.ones(rows, np.int32)
                for r, i in enumerate(chunk):
                    x[r, :waveforms[i].size] = waveforms[i]
                    nvalid[r] = valid_frames(waveforms[i].size, cfg)
                out[chunk, 0] = np.asarray(self._fn(x, nvalid))[:len(chunk)]
        return out


# ----------------------------------------------------------------------------- entry point
def load(kind: str | None = None, *, source: str | None = None, **options) -> Encoder:
    """`egemaps` (no options) or `mfcc` (MFCCConfig fields, batch_seconds, buckets)."""
    kind = kind or source
    if kind == "egemaps":
        if options:
            raise TypeError(f"egemaps takes no options, got {sorted(options)}")
        return EGeMAPSEncoder()
    if kind == "mfcc":
        run = {k: options.pop(k) for k in ("batch_seconds", "buckets") if k in options}
        return MFCCEncoder(MFCCConfig(**options), **run)
    raise EncoderError(f"unknown handcrafted encoder {kind!r}; choose one of {', '.join(KINDS)}")


__all__ = ["EGeMAPSEncoder", "MFCCEncoder", "MFCCConfig", "load", "mel_filterbank", "dct_matrix",
           "hz_to_mel", "mel_to_hz", "valid_frames"]

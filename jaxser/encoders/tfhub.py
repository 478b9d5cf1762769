"""TF-Hub SavedModel encoders (TRILLsson 1-5) by handle or local SavedModel folder.

TRILLsson (Shor & Venugopalan 2022) takes float32 audio in [-1, 1] at 16 kHz shaped
[batch, samples] and returns {'embedding': [batch, 1024]}, already averaged over time: its
frontend pads clips shorter than 2 s (symmetrically), cuts log-mel frames into ~2 s chunks,
runs every chunk through the network and means the chunk outputs.

Why the batching is unusual: because the model averages internally over chunks of the padded
input, zero-padding an utterance to a batch's length WOULD change its embedding. jaxser's rule
is batch invariance, so this module either
  * runs every utterance at its exact length (default, `window_seconds=None`), batching only
    utterances of identical length together, or
  * cuts every utterance into fixed windows of `window_seconds` (all of one shape, so they batch
    freely and XLA compiles once) and averages the window embeddings.

Why `tensorflow_hub` is not imported: tensorflow_hub 0.16 needs `pkg_resources` (setuptools<81)
at import time. SavedModels are loaded with `tf.saved_model.load`, and handles are resolved
here with tensorflow_hub's own cache layout (`$TFHUB_CACHE_DIR/<sha1(handle)>`), so a model
downloaded by tensorflow_hub is found and vice versa.

TensorFlow is imported lazily, and before any TF op it is told to grow GPU memory on demand
(or to see no GPU at all, `tf_gpu=False`) so it never takes the memory JAX needs.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from jaxser.encoders.base import Encoder, EncoderError, digest
from jaxser.io import file_mode, publish_dir, temp_sibling, umask

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Audio seconds per model call (the batch holds about this much audio).
DEFAULT_BATCH_SECONDS = 64.0
#: How long a download may stall before giving up.
DOWNLOAD_TIMEOUT_S = 60.0
_HANDLE_PREFIXES = ("https://", "http://")

_TF_CONFIGURED = False


# ----------------------------------------------------------------------------- TensorFlow
def _tf(gpu: bool = True):
    """Import TensorFlow once, configured so that it co-exists with JAX on one accelerator."""
    global _TF_CONFIGURED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:  # openSMILE crashes if loaded plainly after TF (see there)
        from jaxser.encoders.handcrafted import preload_opensmile

        preload_opensmile()
    try:
        import tensorflow as tf
    except ImportError:
        raise EncoderError("TF-Hub encoders (TRILLsson) need TensorFlow: pip install 'jaxser[tf]'") from None
    if not _TF_CONFIGURED:
        try:
            gpus = tf.config.list_physical_devices("GPU")
            if not gpu:
                tf.config.set_visible_devices([], "GPU")
            else:
                for g in gpus:
                    tf.config.experimental.set_memory_growth(g, True)
        except RuntimeError as e:  # devices already initialised by earlier TF use in this process
            log.warning("TensorFlow was initialised before jaxser could configure its GPU memory "
                        "(%s); TF may reserve GPU memory that JAX needs.", e)
        _TF_CONFIGURED = True
    return tf


# ----------------------------------------------------------------------------- resolving
def cache_dir() -> Path:
    """tensorflow_hub's cache: $TFHUB_CACHE_DIR, else <tmp>/tfhub_modules."""
    return Path(os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tfhub_modules"))


def module_dir(handle: str) -> Path:
    """Where tensorflow_hub keeps (and jaxser looks for) the unpacked model of `handle`."""
    return cache_dir() / hashlib.sha1(handle.encode("utf8")).hexdigest()


def is_handle(source: str) -> bool:
    return str(source).startswith(_HANDLE_PREFIXES)


def resolve(source: str | os.PathLike, *, download: bool = True) -> Path:
    """A local SavedModel folder for `source` (a folder, or a TF-Hub / Kaggle handle).

    Handles are looked up in the tensorflow_hub cache first; otherwise the compressed model
    (`<handle>?tf-hub-format=compressed`, a .tar.gz) is downloaded and unpacked there.
    """
    src = str(source)
    if src.startswith("gs://"):
        raise EncoderError(f"{src}: gs:// handles are not supported; copy the SavedModel folder locally "
                           "and pass its path")
    if not is_handle(src):
        path = Path(src).expanduser()
        if not path.exists():
            raise EncoderError(f"{path}: no such SavedModel folder (and not a https:// TF-Hub/Kaggle handle)")
        _check_savedmodel(path)
        return path
    target = module_dir(src)
    if (target / "saved_model.pb").exists():
        return target
    if not download:
        raise EncoderError(_offline_message(src, target, "downloads disabled (download=False)"))
    try:
        _download(src, target)
    except EncoderError:
        raise
    except Exception as e:  # URLError, socket timeouts, HTTP errors, truncated archives
        raise EncoderError(_offline_message(src, target, f"{type(e).__name__}: {e}")) from None
    return target


def _offline_message(handle: str, target: Path, why: str) -> str:
    url = _compressed_url(handle)
    return (f"cannot get TF-Hub model {handle!r} ({why}). Without network access, download {url} "
            f"elsewhere (a .tar.gz) and unpack it into {target} so that {target / 'saved_model.pb'} "
            "exists (set TFHUB_CACHE_DIR to choose the cache folder), or unpack it anywhere and pass "
            "that folder's path instead of the handle.")


def _compressed_url(handle: str) -> str:
    return handle + ("&" if "?" in handle else "?") + "tf-hub-format=compressed"


def _urlopen(url: str):
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310 (https handle)


def _download(handle: str, target: Path) -> None:
    """Download + unpack atomically (a temp folder renamed into place), as tensorflow_hub does."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target, "tmp")
    log.info("downloading %s into %s", handle, target)
    try:
        with _urlopen(_compressed_url(handle)) as resp:
            with tarfile.open(fileobj=resp, mode="r|*") as tar:
                tar.extractall(tmp, filter="data")  # refuses absolute paths, links out, devices
        if not (tmp / "saved_model.pb").exists():
            raise EncoderError(f"{handle}: the downloaded archive holds no saved_model.pb "
                               f"(files: {sorted(p.name for p in tmp.iterdir())[:10]})")
        _honour_umask(tmp)
        # a concurrent download that finished first is kept
        publish_dir(tmp, target, lambda folder: (folder / "saved_model.pb").exists())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _honour_umask(folder: Path) -> None:
    """Give unpacked files the modes a plain open()/mkdir would (the archive's own modes may be
    private), so a shared model cache stays readable by collaborators."""
    fmode, dmode = file_mode(), 0o777 & ~umask()
    for root, dirs, files in os.walk(folder):
        os.chmod(root, dmode)
        for name in files:
            os.chmod(os.path.join(root, name), fmode)


def _check_savedmodel(path: Path) -> None:
    if not path.is_dir():
        raise EncoderError(f"{path}: expected a SavedModel folder, got a file")
    if not (path / "saved_model.pb").exists():
        raise EncoderError(f"{path}: no saved_model.pb (files: {sorted(p.name for p in path.iterdir())[:10]}); "
                           "expected a TF SavedModel folder")


def savedmodel_digest(path: Path) -> str:
    """SHA-256 of every file of a SavedModel (graph + variables + assets), path-independent."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- signature
def _spec_str(spec) -> str:
    shape = getattr(spec, "shape", None)
    dtype = getattr(getattr(spec, "dtype", None), "name", None)
    if shape is None:
        return type(spec).__name__
    return f"{dtype}{list(shape.as_list()) if shape.rank is not None else '[?]'}"


def _describe(inputs, outputs) -> str:
    if isinstance(outputs, dict):
        out = "{" + ", ".join(f"{k!r}: {_spec_str(v)}" for k, v in sorted(outputs.items())) + "}"
    else:
        out = _spec_str(outputs) if hasattr(outputs, "shape") else type(outputs).__name__
    return f"({', '.join(inputs)}) -> {out}"


def _audio_spec_ok(spec, tf) -> bool:
    """float32 [batch, samples] with an unknown (any) number of samples."""
    return (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.float32 and spec.shape.rank == 2
            and spec.shape[1] is None)


def _output_ok(outputs, tf) -> bool:
    return (isinstance(outputs, dict) and "embedding" in outputs and hasattr(outputs["embedding"], "shape")
            and outputs["embedding"].shape.rank == 2)


def find_callable(obj, path, tf) -> tuple[Callable, int | None, str]:
    """The model's `audio [B, T] -> {'embedding': [B, D]}` callable, D if static, and a description.

    TRILLsson's card calls the loaded object directly (`m(audio)['embedding']`), so the restored
    `__call__` comes first; a `serving_default` signature with one float32 input is accepted too.
    """
    found: list[str] = []
    call = getattr(obj, "__call__", None) if callable(obj) else None
    concrete = getattr(call, "concrete_functions", None) or []
    # A Keras export (how TRILLsson was saved) traces call(inputs, training, mask) for training
    # True and False: ask for inference explicitly, or batch norm would use batch statistics.
    keras_style = any(len(cf.structured_input_signature[0]) > 1
                      and cf.structured_input_signature[0][1] is False for cf in concrete)
    for cf in concrete:
        args, kwargs = cf.structured_input_signature
        specs = [_spec_str(a) if hasattr(a, "shape") else repr(a) for a in args]
        specs += [f"{k}={_spec_str(v)}" for k, v in kwargs.items()]
        found.append("__call__" + _describe(specs, cf.structured_outputs))
        if args and _audio_spec_ok(args[0], tf) and _output_ok(cf.structured_outputs, tf):
            extra = [a for a in args[1:] if isinstance(a, tf.TensorSpec)]
            if not extra and not any(isinstance(v, tf.TensorSpec) for v in kwargs.values()) \
                    and (not keras_style or (len(args) > 1 and args[1] is False)):
                dim = cf.structured_outputs["embedding"].shape[1]
                if keras_style:
                    return (lambda x: obj(x, training=False)["embedding"]), dim, found[-1]
                return (lambda x: obj(x)["embedding"]), dim, found[-1]
    for name, sig in sorted(getattr(obj, "signatures", {}).items()):
        _, kwargs = sig.structured_input_signature
        found.append(f"signatures[{name!r}]" + _describe([f"{k}={_spec_str(v)}" for k, v in kwargs.items()],
                                                         sig.structured_outputs))
        if len(kwargs) == 1 and _audio_spec_ok(next(iter(kwargs.values())), tf) \
                and _output_ok(sig.structured_outputs, tf):
            key = next(iter(kwargs))
            dim = sig.structured_outputs["embedding"].shape[1]
            return (lambda x, _s=sig, _k=key: _s(**{_k: x})["embedding"]), dim, found[-1]
    raise EncoderError(
        f"{path}: no callable with TRILLsson's signature (float32 audio [batch, samples] -> dict with a "
        f"rank-2 'embedding'). Found: {'; '.join(found) if found else 'no callable and no signatures'}")


# ----------------------------------------------------------------------------- windows
def symmetric_pad(wave: np.ndarray, length: int) -> np.ndarray:
    """Extend a clip to `length` by mirroring it (repeatedly if needed), as TRILLsson's own frontend
    does for clips under 2 s: no silence enters the average."""
    if wave.size >= length:
        return wave
    return np.pad(wave, (0, length - wave.size), mode="symmetric")


def window_starts(n: int, window: int) -> list[int]:
    """Non-overlapping windows from 0; the last one is aligned to the end (overlapping its
    predecessor) so that no audio is dropped and no padding is needed."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, window))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


# ----------------------------------------------------------------------------- encoder
class TFHubEncoder(Encoder):
    """A TF SavedModel with TRILLsson's signature; output [B, 1, D]."""

    num_layers = 1

    def __init__(self, path: Path, source: str, *, batch_seconds: float = DEFAULT_BATCH_SECONDS,
                 window_seconds: float | None = None, jit_compile: bool | str = "auto", tf_gpu: bool = True):
        if batch_seconds <= 0:
            raise ValueError(f"batch_seconds must be > 0, got {batch_seconds}")
        if window_seconds is not None and window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0 or None, got {window_seconds}")
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
        tf = self._tf = _tf(tf_gpu)
        self.path, self.source = Path(path), str(source)
        self.name = self.source
        self.batch_seconds = float(batch_seconds)
        self.window_seconds = None if window_seconds is None else float(window_seconds)
        try:
            self._model = tf.saved_model.load(str(path))
        except Exception as e:
            raise EncoderError(f"{path}: TensorFlow cannot load this SavedModel ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''})") from None
        self._call, dim, self.signature = find_callable(self._model, path, tf)
        # XLA compiles once per input shape. Windows have one shape; exact lengths would compile
        # a program for every distinct utterance length, so 'auto' keeps plain graph mode there.
        self.xla = bool(self.window_seconds) if jit_compile == "auto" else bool(jit_compile)
        self._fn = self._make_fn(self.xla)
        if dim is None:  # dynamic output width: ask the model once
            dim = int(self._run(np.zeros((1, SAMPLE_RATE), np.float32)).shape[1])
        self.dim = int(dim)
        config = {
            "family": "tfhub",
            "source": self.source if is_handle(self.source) else "local SavedModel",
            "signature": self.signature,
            "pooling": "model-internal time average" + (
                f"; mean over {self.window_seconds:g} s windows (last end-aligned, short clips "
                "symmetric-padded)" if self.window_seconds else "; whole utterance in one call"),
        }
        model_digest = savedmodel_digest(self.path)
        self.fingerprint = digest(config, extra=model_digest)
        self.provenance = {"handle": self.source if is_handle(self.source) else None, "folder": str(self.path),
                           "savedmodel_sha256": model_digest}

    # -- running the model
    def _make_fn(self, xla: bool):
        tf = self._tf
        return tf.function(lambda x: self._call(x), input_signature=[tf.TensorSpec([None, None], tf.float32)],
                           jit_compile=xla, reduce_retracing=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            out = self._fn(self._tf.constant(batch))
        except Exception as e:
            if not self.xla:
                raise
            log.warning("%s: XLA compilation failed (%s: %s); running without jit_compile.", self.name,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            self.xla = False
            self._fn = self._make_fn(False)
            out = self._fn(self._tf.constant(batch))
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != batch.shape[0]:
            raise EncoderError(f"{self.path}: 'embedding' came back with shape {out.shape} for input "
                               f"{batch.shape}; expected [batch, dim]")
        return out

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if self.window_seconds:
            return self._embed_windows(waveforms)[:, None, :]
        return self._embed_exact(waveforms)[:, None, :]

    def _embed_exact(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """Each utterance at its own length; only identical lengths share a call."""
        out = np.zeros((len(waveforms), self.dim), np.float32)
        groups: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(waveforms):
            groups[w.size].append(i)
        for n, idx in sorted(groups.items()):
            per_call = max(1, int(self.batch_seconds * SAMPLE_RATE // n))
            for s in range(0, len(idx), per_call):
                chunk = idx[s:s + per_call]
                out[chunk] = self._run(np.stack([waveforms[i] for i in chunk]))
        return out

    def _embed_windows(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """Fixed windows, averaged per utterance; every call has the same [per_call, window] shape
        (the last call is filled with zero windows whose outputs are dropped)."""
        win = int(round(self.window_seconds * SAMPLE_RATE))
        windows, owner = [], []
        for i, w in enumerate(waveforms):
            w = symmetric_pad(w, win)
            for s in window_starts(w.size, win):
                windows.append(w[s:s + win])
                owner.append(i)
        per_call = max(1, int(self.batch_seconds // self.window_seconds))
        embs = np.zeros((len(windows), self.dim), np.float32)
        for s in range(0, len(windows), per_call):
            chunk = windows[s:s + per_call]
            batch = np.zeros((per_call, win), np.float32)
            batch[:len(chunk)] = np.stack(chunk)
            embs[s:s + len(chunk)] = self._run(batch)[:len(chunk)]
        owner = np.asarray(owner)
        out = np.zeros((len(waveforms), self.dim), np.float64)
        np.add.at(out, owner, embs)
        return (out / np.bincount(owner, minlength=len(waveforms))[:, None]).astype(np.float32)


def load(source: str, *, batch_seconds: float = DEFAULT_BATCH_SECONDS, window_seconds: float | None = None,
         jit_compile: bool | str = "auto", download: bool = True, tf_gpu: bool = True,
         name: str | None = None) -> TFHubEncoder:
    """A TF-Hub encoder from a local SavedModel folder or a TF-Hub / Kaggle handle.

    Args:
      source: folder holding saved_model.pb, or e.g. https://tfhub.dev/google/trillsson3/1.
      batch_seconds: audio seconds per model call (memory knob; never changes the output).
      window_seconds: None runs every utterance whole (the model averages internally); a number
        cuts utterances into windows of that length and averages the window embeddings.
      jit_compile: True / False / 'auto' (XLA with windows, where one shape is compiled once).
      download: fetch a handle missing from the cache (False: fail with where to unpack it).
      tf_gpu: False hides GPUs from TensorFlow (leaving them to JAX).
    """
    path = resolve(source, download=download)
    enc = TFHubEncoder(path, str(source), batch_seconds=batch_seconds, window_seconds=window_seconds,
                       jit_compile=jit_compile, tf_gpu=tf_gpu)
    if name:
        enc.name = name
    return enc


__all__ = ["TFHubEncoder", "load", "resolve", "module_dir", "cache_dir", "find_callable", "savedmodel_digest",
           "symmetric_pad", "window_starts"]

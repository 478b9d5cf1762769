"""JAX port of SpeechBrain's VoxCeleb x-vector (`speechbrain/spkrec-xvect-voxceleb`).

The pipeline is SpeechBrain's `EncoderClassifier.encode_batch` in eval mode, reproduced from its
source (speechbrain.lobes.features.Fbank, processing.features.{STFT, Filterbank,
InputNormalization}, lobes.models.Xvector.Xvector, nnet.CNN.Conv1d, nnet.pooling.StatisticsPooling):

  Fbank       centred STFT (n_fft 400, 25 ms periodic Hamming window, 10 ms hop, ZERO padding:
              SpeechBrain's STFT uses pad_mode="constant"), power spectrum, SpeechBrain's own
              triangular filters (HTK mel scale, centres equally spaced in mel, each triangle as wide
              on both sides as the distance to the previous centre), 10 log10(max(x, 1e-10)) and an
              80 dB floor below the utterance's maximum.
  InputNorm   sentence-level mean subtraction over the utterance's frames (std_norm: False).
  TDNN        5 x [Conv1d (padding "same", REFLECT mode, floor(d (k - 1) / 2) frames each side),
              LeakyReLU(0.01), BatchNorm1d (running statistics, eps 1e-5)].
  Statistics  mean and unbiased std over the frames, concatenated, then Linear -> 512 (x-vector).

`embed` returns [B, num_layers, 512]: entries 0 .. n - 2 are TDNN blocks 1 .. n - 1 (after their
BatchNorm) mean-pooled over valid frames; the last entry is the x-vector. Batch invariance: every
per-utterance quantity (dB floor, sentence mean, reflect padding at the utterance's own last frame,
statistics) uses that utterance's valid frames only, so padding never reaches a valid frame.

SpeechBrain adds random noise drawn from [1e-5, 9e-5] to the pooled mean even in eval mode; this
port adds its expectation, 5e-5, instead, so embeddings are deterministic (docs/xvector.md).

Weights: SpeechBrain ships `embedding_model.ckpt` (a torch pickle), read as released by jaxser's
restricted unpickler (`torch_pickle`; the hyperparams.yaml parser lives in `xvector_convert`, which
can also write a `model.safetensors` + `config.json` folder).
"""
from __future__ import annotations

import dataclasses
import math
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.encoders import hf
from jaxser.encoders.base import Encoder, EncoderError, check_waveforms, digest, geometric_buckets, plan_batches

HUB_ID = "speechbrain/spkrec-xvect-voxceleb"
MODEL_TYPE = "speechbrain-xvector"
SAMPLE_RATE = 16_000
BN_EPS = 1e-5  # speechbrain.nnet.normalization.BatchNorm1d default
STD_EPS = 1e-5  # StatisticsPooling: std + eps
#: StatisticsPooling adds eps * (9 - 8 u) to the mean, u a min-max normalised Gaussian draw in [0, 1]
#: (so the noise lies in [1e-5, 9e-5]); u is symmetric about 1/2, so its expectation is 5 eps
NOISE_MEAN = 5e-5
LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU default
ACTIVATIONS = {"leaky_relu": partial(jax.nn.leaky_relu, negative_slope=LEAKY_SLOPE), "relu": jax.nn.relu}
HIGHEST = jax.lax.Precision.HIGHEST

#: config.json of the released model (speechbrain/spkrec-xvect-voxceleb hyperparams.yaml)
DEFAULT_CONFIG: dict[str, Any] = {
    "model_type": MODEL_TYPE,
    "sample_rate": SAMPLE_RATE,
    "n_fft": 400,
    "win_length_ms": 25.0,
    "hop_length_ms": 10.0,
    "f_min": 0.0,
    "f_max": 8000.0,
    "n_mels": 24,
    "input_norm": {"norm_type": "sentence", "mean_norm": True, "std_norm": False},
    "activation": "leaky_relu",
    "tdnn_channels": [512, 512, 512, 512, 1500],
    "tdnn_kernel_sizes": [5, 3, 3, 1, 1],
    "tdnn_dilations": [1, 2, 3, 1, 1],
    "lin_neurons": 512,
    "embedding_norm": {"norm_type": "global", "std_norm": False, "available": False},
}
_ARCH_KEYS = ("sample_rate", "n_fft", "win_length_ms", "hop_length_ms", "f_min", "f_max", "n_mels", "activation",
              "tdnn_channels", "tdnn_kernel_sizes", "tdnn_dilations", "lin_neurons")


# ----------------------------------------------------------------------------- architecture
@dataclasses.dataclass(frozen=True)
class Arch:
    """What the forward pass needs (hashable: a jit static argument)."""

    n_fft: int
    win: int  # samples
    hop: int  # samples
    n_mels: int
    f_min: float
    f_max: float
    act: str
    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    dilations: tuple[int, ...]
    lin_neurons: int
    sample_rate: int = SAMPLE_RATE

    @property
    def pads(self) -> tuple[int, ...]:
        """'same' padding per block (speechbrain.nnet.CNN.get_padding_elem with stride 1)."""
        return tuple(d * (k - 1) // 2 for k, d in zip(self.kernels, self.dilations))

    @property
    def min_frames(self) -> int:
        """Reflect padding needs more frames than the pad; the unbiased std needs two."""
        return max(2, max(self.pads) + 1)

    def frames(self, n_samples: int) -> int:
        """Fbank frames of an utterance of n samples: 1 + n // hop (torch.stft, center=True)."""
        return 1 + int(n_samples) // self.hop


def arch_from_config(cfg: dict, where: Any = "config.json") -> Arch:
    """Validate a config.json (or hyperparams-derived) dict and build the Arch."""
    missing = [k for k in _ARCH_KEYS if k not in cfg]
    if missing:
        raise EncoderError(f"{where}: missing config entries {missing}")
    if cfg.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise EncoderError(f"{where}: model_type {cfg.get('model_type')!r} is not {MODEL_TYPE!r}")
    if int(cfg["sample_rate"]) != SAMPLE_RATE:
        raise EncoderError(f"{where}: sample_rate {cfg['sample_rate']} is not {SAMPLE_RATE} "
                           "(jaxser feeds 16 kHz audio)")
    norm = cfg.get("input_norm", DEFAULT_CONFIG["input_norm"])
    if norm != DEFAULT_CONFIG["input_norm"]:
        raise EncoderError(f"{where}: input_norm {norm} is not supported; only sentence-level mean normalisation "
                           f"without std normalisation ({DEFAULT_CONFIG['input_norm']}), as the released model uses")
    if cfg["activation"] not in ACTIVATIONS:
        raise EncoderError(f"{where}: activation {cfg['activation']!r} not supported (known: {sorted(ACTIVATIONS)})")
    sr = int(cfg["sample_rate"])
    try:
        arch = Arch(n_fft=int(cfg["n_fft"]), win=int(round(sr / 1000.0 * float(cfg["win_length_ms"]))),
                    hop=int(round(sr / 1000.0 * float(cfg["hop_length_ms"]))), n_mels=int(cfg["n_mels"]),
                    f_min=float(cfg["f_min"]), f_max=float(cfg["f_max"]), act=str(cfg["activation"]),
                    channels=tuple(int(c) for c in cfg["tdnn_channels"]),
                    kernels=tuple(int(k) for k in cfg["tdnn_kernel_sizes"]),
                    dilations=tuple(int(d) for d in cfg["tdnn_dilations"]), lin_neurons=int(cfg["lin_neurons"]))
    except (TypeError, ValueError) as e:
        raise EncoderError(f"{where}: malformed x-vector config ({e})") from None
    n = len(arch.channels)
    if n < 1 or len(arch.kernels) != n or len(arch.dilations) != n:
        raise EncoderError(f"{where}: tdnn_channels, tdnn_kernel_sizes and tdnn_dilations need one entry per block, "
                           f"got {len(arch.channels)}, {len(arch.kernels)}, {len(arch.dilations)}")
    if any(k % 2 == 0 for k in arch.kernels):
        raise EncoderError(f"{where}: SpeechBrain's Conv1d 'same' padding needs odd kernel sizes, got {arch.kernels}")
    if any(c != arch.lin_neurons for c in arch.channels[:-1]):
        raise EncoderError(f"{where}: embed stacks every block's pooled output with the x-vector, so tdnn_channels "
                           f"{arch.channels[:-1]} (all but the last) must equal lin_neurons {arch.lin_neurons}")
    if not (arch.win <= arch.n_fft and arch.hop > 0 and arch.n_fft % 2 == 0):
        raise EncoderError(f"{where}: unsupported STFT (n_fft {arch.n_fft}, window {arch.win}, hop {arch.hop})")
    if not 0 <= arch.f_min < arch.f_max <= sr / 2:
        raise EncoderError(f"{where}: need 0 <= f_min < f_max <= {sr / 2}, got {arch.f_min}, {arch.f_max}")
    return arch


def expected_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    """Every parameter of SpeechBrain's Xvector state dict with its PyTorch shape.

    Xvector.blocks is a ModuleList: block b is [Conv1d (3b), activation (3b + 1), BatchNorm1d (3b + 2)],
    then StatisticsPooling (3n) and Linear (3n + 1). BatchNorm's num_batches_tracked is not a weight and
    is dropped by the conversion."""
    out: dict[str, tuple[int, ...]] = {}
    c_in = arch.n_mels
    for b, (c, k) in enumerate(zip(arch.channels, arch.kernels)):
        out[f"blocks.{3 * b}.conv.weight"] = (c, c_in, k)
        out[f"blocks.{3 * b}.conv.bias"] = (c,)
        for n in ("weight", "bias", "running_mean", "running_var"):
            out[f"blocks.{3 * b + 2}.norm.{n}"] = (c,)
        c_in = c
    lin = 3 * len(arch.channels) + 1
    out[f"blocks.{lin}.w.weight"] = (arch.lin_neurons, 2 * arch.channels[-1])
    out[f"blocks.{lin}.w.bias"] = (arch.lin_neurons,)
    return out


EMB_MEAN_KEY = "mean_var_norm_emb.glob_mean"


def check_weights(arch: Arch, weights: dict[str, np.ndarray], where: Any) -> None:
    """Fail naming the key when a name is missing or unexpected, or a shape is wrong."""
    shapes = expected_shapes(arch)
    hf.check_keys(where, set(shapes), set(weights) - {EMB_MEAN_KEY})
    for k, shape in shapes.items():
        if tuple(weights[k].shape) != shape:
            raise EncoderError(f"{where}: key {k} has shape {tuple(weights[k].shape)}, but the config implies {shape}")
    if EMB_MEAN_KEY in weights and tuple(weights[EMB_MEAN_KEY].shape) != (arch.lin_neurons,):
        raise EncoderError(f"{where}: key {EMB_MEAN_KEY} has shape {tuple(weights[EMB_MEAN_KEY].shape)}, "
                           f"expected ({arch.lin_neurons},)")


def convert_params(arch: Arch, weights: dict[str, np.ndarray], where: Any = "checkpoint") -> dict:
    """SpeechBrain state-dict names -> the params pytree of `_forward` (float32 numpy), explicitly."""
    check_weights(arch, weights, where)
    w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    blocks = []
    for b in range(len(arch.channels)):
        conv, norm = f"blocks.{3 * b}.conv.", f"blocks.{3 * b + 2}.norm."
        blocks.append({
            "w": np.ascontiguousarray(w[conv + "weight"].transpose(2, 1, 0)),  # torch [out, in, k] -> WIO [k, in, out]
            "b": w[conv + "bias"],
            "bn_g": w[norm + "weight"], "bn_b": w[norm + "bias"],
            "bn_mean": w[norm + "running_mean"], "bn_var": w[norm + "running_var"],
        })
    lin = f"blocks.{3 * len(arch.channels) + 1}.w."
    return {"blocks": blocks, "lin_w": np.ascontiguousarray(w[lin + "weight"].T), "lin_b": w[lin + "bias"]}


# ----------------------------------------------------------------------------- front end
def _torch_linspace32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace in float32 (CPU kernel: from the start for the first half, from the end after)."""
    start32, end32 = np.float32(start), np.float32(end)
    step = np.float32((end32 - start32) / np.float32(steps - 1))
    i = np.arange(steps)
    first = start32 + step * i.astype(np.float32)
    second = end32 - step * (steps - 1 - i).astype(np.float32)
    return np.where(i < steps / 2, first, second).astype(np.float32)


def filterbank(arch: Arch) -> np.ndarray:
    """SpeechBrain's Filterbank matrix [n_fft // 2 + 1, n_mels] (float32, computed in float32 as it does).

    HTK mel scale 2595 log10(1 + f / 700); centres are the inner n_mels of n_mels + 2 points equally
    spaced in mel; band = distance from the previous point, used on BOTH sides of the triangle
    (so filters are symmetric in Hz, unlike torchaudio/librosa); unnormalised (peak 1)."""
    to_mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    mel = _torch_linspace32(to_mel(arch.f_min), to_mel(arch.f_max), arch.n_mels + 2)
    # 10 ** x correctly rounded to float32, as torch's pow gives it (a float32 numpy pow is 1 ulp off)
    power = np.power(10.0, (mel / np.float32(2595)).astype(np.float64)).astype(np.float32)
    hz = (np.float32(700) * (power - np.float32(1))).astype(np.float32)
    band = (hz[1:] - hz[:-1])[:-1]
    f_central = hz[1:-1]
    all_freqs = _torch_linspace32(0, arch.sample_rate // 2, arch.n_fft // 2 + 1)
    slope = (all_freqs[None, :] - f_central[:, None]) / band[:, None]
    fb = np.maximum(np.float32(0), np.minimum(slope + np.float32(1), np.float32(1) - slope))
    return np.ascontiguousarray(fb.T.astype(np.float32))


def stft_window(arch: Arch) -> np.ndarray:
    """torch.hamming_window(win) (periodic), zero-padded centrally to n_fft as torch.stft does."""
    n = np.arange(arch.win)
    w = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / arch.win)
    left = (arch.n_fft - arch.win) // 2
    return np.pad(w, (left, arch.n_fft - arch.win - left)).astype(np.float32)


def _valid_mask(n_frames: jax.Array, T: int) -> jax.Array:
    return jnp.arange(T)[None, :] < n_frames[:, None]  # [B, T]


def fbank(arch: Arch, front: dict, wave: jax.Array, n_frames: jax.Array) -> jax.Array:
    """Zero-padded waveforms [B, N] -> SpeechBrain Fbank features [B, 1 + N // hop, n_mels].

    Frames t < n_frames[b] equal those of utterance b run alone: STFT padding is constant (zeros),
    and the 80 dB floor is taken below the maximum over the utterance's own frames."""
    B, N = wave.shape
    T = 1 + N // arch.hop
    half = arch.n_fft // 2
    x = jnp.pad(wave.astype(jnp.float32), ((0, 0), (half, half)))
    idx = jnp.arange(T)[:, None] * arch.hop + jnp.arange(arch.n_fft)[None, :]
    spec = jnp.fft.rfft(x[:, idx] * front["window"], n=arch.n_fft, axis=-1)
    power = jnp.square(spec.real) + jnp.square(spec.imag)  # spectral_magnitude(power=1)
    mel = jnp.matmul(power, front["filters"], precision=HIGHEST)
    db = 10.0 * jnp.log10(jnp.maximum(mel, 1e-10))  # amin 1e-10, ref_value 1 (db_multiplier 0)
    valid = _valid_mask(n_frames, T)[..., None]
    top = jnp.max(jnp.where(valid, db, -jnp.inf), axis=(1, 2), keepdims=True) - 80.0  # top_db
    return jnp.maximum(db, top)


def _masked_mean(x: jax.Array, valid: jax.Array, n: jax.Array) -> jax.Array:
    """Mean over valid frames [B, T, C] -> [B, C] (padded frames contribute exactly zero)."""
    return jnp.sum(jnp.where(valid[..., None], x, 0.0), axis=1) / n[:, None]


def _reflect_pad(x: jax.Array, n_frames: jax.Array, p: int) -> jax.Array:
    """[B, T, C] -> [B, T + 2p, C]: reflect padding at 0 and at each utterance's own last valid frame.

    Position t (in -p .. T + p - 1) reads frame |t| mirrored at n - 1 (2 (n - 1) - t once t >= n), what
    F.pad(mode="reflect") gives the utterance alone; positions beyond n + p - 1 feed only padded outputs."""
    if p == 0:
        return x
    T = x.shape[1]
    t = jnp.arange(-p, T + p)[None, :]
    last = (n_frames - 1)[:, None]
    idx = jnp.abs(t)
    idx = jnp.where(idx > last, 2 * last - idx, idx)
    idx = jnp.clip(idx, 0, T - 1)
    return jnp.take_along_axis(x, idx[..., None], axis=1)


def _forward(arch: Arch, counter: list, params: dict, front: dict, wave: jax.Array, n_frames: jax.Array,
             emb_mean: jax.Array) -> jax.Array:
    """Padded waveforms [B, N] + valid frames [B] -> pooled float32 [B, n_blocks, lin_neurons]."""
    counter.append(wave.shape)  # runs only while tracing = once per compiled shape
    feats = fbank(arch, front, wave, n_frames)
    T = feats.shape[1]
    valid = _valid_mask(n_frames, T)
    n = n_frames.astype(jnp.float32)
    x = feats - _masked_mean(feats, valid, n)[:, None, :]  # InputNormalization(sentence, std_norm=False)
    act = ACTIVATIONS[arch.act]
    pooled = []
    for blk, p, d in zip(params["blocks"], arch.pads, arch.dilations):
        y = jax.lax.conv_general_dilated(_reflect_pad(x, n_frames, p), blk["w"], window_strides=(1,), padding="VALID",
                                         rhs_dilation=(d,), dimension_numbers=("NWC", "WIO", "NWC"), precision=HIGHEST)
        y = act(y + blk["b"])
        x = (y - blk["bn_mean"]) / jnp.sqrt(blk["bn_var"] + BN_EPS) * blk["bn_g"] + blk["bn_b"]  # BatchNorm1d, eval
        pooled.append(_masked_mean(x, valid, n))
    # StatisticsPooling over the last block: mean (+ the noise's expectation) and unbiased std
    mean = pooled.pop()
    centred = jnp.where(valid[..., None], x - mean[:, None, :], 0.0)
    std = jnp.sqrt(jnp.sum(jnp.square(centred), axis=1) / (n - 1.0)[:, None])
    stats = jnp.concatenate([mean + NOISE_MEAN, std + STD_EPS], axis=-1)
    emb = jnp.matmul(stats, params["lin_w"], precision=HIGHEST) + params["lin_b"] - emb_mean
    return jnp.stack(pooled + [emb], axis=1)


# ----------------------------------------------------------------------------- encoder
class XVectorEncoder(Encoder):
    """TDNN blocks 1 .. n - 1 mean-pooled over valid frames, then the x-vector: [B, n_blocks, 512]."""

    def __init__(self, arch: Arch, params: dict, *, config: dict, name: str, fingerprint: str,
                 emb_mean: np.ndarray | None = None, max_batch: int = 16, buckets: Sequence[int] | None = None):
        self.arch, self.config, self.name, self.fingerprint = arch, config, name, fingerprint
        self.dim, self.num_layers = arch.lin_neurons, len(arch.channels)
        if int(max_batch) < 1:
            raise EncoderError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = int(max_batch)
        self.buckets = tuple(sorted(int(b) for b in (buckets or geometric_buckets(SAMPLE_RATE))))
        self.params = jax.tree.map(jnp.asarray, params)
        self.front = {"filters": jnp.asarray(filterbank(arch)), "window": jnp.asarray(stft_window(arch))}
        self.emb_mean = jnp.zeros((arch.lin_neurons,), jnp.float32) if emb_mean is None else jnp.asarray(emb_mean)
        self.traces: list[tuple] = []  # one entry per compilation (shape)
        self._fn = jax.jit(partial(_forward, arch, self.traces))
        self._feat_fn = jax.jit(partial(fbank, arch))

    @property
    def compilations(self) -> int:
        return len(self.traces)

    @property
    def min_samples(self) -> int:
        """Shortest input: enough frames for reflect padding and the unbiased std (480 samples, 30 ms)."""
        return (self.arch.min_frames - 1) * self.arch.hop

    def frames(self, n_samples: int) -> int:
        return self.arch.frames(n_samples)

    def _check(self, waveforms) -> list[np.ndarray]:
        return check_waveforms(self.name, waveforms, self.min_samples,
                               f" ({self.arch.min_frames} frames: SpeechBrain's reflect padding fails and its "
                               "std is NaN below that)")

    def _batches(self, waves: list[np.ndarray]):
        """(indices, padded batch [b, bucket], valid frames [b]): `base.plan_batches` (the default reach),
        batch sizes powers of two <= max_batch (no dummy rows; a bounded number of compiled shapes)."""
        for chunk, N in plan_batches([w.size for w in waves], self.buckets, batch_samples=self.max_batch * 2 ** 40,
                                     max_batch=self.max_batch):
            batch = np.zeros((len(chunk), N), np.float32)
            for r, i in enumerate(chunk):
                batch[r, : waves[i].size] = waves[i]
            yield chunk, batch, np.array([self.arch.frames(waves[i].size) for i in chunk], np.int32)

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        waves = self._check(waveforms)
        out = np.zeros((len(waves), self.num_layers, self.dim), np.float32)
        for chunk, batch, n in self._batches(waves):
            res = self._fn(self.params, self.front, jnp.asarray(batch), jnp.asarray(n), self.emb_mean)
            out[chunk] = np.asarray(res)
        return out

    def fbank(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        """SpeechBrain `Fbank` features of each waveform (before InputNormalization): [T_i, n_mels]."""
        waves = self._check(waveforms)
        out: list[np.ndarray] = [None] * len(waves)  # type: ignore[list-item]
        for chunk, batch, n in self._batches(waves):
            res = np.asarray(self._feat_fn(self.front, jnp.asarray(batch), jnp.asarray(n)))
            for r, i in enumerate(chunk):
                out[i] = res[r, : n[r]].copy()
        return out


# ----------------------------------------------------------------------------- converted folders
def read_converted(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, weights) of a converted folder, through safetensors only."""
    hint = "convert SpeechBrain's folder with `python -m jaxser.encoders.xvector_convert`"
    cfg, weights = hf.read_converted(path, hint)
    if cfg.get("model_type") != MODEL_TYPE:
        raise EncoderError(f"{path}/config.json: model_type {cfg.get('model_type')!r} is not {MODEL_TYPE!r} (not a "
                           f"converted x-vector folder; {hint})")
    return cfg, {k: v.astype(np.float32) for k, v in weights.items()}


#: the files of a SpeechBrain release and of a converted folder
RELEASE_FILES = ["hyperparams.yaml", "embedding_model.ckpt", "mean_var_norm_emb.ckpt", "config.json",
                 "model.safetensors"]


def _resolve_source(source: str, revision: str | None) -> Path:
    from jaxser.encoders import hf

    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists() or source.startswith((".", "/", "~")):
        raise EncoderError(f"{source}: not a directory")
    repo, revision = hf.split_revision(source, revision)
    return hf.snapshot(repo, revision, RELEASE_FILES)


def read_folder(path: Path, *, allow_pickle=None) -> tuple[dict, dict[str, np.ndarray]]:
    """A converted folder (config.json + model.safetensors) or a SpeechBrain one, read as released."""
    path = Path(path)
    if (path / "config.json").exists() and (path / "model.safetensors").exists():
        return read_converted(path)
    if (path / "hyperparams.yaml").exists() or (path / "embedding_model.ckpt").exists():
        from jaxser.encoders.xvector_convert import read_speechbrain  # imports yaml only when needed

        return read_speechbrain(path, allow_pickle=allow_pickle)
    files = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    raise EncoderError(f"{path}: neither a converted x-vector folder (config.json + model.safetensors) nor a "
                       f"SpeechBrain one (hyperparams.yaml + embedding_model.ckpt); files: {files}")


def random_weights(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random weights under SpeechBrain's names (random models take the real loading path):
    fan-in scaled normals, BatchNorm statistics near identity, small biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in expected_shapes(arch).items():
        if k.endswith(("conv.weight", "w.weight")):
            out[k] = rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))
        elif k.endswith("running_var"):
            out[k] = 1.0 + 0.1 * np.abs(rng.standard_normal(shape))
        elif k.endswith("norm.weight"):
            out[k] = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            out[k] = 0.02 * rng.standard_normal(shape)
    return {k: v.astype(np.float32) for k, v in out.items()}


def load(source: str = "random", *, revision: str | None = None, allow_pickle=None, seed: int = 0, max_batch: int = 16,
         normalize_embedding: bool = False, buckets: Sequence[int] | None = None, **kw) -> XVectorEncoder:
    """An x-vector encoder from a converted folder, a SpeechBrain folder or Hub id (`owner/name[@rev]`),
    or `"random"` (seeded weights for the released architecture; keyword arguments override config.json
    entries, e.g. tdnn_channels=[64, 64, 64, 64, 96], lin_neurons=64).

    normalize_embedding: subtract mean_var_norm_emb's global mean from the x-vector, as
      `EncoderClassifier.encode_batch(..., normalize=True)` does (off by default, as there).
    """
    if source == "random":
        config = {**DEFAULT_CONFIG, **kw}
        arch = arch_from_config(config, "random x-vector config")
        weights = random_weights(arch, seed)
        name = "random-xvector"
        where: Any = "random weights"
    else:
        if kw:
            raise TypeError(f"unexpected keyword arguments for a checkpoint: {sorted(kw)}")
        path = _resolve_source(str(source), revision)
        config, weights = read_folder(path, allow_pickle=allow_pickle)
        arch = arch_from_config(config, path / "config.json" if (path / "config.json").exists() else path)
        name, where = str(source), path
    params = convert_params(arch, weights, where)
    emb_mean = None
    if normalize_embedding:
        if EMB_MEAN_KEY not in weights:
            raise EncoderError(f"{where}: normalize_embedding=True needs mean_var_norm_emb statistics "
                               f"({EMB_MEAN_KEY}), which this checkpoint lacks")
        emb_mean = weights[EMB_MEAN_KEY]
    keep = set(expected_shapes(arch)) | ({EMB_MEAN_KEY} if normalize_embedding else set())
    fp_config = {k: config[k] for k in _ARCH_KEYS} | {"input_norm": config.get("input_norm")}
    fp = digest(fp_config, {k: v for k, v in weights.items() if k in keep},
                extra=f"speechbrain-xvector;fbank=speechbrain(stft-constant-pad,top_db=80);conv-pad=reflect;"
                      f"pool=mean-valid-frames;stats=mean+{NOISE_MEAN},unbiased-std+{STD_EPS};"
                      f"normalize_embedding={bool(normalize_embedding)}")
    enc = XVectorEncoder(arch, params, config=config, name=name, fingerprint=fp, emb_mean=emb_mean,
                         max_batch=max_batch, buckets=buckets)
    if source != "random":
        from jaxser.encoders.hf import provenance

        enc.provenance = provenance(path, [f for f in (path / n for n in RELEASE_FILES)
                                           if f.suffix in (".ckpt", ".safetensors") and f.exists()])
    return enc

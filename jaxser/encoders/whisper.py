"""JAX port of the Whisper encoder (tiny ... large-v3), loaded from HF `config.json` +
`model.safetensors` (WhisperModel, WhisperForConditionalGeneration or
WhisperForAudioClassification: only the encoder's tensors are used).

The log-mel front end is computed in JAX and matches transformers' `WhisperFeatureExtractor`:
every input is zero-padded (or cut) to one 30 s window, a centred STFT (n_fft 400, hop 160,
periodic Hann, reflect padding) gives 3000 power frames, slaney mel filters (80 or 128 bins,
built here in numpy), log10 with a 1e-10 floor, an 8-decade dynamic range below the window's
maximum, then (x + 4) / 4. Because the reference pads every utterance to the same 30 s and
Whisper's encoder attends over all 1500 positions, an utterance's hidden states never depend on
its batch: batch invariance needs no masking here.

Pooling (see docs/whisper.md): an utterance of n samples covers ceil(n / 160) mel frames and
therefore ceil(ceil(n / 160) / 2) encoder frames (conv2 has stride 2; encoder frame j is centred
on mel frame 2j); `embed` averages exactly those. Longer than 30 s: non-overlapping 30 s windows,
each embedded as above, averaged weighted by their valid encoder frames (= the mean over every
valid frame of the file).

Hidden states follow transformers 5's `output_hidden_states`: entry 0 is the input of the first
layer (conv stem + positions), entry i the output of layer i, and the LAST entry carries the
encoder's final layer norm (transformers ties it to `last_hidden_state` for Whisper).
"""
from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.encoders import hf
from jaxser.encoders.activations import ACTIVATIONS
from jaxser.encoders.base import BatchedEncoder, EncoderError, check_waveforms, digest

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
#: prefixes of task checkpoints: WhisperForConditionalGeneration (`model.encoder.`), WhisperModel
#: and WhisperForAudioClassification (`encoder.`); a bare WhisperEncoder has none
TASK_PREFIXES = ("model.encoder.", "encoder.")
_LN_EPS = 1e-5  # nn.LayerNorm default; Whisper's config has no layer_norm_eps
_ACTS = ACTIVATIONS


# ----------------------------------------------------------------------------- front end
def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                f_min: float = 0.0, f_max: float = 8000.0) -> np.ndarray:
    """Slaney-scale, slaney-normalised triangular filters [n_fft // 2 + 1, n_mels] (float32), the
    matrix `WhisperFeatureExtractor` (and librosa.filters.mel, which OpenAI used) builds."""

    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * (27.0 / np.log(6.4)),
                        3.0 * f / 200.0)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), 200.0 * m / 3.0)

    n_bins = n_fft // 2 + 1
    f_pts = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    fft_f = np.linspace(0, sample_rate // 2, n_bins)
    diff = np.diff(f_pts)
    slopes = f_pts[None, :] - fft_f[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= (2.0 / (f_pts[2: n_mels + 2] - f_pts[:n_mels]))[None, :]
    return fb.astype(np.float32)


def hann_window(n: int = N_FFT) -> np.ndarray:
    """Periodic Hann (torch.hann_window's default), float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def log_mel(wave: jax.Array, filters: jax.Array, window: jax.Array) -> jax.Array:
    """Zero-padded windows [B, N] (N = frames * 160) -> normalised log-mel [B, N // 160, n_mels].

    Time-major (what the conv stem consumes); transpose for transformers' [B, n_mels, frames]."""
    B, N = wave.shape
    pad = N_FFT // 2
    x = jnp.pad(wave.astype(jnp.float32), ((0, 0), (pad, pad)), mode="reflect")  # torch.stft(center=True)
    n_frames = N // HOP + 1
    blocks_needed = n_frames + -(-N_FFT // HOP) - 1  # frame t = hop blocks t .. t + 2, cut to 400 samples
    x = jnp.pad(x, ((0, 0), (0, blocks_needed * HOP - x.shape[1])))
    blocks = x.reshape(B, blocks_needed, HOP)
    k = -(-N_FFT // HOP)
    frames = jnp.concatenate([blocks[:, j: j + n_frames] for j in range(k)], axis=-1)[..., :N_FFT]
    spec = jnp.fft.rfft(frames * window, n=N_FFT, axis=-1)[:, :-1]  # drop the last frame, as HF does
    power = jnp.square(spec.real) + jnp.square(spec.imag)
    mel = jnp.matmul(power, filters, precision=jax.lax.Precision.HIGHEST)
    logm = jnp.log10(jnp.maximum(mel, 1e-10))
    logm = jnp.maximum(logm, jnp.max(logm, axis=(1, 2), keepdims=True) - 8.0)
    return (logm + 4.0) / 4.0


def mel_frames(n_samples: int) -> int:
    """Mel frames that hold audio: ceil(n / 160) (= transformers' rescaled attention mask)."""
    return -(-int(n_samples) // HOP)


def encoder_frames(n_samples: int) -> int:
    """Encoder frames that cover an utterance of n samples within one window: ceil(mel / 2)."""
    return -(-mel_frames(n_samples) // 2)


# ----------------------------------------------------------------------------- architecture
@dataclasses.dataclass(frozen=True)
class Arch:
    """What the forward pass needs from config.json (hashable: a jit static argument)."""

    d_model: int
    layers: int
    heads: int
    ffn: int
    n_mels: int
    positions: int  # max_source_positions: encoder frames per window (1500 = 30 s)
    act: str

    @property
    def window_samples(self) -> int:
        """Samples in one window (480000 = 30 s for every released Whisper)."""
        return self.positions * 2 * HOP


def arch_from_config(cfg: dict, where: Any = "config.json") -> Arch:
    if cfg.get("model_type", "whisper") != "whisper":
        raise EncoderError(f"{where}: model_type {cfg.get('model_type')!r} is not 'whisper'")

    def get(key, default):
        return int(cfg[key]) if key in cfg else default

    arch = Arch(d_model=get("d_model", 384), layers=get("encoder_layers", 4), heads=get("encoder_attention_heads", 6),
                ffn=get("encoder_ffn_dim", 1536), n_mels=get("num_mel_bins", 80),
                positions=get("max_source_positions", 1500), act=str(cfg.get("activation_function", "gelu")))
    if arch.act not in _ACTS:
        raise EncoderError(f"{where}: unsupported activation_function {arch.act!r} (known: {sorted(_ACTS)})")
    if arch.d_model % arch.heads:
        raise EncoderError(f"{where}: d_model {arch.d_model} is not divisible by encoder_attention_heads {arch.heads}")
    if min(arch.d_model, arch.layers, arch.heads, arch.ffn, arch.n_mels, arch.positions) <= 0:
        raise EncoderError(f"{where}: encoder sizes must be positive, got {arch}")
    return arch


def expected_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    """Every encoder parameter name (prefix stripped) with its PyTorch shape."""
    D, F = arch.d_model, arch.ffn
    out: dict[str, tuple[int, ...]] = {
        "conv1.weight": (D, arch.n_mels, 3), "conv1.bias": (D,),
        "conv2.weight": (D, D, 3), "conv2.bias": (D,),
        "embed_positions.weight": (arch.positions, D),
        "layer_norm.weight": (D,), "layer_norm.bias": (D,),
    }
    for l in range(arch.layers):
        p = f"layers.{l}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[p + f"self_attn.{n}.weight"] = (D, D)
            if n != "k_proj":  # Whisper's key projection has no bias
                out[p + f"self_attn.{n}.bias"] = (D,)
        out[p + "fc1.weight"], out[p + "fc1.bias"] = (F, D), (F,)
        out[p + "fc2.weight"], out[p + "fc2.bias"] = (D, F), (D,)
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            out[p + f"{n}.weight"], out[p + f"{n}.bias"] = (D,), (D,)
    return out


def encoder_weights(weights: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple[str, ...], str]:
    """(the encoder's tensors with their prefix stripped, key prefixes deliberately ignored, the
    prefix). Decoder and head tensors (decoder., proj_out., classifier., ...) are never read."""
    for p in TASK_PREFIXES:
        if any(k.startswith(p) for k in weights):
            return {k[len(p):]: v for k, v in weights.items() if k.startswith(p)}, (), p
    return dict(weights), ("decoder.", "model.decoder.", "proj_out.", "projector.", "classifier.", "layer_weights"), ""


def convert(arch: Arch, weights: dict[str, np.ndarray], where: Any = "checkpoint",
            ignore: tuple[str, ...] = ()) -> dict:
    """Encoder tensors (prefix stripped) -> the params pytree of `forward` (float32 numpy).

    Names and shapes are checked first, so a wrong checkpoint fails here naming the key."""
    shapes = expected_shapes(arch)
    hf.check_keys(where, set(shapes), set(weights), ignore=ignore)
    for k, shape in shapes.items():
        if tuple(weights[k].shape) != shape:
            raise EncoderError(f"{where}: encoder key {k} has shape {tuple(weights[k].shape)}, but config.json "
                               f"implies {shape}")
    w = {k: np.asarray(weights[k], np.float32) for k in shapes}
    D = arch.d_model

    def stack(name, fn=lambda a: a):
        return np.stack([fn(w[f"layers.{l}.{name}"]) for l in range(arch.layers)])

    a = "self_attn."
    zeros = np.zeros((arch.layers, D), np.float32)
    layers = {
        # fused q|k|v projection; k has no bias in Whisper (a zero block keeps one matmul)
        "qkv_w": np.concatenate([stack(a + f"{n}.weight", lambda x: x.T) for n in ("q_proj", "k_proj", "v_proj")],
                                axis=-1),
        "qkv_b": np.concatenate([stack(a + "q_proj.bias"), zeros, stack(a + "v_proj.bias")], axis=-1),
        "o_w": stack(a + "out_proj.weight", lambda x: x.T), "o_b": stack(a + "out_proj.bias"),
        "ln1_g": stack("self_attn_layer_norm.weight"), "ln1_b": stack("self_attn_layer_norm.bias"),
        "fc1_w": stack("fc1.weight", lambda x: x.T), "fc1_b": stack("fc1.bias"),
        "fc2_w": stack("fc2.weight", lambda x: x.T), "fc2_b": stack("fc2.bias"),
        "ln2_g": stack("final_layer_norm.weight"), "ln2_b": stack("final_layer_norm.bias"),
    }
    return {
        # torch Conv1d [out, in, k] -> lax WIO [k, in, out]
        "conv1": {"w": np.ascontiguousarray(w["conv1.weight"].transpose(2, 1, 0)), "b": w["conv1.bias"]},
        "conv2": {"w": np.ascontiguousarray(w["conv2.weight"].transpose(2, 1, 0)), "b": w["conv2.bias"]},
        "pos": w["embed_positions.weight"],
        "layers": layers,
        "ln": {"g": w["layer_norm.weight"], "b": w["layer_norm.bias"]},
    }


# ----------------------------------------------------------------------------- forward pass
def _layer_norm(x, g, b):
    """LayerNorm with float32 statistics whatever the compute dtype."""
    x32 = x.astype(jnp.float32)
    mu = jnp.mean(x32, -1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mu), -1, keepdims=True)
    y = (x32 - mu) * jax.lax.rsqrt(var + _LN_EPS)
    return (y * g.astype(jnp.float32) + b.astype(jnp.float32)).astype(x.dtype)


def _conv(x, w, b, stride):
    y = jax.lax.conv_general_dilated(x, w, window_strides=(stride,), padding=[(1, 1)],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y + b


def _query_block(t: int) -> int:
    """Query block for CPU attention: the largest divisor of t in [16, 64] (50 for 1500), else t."""
    return next((b for b in range(64, 15, -1) if t % b == 0), t)


def _attention(q, k, v):
    """softmax(q k^T) v over all positions (Whisper's encoder has no mask), [B, H, T, hd].

    On CPU the [T, T] scores of a 30 s window (1500^2 per head) do not fit in cache, so queries
    go through in blocks of ~50 (lax.map): the same numbers, 3-4x faster on XLA:CPU. Other
    backends take the whole matrix at once."""
    def block(qb):
        scores = (qb @ k.transpose(0, 1, 3, 2)).astype(jnp.float32)
        return jax.nn.softmax(scores, axis=-1).astype(v.dtype) @ v

    B, H, T, hd = q.shape
    c = _query_block(T)
    if jax.default_backend() != "cpu" or c == T:
        return block(q)
    qs = q.reshape(B, H, T // c, c, hd).transpose(2, 0, 1, 3, 4)
    return jax.lax.map(block, qs).transpose(1, 2, 0, 3, 4).reshape(B, H, T, hd)


def _layer_fn(arch: Arch):
    act = _ACTS[arch.act]
    H, hd = arch.heads, arch.d_model // arch.heads

    def layer(x, lp):
        B, T, D = x.shape
        h = _layer_norm(x, lp["ln1_g"], lp["ln1_b"])
        qkv = (h @ lp["qkv_w"] + lp["qkv_b"]).reshape(B, T, 3, H, hd)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, H, T, hd]
        o = _attention(q * (hd ** -0.5), k, v).transpose(0, 2, 1, 3).reshape(B, T, D)
        x = x + (o @ lp["o_w"] + lp["o_b"])
        h = _layer_norm(x, lp["ln2_g"], lp["ln2_b"])
        return x + (act(h @ lp["fc1_w"] + lp["fc1_b"]) @ lp["fc2_w"] + lp["fc2_b"])

    return layer


def embed_input(arch: Arch, params: dict, mel: jax.Array, dtype=jnp.float32) -> jax.Array:
    """Normalised log-mel [B, frames, n_mels] -> hidden state 0 [B, positions, D] (conv stem + positions)."""
    gelu = partial(jax.nn.gelu, approximate=False)  # the stem uses F.gelu whatever activation_function says
    c1, c2 = params["conv1"], params["conv2"]
    x = gelu(_conv(mel.astype(dtype), c1["w"].astype(dtype), c1["b"].astype(dtype), 1))
    x = gelu(_conv(x, c2["w"].astype(dtype), c2["b"].astype(dtype), 2))
    return x + params["pos"].astype(dtype)


def _prepare(arch, dtype, params, front, wave):
    if mel_frames(wave.shape[1]) != 2 * arch.positions:
        raise AssertionError(f"window of {wave.shape[1]} samples, expected {arch.window_samples}")
    p = jax.tree.map(lambda a: a.astype(dtype), params)
    x = embed_input(arch, p, log_mel(wave, front["filters"], front["window"]), dtype)
    return p, x


def _pooled(arch, dtype, counter, params, wave, n_samples):
    """Padded windows [B, window] + valid samples [B] -> pooled float32 [B, L + 1, D] over the
    ceil(ceil(n / 160) / 2) encoder frames that cover audio."""
    counter.append(("pooled",) + wave.shape)  # runs only while tracing = once per compiled shape
    p, x = _prepare(arch, dtype, params["model"], params["front"], wave)
    n_frames = -(-(-(-n_samples // HOP)) // 2)
    m = (jnp.arange(x.shape[1])[None, :] < n_frames[:, None]).astype(jnp.float32)
    m = m / jnp.sum(m, 1, keepdims=True)

    def pool(h):
        return jnp.einsum("btd,bt->bd", h.astype(jnp.float32), m)

    layer = _layer_fn(arch)

    def step(x, lp):
        y = layer(x, lp)
        return y, pool(y)

    last, pooled = jax.lax.scan(step, x, p["layers"])
    final = pool(_layer_norm(last, p["ln"]["g"], p["ln"]["b"]))
    out = jnp.concatenate([pool(x)[None], pooled[:-1], final[None]], axis=0)  # [L + 1, B, D]
    return out.transpose(1, 0, 2)


def _frames(arch, dtype, counter, layer_idx, params, wave, n_samples):
    """Hidden state `layer_idx` (0 .. L) of padded windows, float32 [B, positions, D]."""
    counter.append(("frames", layer_idx) + wave.shape)
    p, x = _prepare(arch, dtype, params["model"], params["front"], wave)
    if layer_idx > 0:
        layer = _layer_fn(arch)
        sub = jax.tree.map(lambda a: a[:layer_idx], p["layers"])
        x, _ = jax.lax.scan(lambda c, lp: (layer(c, lp), None), x, sub)
        if layer_idx == arch.layers:
            x = _layer_norm(x, p["ln"]["g"], p["ln"]["b"])
    return x.astype(jnp.float32)


# ----------------------------------------------------------------------------- encoder
class WhisperEncoder(BatchedEncoder):
    """Every hidden state of a Whisper encoder, mean-pooled over the frames that cover audio.

    Its batches hold 30 s windows (one bucket: the window), so the base's loop runs them; pooling
    and frame output are per utterance, over its windows in time order."""

    def __init__(self, arch: Arch, params: dict, *, config: dict, name: str, fingerprint: str,
                 dtype: str = "float32", max_batch: int = 8, mesh=None, shard_params: bool = False):
        from jaxser import sharding

        self.arch, self.config, self.name, self.fingerprint = arch, config, name, fingerprint
        self.dim, self.num_layers = arch.d_model, arch.layers + 1
        W = arch.window_samples
        self._setup(dtype=dtype, buckets=(W,), ladder=(W,), max_batch=max_batch, mesh=mesh,
                    batch_seconds=int(max_batch) * W / self.sample_rate)
        # weights live on device in the compute dtype; the front end stays float32 and replicated
        # (<= 0.1 MB of mel filters and window: not worth an all-gather on every call). With
        # shard_params the weights are split too (fully sharded: for checkpoints too big for one device)
        params = jax.tree.map(lambda a: jnp.asarray(a, self._jdt), params)
        if shard_params:  # the per-layer weights are stacked for lax.scan: never split the layer axis
            self.params = {k: sharding.fsdp(self.mesh, v, stacked=(k == "layers")) for k, v in params.items()}
        else:
            self.params = sharding.replicate(self.mesh, params)
        self.front = sharding.replicate(self.mesh, {"filters": jnp.asarray(mel_filters(arch.n_mels)),
                                                    "window": jnp.asarray(hann_window())})
        self._pool_fn = jax.jit(partial(_pooled, arch, self._jdt, self.traces))
        self._mel_fn = jax.jit(log_mel)

    def _fn_params(self):
        return {"model": self.params, "front": self.front}

    @property
    def window_samples(self) -> int:
        return self.arch.window_samples

    def frames(self, n_samples: int) -> int:
        """Valid encoder frames of an utterance of n samples (summed over its 30 s windows)."""
        W = self.window_samples
        full, rest = divmod(int(n_samples), W)
        return full * self.arch.positions + (encoder_frames(rest) if rest else 0)

    # -- inputs
    def _windows(self, waveforms) -> tuple[list[int], list[np.ndarray]]:
        """(owner utterance, window samples) of every 30 s window, in order."""
        W = self.window_samples
        pairs = [(i, w[s: s + W]) for i, w in enumerate(check_waveforms(self.name, waveforms))
                 for s in range(0, w.size, W)]
        return [i for i, _ in pairs], [w for _, w in pairs]

    def _frames_fn(self, layer: int):
        return jax.jit(partial(_frames, self.arch, self._jdt, self.traces, layer))

    # -- public
    def log_mel(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """WhisperFeatureExtractor's `input_features` for the first 30 s of each waveform:
        float32 [B, n_mels, 3000]."""
        waves = check_waveforms(self.name, waveforms)
        batch = np.zeros((len(waves), self.window_samples), np.float32)
        for r, w in enumerate(waves):
            w = w[: self.window_samples]
            batch[r, : w.size] = w
        mel = self._mel_fn(jnp.asarray(batch), self.front["filters"], self.front["window"])
        return np.asarray(mel).transpose(0, 2, 1)

    def _embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        owner, windows = self._windows(waveforms)
        sums = np.zeros((len(waveforms), self.num_layers, self.dim), np.float64)
        counts = np.zeros((len(waveforms),), np.float64)
        for idx, n, res in self._run(windows, self._pool_fn):
            for r, j in enumerate(idx):  # weighted by valid frames: the mean over every valid frame of the file
                f = encoder_frames(int(n[r]))
                sums[owner[j]] += f * res[r].astype(np.float64)
                counts[owner[j]] += f
        return (sums / counts[:, None, None]).astype(np.float32)

    def embed_frames(self, waveforms: Sequence[np.ndarray], layer: int = -1) -> list[np.ndarray]:
        """Frame-level hidden states of one layer (index into the L + 1 states, negative allowed):
        a list of float32 [T_i, dim], T_i = `frames(n_samples)` (valid frames of every window,
        concatenated in time order)."""
        layer = self._layer_index(layer)
        if layer not in self._frame_fns:
            self._frame_fns[layer] = self._frames_fn(layer)
        owner, windows = self._windows(waveforms)
        parts: list[dict[int, np.ndarray]] = [{} for _ in waveforms]
        for idx, n, res in self._run(windows, self._frame_fns[layer]):
            for r, j in enumerate(idx):
                parts[owner[j]][j] = res[r, : encoder_frames(int(n[r]))].copy()
        return [np.concatenate([p[j] for j in sorted(p)], axis=0) for p in parts]


# ----------------------------------------------------------------------------- loading
PRESETS: dict[str, dict] = {
    # openai/whisper-tiny and -base encoder sizes
    "tiny": dict(model_type="whisper", d_model=384, encoder_layers=4, encoder_attention_heads=6,
                 encoder_ffn_dim=1536, num_mel_bins=80, max_source_positions=1500, activation_function="gelu"),
    "base": dict(model_type="whisper", d_model=512, encoder_layers=6, encoder_attention_heads=8,
                 encoder_ffn_dim=2048, num_mel_bins=80, max_source_positions=1500, activation_function="gelu"),
}


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's fixed sinusoidal position table [length, channels] (sin | cos halves)."""
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def random_weights(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random encoder weights under their HF names (random models take the real loading
    path): fan-in scaled normals, unit-ish layer-norm gains, small biases, sinusoidal positions."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in expected_shapes(arch).items():
        if k == "embed_positions.weight":
            out[k] = sinusoids(*shape)
        else:  # whisper's norm gains are all "layer_norm.weight"
            out[k] = hf.random_tensor(rng, k, shape)
    return out


def load(source: str = "random", *, dtype: str = "float32", revision: str | None = None, allow_pickle=None,
         preset: str | None = None,
         seed: int = 0, max_batch: int = 8, mesh=None, shard_params: bool = False, **kw) -> WhisperEncoder:
    """A Whisper encoder from a local HF folder, a Hub id, or `"random"`.

    source="random": the encoder of `preset` ("tiny" default, "base") with seeded random
      weights, no download; further keyword arguments override config entries.
    max_batch: 30 s windows per forward call (batch sizes are powers of two up to it).
    mesh: None (one device), "auto" (every local device when there are several) or a
      `jax.sharding.Mesh`: windows are split over its devices, parameters replicated
      (results equal the single-device ones; see docs/whisper.md). shard_params=True instead
      splits the large weight matrices over the mesh (fully sharded, for checkpoints too big
      for one device); without a mesh it changes nothing. Neither enters the fingerprint.
    """
    if source == "random":
        preset, config, arch, weights, where = hf.random_preset(PRESETS, preset, kw, default="tiny", seed=seed,
                                                         make_arch=arch_from_config, make_weights=random_weights)
        ignore = ()
        name = f"random-whisper-{preset}"
    else:
        path, config = hf.open_checkpoint(source, revision=revision, allow_pickle=allow_pickle, preset=preset,
                                          overrides=kw)
        arch = arch_from_config(config, path / "config.json")
        hf.check_preprocessor(path, {"feature_size": arch.n_mels, "n_fft": N_FFT, "hop_length": HOP,
                                     "sampling_rate": SAMPLE_RATE})
        weights, ignore, prefix = encoder_weights(hf.read_weights(path))
        name = str(source)
        where = f"{path} (Whisper encoder keys, prefix {prefix!r} stripped)" if prefix else path
    params = convert(arch, weights, where, ignore)
    keep = set(expected_shapes(arch))
    fp = digest(dataclasses.asdict(arch), {k: v for k, v in weights.items() if k in keep},
                extra=f"whisper-encoder;logmel=hf-whisper;window=30s-zero-pad;pool=mean-ceil(ceil(n/160)/2);"
                      f"long=30s-windows-frame-weighted;hidden_states=transformers5;dtype={dtype}")
    enc = WhisperEncoder(arch, params, config=config, name=name, fingerprint=fp, dtype=dtype, max_batch=max_batch,
                          mesh=mesh, shard_params=shard_params)
    enc.provenance = None if source == "random" else hf.provenance(path)
    return enc

"""JAX port of w2v-BERT 2.0 (transformers' `Wav2Vec2BertModel`, model_type "wav2vec2-bert"),
loaded from HF `config.json` + `model.safetensors`.

Front end (numpy, per utterance, on the host): the Kaldi-style log-mel filterbank of
transformers' `SeamlessM4TFeatureExtractor` -- samples scaled to 16-bit range, 25 ms frames
every 10 ms without centring, DC offset removed, pre-emphasis 0.97, povey window, 512-point
FFT, 80 kaldi-mel filters triangular in mel space (20 Hz - 8 kHz), natural log with a float32
epsilon floor, then each mel bin normalised to zero mean and unit variance (ddof=1) over the
utterance's frames, and pairs of frames stacked to 160 dims (an odd last frame is dropped, as
the feature extractor's attention mask does). It repeats the reference's float64 arithmetic and
float32 roundings, so the features agree to float32 precision.

Encoder (jitted JAX): layer norm + linear feature projection, then Conformer layers -- half-step
FFN, self-attention with Shaw-style "relative_key" position embeddings (distances clipped to
[-left_max, right_max]), the convolution module (pointwise conv + GLU, causal depthwise conv,
layer norm, activation, pointwise conv), a second half-step FFN, final layer norm.

Batch invariance: padded frames are zeroed at the encoder input and before every depthwise
convolution, and masked as attention keys; the relative position bias depends only on
distances. Each utterance of a padded batch therefore gets what it gets alone.

Hidden states follow transformers 5's `output_hidden_states`: entry 0 is the feature
projection's output (the first layer's input), entry i the output of layer i (which ends with
its own final layer norm). The optional adapter / intermediate FFN of fine-tuning checkpoints
only feed `last_hidden_state`, never `hidden_states`, so they are not computed here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.encoders import hf
from jaxser.encoders.activations import ACTIVATIONS, layer_norm
from jaxser.encoders.base import (BATCH_STRETCH, BatchedEncoder, EncoderError, check_waveforms, digest,
                                  geometric_buckets)

SAMPLE_RATE = 16_000
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 80
STRIDE = 2  # frames stacked per encoder input vector
MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon, as the reference
#: the shortest waveform with one stacked frame: two filterbank frames (the per-bin variance
#: uses ddof=1, undefined for a single frame)
MIN_SAMPLES = FRAME + HOP
#: prefixes of task checkpoints (ForCTC, ForSequenceClassification, ForXVector, ...)
TASK_PREFIXES = ("wav2vec2_bert.",)
#: bare-model keys that never enter the hidden states: SpecAugment's mask vector, and the
#: adapter / intermediate FFN that only feed last_hidden_state
IGNORED = ("masked_spec_embed", "adapter.", "intermediate_ffn.")
POSITION_TYPES = ("relative_key", None)
_ACTS = ACTIVATIONS


# ----------------------------------------------------------------------------- front end
def mel_filters(n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                f_min: float = 20.0) -> np.ndarray:
    """Kaldi-mel triangular filters [n_fft // 2 + 1, n_mels] (float64), triangular in mel space:
    transformers' `mel_filter_bank(..., norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)`."""
    def to_mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    n_bins = n_fft // 2 + 1
    mel_pts = np.linspace(to_mel(f_min), to_mel(sample_rate // 2), n_mels + 2)
    fft_mel = to_mel(sample_rate / ((n_bins - 1) * 2) * np.arange(n_bins))
    diff = np.diff(mel_pts)
    slopes = mel_pts[None, :] - fft_mel[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(np.zeros(1), np.minimum(down, up))


def povey_window(n: int = FRAME) -> np.ndarray:
    """Kaldi's povey window: a symmetric Hann window raised to 0.85 (float64)."""
    return np.power(np.hanning(n), 0.85)


_FILTERS = mel_filters()
_WINDOW = povey_window()


def fbank_frames(n_samples: int) -> int:
    """Filterbank frames of n samples (25 ms windows every 10 ms, no padding)."""
    return 1 + (int(n_samples) - FRAME) // HOP if n_samples >= FRAME else 0


def encoder_frames(n_samples: int) -> int:
    """Encoder frames (stacked pairs) of an utterance of n samples."""
    return fbank_frames(n_samples) // STRIDE


def log_mel(wave: np.ndarray) -> np.ndarray:
    """One 1-D float32 waveform -> Kaldi log-mel filterbank [frames, 80] float32 (not normalised)."""
    x = np.asarray(wave, np.float32) * (2 ** 15)  # Kaldi works on 16-bit sample values
    x = x.astype(np.float64)
    n = fbank_frames(x.size)
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    fr = x[idx]
    fr = fr - fr.mean(axis=1, keepdims=True)
    fr = np.concatenate([fr[:, :1] * (1 - 0.97), fr[:, 1:] - 0.97 * fr[:, :-1]], axis=1)
    fr = fr * _WINDOW
    spec = np.fft.rfft(fr, n=N_FFT, axis=1).astype(np.complex64)  # the reference stores complex64
    power = np.abs(spec, dtype=np.float64) ** 2
    mel = np.maximum(MEL_FLOOR, _FILTERS.T @ power.T)  # [80, frames]
    # returned as the transpose of a [80, frames] array, like the reference: numpy's float32
    # mean / var over frames then sum in the same (pairwise) order, so normalisation matches too
    return np.log(mel).astype(np.float32).T


def features(wave: np.ndarray) -> np.ndarray:
    """One waveform -> SeamlessM4TFeatureExtractor's `input_features` rows that its attention
    mask keeps: per-bin normalised log-mel, frame pairs stacked, float32 [frames // 2, 160]."""
    m = log_mel(wave)
    m = (m - np.expand_dims(m.mean(0), 0)) / np.sqrt(np.expand_dims(m.var(0, ddof=1), 0) + 1e-7)
    t = m.shape[0] // STRIDE
    return np.ascontiguousarray(m[: t * STRIDE].reshape(t, STRIDE * N_MELS))


# ----------------------------------------------------------------------------- architecture
@dataclasses.dataclass(frozen=True)
class Arch:
    """What the forward pass needs from config.json (hashable: a jit static argument)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    input_dim: int
    act: str
    eps: float
    pos_type: str | None
    left: int
    right: int
    conv_kernel: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def arch_from_config(cfg: dict, where: Any = "config.json") -> Arch:
    if cfg.get("model_type", "wav2vec2-bert") != "wav2vec2-bert":
        raise EncoderError(f"{where}: model_type {cfg.get('model_type')!r} is not 'wav2vec2-bert'")

    def get(key, default):
        return cfg[key] if cfg.get(key) is not None else default

    pos = cfg.get("position_embeddings_type", "relative_key")
    if pos not in POSITION_TYPES:
        raise EncoderError(f"{where}: position_embeddings_type {pos!r} is not implemented in jaxser (it implements "
                           "'relative_key', which facebook/w2v-bert-2.0 uses, and null); use such a checkpoint")
    arch = Arch(hidden=int(get("hidden_size", 1024)), layers=int(get("num_hidden_layers", 24)),
                heads=int(get("num_attention_heads", 16)), intermediate=int(get("intermediate_size", 4096)),
                input_dim=int(get("feature_projection_input_dim", 160)), act=str(get("hidden_act", "swish")),
                eps=float(get("layer_norm_eps", 1e-5)), pos_type=pos,
                left=int(get("left_max_position_embeddings", 64)), right=int(get("right_max_position_embeddings", 8)),
                conv_kernel=int(get("conv_depthwise_kernel_size", 31)))
    if arch.act not in _ACTS:
        raise EncoderError(f"{where}: unsupported hidden_act {arch.act!r} (known: {sorted(_ACTS)})")
    if arch.input_dim != STRIDE * N_MELS:
        raise EncoderError(f"{where}: feature_projection_input_dim is {arch.input_dim}, but the SeamlessM4T front end "
                           f"jaxser implements gives {STRIDE * N_MELS} ({N_MELS} mel bins x stride {STRIDE})")
    if arch.hidden % arch.heads:
        raise EncoderError(f"{where}: hidden_size {arch.hidden} is not divisible by num_attention_heads {arch.heads}")
    if arch.conv_kernel % 2 == 0:
        raise EncoderError(f"{where}: conv_depthwise_kernel_size must be odd, got {arch.conv_kernel}")
    if min(arch.hidden, arch.layers, arch.heads, arch.intermediate, arch.conv_kernel) <= 0 or min(arch.left,
                                                                                                arch.right) < 0:
        raise EncoderError(f"{where}: encoder sizes must be positive, got {arch}")
    return arch


def expected_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    """Every parameter name of the bare model that the hidden states use, with its PyTorch shape."""
    D, I, C = arch.hidden, arch.intermediate, arch.input_dim
    out: dict[str, tuple[int, ...]] = {
        "feature_projection.layer_norm.weight": (C,), "feature_projection.layer_norm.bias": (C,),
        "feature_projection.projection.weight": (D, C), "feature_projection.projection.bias": (D,),
    }
    for l in range(arch.layers):
        p = f"encoder.layers.{l}."
        for f in ("ffn1", "ffn2"):
            out[p + f"{f}.intermediate_dense.weight"], out[p + f"{f}.intermediate_dense.bias"] = (I, D), (I,)
            out[p + f"{f}.output_dense.weight"], out[p + f"{f}.output_dense.bias"] = (D, I), (D,)
        for n in ("linear_q", "linear_k", "linear_v", "linear_out"):
            out[p + f"self_attn.{n}.weight"], out[p + f"self_attn.{n}.bias"] = (D, D), (D,)
        if arch.pos_type == "relative_key":
            out[p + "self_attn.distance_embedding.weight"] = (arch.left + arch.right + 1, arch.head_dim)
        c = p + "conv_module."
        out[c + "pointwise_conv1.weight"] = (2 * D, D, 1)
        out[c + "depthwise_conv.weight"] = (D, 1, arch.conv_kernel)
        out[c + "pointwise_conv2.weight"] = (D, D, 1)
        for n in ("ffn1_layer_norm", "self_attn_layer_norm", "conv_module.layer_norm",
                  "conv_module.depthwise_layer_norm", "ffn2_layer_norm", "final_layer_norm"):
            out[p + f"{n}.weight"], out[p + f"{n}.bias"] = (D,), (D,)
    return out


def convert(arch: Arch, weights: dict[str, np.ndarray], where: Any = "checkpoint") -> dict:
    """HF tensors (task prefix stripped) -> the params pytree of `forward` (float32 numpy).

    Names and shapes are checked first, so a wrong checkpoint fails here naming the key."""
    shapes = expected_shapes(arch)
    hf.check_keys(where, set(shapes), set(weights), ignore=IGNORED)
    for k, shape in shapes.items():
        if tuple(weights[k].shape) != shape:
            raise EncoderError(f"{where}: {k} has shape {tuple(weights[k].shape)}, but config.json implies {shape}")
    w = {k: np.asarray(weights[k], np.float32) for k in shapes}

    def stack(name, fn=lambda a: a):
        return np.stack([fn(w[f"encoder.layers.{l}.{name}"]) for l in range(arch.layers)])

    def t(a):
        return a.T

    a, c = "self_attn.", "conv_module."
    layers = {
        "ln_ff1_g": stack("ffn1_layer_norm.weight"), "ln_ff1_b": stack("ffn1_layer_norm.bias"),
        "ff1_w1": stack("ffn1.intermediate_dense.weight", t), "ff1_b1": stack("ffn1.intermediate_dense.bias"),
        "ff1_w2": stack("ffn1.output_dense.weight", t), "ff1_b2": stack("ffn1.output_dense.bias"),
        "ln_att_g": stack("self_attn_layer_norm.weight"), "ln_att_b": stack("self_attn_layer_norm.bias"),
        "qkv_w": np.concatenate([stack(a + f"{n}.weight", t) for n in ("linear_q", "linear_k", "linear_v")], -1),
        "qkv_b": np.concatenate([stack(a + f"{n}.bias") for n in ("linear_q", "linear_k", "linear_v")], -1),
        "o_w": stack(a + "linear_out.weight", t), "o_b": stack(a + "linear_out.bias"),
        "ln_conv_g": stack(c + "layer_norm.weight"), "ln_conv_b": stack(c + "layer_norm.bias"),
        "pw1_w": stack(c + "pointwise_conv1.weight", lambda x: x[:, :, 0].T),  # [D, 2D]
        "dw_w": stack(c + "depthwise_conv.weight", lambda x: x.transpose(2, 1, 0)),  # lax WIO [k, 1, D]
        "ln_dw_g": stack(c + "depthwise_layer_norm.weight"), "ln_dw_b": stack(c + "depthwise_layer_norm.bias"),
        "pw2_w": stack(c + "pointwise_conv2.weight", lambda x: x[:, :, 0].T),
        "ln_ff2_g": stack("ffn2_layer_norm.weight"), "ln_ff2_b": stack("ffn2_layer_norm.bias"),
        "ff2_w1": stack("ffn2.intermediate_dense.weight", t), "ff2_b1": stack("ffn2.intermediate_dense.bias"),
        "ff2_w2": stack("ffn2.output_dense.weight", t), "ff2_b2": stack("ffn2.output_dense.bias"),
        "ln_out_g": stack("final_layer_norm.weight"), "ln_out_b": stack("final_layer_norm.bias"),
    }
    if arch.pos_type == "relative_key":
        layers["dist"] = stack(a + "distance_embedding.weight")  # [L, left + right + 1, hd]
    fp = "feature_projection."
    return {"fp": {"g": w[fp + "layer_norm.weight"], "b": w[fp + "layer_norm.bias"],
                   "w": w[fp + "projection.weight"].T.copy(), "pb": w[fp + "projection.bias"]},
            "layers": layers}


# ----------------------------------------------------------------------------- forward pass
def _distance_index(arch: Arch, t: int) -> np.ndarray:
    """[t, t] row of `distance_embedding` for (query i, key j): clip(j - i, -left, right) + left."""
    d = np.arange(t)[None, :] - np.arange(t)[:, None]
    return (np.clip(d, -arch.left, arch.right) + arch.left).astype(np.int32)


def _layer_fn(arch: Arch, mask: jax.Array):
    """One Conformer layer as a function of (x [B, T, D], layer params), for padded frames `mask`."""
    act = _ACTS[arch.act]
    H, hd, eps = arch.heads, arch.head_dim, arch.eps
    B, T = mask.shape
    keep = mask[..., None]
    key_bias = jnp.where(mask, 0.0, -1e30).astype(jnp.float32)[:, None, None, :]  # [B, 1, 1, T]
    dist = jnp.asarray(_distance_index(arch, T)) if arch.pos_type == "relative_key" else None

    def ffn(x, lp, n):
        h = layer_norm(x, lp[f"ln_ff{n}_g"], lp[f"ln_ff{n}_b"], eps)
        h = act(h @ lp[f"ff{n}_w1"] + lp[f"ff{n}_b1"]) @ lp[f"ff{n}_w2"] + lp[f"ff{n}_b2"]
        return x + 0.5 * h

    def attention(x, lp):
        h = layer_norm(x, lp["ln_att_g"], lp["ln_att_b"], eps)
        qkv = (h @ lp["qkv_w"] + lp["qkv_b"]).reshape(B, T, 3, H, hd)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, H, T, hd]
        scores = q @ k.transpose(0, 1, 3, 2)
        if dist is not None:  # Shaw: q_i . E[clip(j - i)], gathered from the few distinct distances
            qe = q @ lp["dist"].T  # [B, H, T, left + right + 1]
            scores = scores + jnp.take_along_axis(qe, jnp.broadcast_to(dist, (B, H, T, T)), axis=-1)
        scores = scores.astype(jnp.float32) * (hd ** -0.5) + key_bias
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        o = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, arch.hidden)
        return x + (o @ lp["o_w"] + lp["o_b"])

    def conv(x, lp):
        h = layer_norm(x, lp["ln_conv_g"], lp["ln_conv_b"], eps) * keep  # padding never enters the conv
        h = h @ lp["pw1_w"]
        h = h[..., : arch.hidden] * jax.nn.sigmoid(h[..., arch.hidden:])  # GLU
        h = jax.lax.conv_general_dilated(h, lp["dw_w"], window_strides=(1,), padding=[(arch.conv_kernel - 1, 0)],
                                         dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=arch.hidden)
        h = act(layer_norm(h, lp["ln_dw_g"], lp["ln_dw_b"], eps))
        return x + h @ lp["pw2_w"]

    def layer(x, lp):
        x = ffn(x, lp, 1)
        x = attention(x, lp)
        x = conv(x, lp)
        x = ffn(x, lp, 2)
        return layer_norm(x, lp["ln_out_g"], lp["ln_out_b"], eps)

    return layer


def forward(arch: Arch, params: dict, feats: jax.Array, n_frames: jax.Array, dtype=jnp.float32, collect=None,
            upto: int | None = None):
    """Padded stacked features [B, T, 160] + valid frames [B] -> stacked `collect(hidden_state, mask)`
    over hidden states 0 .. `upto` (default all L + 1); `collect` defaults to the identity."""
    collect = collect or (lambda h, m: h)
    p = jax.tree.map(lambda a: a.astype(dtype), params)
    B, T, _ = feats.shape
    mask = jnp.arange(T)[None, :] < n_frames[:, None]
    fp = p["fp"]
    x = layer_norm(feats.astype(dtype), fp["g"], fp["b"], arch.eps) @ fp["w"] + fp["pb"]
    x = x * mask[..., None].astype(dtype)  # as the reference's masked_fill before the first layer
    layer = _layer_fn(arch, mask)
    upto = arch.layers if upto is None else upto
    sub = jax.tree.map(lambda a: a[:upto], p["layers"])

    def step(x, lp):
        y = layer(x, lp)
        return y, collect(y, mask)

    first = collect(x, mask)
    if upto == 0:
        return first[None]
    _, rest = jax.lax.scan(step, x, sub)
    return jnp.concatenate([first[None], rest], axis=0)


# ----------------------------------------------------------------------------- encoder
def frame_buckets() -> tuple[int, ...]:
    """The default ladder (`base.geometric_buckets`) in encoder frames (one per 320 samples, 50 a second)."""
    return tuple(b // HOP // STRIDE for b in geometric_buckets(SAMPLE_RATE))


class W2VBertEncoder(BatchedEncoder):
    """Every hidden state of a w2v-BERT 2.0 encoder, mean-pooled over each utterance's frames."""

    unit, units_per_second = "frames", SAMPLE_RATE / (HOP * STRIDE)  # stacked feature frames are padded

    def __init__(self, arch: Arch, params: dict, *, config: dict, name: str, fingerprint: str,
                 dtype: str = "float32", buckets: Sequence[int] | None = None, batch_seconds: float = 32.0,
                 max_batch: int = 16, batch_stretch: float = BATCH_STRETCH, mesh=None, shard_params: bool = False):
        from jaxser import sharding

        self.arch, self.config, self.name, self.fingerprint = arch, config, name, fingerprint
        self.dim, self.num_layers = arch.hidden, arch.layers + 1
        self._setup(dtype=dtype, buckets=buckets, ladder=frame_buckets(), batch_seconds=batch_seconds,
                    max_batch=max_batch, batch_stretch=batch_stretch, mesh=mesh)
        params = jax.tree.map(lambda a: jnp.asarray(a, self._jdt), params)
        if shard_params:  # the per-layer weights are stacked for lax.scan: never split the layer axis
            self.params = {k: sharding.fsdp(self.mesh, v, stacked=(k == "layers")) for k, v in params.items()}
        else:
            self.params = sharding.replicate(self.mesh, params)
        self._use_forward(forward)

    def frames(self, n_samples: int) -> int:
        """Encoder frames of an utterance of n samples (= hidden-state frames, 50 per second)."""
        return encoder_frames(n_samples)

    def _prepare(self, waveforms) -> list[np.ndarray]:
        """Stacked, normalised features of each waveform (checked: 1-D, finite, long enough)."""
        return [features(w) for w in check_waveforms(self.name, waveforms, MIN_SAMPLES,
                                                     f" ({MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms) for one frame")]

    def features(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        """SeamlessM4TFeatureExtractor's `input_features` of each waveform, valid frames only:
        a list of float32 [frames(n), 160]."""
        return self._prepare(waveforms)

    def _valid_frames(self, n_frames: int) -> int:
        return n_frames


# ----------------------------------------------------------------------------- loading
_REAL = dict(model_type="wav2vec2-bert", feature_projection_input_dim=160, hidden_act="swish", layer_norm_eps=1e-5,
             position_embeddings_type="relative_key", left_max_position_embeddings=64,
             right_max_position_embeddings=8, conv_depthwise_kernel_size=31, add_adapter=False)
PRESETS: dict[str, dict] = {
    # tests: facebook/w2v-bert-2.0's flags (relative_key 64/8, kernel 31, swish) at toy width
    "tiny": dict(_REAL, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
    # throughput control, fast on 2 CPU cores
    "small": dict(_REAL, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    # facebook/w2v-bert-2.0 sizes (~580M parameters)
    "large": dict(_REAL, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}
_BATCH_KW = ("batch_seconds", "max_batch", "batch_stretch", "mesh", "shard_params")


def random_weights(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random weights under their HF names (random models take the real loading path):
    fan-in scaled normals for matrices, unit-ish layer-norm gains, small biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in expected_shapes(arch).items():
        if k.endswith("distance_embedding.weight"):
            out[k] = (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
        else:
            out[k] = hf.random_tensor(rng, k, shape)
    return out


def load(source: str = "random", *, dtype: str = "float32", revision: str | None = None, allow_pickle=None,
         preset: str | None = None,
         seed: int = 0, buckets: Sequence[int] | None = None, **kw) -> W2VBertEncoder:
    """A w2v-BERT 2.0 encoder from a local HF folder, a Hub id (facebook/w2v-bert-2.0), or `"random"`.

    source="random": the architecture of `preset` ("tiny" default, "small", "large") with seeded
      random weights, no download; further keyword arguments override config entries.
    buckets: encoder-frame lengths (50 per second) a batch is padded to (default `frame_buckets()`).
    Batching: batch_seconds (padded audio per batch, default 32), max_batch (default 16), batch_stretch
      (default 1.2), as for the wav2vec2 family.
    mesh / shard_params: as for the wav2vec2 family (docs/scaling.md); neither enters the fingerprint.
    """
    batch_kw = {k: kw.pop(k) for k in _BATCH_KW if k in kw}
    if source == "random":
        preset, config, arch, weights, where = hf.random_preset(PRESETS, preset, kw, default="tiny", seed=seed,
                                                         make_arch=arch_from_config, make_weights=random_weights)
        name = f"random-w2v-bert-{preset}"
    else:
        path, config = hf.open_checkpoint(source, revision=revision, allow_pickle=allow_pickle, preset=preset,
                                          overrides=kw)
        arch = arch_from_config(config, path / "config.json")
        hf.check_preprocessor(path, {"feature_size": N_MELS, "num_mel_bins": N_MELS, "stride": STRIDE,
                                     "sampling_rate": SAMPLE_RATE}, kind="SeamlessM4TFeatureExtractor")
        weights = hf.strip_prefix(hf.read_weights(path), TASK_PREFIXES)
        name, where = str(source), path
    params = convert(arch, weights, where)
    keep = set(expected_shapes(arch))
    fp = digest(dataclasses.asdict(arch), {k: v for k, v in weights.items() if k in keep},
                extra=f"w2v-bert;front=seamless-m4t-fbank80x2;pool=mean-valid-frames;hidden_states=transformers5;"
                      f"dtype={dtype}")
    enc = W2VBertEncoder(arch, params, config=config, name=name, fingerprint=fp, dtype=dtype, buckets=buckets,
                          **batch_kw)
    enc.provenance = None if source == "random" else hf.provenance(path)
    return enc

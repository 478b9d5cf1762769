"""JAX port of the Hugging Face wav2vec2 family: wav2vec2 / XLS-R / MMS, HuBERT, WavLM,
UniSpeech-SAT and data2vec-audio, loaded from HF `config.json` + `model.safetensors`.

Long on purpose: seven architectures share one forward pass; splitting it would hide their differences.

Plain jax functions over a params pytree (no framework state): the forward pass is a pure
function of (architecture, params, padded waveforms, lengths), jitted once per bucket shape.

Batch invariance is built in, not approximated: an utterance's hidden states equal those of the
PyTorch reference run on that utterance alone. Three places would otherwise leak padding:
  * the group-norm feature extractor's per-channel statistics -> taken over valid frames only;
  * the convolutional positional embedding (and data2vec's stack of them, and HuBERT's batch
    norm variant) -> its input is zeroed beyond the valid frames before every convolution,
    exactly what the unpadded run's zero padding sees;
  * self-attention -> padded keys are masked.
Strided convolutions only read samples before their window end, so frames inside the valid
length (the model's own conv output-length formula) never see padding at all.

Hidden states follow transformers 5.x's `output_hidden_states` tuple: entry 0 is the input of
the first transformer layer (after the positional embedding and, for post-LN models, the encoder
layer norm), entry i the output of layer i. For pre-LN ("stable") models the encoder's final
layer norm is NOT applied to the last entry (transformers 5 records layer outputs; only
`last_hidden_state` carries that norm) -- see docs/encoders.md.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.encoders import hf
from jaxser.encoders.activations import ACTIVATIONS, layer_norm, valid_group_norm
from jaxser.encoders.base import (
    BATCH_STRETCH,
    BUCKET_RATIO,  # noqa: F401  (the default ladder's ratio, beside BATCH_STRETCH)
    BatchedEncoder,
    EncoderError,
    check_waveforms,
    cpu_bf16_matrix_units,
    digest,
    geometric_buckets,
    min_samples_why,
)

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "unispeech-sat", "data2vec-audio")
#: prefixes of task checkpoints (ForCTC, ForSequenceClassification, ForPreTraining, ...)
TASK_PREFIXES = ("wav2vec2.", "hubert.", "wavlm.", "unispeech_sat.", "data2vec_audio.")
#: keys of the bare model that only matter for pre-training / fine-tuning heads
IGNORED = ("masked_spec_embed", "quantizer.", "project_q.", "project_hid.", "lm_head.", "adapter.",
           "label_embeddings", "dropout_features", "speaker_proj.", "label_embeddings_concat")
_ACTS = ACTIVATIONS
_TORCH_LN_EPS = 1e-5  # nn.LayerNorm / nn.GroupNorm default inside the conv stacks


# ----------------------------------------------------------------------------- architecture
@dataclasses.dataclass(frozen=True)
class Arch:
    """Everything the forward pass needs from config.json (hashable: a jit static argument)."""

    model_type: str
    conv_dim: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_bias: bool
    feat_norm: str  # "group": GroupNorm on conv 0 only; "layer": LayerNorm on every conv
    feat_act: str
    hidden_act: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    eps: float
    stable: bool  # pre-LN transformer (large / XLS-R / MMS)
    pos_kind: str  # "weight_norm" | "batch_norm" (HuBERT option) | "stack" (data2vec-audio)
    pos_kernel: int
    pos_groups: int
    pos_layers: int
    feat_proj_ln: bool
    rel_bias: bool  # WavLM gated relative position bias
    num_buckets: int = 320
    max_distance: int = 800

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def frames(self, n):
        """transformers' `_get_feat_extract_output_lengths` (floor((n - k) / s) + 1 per conv)."""
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1
        return n

    @property
    def min_samples(self) -> int:
        """Shortest waveform that yields one frame (the conv stack's receptive field)."""
        n = 1
        for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            n = (n - 1) * s + k
        return n


def arch_from_config(cfg: dict, where: Any = "config.json") -> Arch:
    mt = str(cfg.get("model_type", "wav2vec2")).replace("_", "-")
    if mt not in MODEL_TYPES:
        raise EncoderError(f"{where}: model_type {cfg.get('model_type')!r} is not in the wav2vec2 family "
                           f"({', '.join(MODEL_TYPES)})")
    if cfg.get("adapter_attn_dim"):
        raise EncoderError(f"{where}: adapter_attn_dim is set (MMS language adapters inside the layers); "
                           "jaxser does not implement attention adapters -- use a checkpoint without them")

    def get(key, default=None):
        if key in cfg:
            return cfg[key]
        if default is None:
            raise EncoderError(f"{where}: config has no {key!r}")
        return default

    conv_dim = tuple(int(x) for x in get("conv_dim", (512,) * 7))
    conv_kernel = tuple(int(x) for x in get("conv_kernel", (10, 3, 3, 3, 3, 2, 2)))
    conv_stride = tuple(int(x) for x in get("conv_stride", (5, 2, 2, 2, 2, 2, 2)))
    if not len(conv_dim) == len(conv_kernel) == len(conv_stride):
        raise EncoderError(f"{where}: conv_dim, conv_kernel and conv_stride differ in length")
    d2v = mt == "data2vec-audio"
    hubert_bn = mt == "hubert" and bool(cfg.get("conv_pos_batch_norm", False))
    feat_norm = "layer" if d2v else str(get("feat_extract_norm", "group"))
    if feat_norm not in ("group", "layer"):
        raise EncoderError(f"{where}: feat_extract_norm must be 'group' or 'layer', got {feat_norm!r}")
    for key in ("feat_extract_activation", "hidden_act"):
        if str(cfg.get(key, "gelu")) not in _ACTS:
            raise EncoderError(f"{where}: unsupported {key} {cfg.get(key)!r} (known: {sorted(_ACTS)})")
    arch = Arch(
        model_type=mt, conv_dim=conv_dim, conv_kernel=conv_kernel, conv_stride=conv_stride,
        conv_bias=bool(cfg.get("conv_bias", False)), feat_norm=feat_norm,
        feat_act=str(cfg.get("feat_extract_activation", "gelu")), hidden_act=str(cfg.get("hidden_act", "gelu")),
        hidden=int(get("hidden_size", 768)), layers=int(get("num_hidden_layers", 12)),
        heads=int(get("num_attention_heads", 12)), intermediate=int(get("intermediate_size", 3072)),
        eps=float(cfg.get("layer_norm_eps", 1e-5)),
        stable=False if d2v else bool(cfg.get("do_stable_layer_norm", False)),
        pos_kind="stack" if d2v else "batch_norm" if hubert_bn else "weight_norm",
        pos_kernel=int(get("conv_pos_kernel_size", 19)) if d2v else int(get("num_conv_pos_embeddings", 128)),
        pos_groups=int(get("num_conv_pos_embedding_groups", 16)),
        pos_layers=int(get("num_conv_pos_embeddings", 5)) if d2v else 1,
        feat_proj_ln=bool(cfg.get("feat_proj_layer_norm", True)) if mt == "hubert" else True,
        rel_bias=mt == "wavlm", num_buckets=int(cfg.get("num_buckets", 320)),
        max_distance=int(cfg.get("max_bucket_distance", 800)),
    )
    if arch.hidden % arch.heads or arch.hidden % arch.pos_groups:
        raise EncoderError(f"{where}: hidden_size {arch.hidden} is not divisible by num_attention_heads "
                           f"{arch.heads} / num_conv_pos_embedding_groups {arch.pos_groups}")
    return arch


# ----------------------------------------------------------------------------- checkpoint names
def _pos_weight_names(weights: dict) -> tuple[str, str]:
    """(gain, direction) names of the weight-norm positional conv; transformers 5 writes the
    parametrization names, older checkpoints (and the Hub's originals) weight_g / weight_v."""
    new = ("encoder.pos_conv_embed.conv.parametrizations.weight.original0",
           "encoder.pos_conv_embed.conv.parametrizations.weight.original1")
    old = ("encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.weight_v")
    return old if old[1] in weights and new[1] not in weights else new


def expected_shapes(arch: Arch, weights: dict | None = None) -> dict[str, tuple[int, ...]]:
    """Every HF parameter name of the bare model with its shape (PyTorch layouts)."""
    D, I, H = arch.hidden, arch.intermediate, arch.heads
    out: dict[str, tuple[int, ...]] = {}
    cin = 1
    for i, (c, k) in enumerate(zip(arch.conv_dim, arch.conv_kernel)):
        p = f"feature_extractor.conv_layers.{i}."
        out[p + "conv.weight"] = (c, cin, k)
        if arch.conv_bias:
            out[p + "conv.bias"] = (c,)
        if arch.feat_norm == "layer" or i == 0:
            out[p + "layer_norm.weight"] = (c,)
            out[p + "layer_norm.bias"] = (c,)
        cin = c
    if arch.feat_proj_ln:
        out["feature_projection.layer_norm.weight"] = (cin,)
        out["feature_projection.layer_norm.bias"] = (cin,)
    out["feature_projection.projection.weight"] = (D, cin)
    out["feature_projection.projection.bias"] = (D,)
    K, G = arch.pos_kernel, arch.pos_groups
    if arch.pos_kind == "stack":
        for j in range(arch.pos_layers):
            out[f"encoder.pos_conv_embed.layers.{j}.conv.weight"] = (D, D // G, K)
            out[f"encoder.pos_conv_embed.layers.{j}.conv.bias"] = (D,)
    elif arch.pos_kind == "batch_norm":
        out["encoder.pos_conv_embed.conv.weight"] = (D, D // G, K)
        out["encoder.pos_conv_embed.conv.bias"] = (D,)
        for n in ("weight", "bias", "running_mean", "running_var"):
            out[f"encoder.pos_conv_embed.batch_norm.{n}"] = (D,)
        out["encoder.pos_conv_embed.batch_norm.num_batches_tracked"] = ()
    else:
        g, v = _pos_weight_names(weights or {})
        out[g] = (1, 1, K)
        out[v] = (D, D // G, K)
        out["encoder.pos_conv_embed.conv.bias"] = (D,)
    out["encoder.layer_norm.weight"] = (D,)
    out["encoder.layer_norm.bias"] = (D,)
    for l in range(arch.layers):
        p = f"encoder.layers.{l}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[p + f"attention.{n}.weight"] = (D, D)
            out[p + f"attention.{n}.bias"] = (D,)
        if arch.rel_bias:
            out[p + "attention.gru_rel_pos_const"] = (1, H, 1, 1)
            out[p + "attention.gru_rel_pos_linear.weight"] = (8, D // H)
            out[p + "attention.gru_rel_pos_linear.bias"] = (8,)
            if l == 0:
                out[p + "attention.rel_attn_embed.weight"] = (arch.num_buckets, H)
        out[p + "feed_forward.intermediate_dense.weight"] = (I, D)
        out[p + "feed_forward.intermediate_dense.bias"] = (I,)
        out[p + "feed_forward.output_dense.weight"] = (D, I)
        out[p + "feed_forward.output_dense.bias"] = (D,)
        for n in ("layer_norm", "final_layer_norm"):
            out[p + f"{n}.weight"] = (D,)
            out[p + f"{n}.bias"] = (D,)
    return out


def convert(arch: Arch, weights: dict[str, np.ndarray], where: Any = "checkpoint") -> dict:
    """HF tensors (task prefix already stripped) -> the params pytree of `forward` (float32 numpy).

    Every name and shape is checked first, so a wrong checkpoint fails here with the key's name."""
    shapes = expected_shapes(arch, weights)
    hf.check_keys(where, set(shapes), set(weights), ignore=IGNORED)
    for k, shape in shapes.items():
        if tuple(weights[k].shape) != shape:
            raise EncoderError(f"{where}: {k} has shape {tuple(weights[k].shape)}, but config.json implies {shape}")
    w = {k: np.asarray(weights[k], np.float32) for k in shapes}
    H = arch.heads

    fe = []
    for i, (c, k) in enumerate(zip(arch.conv_dim, arch.conv_kernel)):
        p = f"feature_extractor.conv_layers.{i}."
        layer = {"w": np.ascontiguousarray(w[p + "conv.weight"].transpose(2, 1, 0))}  # [out, in, k] -> [k, in, out]
        if arch.conv_bias:
            layer["b"] = w[p + "conv.bias"]
        if arch.feat_norm == "layer" or i == 0:
            layer["g"], layer["beta"] = w[p + "layer_norm.weight"], w[p + "layer_norm.bias"]
        fe.append(layer)
    fp = {"w": w["feature_projection.projection.weight"].T.copy(), "b": w["feature_projection.projection.bias"]}
    if arch.feat_proj_ln:
        fp["g"], fp["beta"] = w["feature_projection.layer_norm.weight"], w["feature_projection.layer_norm.bias"]

    def conv_hwio(W):  # torch [out, in/groups, k] -> lax [k, in/groups, out]
        return np.ascontiguousarray(W.transpose(2, 1, 0))

    if arch.pos_kind == "stack":
        pos = {"w": np.stack([conv_hwio(w[f"encoder.pos_conv_embed.layers.{j}.conv.weight"])
                              for j in range(arch.pos_layers)]),
               "b": np.stack([w[f"encoder.pos_conv_embed.layers.{j}.conv.bias"] for j in range(arch.pos_layers)])}
    elif arch.pos_kind == "batch_norm":
        bn = "encoder.pos_conv_embed.batch_norm."
        scale = w[bn + "weight"] / np.sqrt(w[bn + "running_var"] + 1e-5)
        pos = {"w": conv_hwio(w["encoder.pos_conv_embed.conv.weight"])[None],
               "b": w["encoder.pos_conv_embed.conv.bias"][None],
               "bn_scale": scale, "bn_shift": w[bn + "bias"] - w[bn + "running_mean"] * scale}
    else:
        gname, vname = _pos_weight_names(weights)
        g, v = w[gname], w[vname]  # weight norm over dims (0, 1) per kernel tap (dim=2)
        norm = np.sqrt(np.sum(v.astype(np.float64) ** 2, axis=(0, 1), keepdims=True))
        W = (g * (v / norm)).astype(np.float32)
        pos = {"w": conv_hwio(W)[None], "b": w["encoder.pos_conv_embed.conv.bias"][None]}

    def stack(name, fn=lambda a: a):
        return np.stack([fn(w[f"encoder.layers.{l}.{name}"]) for l in range(arch.layers)])

    att = "attention."
    layers = {
        "qkv_w": np.concatenate([stack(att + f"{n}.weight", lambda a: a.T) for n in ("q_proj", "k_proj", "v_proj")],
                                axis=-1),
        "qkv_b": np.concatenate([stack(att + f"{n}.bias") for n in ("q_proj", "k_proj", "v_proj")], axis=-1),
        "o_w": stack(att + "out_proj.weight", lambda a: a.T), "o_b": stack(att + "out_proj.bias"),
        "ln1_g": stack("layer_norm.weight"), "ln1_b": stack("layer_norm.bias"),
        "ff1_w": stack("feed_forward.intermediate_dense.weight", lambda a: a.T),
        "ff1_b": stack("feed_forward.intermediate_dense.bias"),
        "ff2_w": stack("feed_forward.output_dense.weight", lambda a: a.T),
        "ff2_b": stack("feed_forward.output_dense.bias"),
        "ln2_g": stack("final_layer_norm.weight"), "ln2_b": stack("final_layer_norm.bias"),
    }
    params = {"fe": fe, "fp": fp, "pos": pos, "layers": layers,
              "enc_ln": {"g": w["encoder.layer_norm.weight"], "beta": w["encoder.layer_norm.bias"]}}
    if arch.rel_bias:
        layers["gru_w"] = stack(att + "gru_rel_pos_linear.weight", lambda a: a.T)
        layers["gru_b"] = stack(att + "gru_rel_pos_linear.bias")
        layers["gru_c"] = stack(att + "gru_rel_pos_const", lambda a: a.reshape(H))
        params["rel_embed"] = w["encoder.layers.0.attention.rel_attn_embed.weight"]
    # one dict per layer, unrolled in `forward`: XLA:CPU slices stacked weights inside a scan by
    # copying them, which cost ~8% of the transformer's time
    params["layers"] = [{k: v[l] for k, v in layers.items()} for l in range(arch.layers)]
    return params


# ----------------------------------------------------------------------------- forward pass
def _strided_conv(x, w, k, s):
    """Valid strided 1-D conv, [B, T, C] -> [B, (T - k) // s + 1, out]; w is [k, C, out].
    (XLA:CPU runs this through its oneDNN/Eigen convolution, measurably faster than im2col + GEMM
    in float32; in bfloat16 on a CPU with bf16 matrix units, dots are faster, see below.)"""
    if x.dtype == jnp.bfloat16 and cpu_bf16_matrix_units():
        return strided_conv_as_dots(x, w, k, s)
    return jax.lax.conv_general_dilated(x, w, window_strides=(s,), padding="VALID",
                                        dimension_numbers=("NWC", "WIO", "NWC"))


def strided_conv_as_dots(x, w, k, s):
    """`_strided_conv` as bf16 x bf16 -> f32 dots (one rounding back to the input dtype).

    XLA:CPU converts bfloat16 convolutions to float32 but sends bf16 -> f32 dots to its matrix
    kernels (AMX where the CPU has it). Viewed as [B, T/s, s*C] rows of s frames, output t reads
    rows t .. t + ceil(k/s) - 1: one dot per row offset on a shifted view, no im2col copy."""
    B, T, C = x.shape
    t_out = (T - k) // s + 1
    rows = -(-T // s)
    v = jnp.pad(x, ((0, 0), (0, rows * s - T), (0, 0))).reshape(B, rows, s * C)
    y = None
    for j in range(-(-k // s)):
        m = min(s, k - j * s)  # taps of this row offset
        part = jnp.matmul(v[:, j: j + t_out, : m * C], w[j * s: j * s + m].reshape(m * C, -1),
                          preferred_element_type=jnp.float32)
        y = part if y is None else y + part
    return y.astype(x.dtype)


def _rel_buckets(arch: Arch, t: int) -> np.ndarray:
    """WavLM's `_relative_positions_bucket` for a [t, t] grid, in float32 like the reference."""
    nb = arch.num_buckets // 2
    rel = np.arange(t)[None, :] - np.arange(t)[:, None]
    out = (rel > 0).astype(np.int64) * nb
    rel = np.abs(rel)
    max_exact = nb // 2
    with np.errstate(divide="ignore"):
        large = np.log(rel.astype(np.float32) / np.float32(max_exact))
    large = large / np.float32(math.log(arch.max_distance / max_exact))
    large = large * np.float32(nb - max_exact)
    large = np.where(rel < max_exact, 0, (np.float32(max_exact) + large)).astype(np.int64)
    large = np.minimum(large, nb - 1)
    return (out + np.where(rel < max_exact, rel, large)).astype(np.int32)


def _pos_conv(x, w, b, arch):
    pad = (arch.pos_kernel // 2, arch.pos_kernel - 1 - arch.pos_kernel // 2)  # = HF pad + SamePad trim
    y = jax.lax.conv_general_dilated(x, w.astype(x.dtype), window_strides=(1,), padding=[pad],
                                     dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=arch.pos_groups)
    return y + b.astype(x.dtype)


def forward(arch: Arch, params: dict, wave: jax.Array, n_samples: jax.Array, dtype=jnp.float32, collect=None,
            upto: int | None = None):
    """Padded waveforms [B, N] + valid lengths [B] -> stacked `collect(hidden_state, frame_mask)` over
    the L + 1 hidden states. `collect` defaults to the identity ([L + 1, B, T, D]); pooling inside it
    avoids materialising every layer's frames. `upto` is accepted for the base's frame slicing; the
    layers are unrolled, so XLA drops those past the sliced one anyway.

    Hidden states beyond an utterance's valid frames are garbage by design and must be masked."""
    collect = collect or (lambda h, m: h)
    feat_act, act = _ACTS[arch.feat_act], _ACTS[arch.hidden_act]
    low = jnp.dtype(dtype) != jnp.float32

    def dense(h, w, b=None, fn=None):
        """h @ w (+ b) (then fn). In bfloat16: a bf16 x bf16 -> f32 dot (XLA:CPU sends only these
        to its bf16 matrix kernels; a bf16-output dot is rewritten to an f32 one), bias and `fn` in
        float32, one rounding back to bf16. The float32 graph is exactly the plain expression."""
        if not low:
            y = h @ w if b is None else h @ w + b
            return y if fn is None else fn(y)
        y = jnp.matmul(h, w, preferred_element_type=jnp.float32)
        y = y if b is None else y + b.astype(jnp.float32)
        return (y if fn is None else fn(y)).astype(dtype)
    p = jax.tree.map(lambda a: a.astype(dtype), params)
    x = wave.astype(dtype)[..., None]
    n = n_samples
    for i, (layer, k, s) in enumerate(zip(p["fe"], arch.conv_kernel, arch.conv_stride)):
        x = _strided_conv(x, layer["w"], k, s)
        if "b" in layer:
            x = x + layer["b"]
        n = (n - k) // s + 1
        if arch.feat_norm == "layer":
            x = layer_norm(x, layer["g"], layer["beta"], _TORCH_LN_EPS)
        elif i == 0:  # GroupNorm(C groups): per-channel statistics over VALID frames only
            x = valid_group_norm(x, n, layer["g"], layer["beta"], _TORCH_LN_EPS)
        x = feat_act(x)
    B, T, _ = x.shape
    mask = jnp.arange(T)[None, :] < n[:, None]  # [B, T]
    maskf = mask[..., None].astype(dtype)

    if arch.feat_proj_ln:
        x = layer_norm(x, p["fp"]["g"], p["fp"]["beta"], arch.eps)
    x = dense(x, p["fp"]["w"], p["fp"]["b"]) * maskf  # padded frames -> 0, as HF does with a mask

    pos = p["pos"]
    if arch.pos_kind == "stack":  # data2vec-audio: conv -> LN (no affine) -> act, zero padding each time
        h = x
        for j in range(arch.pos_layers):
            h = _pos_conv(h * maskf, pos["w"][j], pos["b"][j], arch)
            h = feat_act(layer_norm(h, None, None, _TORCH_LN_EPS))
        x = x + h
    else:
        h = x
        if arch.pos_kind == "batch_norm":
            h = (h * pos["bn_scale"] + pos["bn_shift"]) * maskf
        x = x + feat_act(_pos_conv(h, pos["w"][0], pos["b"][0], arch))
    if not arch.stable:
        x = layer_norm(x, p["enc_ln"]["g"], p["enc_ln"]["beta"], arch.eps)

    Hh, hd = arch.heads, arch.head_dim
    key_bias = jnp.where(mask, 0.0, -1e30).astype(jnp.float32)[:, None, None, :]  # [B, 1, 1, T]
    if arch.rel_bias:
        rel = jnp.asarray(p["rel_embed"], jnp.float32)[jnp.asarray(_rel_buckets(arch, T))]  # [T, T, H]
        rel = jnp.transpose(rel, (2, 0, 1))[None]  # [1, H, T, T]

    def attention(h, lp):
        qkv = dense(h, lp["qkv_w"], lp["qkv_b"])
        q, k_, v = jnp.split(qkv.reshape(B, T, 3, Hh, hd), 3, axis=2)
        q, k_, v = (a[:, :, 0].transpose(0, 2, 1, 3) for a in (q, k_, v))  # [B, H, T, hd]
        if low:
            scores = jnp.matmul(q * (hd ** -0.5), k_.transpose(0, 1, 3, 2), preferred_element_type=jnp.float32)
        else:
            scores = (q * (hd ** -0.5)) @ k_.transpose(0, 1, 3, 2)
        scores = scores.astype(jnp.float32) + key_bias
        if arch.rel_bias:  # WavLM: relative bias gated by each query's own (per-head) state
            g = dense(h.reshape(B, T, Hh, hd), lp["gru_w"], lp["gru_b"])  # [B, T, H, 8]
            g = jax.nn.sigmoid(g.astype(jnp.float32).reshape(B, T, Hh, 2, 4).sum(-1))
            gate = g[..., 0] * (g[..., 1] * lp["gru_c"].astype(jnp.float32) - 1.0) + 2.0  # [B, T, H]
            scores = scores + gate.transpose(0, 2, 1)[..., None] * rel
        probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
        o = dense(probs, v).transpose(0, 2, 1, 3).reshape(B, T, arch.hidden)
        return dense(o, lp["o_w"], lp["o_b"])

    def ffn(h, lp):
        return dense(dense(h, lp["ff1_w"], lp["ff1_b"], act), lp["ff2_w"], lp["ff2_b"])

    def layer(x, lp):
        if arch.stable:
            x = x + attention(layer_norm(x, lp["ln1_g"], lp["ln1_b"], arch.eps), lp)
            x = x + ffn(layer_norm(x, lp["ln2_g"], lp["ln2_b"], arch.eps), lp)
        else:
            x = layer_norm(x + attention(x, lp), lp["ln1_g"], lp["ln1_b"], arch.eps)
            x = layer_norm(x + ffn(x, lp), lp["ln2_g"], lp["ln2_b"], arch.eps)
        return x, collect(x, mask)

    hs = [collect(x, mask)]
    for lp in p["layers"]:
        x, c = layer(x, lp)
        hs.append(c)
    return jnp.stack(hs)


# ----------------------------------------------------------------------------- encoder
class Wav2Vec2Encoder(BatchedEncoder):
    """Every hidden state of a wav2vec2-family model, mean-pooled over each utterance's frames."""

    def __init__(self, arch: Arch, params: dict, *, config: dict, name: str, fingerprint: str,
                 dtype: str = "float32", normalize: bool = False, buckets: Sequence[int] | None = None,
                 batch_seconds: float = 32.0, max_batch: int = 16, batch_stretch: float = BATCH_STRETCH, mesh=None,
                 shard_params: bool = False):
        from jaxser import sharding

        self.arch, self.config, self.name, self.fingerprint = arch, config, name, fingerprint
        self.dim, self.num_layers = arch.hidden, arch.layers + 1
        self.normalize = bool(normalize)
        self._setup(dtype=dtype, buckets=buckets, ladder=geometric_buckets(self.sample_rate),
                    batch_seconds=batch_seconds, max_batch=max_batch, batch_stretch=batch_stretch, mesh=mesh)
        # weights live on device in the compute dtype (halves memory traffic in bfloat16)
        place = sharding.fsdp if shard_params else sharding.replicate
        self.params = place(self.mesh, jax.tree.map(lambda a: jnp.asarray(a, self._jdt), params))
        self._use_forward(forward)

    def _prepare(self, waveforms) -> list[np.ndarray]:
        out = []
        for w in check_waveforms(self.name, waveforms, self.arch.min_samples, min_samples_why(self)):
            if self.normalize:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm on the valid samples
                w = ((w - w.mean()) / np.sqrt(w.var() + 1e-7)).astype(np.float32)
            out.append(w)
        return out


# ----------------------------------------------------------------------------- loading
PRESETS: dict[str, dict] = {
    # default-benchmark control: wav2vec2-base layout at a quarter of the width, fast on 2 CPU cores
    "small": dict(model_type="wav2vec2", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=1024, conv_dim=[256] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2],
                  conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_bias=False, feat_extract_norm="group",
                  do_stable_layer_norm=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                  layer_norm_eps=1e-5, hidden_act="gelu", feat_extract_activation="gelu"),
    # facebook/wav2vec2-base sizes (95M parameters)
    "base": dict(model_type="wav2vec2", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2],
                 conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_bias=False, feat_extract_norm="group",
                 do_stable_layer_norm=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                 layer_norm_eps=1e-5, hidden_act="gelu", feat_extract_activation="gelu"),
    # wav2vec2-large-lv60 / XLS-R 300M / MMS-300m sizes: layer-norm conv stack, pre-LN transformer
    "large": dict(model_type="wav2vec2", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2],
                  conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_bias=True, feat_extract_norm="layer",
                  do_stable_layer_norm=True, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                  layer_norm_eps=1e-5, hidden_act="gelu", feat_extract_activation="gelu"),
}
_BATCH_KW = ("batch_seconds", "max_batch", "batch_stretch", "mesh", "shard_params")


def random_weights(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random weights under their HF names (so random models take the real loading path):
    fan-in scaled normals for matrices, unit-ish gains, small biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in expected_shapes(arch).items():
        if k.endswith("num_batches_tracked"):
            out[k] = np.zeros(shape, np.int64)
        elif k.endswith(("running_var", "original0", "weight_g")) or "norm.weight" in k or k.endswith("const"):
            out[k] = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        elif len(shape) >= 2:
            out[k] = rng.standard_normal(shape, dtype=np.float32) * np.float32(1 / np.sqrt(np.prod(shape[1:])))
        else:
            out[k] = 0.02 * rng.standard_normal(shape, dtype=np.float32)
    return out


def load(source: str = "random", *, dtype: str = "float32", revision: str | None = None, allow_pickle=None,
         preset: str | None = None,
         seed: int = 0, buckets: Sequence[int] | None = None, normalize: bool | None = None,
         **kw) -> Wav2Vec2Encoder:
    """A wav2vec2-family encoder from a local HF folder, a Hub id, or `"random"`.

    source="random": the architecture of `preset` ("small" default, "base", "large") with seeded
      random weights, no download; further keyword arguments override config entries
      (e.g. model_type="wavlm").
    normalize: zero-mean unit-variance per utterance; default = preprocessor_config.json's
      do_normalize when the folder has one, else False (random models: False).
    Batching: batch_seconds (padded audio per batch, default 32), max_batch (default 16),
      batch_stretch (a batch padded to bucket L also takes utterances of buckets >= L / stretch;
      default 1.2, one step of the default 2^(1/6) ladder; 1.0: one bucket per batch).
    dtype="bfloat16": weights and activations in bf16, every matmul a bf16 x bf16 -> f32 dot
      (the route to bf16 matrix units; docs/speed.md), statistics in float32.
    mesh: None (one device), "auto" (every local device when there are several) or a
      `jax.sharding.Mesh`: batches are split over its devices, parameters replicated
      (results equal the single-device ones; see docs/scaling.md). shard_params=True instead
      splits the large weight matrices over the mesh (fully sharded, for models too big for
      one device).
    """
    batch_kw = {k: kw.pop(k) for k in _BATCH_KW if k in kw}
    if source == "random":
        preset, config, arch, weights, where = hf.random_preset(PRESETS, preset, kw, default="small", seed=seed,
                                                         make_arch=arch_from_config, make_weights=random_weights)
        name = f"random-{arch.model_type}-{preset}"
        do_norm = bool(normalize) if normalize is not None else False
    else:
        path, config = hf.open_checkpoint(source, revision=revision, allow_pickle=allow_pickle, preset=preset,
                                          overrides=kw)
        arch = arch_from_config(config, path / "config.json")
        weights = hf.strip_prefix(hf.read_weights(path), TASK_PREFIXES)
        name, where = str(source), path
        do_norm = _read_do_normalize(path) if normalize is None else bool(normalize)
    params = convert(arch, weights, where)
    fp = digest({k: v for k, v in config.items() if k not in ("transformers_version", "architectures", "dtype",
                                                              "torch_dtype")},
                {k: v for k, v in weights.items() if not k.startswith(IGNORED)},
                extra=f"wav2vec2-family;pool=mean-valid-frames;hidden_states=transformers5;normalize={do_norm};"
                      f"dtype={dtype}")
    enc = Wav2Vec2Encoder(arch, params, config=config, name=name, fingerprint=fp, dtype=dtype,
                           normalize=do_norm, buckets=buckets, **batch_kw)
    enc.provenance = None if source == "random" else hf.provenance(path)
    return enc


def _read_do_normalize(path: Path) -> bool:
    f = Path(path) / "preprocessor_config.json"
    if not f.exists():
        return False
    try:
        return bool(json.loads(f.read_text()).get("do_normalize", False))
    except json.JSONDecodeError as e:
        raise EncoderError(f"{f} is not valid JSON: {e}") from None

"""JAX port of emotion2vec (Ma et al., 2024), the data2vec 2.0 audio model released through FunASR:
emotion2vec_base and emotion2vec_plus_{seed,base,large}.

Long on purpose: the whole forward pass of one model family, and its loader, read top to bottom.

Forward pass (FunASR's `Emotion2vec.extract_features(source, padding_mask=None, mask=False)` in eval
mode, funasr/models/emotion2vec/{model,audio,base,modules}.py):

  input       per-utterance layer norm of the waveform when the config says `normalize: true`
              (F.layer_norm over all samples, eps 1e-5), as FunASR's `inference` does;
  local       conv feature extractor (`feature_encoder_spec`, no bias; `extractor_mode` layer_norm:
              LayerNorm on every conv, default: GroupNorm on the first), GELU;
              project_features: LayerNorm + Linear to embed_dim;
  positional  x + conv positional encoder: `conv_pos_depth` x [grouped Conv1d, kernel
              max(3, conv_pos_width // conv_pos_depth), same padding; LayerNorm without affine; GELU];
  tokens      `num_extra_tokens` learned tokens prepended;
  prenet      context_encoder: LayerNorm (post-LN models), `prenet_depth` transformer blocks;
  blocks      `depth` transformer blocks (post-LN "AltBlock"); a final LayerNorm for pre-LN models.
  attention   every block adds an ALiBi bias (slope_h * -|i - j|, zero for pairs involving an extra
              token) scaled by the learned, clamped-at-zero `alibi_scale` (per head; per layer too when
              `learned_alibi_scale_per_layer`).

`embed` returns [B, 1 + prenet_depth + depth, embed_dim]: entry 0 is the prenet's input (after the
positional encoder and the context encoder's layer norm), then every prenet block's output, then every
block's output, each mean-pooled over the utterance's frames with the extra tokens removed. The last
entry is the authors' utterance embedding (FunASR `granularity="utterance"`: mean over frames of the
final output).

Batch invariance: the first GroupNorm (default mode) takes statistics over valid frames only; the
positional encoder's input is zeroed beyond the valid frames before every convolution (what the
unpadded run's zero padding sees); padded keys are masked in attention; ALiBi depends on relative
positions only. Strided convolutions never read past a valid frame's window.

Weights: the releases are torch pickles (FunASR model.pt, fairseq emotion2vec_base.pt), read as
released by jaxser's restricted unpickler (`torch_pickle`, via `emotion2vec_convert`, which can
also write a model.safetensors + config.json folder).
"""
from __future__ import annotations

import ast
import dataclasses
import math
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.encoders.activations import layer_norm, valid_group_norm
from jaxser.encoders.base import (BATCH_STRETCH, BatchedEncoder, EncoderError, check_waveforms, digest,
                                  geometric_buckets, min_samples_why)

MODEL_TYPE = "emotion2vec"
SAMPLE_RATE = 16_000
AUDIO = "modality_encoders.AUDIO."
#: keys of the released checkpoints that inference never reads: the pre-training decoder, the EMA
#: teacher, and the plus models' 9-class emotion head (kept in converted files, unused here)
IGNORED = (AUDIO + "decoder.", "_ema", "ema.", "proj.")
_TORCH_EPS = 1e-5  # nn.LayerNorm / GroupNorm / F.layer_norm default
_gelu = partial(jax.nn.gelu, approximate=False)  # nn.GELU()

#: config.json entries (flattened from FunASR's `model_conf` + `model_conf.modalities.audio`)
ARCH_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "norm_eps", "norm_affine", "layer_norm_first",
             "normalize", "feature_encoder_spec", "extractor_mode", "conv_pos_width", "conv_pos_depth",
             "conv_pos_groups", "conv_pos_pre_ln", "prenet_depth", "num_extra_tokens", "use_alibi_encoder",
             "num_alibi_heads", "learned_alibi_scale_per_head", "learned_alibi_scale_per_layer")


# ----------------------------------------------------------------------------- architecture
@dataclasses.dataclass(frozen=True)
class Arch:
    """What the forward pass needs (hashable: a jit static argument)."""

    conv: tuple[tuple[int, int, int], ...]  # (channels, kernel, stride)
    extractor_mode: str  # "layer_norm" | "default"
    embed: int
    depth: int
    heads: int
    mlp: int
    eps: float
    affine: bool
    layer_norm_first: bool
    normalize: bool
    pos_kernel: int
    pos_depth: int
    pos_groups: int
    pos_pre_ln: bool
    prenet: int
    extra: int
    alibi: bool
    alibi_heads: int
    scale_per_head: bool
    scale_per_layer: bool

    @property
    def blocks(self) -> int:
        return self.prenet + self.depth

    def frames(self, n):
        """The conv stack's output length, floor((n - k) / s) + 1 per conv (FunASR's formula)."""
        for _, k, s in self.conv:
            n = (n - k) // s + 1
        return n

    @property
    def min_samples(self) -> int:
        """Shortest waveform giving one frame (the conv stack's receptive field)."""
        n = 1
        for _, k, s in reversed(self.conv):
            n = (n - 1) * s + k
        return n


def parse_spec(spec: Any, where: Any = "config") -> tuple[tuple[int, int, int], ...]:
    """`feature_encoder_spec`: a list of (channels, kernel, stride), or the authors' Python expression
    string ('[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...'), evaluated as literal list arithmetic only
    (FunASR calls eval() on it; no code runs here)."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add) and isinstance(a, list) and isinstance(b, list):
                return a + b
            if isinstance(node.op, ast.Mult) and isinstance(a, list) and isinstance(b, int) and 0 <= b <= 64:
                return a * b
        raise ValueError(ast.dump(node)[:80])

    try:
        value = ev(ast.parse(spec, mode="eval")) if isinstance(spec, str) else spec
        out = tuple((int(c), int(k), int(s)) for c, k, s in value)
    except (SyntaxError, ValueError, TypeError) as e:
        raise EncoderError(f"{where}: feature_encoder_spec {spec!r} is not a list of (channels, kernel, stride) "
                           f"({type(e).__name__})") from None
    if not out or any(min(t) < 1 for t in out):
        raise EncoderError(f"{where}: feature_encoder_spec {spec!r} needs at least one positive (channels, kernel, "
                           "stride) triple")
    return out


def config_from_model_conf(model_conf: dict, where: Any = "config.yaml") -> dict:
    """jaxser's config.json entries from a FunASR `model_conf` (config.yaml) or a fairseq `cfg.model`."""
    if not isinstance(model_conf, dict):
        raise EncoderError(f"{where}: model_conf must be a mapping, got {type(model_conf).__name__}")
    audio = (model_conf.get("modalities") or {}).get("audio")
    if not isinstance(audio, dict):
        raise EncoderError(f"{where}: model_conf has no modalities.audio section (not an emotion2vec config)")

    def get(d, key, section):
        if key not in d or d[key] is None:
            raise EncoderError(f"{where}: {section}{key} is missing")
        return d[key]

    top = lambda k: get(model_conf, k, "model_conf.")  # noqa: E731
    aud = lambda k: get(audio, k, "model_conf.modalities.audio.")  # noqa: E731
    if audio.get("learned_alibi", False):
        raise EncoderError(f"{where}: modalities.audio.learned_alibi: true (a learned ALiBi table) is not "
                           "implemented; the released models use the fixed ALiBi bias")
    if model_conf.get("adversarial_training", False) or audio.get("type", "AUDIO") != "AUDIO":
        raise EncoderError(f"{where}: only the audio modality of a data2vec-style model is supported")
    cfg = {
        "model_type": MODEL_TYPE, "sample_rate": SAMPLE_RATE,
        "embed_dim": int(top("embed_dim")), "depth": int(top("depth")), "num_heads": int(top("num_heads")),
        "mlp_ratio": float(top("mlp_ratio")), "norm_eps": float(model_conf.get("norm_eps", 1e-5)),
        "norm_affine": bool(model_conf.get("norm_affine", True)),
        "layer_norm_first": bool(model_conf.get("layer_norm_first", False)),
        "normalize": bool(model_conf.get("normalize", False)),
        "feature_encoder_spec": [list(t) for t in parse_spec(aud("feature_encoder_spec"), where)],
        "extractor_mode": str(audio.get("extractor_mode", model_conf.get("extractor_mode", "layer_norm"))),
        "conv_pos_width": int(aud("conv_pos_width")), "conv_pos_depth": int(aud("conv_pos_depth")),
        "conv_pos_groups": int(aud("conv_pos_groups")), "conv_pos_pre_ln": bool(audio.get("conv_pos_pre_ln", False)),
        "prenet_depth": int(aud("prenet_depth")), "num_extra_tokens": int(audio.get("num_extra_tokens", 0)),
        "use_alibi_encoder": bool(audio.get("use_alibi_encoder", False)),
        "num_alibi_heads": int(audio.get("num_alibi_heads", model_conf["num_heads"])),
        "learned_alibi_scale_per_head": bool(audio.get("learned_alibi_scale_per_head", False)),
        "learned_alibi_scale_per_layer": bool(audio.get("learned_alibi_scale_per_layer", False)),
    }
    arch_from_config(cfg, where)
    return cfg


def arch_from_config(cfg: dict, where: Any = "config.json") -> Arch:
    if cfg.get("model_type") != MODEL_TYPE:
        raise EncoderError(f"{where}: model_type {cfg.get('model_type')!r} is not {MODEL_TYPE!r} (load the release "
                           "folder itself: config.yaml + model.pt or emotion2vec_base.pt)")
    missing = [k for k in ARCH_KEYS if k not in cfg]
    if missing:
        raise EncoderError(f"{where}: missing config entries {missing}")
    if int(cfg.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
        raise EncoderError(f"{where}: sample_rate {cfg['sample_rate']} is not {SAMPLE_RATE}")
    if cfg["extractor_mode"] not in ("layer_norm", "default"):
        raise EncoderError(f"{where}: extractor_mode must be 'layer_norm' or 'default', got {cfg['extractor_mode']!r}")
    try:
        D, depth = int(cfg["embed_dim"]), int(cfg["conv_pos_depth"])
        arch = Arch(
            conv=parse_spec(cfg["feature_encoder_spec"], where), extractor_mode=str(cfg["extractor_mode"]),
            embed=D, depth=int(cfg["depth"]), heads=int(cfg["num_heads"]), mlp=int(D * float(cfg["mlp_ratio"])),
            eps=float(cfg["norm_eps"]), affine=bool(cfg["norm_affine"]), layer_norm_first=bool(cfg["layer_norm_first"]),
            normalize=bool(cfg["normalize"]), pos_kernel=max(3, int(cfg["conv_pos_width"]) // max(depth, 1)),
            pos_depth=depth, pos_groups=int(cfg["conv_pos_groups"]), pos_pre_ln=bool(cfg["conv_pos_pre_ln"]),
            prenet=int(cfg["prenet_depth"]), extra=int(cfg["num_extra_tokens"]), alibi=bool(cfg["use_alibi_encoder"]),
            alibi_heads=int(cfg["num_alibi_heads"]), scale_per_head=bool(cfg["learned_alibi_scale_per_head"]),
            scale_per_layer=bool(cfg["learned_alibi_scale_per_layer"]))
    except (TypeError, ValueError) as e:
        raise EncoderError(f"{where}: malformed emotion2vec config ({e})") from None
    if arch.embed < 1 or arch.heads < 1 or arch.embed % arch.heads:
        raise EncoderError(f"{where}: embed_dim {arch.embed} is not divisible by num_heads {arch.heads}")
    if arch.pos_depth < 1 or arch.pos_groups < 1 or arch.embed % arch.pos_groups:
        raise EncoderError(f"{where}: embed_dim {arch.embed} is not divisible by conv_pos_groups {arch.pos_groups} "
                           f"(or conv_pos_depth {arch.pos_depth} < 1)")
    if arch.depth < 1 or arch.prenet < 0 or arch.extra < 0:
        raise EncoderError(f"{where}: need depth >= 1, prenet_depth >= 0, num_extra_tokens >= 0")
    if arch.alibi and not 1 <= arch.alibi_heads <= arch.heads:
        raise EncoderError(f"{where}: num_alibi_heads {arch.alibi_heads} must be in 1..num_heads ({arch.heads})")
    return arch


# ----------------------------------------------------------------------------- checkpoint names
def _block_prefixes(arch: Arch) -> list[str]:
    return ([f"{AUDIO}context_encoder.blocks.{i}." for i in range(arch.prenet)]
            + [f"blocks.{i}." for i in range(arch.depth)])


def _pos_prefix(arch: Arch) -> str:
    return f"{AUDIO}relative_positional_encoder." + ("1." if arch.pos_pre_ln else "")


def expected_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    """Every parameter the encoder reads, under the released checkpoints' names (PyTorch shapes)."""
    D, M = arch.embed, arch.mlp
    out: dict[str, tuple[int, ...]] = {}
    c_in = 1
    for i, (c, k, _) in enumerate(arch.conv):
        pre = f"{AUDIO}local_encoder.conv_layers.{i}."
        out[pre + "0.weight"] = (c, c_in, k)
        if arch.extractor_mode == "layer_norm":
            out[pre + "2.1.weight"] = out[pre + "2.1.bias"] = (c,)
        elif i == 0:
            out[pre + "2.weight"] = out[pre + "2.bias"] = (c,)
        c_in = c
    out[f"{AUDIO}project_features.1.weight"] = out[f"{AUDIO}project_features.1.bias"] = (c_in,)
    out[f"{AUDIO}project_features.2.weight"] = (D, c_in)
    out[f"{AUDIO}project_features.2.bias"] = (D,)
    if arch.pos_pre_ln:
        out[f"{AUDIO}relative_positional_encoder.0.weight"] = out[f"{AUDIO}relative_positional_encoder.0.bias"] = (D,)
    for j in range(arch.pos_depth):
        out[f"{_pos_prefix(arch)}{j + 1}.0.weight"] = (D, D // arch.pos_groups, arch.pos_kernel)
        out[f"{_pos_prefix(arch)}{j + 1}.0.bias"] = (D,)
    if arch.extra:
        out[f"{AUDIO}extra_tokens"] = (1, arch.extra, D)
    if arch.alibi:
        out[f"{AUDIO}alibi_scale"] = (arch.blocks if arch.scale_per_layer else 1, 1,
                                      arch.alibi_heads if arch.scale_per_head else 1, 1, 1)
    norms = []
    if not arch.layer_norm_first:
        norms.append(f"{AUDIO}context_encoder.norm.")
    for pre in _block_prefixes(arch):
        norms += [pre + "norm1.", pre + "norm2."]
        out[pre + "attn.qkv.weight"], out[pre + "attn.qkv.bias"] = (3 * D, D), (3 * D,)
        out[pre + "attn.proj.weight"], out[pre + "attn.proj.bias"] = (D, D), (D,)
        out[pre + "mlp.fc1.weight"], out[pre + "mlp.fc1.bias"] = (M, D), (M,)
        out[pre + "mlp.fc2.weight"], out[pre + "mlp.fc2.bias"] = (D, M), (D,)
    if arch.layer_norm_first:
        norms.append("norm.")
    if arch.affine:
        for n in norms:
            out[n + "weight"] = out[n + "bias"] = (D,)
    return out


def check_weights(arch: Arch, weights: dict[str, np.ndarray], where: Any) -> None:
    """Fail naming the key when one is missing, unexpected or of the wrong shape."""
    from jaxser.encoders import hf

    shapes = expected_shapes(arch)
    hf.check_keys(where, set(shapes), set(weights), ignore=IGNORED)
    for k, shape in shapes.items():
        if tuple(weights[k].shape) != shape:
            raise EncoderError(f"{where}: key {k} has shape {tuple(weights[k].shape)}, but the config implies {shape}")


def convert_params(arch: Arch, weights: dict[str, np.ndarray], where: Any = "checkpoint") -> dict:
    """Released state-dict names -> the params pytree of `forward` (float32 numpy), explicitly."""
    check_weights(arch, weights, where)
    w = {k: np.asarray(v, np.float32) for k, v in weights.items() if not k.startswith(IGNORED)}
    wio = lambda W: np.ascontiguousarray(W.transpose(2, 1, 0))  # noqa: E731  torch [out, in, k] -> [k, in, out]
    T = lambda W: np.ascontiguousarray(W.T)  # noqa: E731

    def norm(pre):
        return {"g": w[pre + "weight"], "b": w[pre + "bias"]} if arch.affine else {"g": None, "b": None}

    fe = []
    for i in range(len(arch.conv)):
        pre = f"{AUDIO}local_encoder.conv_layers.{i}."
        layer = {"w": wio(w[pre + "0.weight"])}
        if arch.extractor_mode == "layer_norm":
            layer["g"], layer["b"] = w[pre + "2.1.weight"], w[pre + "2.1.bias"]
        elif i == 0:
            layer["g"], layer["b"] = w[pre + "2.weight"], w[pre + "2.bias"]
        fe.append(layer)
    pf = {"g": w[f"{AUDIO}project_features.1.weight"], "b": w[f"{AUDIO}project_features.1.bias"],
          "w": T(w[f"{AUDIO}project_features.2.weight"]), "bias": w[f"{AUDIO}project_features.2.bias"]}
    pos = [{"w": wio(w[f"{_pos_prefix(arch)}{j + 1}.0.weight"]), "b": w[f"{_pos_prefix(arch)}{j + 1}.0.bias"]}
           for j in range(arch.pos_depth)]
    blocks = []
    for pre in _block_prefixes(arch):
        n1, n2 = norm(pre + "norm1."), norm(pre + "norm2.")
        blocks.append({"ln1_g": n1["g"], "ln1_b": n1["b"], "ln2_g": n2["g"], "ln2_b": n2["b"],
                       "qkv_w": T(w[pre + "attn.qkv.weight"]), "qkv_b": w[pre + "attn.qkv.bias"],
                       "o_w": T(w[pre + "attn.proj.weight"]), "o_b": w[pre + "attn.proj.bias"],
                       "fc1_w": T(w[pre + "mlp.fc1.weight"]), "fc1_b": w[pre + "mlp.fc1.bias"],
                       "fc2_w": T(w[pre + "mlp.fc2.weight"]), "fc2_b": w[pre + "mlp.fc2.bias"]})
    params = {"fe": fe, "pf": pf, "pos": pos, "blocks": blocks,
              "pos_ln": {"g": w[f"{AUDIO}relative_positional_encoder.0.weight"],
                         "b": w[f"{AUDIO}relative_positional_encoder.0.bias"]} if arch.pos_pre_ln else None,
              "ctx_norm": norm(f"{AUDIO}context_encoder.norm.") if not arch.layer_norm_first else None,
              "final_norm": norm("norm.") if arch.layer_norm_first else None,
              "extra": w[f"{AUDIO}extra_tokens"][0] if arch.extra else None}
    if arch.alibi:
        s = w[f"{AUDIO}alibi_scale"]  # [L or 1, 1, H or 1, 1, 1]
        params["alibi_scale"] = np.ascontiguousarray(s.reshape(s.shape[0], s.shape[2]))
        params["alibi_slopes"] = alibi_slopes(arch.alibi_heads)
    return params


def alibi_slopes(n: int) -> np.ndarray:
    """ALiBi head slopes (data2vec 2.0's `get_alibi`: geometric for powers of two, interleaved otherwise),
    float32 as the reference's torch.Tensor of Python floats."""
    def pow2(k):
        start = 2 ** (-(2 ** -(math.log2(k) - 3)))
        return [start * start ** i for i in range(k)]

    def slopes(k):
        if math.log2(k).is_integer():
            return pow2(k)
        p = 2 ** math.floor(math.log2(k))
        return pow2(p) + slopes(2 * p)[0::2][: k - p]

    return np.asarray(slopes(n), np.float32)


# ----------------------------------------------------------------------------- forward pass
def _conv(x, w, stride=1, pad=(0, 0), groups=1):
    return jax.lax.conv_general_dilated(x, w.astype(x.dtype), window_strides=(stride,), padding=[pad],
                                        dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=groups)


def forward(arch: Arch, params: dict, wave: jax.Array, n_samples: jax.Array, dtype=jnp.float32, collect=None,
            upto: int | None = None):
    """Padded (already normalised) waveforms [B, N] + valid lengths [B] -> stacked `collect(state,
    frame_mask)` over the 1 + prenet + depth states. `collect` defaults to the identity ([L, B, T, D]);
    pooling inside it avoids materialising every layer's frames. States beyond an utterance's valid
    frames are garbage by design and must be masked. `upto` as in the wav2vec2 family (unrolled blocks)."""
    collect = collect or (lambda h, m: h)
    p = jax.tree.map(lambda a: a.astype(dtype), params)
    x = wave.astype(dtype)[..., None]
    n = n_samples
    for i, (layer, (_, k, s)) in enumerate(zip(p["fe"], arch.conv)):
        x = _conv(x, layer["w"], s)
        n = (n - k) // s + 1
        if arch.extractor_mode == "layer_norm":
            x = layer_norm(x, layer["g"], layer["b"], _TORCH_EPS)
        elif i == 0:  # Fp32GroupNorm(C, C): per-channel statistics over the VALID frames only
            x = valid_group_norm(x, n, layer["g"], layer["b"], _TORCH_EPS)
        x = _gelu(x)
    B, T, _ = x.shape
    mask = jnp.arange(T)[None, :] < n[:, None]  # [B, T]
    maskf = mask[..., None].astype(dtype)
    pf = p["pf"]
    x = layer_norm(x, pf["g"], pf["b"], _TORCH_EPS) @ pf["w"] + pf["bias"]

    h = x
    if arch.pos_pre_ln:
        h = layer_norm(h, p["pos_ln"]["g"], p["pos_ln"]["b"], _TORCH_EPS)
    k = arch.pos_kernel
    for layer in p["pos"]:  # conv (same padding: SamePad drops the extra frame of even kernels), LN, GELU
        h = _conv(h * maskf, layer["w"], 1, (k // 2, k - 1 - k // 2), arch.pos_groups) + layer["b"]
        h = _gelu(layer_norm(h, None, None, _TORCH_EPS))
    x = x + h

    E, D, H = arch.extra, arch.embed, arch.heads
    hd = D // H
    if E:
        x = jnp.concatenate([jnp.broadcast_to(p["extra"][None], (B, E, D)).astype(dtype), x], axis=1)
    S = E + T
    valid = jnp.concatenate([jnp.ones((B, E), bool), mask], axis=1)
    key_bias = jnp.where(valid, 0.0, -1e30).astype(jnp.float32)[:, None, None, :]  # [B, 1, 1, S]
    if arch.alibi:  # slope_h * -|i - j| over the frames, zero rows/columns for the extra tokens
        dist = -np.abs(np.arange(T)[None, :] - np.arange(T)[:, None]).astype(np.float32)
        base = jnp.asarray(params["alibi_slopes"], jnp.float32)[:, None, None] * jnp.asarray(dist)[None]
        base = jnp.pad(base, ((0, 0), (E, 0), (E, 0)))  # [Ha, S, S]
        scales = jnp.maximum(jnp.asarray(params["alibi_scale"], jnp.float32), 0.0)  # clamp_min(0)

    def attention(h, lp, bias):
        qkv = (h @ lp["qkv_w"] + lp["qkv_b"]).reshape(B, S, 3, H, hd)
        q, k_, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))  # [B, H, S, hd]
        scores = ((q * (hd ** -0.5)) @ k_.transpose(0, 1, 3, 2)).astype(jnp.float32)
        if bias is not None:
            scores = scores + bias
        probs = jax.nn.softmax(scores + key_bias, axis=-1).astype(dtype)
        return (probs @ v).transpose(0, 2, 1, 3).reshape(B, S, D) @ lp["o_w"] + lp["o_b"]

    def mlp(h, lp):
        return _gelu(h @ lp["fc1_w"] + lp["fc1_b"]) @ lp["fc2_w"] + lp["fc2_b"]

    def block(x, lp, bias):
        eps = arch.eps
        if arch.layer_norm_first:  # as released: the MLP output is added to itself, not to x
            x = x + attention(layer_norm(x, lp["ln1_g"], lp["ln1_b"], eps), lp, bias)
            y = mlp(layer_norm(x, lp["ln2_g"], lp["ln2_b"], eps), lp)
            return y + y
        x = layer_norm(x + attention(x, lp, bias), lp["ln1_g"], lp["ln1_b"], eps)
        return layer_norm(x + mlp(x, lp), lp["ln2_g"], lp["ln2_b"], eps)

    if p["ctx_norm"] is not None:
        x = layer_norm(x, p["ctx_norm"]["g"], p["ctx_norm"]["b"], arch.eps)
    states = [collect(x[:, E:], mask)]
    n_blocks = len(p["blocks"])
    for l, lp in enumerate(p["blocks"]):
        bias = None
        if arch.alibi:
            sc = scales[l if scales.shape[0] > 1 else 0]  # [Ha] or [1]
            bias = base * sc[:, None, None]
            if arch.alibi_heads < H:  # only the first num_alibi_heads heads get the bias
                bias = jnp.pad(bias, ((0, H - arch.alibi_heads), (0, 0), (0, 0)))
            bias = bias[None]
        x = block(x, lp, bias)
        if l == n_blocks - 1 and p["final_norm"] is not None:
            x = layer_norm(x, p["final_norm"]["g"], p["final_norm"]["b"], arch.eps)
        states.append(collect(x[:, E:], mask))
    return jnp.stack(states)


# ----------------------------------------------------------------------------- encoder
class Emotion2VecEncoder(BatchedEncoder):
    """Every emotion2vec layer, mean-pooled over each utterance's frames: [B, 1 + prenet + depth, D]."""

    def __init__(self, arch: Arch, params: dict, *, config: dict, name: str, fingerprint: str,
                 dtype: str = "float32", normalize: bool = True, buckets: Sequence[int] | None = None,
                 batch_seconds: float = 32.0, max_batch: int = 16, batch_stretch: float = BATCH_STRETCH, mesh=None):
        from jaxser import sharding

        self.arch, self.config, self.name, self.fingerprint = arch, config, name, fingerprint
        self.dim, self.num_layers = arch.embed, 1 + arch.blocks
        self.normalize = bool(normalize)
        self._setup(dtype=dtype, buckets=buckets, ladder=geometric_buckets(self.sample_rate),
                    batch_seconds=batch_seconds, max_batch=max_batch, batch_stretch=batch_stretch, mesh=mesh)
        # the ALiBi slopes and scales stay float32 (they are added to float32 scores)
        keep32 = {"alibi_slopes", "alibi_scale"}
        cast = {k: (v if k in keep32 else jax.tree.map(lambda a: jnp.asarray(a, self._jdt), v))
                for k, v in params.items()}
        self.params = sharding.replicate(self.mesh, cast)
        self._use_forward(forward)

    def _prepare(self, waveforms) -> list[np.ndarray]:
        out = []
        for w in check_waveforms(self.name, waveforms, self.arch.min_samples, min_samples_why(self)):
            if self.normalize:  # F.layer_norm(source, source.shape): biased variance, eps 1e-5
                w64 = w.astype(np.float64)
                w = ((w64 - w64.mean()) / np.sqrt(w64.var() + _TORCH_EPS)).astype(np.float32)
            out.append(w)
        return out


# ----------------------------------------------------------------------------- loading
_REAL_SPEC = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2
_COMMON = dict(model_type=MODEL_TYPE, sample_rate=SAMPLE_RATE, mlp_ratio=4.0, norm_eps=1e-5, norm_affine=True,
               layer_norm_first=False, normalize=True, extractor_mode="layer_norm", conv_pos_width=95,
               conv_pos_depth=5, conv_pos_groups=16, conv_pos_pre_ln=False, num_extra_tokens=10,
               use_alibi_encoder=True, learned_alibi_scale_per_head=True, learned_alibi_scale_per_layer=False)
PRESETS: dict[str, dict] = {
    # the released flags (conv stack, 95-wide 5-deep positional encoder, 10 extra tokens, ALiBi) at a
    # width that runs in seconds on 2 CPU cores
    "tiny": {**_COMMON, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_alibi_heads": 4, "prenet_depth": 2,
             "feature_encoder_spec": [[64, 10, 5]] + [[64, 3, 2]] * 4 + [[64, 2, 2]] * 2},
    # emotion2vec_base / emotion2vec_plus_{seed,base} (config.yaml of the releases)
    "base": {**_COMMON, "embed_dim": 768, "depth": 8, "num_heads": 12, "num_alibi_heads": 12, "prenet_depth": 4,
             "feature_encoder_spec": _REAL_SPEC},
}
_BATCH_KW = ("batch_seconds", "max_batch", "batch_stretch", "mesh")


def random_weights(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random weights under the released names (random models take the real loading path):
    fan-in scaled normals, unit-ish gains, small biases, unit ALiBi scales."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in expected_shapes(arch).items():
        if k.endswith("alibi_scale"):
            out[k] = np.ones(shape, np.float32)
        elif k.endswith("extra_tokens"):
            out[k] = rng.standard_normal(shape, dtype=np.float32)
        elif len(shape) >= 2:
            out[k] = rng.standard_normal(shape, dtype=np.float32) * np.float32(1 / np.sqrt(np.prod(shape[1:])))
        elif "norm" in k and k.endswith("weight") or k.endswith(("2.1.weight", "project_features.1.weight")):
            out[k] = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        else:
            out[k] = 0.02 * rng.standard_normal(shape, dtype=np.float32)
    return out


def read_converted(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, weights) of a converted folder (config.json + model.safetensors), safetensors only."""
    from jaxser.encoders import hf

    cfg, weights = hf.read_converted(path, "load the release folder itself, or convert it again with "
                                           "`python -m jaxser.encoders.emotion2vec_convert SRC DST`")
    arch_from_config(cfg, Path(path) / "config.json")
    return cfg, weights


def read_folder(path: Path, *, allow_pickle=None) -> tuple[dict, dict[str, np.ndarray]]:
    """A converted folder, or a released FunASR / fairseq one read as released (no code runs)."""
    from jaxser.encoders import emotion2vec_convert as conv

    path = Path(path)
    if (path / "config.json").exists() and (path / "model.safetensors").exists():
        return read_converted(path)
    if conv.find_checkpoint(path) is not None:
        return conv.read_release(path, allow_pickle=allow_pickle)
    files = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    raise EncoderError(f"{path}: no emotion2vec weights: expected a release (config.yaml + model.pt or "
                       f"emotion2vec_base.pt) or a converted folder (config.json + model.safetensors); files: {files}")


#: the files of a release and of a converted folder
RELEASE_FILES = ["config.yaml", "tokens.txt", "*.pt", "config.json", "model.safetensors"]


def _resolve_source(source: str, revision: str | None) -> Path:
    from jaxser.encoders import hf

    path = Path(source).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix == ".pt"):
        return path
    if path.exists() or source.startswith((".", "/", "~")):
        raise EncoderError(f"{source}: not a directory (pass the release folder or a converted one)")
    repo, revision = hf.split_revision(source, revision)
    return hf.snapshot(repo, revision, RELEASE_FILES)


def load(source: str = "random", *, dtype: str = "float32", revision: str | None = None, allow_pickle=None,
         preset: str | None = None, seed: int = 0, buckets: Sequence[int] | None = None, normalize: bool | None = None,
         **kw) -> Emotion2VecEncoder:
    """An emotion2vec encoder from a release folder or Hub id (`owner/name[@rev]`), a converted folder, or
    `"random"` (seeded weights; `preset` "tiny" (default) or "base"; further keyword arguments override
    config entries).

    normalize: the input layer norm; default = the config's `normalize` (true for every release).
    Batching (as for the wav2vec2 family): batch_seconds (padded audio per batch, default 32), max_batch
    (default 16), batch_stretch (default 1.2); mesh (batches split over the devices, parameters replicated).
    """
    from jaxser.encoders import hf

    batch_kw = {k: kw.pop(k) for k in _BATCH_KW if k in kw}
    if source != "random":  # a release or converted folder (its own reader: not a transformers layout)
        if kw:
            raise TypeError(f"unexpected keyword arguments for a checkpoint: {sorted(kw)}")
        if preset is not None:
            raise EncoderError("preset= only applies to source='random'")
        path = _resolve_source(str(source), revision)
        config, weights = read_folder(path, allow_pickle=allow_pickle)
        arch = arch_from_config(config, path / "config.json" if (path / "config.json").exists() else path)
        name, where = str(source), path
    else:
        preset, config, arch, weights, where = hf.random_preset(PRESETS, preset, kw, default="tiny", seed=seed,
                                                                make_arch=arch_from_config, make_weights=random_weights)
        name = f"random-emotion2vec-{preset}"
    params = convert_params(arch, weights, where)
    do_norm = arch.normalize if normalize is None else bool(normalize)
    used = set(expected_shapes(arch))
    fp = digest({k: config[k] for k in ARCH_KEYS}, {k: v for k, v in weights.items() if k in used},
                extra=f"emotion2vec;pool=mean-valid-frames;states=prenet-input+prenet+blocks;normalize={do_norm};"
                      f"dtype={dtype}")
    enc = Emotion2VecEncoder(arch, params, config=config, name=name, fingerprint=fp, dtype=dtype,
                             normalize=do_norm, buckets=buckets, **batch_kw)
    if source != "random":
        from jaxser.encoders import emotion2vec_convert as conv
        from jaxser.encoders.hf import provenance

        f = path / "model.safetensors" if (path / "model.safetensors").exists() else conv.find_checkpoint(path)
        enc.provenance = provenance(path if path.is_dir() else path.parent, [f])
    return enc

"""Flax downstream heads for frozen speech embeddings: FCN, 1-D CNN and a linear probe.

Heads map one utterance embedding ``[B, D]`` (or all encoder layers ``[B, L, D]`` when the
learned layer mix is on) to class *logits*; the trainer applies the softmax, because a fused
log-softmax + NLL is numerically safer than taking the log of a softmax output layer.
Every choice the seed papers leave open is a field of ``HeadConfig`` (defaults documented in
docs/training.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import flax.linen as nn
import jax
import jax.numpy as jnp

HEAD_KINDS = ("fcn", "cnn", "linear")


def _for(*kinds: str, default, doc: str):
    """A HeadConfig field used by `kinds` only: the others refuse a value for it (it would be
    silently ignored) and a config table of another kind refuses the key."""
    return field(default=default, metadata={"kinds": kinds, "doc": doc})


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of a downstream head (hashable, so it can key caches and results).

    kind:           "fcn" (dense ReLU stack), "cnn" (1-D conv over the embedding vector),
                    "linear" (a probe: one dense layer, no hidden units, no dropout).
    The other fields each belong to the kinds that use them (`fields_of`); a value other than
    the default for a field the kind does not use is an error, not silently ignored.
    """

    kind: str = field(default="fcn", metadata={"set_by": "the table name [head.<kind>]"})
    hidden: tuple[int, ...] = _for("fcn", "cnn", default=(256, 128),
                                   doc="widths of the hidden dense layers (fcn: the whole body; cnn: after flatten)")
    dropout: float = _for("fcn", "cnn", default=0.3, doc="dropout rate after every hidden dense layer (training only)")
    conv_channels: tuple[int, ...] = _for("cnn", default=(32, 64),
                                          doc="output channels of each conv + max-pool block")
    kernel_size: int = _for("cnn", default=3, doc="1-D convolution width")
    pool: int = _for("cnn", default=2, doc="max-pool window and stride")

    @staticmethod
    def fields_of(kind: str) -> tuple[str, ...]:
        """The fields a head kind uses (its config table's keys)."""
        return tuple(f.name for f in fields(HeadConfig) if kind in f.metadata.get("kinds", ()))

    @staticmethod
    def kinds_of(name: str) -> tuple[str, ...]:
        """The head kinds that use field `name` (none: not a head field)."""
        return next((f.metadata.get("kinds", ()) for f in fields(HeadConfig) if f.name == name), ())

    def __post_init__(self):
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"HeadConfig.kind={self.kind!r}; expected one of {HEAD_KINDS}")
        for f in fields(self):
            if "kinds" in f.metadata and self.kind not in f.metadata["kinds"] and getattr(self, f.name) != f.default:
                if not (isinstance(f.default, tuple) and tuple(getattr(self, f.name)) == f.default):
                    raise ValueError(f"HeadConfig.{f.name}={getattr(self, f.name)!r}: a {self.kind} head has no "
                                     f"{f.name} (a field of {', '.join(f.metadata['kinds'])} heads)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"HeadConfig.dropout={self.dropout}; expected 0 <= dropout < 1")
        if any(int(h) <= 0 for h in self.hidden) or any(int(c) <= 0 for c in self.conv_channels):
            raise ValueError(f"HeadConfig: layer sizes must be positive, got hidden={self.hidden}, "
                             f"conv_channels={self.conv_channels}")
        if self.kernel_size < 1 or self.pool < 1:
            raise ValueError(f"HeadConfig: kernel_size={self.kernel_size} and pool={self.pool} must be >= 1")
        # tuples keep the config hashable even when a caller passes lists
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))


class _DenseStack(nn.Module):
    """Dense -> ReLU -> Dropout for each width, then the class layer."""

    hidden: tuple[int, ...]
    dropout: float
    n_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        for i, width in enumerate(self.hidden):
            x = nn.relu(nn.Dense(width, name=f"dense_{i}")(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.n_classes, name="logits")(x)


class FCNHead(nn.Module):
    """The seed study's fully connected head: a few dense ReLU layers with dropout."""

    cfg: HeadConfig
    n_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return _DenseStack(self.cfg.hidden, self.cfg.dropout, self.n_classes, name="body")(x, train=train)


class Conv1D(nn.Module):
    """SAME-padded 1-D convolution written as one matmul over unfolded patches (im2col).

    Numerically the same layer as ``nn.Conv(features, (kernel_size,), padding="SAME")`` (same
    parameter shapes and initialisation; a test checks the outputs agree), but XLA:CPU runs
    a convolution inside the trainer's ``lax.scan`` loop ~15x slower than the same conv
    unrolled, while a dot runs at full speed there, and vmapped over seeds it stays a plain
    batched matmul instead of a grouped convolution.
    """

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x):  # [B, T, Cin] -> [B, T, features]
        k, t, cin = self.kernel_size, x.shape[-2], x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        left = (k - 1) // 2  # XLA's SAME: the extra pad for even k goes to the right
        xp = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
        patches = jnp.concatenate([xp[:, i:i + t, :] for i in range(k)], axis=-1)  # [B, T, k*Cin]
        return patches @ kernel.reshape(k * cin, self.features) + bias


def max_pool_1d(x, window: int):
    """Non-overlapping max-pool over axis 1 (a trailing remainder is dropped, as VALID does);
    a reshape + max, which fuses, instead of reduce_window."""
    b, t, c = x.shape
    n = t // window
    return x[:, : n * window].reshape(b, n, window, c).max(axis=2)


class SignalConvPool(nn.Module):
    """The CNN's first block on a 1-channel signal: ``max_pool(relu(conv(x)), pool)`` with a
    SAME-padded ``features x kernel_size`` convolution, ``[B, T] -> [B, T // pool, features]``.

    The same layer as ``Conv1D`` (parameters ``kernel [k, 1, F]`` and ``bias [F]``, same init)
    then ReLU then ``max_pool_1d``, computed per pooling phase: output ``t' * pool + j`` is a
    k-tap weighted sum of strided input slices, the phases are combined with ``maximum``, and
    bias + ReLU come after the max (both commute with it). With one input channel the
    convolution is 3 multiply-adds per output, which XLA fuses into one elementwise pass with
    time as the minor axis, instead of a K=3 matmul over unfolded patches and a separate pool
    over the largest activation of the head (measured 28% faster per training step of the
    whole default CNN on D=256, vmapped over 5 seeds on CPU)."""

    features: int
    kernel_size: int
    pool: int

    @nn.compact
    def __call__(self, x):  # [B, T] -> [B, T // pool, features]
        k, p, t, f = self.kernel_size, self.pool, x.shape[-1], self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, 1, f))
        bias = self.param("bias", nn.initializers.zeros, (f,))
        left = (k - 1) // 2  # XLA's SAME: the extra pad for even k goes to the right
        n = t // p
        xp = jnp.pad(x, ((0, 0), (left, k - 1 - left)))
        taps = [xp[:, o: o + (n - 1) * p + 1: p][:, None, :] for o in range(p + k - 1)]  # [B, 1, n] each
        w = kernel[:, 0, :, None]  # [k, F, 1]
        out = None
        for j in range(p):  # output positions t' * p + j read padded inputs t' * p + j + i
            o = sum(w[i] * taps[j + i] for i in range(k))  # [B, F, n]
            out = o if out is None else jnp.maximum(out, o)
        return nn.relu(out + bias[:, None]).transpose(0, 2, 1)


class CNNHead(nn.Module):
    """1-D CNN over the embedding treated as a 1-channel sequence of length D (conv + max-pool
    blocks, flatten, dense layers), as in the seed papers' CNN downstream model."""

    cfg: HeadConfig
    n_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        h = x
        for i, ch in enumerate(self.cfg.conv_channels):
            t = h.shape[-1] if i == 0 else h.shape[-2]
            pool = self.cfg.pool if t >= self.cfg.pool else 1  # too short to pool: conv only
            if i == 0:
                h = SignalConvPool(ch, self.cfg.kernel_size, pool, name="conv_0")(h)
            else:
                h = nn.relu(Conv1D(ch, self.cfg.kernel_size, name=f"conv_{i}")(h))
                if pool > 1:
                    h = max_pool_1d(h, pool)
        h = h.reshape(h.shape[0], -1)
        return _DenseStack(self.cfg.hidden, self.cfg.dropout, self.n_classes, name="body")(h, train=train)


class LinearHead(nn.Module):
    """A linear probe: how linearly decodable emotion is from the embedding."""

    n_classes: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        del train
        return nn.Dense(self.n_classes, name="logits")(x)


class LayerMix(nn.Module):
    """SUPERB-style learned softmax-weighted sum over encoder layers, then the head.

    The layer logits start at zero (a plain average), so no layer is preferred a priori.
    """

    head: nn.Module
    n_layers: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        if x.ndim != 3 or x.shape[1] != self.n_layers:
            raise ValueError(f"LayerMix expects [B, {self.n_layers}, D] inputs, got shape {x.shape}")
        w = self.param("layer_logits", nn.initializers.zeros, (self.n_layers,))
        # multiply-and-reduce rather than einsum: XLA:CPU fuses it into one pass over x, while
        # the einsum's dot_general transposes [B, L, D] first (measured ~4x slower, vmapped)
        x = (jax.nn.softmax(w)[:, None] * x).sum(axis=1)
        return self.head(x, train=train)


def make_head(cfg: HeadConfig, n_classes: int, *, n_layers: int | None = None) -> nn.Module:
    """The Flax module for ``cfg`` producing ``n_classes`` logits.

    With ``n_layers`` the module takes ``[B, n_layers, D]`` and learns a softmax weighting of
    the layers first (``TrainConfig(layer="weighted")``); otherwise it takes ``[B, D]``.
    """
    if n_classes < 2:
        raise ValueError(f"make_head: need at least 2 classes, got n_classes={n_classes}")
    if cfg.kind == "fcn":
        head = FCNHead(cfg, n_classes)
    elif cfg.kind == "cnn":
        head = CNNHead(cfg, n_classes)
    else:
        head = LinearHead(n_classes)
    if n_layers is not None:
        return LayerMix(head, int(n_layers))
    return head
